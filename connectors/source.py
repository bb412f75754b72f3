"""The kinds of source the service reads, as contracts: a broker's partitioned log
(:class:`StreamSource`), and a finite source a job reads to its end (:class:`FiniteSource`),
of which a file resumable at a row (:class:`FileSource`).

A broker connector is one module with a source and a sink (``kafka.py`` for kafka-python,
whose consumer is a :class:`StreamSource` as it is; ``confluent.py``, whose consumer translates
librdkafka's calls into these), plus their factories in :mod:`streammem.service.clients`.
Partitions, offsets and errors are named as kafka-python names them
(:class:`~kafka.TopicPartition`, :class:`~kafka.structs.OffsetAndMetadata`,
:class:`~kafka.errors.KafkaError`): kafka-python is a core dependency, and those names are the
vocabulary of every Kafka-protocol broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import pyarrow as pa
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from connectors import RecordBatch

__all__ = ["FileSource", "FiniteSource", "Rebalance", "StreamSource", "log_bounds"]


class Rebalance(Protocol):
    """Told which partitions a :class:`StreamSource` gets and loses (assign / revoke), from
    inside its ``poll``."""

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None: ...

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None: ...


@runtime_checkable
class StreamSource(Protocol):
    """A consumer of a partitioned, replayable log, in a group that shares its partitions.

    Every call that reaches the broker raises :class:`~kafka.errors.KafkaError` when it fails;
    ``timeout_ms`` bounds each (a broker that is gone must not hold up a shutdown).
    """

    # ------------------------------------------------------------------ poll
    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[TopicPartition, list]:
        """The next messages of the assigned partitions, each list in offset order; the
        messages have ``topic``, ``partition``, ``offset``, ``key``, ``value``, ``timestamp``
        and ``headers``. Rebalances are reported to the :class:`Rebalance` listener here."""
        ...

    def assignment(self) -> set[TopicPartition]:
        """The partitions assigned now."""
        ...

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` on."""
        ...

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        """Read each of ``tps`` from the start of its log."""
        ...

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int | None:
        """The offset the next poll reads from ``tp``."""
        ...

    # ------------------------------------------------------------------ log bounds
    def committed(self, tp: TopicPartition, timeout_ms: int | None = None) -> int | None:
        """The group's committed offset of ``tp`` (None: none)."""
        ...

    def highwater(self, tp: TopicPartition) -> int | None:
        """The log's end as the last fetch saw it (None before one answered)."""
        ...

    def end_offsets(
        self, tps: list[TopicPartition], timeout_ms: int | None = None
    ) -> dict[TopicPartition, int]:
        """The log's end of each of ``tps``, asked of the broker."""
        ...

    # ------------------------------------------------------------------ commit
    def commit(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata], timeout_ms: int | None = None
    ) -> None:
        """Commit these offsets for the group, synchronously."""
        ...

    def close(self, autocommit: bool = False, timeout_ms: int | None = None) -> None:
        """Leave the group (within ``timeout_ms``) and release the connection."""
        ...


def log_bounds(source: StreamSource, tp: TopicPartition, timeout_ms: int) -> tuple[int | None, int]:
    """The group's committed offset of ``tp`` (None if it has none) and the end of its log.

    The end is the high watermark of the last fetch where there was one; a broker's
    ListOffsets answer (``end_offsets``) may differ from it (Tansu answers the last record
    batch's base offset + 1).
    """
    committed = source.committed(tp, timeout_ms=timeout_ms)
    end = source.highwater(tp)
    if end is None:
        end = source.end_offsets([tp], timeout_ms=timeout_ms)[tp]
    return (committed if committed is not None and committed >= 0 else None), end


@runtime_checkable
class FiniteSource(Protocol):
    """A source a job reads to its end: batches of records, with the origin of each."""

    def __len__(self) -> int:
        """Records (rows) in all."""
        ...

    def __iter__(self) -> Iterator[RecordBatch]: ...

    def origin_fields(self) -> list[pa.Field]:
        """The columns of each result that say where its record came from."""
        ...


@runtime_checkable
class FileSource(FiniteSource, Protocol):
    """A file read in batches (Parquet, CSV), resumable at a row."""

    path: Path
    features: list[str]
    label: str | None

    def iter_from(self, start: int) -> Iterable[RecordBatch]:
        """The batches from row ``start`` on."""
        ...
