"""Sources and sinks that move records in and out of the scoring path.

Nothing here knows about models: a source yields :class:`RecordBatch` objects (decoded records,
where each came from, and what failed to decode), a sink accepts scored results and dead letters.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

__all__ = [
    "CLIENT_LOGGERS",
    "MAX_DETAIL_CHARS",
    "DeadLetter",
    "RecordBatch",
    "Sink",
    "SourceError",
    "bounded_text",
]

#: Loggers of the Kafka client libraries (kafka-python's; librdkafka's, which confluent.py
#: names): both log every failed retry, ~100 lines in a 12 s outage, so the CLI shows them at
#: ``--log-level DEBUG`` only, and the daemon logs once when the broker goes and once when it
#: comes back.
CLIENT_LOGGERS = ("kafka", "connectors.confluent.librdkafka")

#: Error texts longer than this are cut: an error that quotes a 1 MB value must not make its
#: dead letter too large to send.
MAX_DETAIL_CHARS = 1000


def bounded_text(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    r"""``text`` cut to ``limit`` characters (saying how much was cut), as valid Unicode.

    Lone surrogates (which JSON can carry but UTF-8 cannot) are escaped, so the text can always
    be encoded.

    Examples
    --------
    >>> bounded_text("x" * 20, limit=5)
    'xxxxx... [15 more characters]'
    >>> bounded_text("bad " + chr(0xD800))
    'bad \\ud800'

    """
    if len(text) > limit:
        text = f"{text[:limit]}... [{len(text) - limit} more characters]"
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


@dataclasses.dataclass
class DeadLetter:
    """A record that could not be decoded or validated, kept with its original bytes.

    ``reason`` is one of a small fixed set (it becomes a metric label); ``detail`` is the
    human-readable error, cut to :data:`MAX_DETAIL_CHARS`.
    """

    origin: dict[str, Any]
    reason: str
    detail: str
    payload: bytes
    key: bytes | None = None

    def __post_init__(self) -> None:
        self.detail = bounded_text(self.detail)


@dataclasses.dataclass
class RecordBatch:
    """Decoded records, the origin of each (copied into its result), and the failures.

    ``payloads`` holds each record's original bytes where a source has them (Kafka), so a
    record that decodes but fails validation is dead-lettered exactly as it arrived. ``kinds``
    gives the type a source declares for a field (``"number"`` or ``"text"``), where it has
    one (Parquet), for fields whose values do not show it (all null).
    """

    records: list[dict[str, Any]]
    origins: list[dict[str, Any]]
    dead_letters: list[DeadLetter] = dataclasses.field(default_factory=list)
    payloads: list[bytes] | None = None
    keys: list[bytes | None] | None = None
    kinds: dict[str, str] | None = None

    def __len__(self) -> int:
        return len(self.records) + len(self.dead_letters)


class SourceError(ValueError):
    """A source cannot be read: missing, corrupt or empty, or without the columns asked for."""


class Sink(Protocol):
    """Where results and dead letters go. ``write`` gets one dict per scored record."""

    def write(self, results: list[dict[str, Any]]) -> None: ...

    def dead_letter(self, letters: list[DeadLetter]) -> None: ...

    def close(self) -> None: ...
