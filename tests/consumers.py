"""Consumers to run the daemon on in-process: an in-memory log, and a stop at a log's end."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata


class MemoryConsumer:
    """A :class:`~connectors.source.StreamSource` over in-memory logs.

    Parameters
    ----------
    logs
        Each assigned partition's message values; a value's offset is its index.
    committed
        The group's committed offsets, where polling starts (0 where there is none).
    max_records
        Messages per partition and poll, where ``poll`` is not told.

    """

    def __init__(
        self,
        logs: dict[TopicPartition, list[bytes]],
        committed: dict[TopicPartition, int] | None = None,
        max_records: int = 3,
    ) -> None:
        self.logs = logs
        self.commits = dict(committed or {})
        self.positions = {tp: self.commits.get(tp, 0) for tp in logs}
        self.max_records = max_records
        self.closed = False

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        polled = {}
        for tp, values in self.logs.items():
            start = self.positions[tp]
            batch = values[start : start + (max_records or self.max_records)]
            if batch:
                polled[tp] = [_message(tp, start + i, value) for i, value in enumerate(batch)]
                self.positions[tp] += len(batch)
        return polled

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int:
        return self.positions[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.positions[tp] = 0

    def committed(self, tp: TopicPartition, timeout_ms: int | None = None) -> int | None:
        return self.commits.get(tp)

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms=None) -> None:
        self.commits.update({tp: meta.offset for tp, meta in offsets.items()})

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.logs[tp])

    def end_offsets(self, tps: list[TopicPartition], timeout_ms: int | None = None) -> dict:
        return {tp: len(self.logs[tp]) for tp in tps}

    def close(self, autocommit: bool = True, timeout_ms: int | None = None) -> None:
        self.closed = True


def _message(tp: TopicPartition, offset: int, value: bytes) -> SimpleNamespace:
    """The attributes of a ``ConsumerRecord`` that the daemon reads."""
    return SimpleNamespace(
        topic=tp.topic, partition=tp.partition, offset=offset, key=None, value=value, timestamp=0
    )


class ReadToEnd:
    """Wraps a consumer and calls ``stop`` after the poll that reaches ``ends`` on every
    partition (or, if given, once ``until()`` is true), so a daemon run on it returns once it
    has read those logs (or after ``max_polls``, so a test that never gets there fails
    instead of hanging)."""

    def __init__(
        self,
        consumer: Any,
        ends: dict[TopicPartition, int],
        stop: Callable[[], None],
        max_polls: int = 100,
        until: Callable[[], bool] | None = None,
    ) -> None:
        self.consumer = consumer
        self.ends = ends
        self.stop = stop
        self.polls_left = max_polls
        self.until = until or self._at_ends

    def _at_ends(self) -> bool:
        return all(self.consumer.position(tp) >= end for tp, end in self.ends.items())

    def poll(self, **kwargs: Any) -> dict:
        polled = self.consumer.poll(**kwargs)
        self.polls_left -= 1
        if self.until() or self.polls_left == 0:
            self.stop()
        return polled

    def __getattr__(self, name: str) -> Any:
        return getattr(self.consumer, name)
