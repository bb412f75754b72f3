"""Kafka source and sink (kafka-python): JSON events in, JSON results and dead letters out.

The consumer never auto-commits: the caller commits offsets only after the results of those
offsets are produced and flushed (at-least-once). The producer waits for all in-sync replicas.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from connectors import DeadLetter, RecordBatch, bounded_text

try:  # the fast extra (streammem[fast]); json alone reads the same messages the same way
    import orjson
except ImportError:
    orjson = None  # type: ignore[assignment]  # the module or nothing: checked where used

__all__ = [
    "MAX_REQUEST_BYTES",
    "JsonDecoder",
    "KafkaSink",
    "dead_letter_message",
    "encode_result",
    "make_consumer",
    "make_producer",
    "utf8",
]

log = logging.getLogger(__name__)

_MISSING = object()
# A JSON escape of a UTF-16 surrogate; only messages holding one are checked for lone ones.
_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")
# Messages orjson would read otherwise than json go to json: orjson reads integers beyond 64
# bits as floats (json keeps them exact: a key, a timestamp), so 19 digits in a row; and any
# nesting, where json stops near 1,000 deep (a dead letter), so this many brackets.
_LONG_DIGITS = re.compile(rb"\d{19}")
_MAX_ORJSON_BRACKETS = 256
# Keys and timestamps are copied into every result: cut absurd ones so results stay small.
_MAX_ORIGIN_CHARS = 1024
#: kafka-python's default ``max_request_size``, set explicitly on the daemon's producer.
MAX_REQUEST_BYTES = 1_048_576
# Room for the record batch framing around a record's key, value and headers.
_RECORD_OVERHEAD = 1024
_SUMMARY_HEAD_BYTES = 1024


class JsonDecoder:
    """Decode Kafka messages holding one JSON object each into records.

    Parameters
    ----------
    fields
        ``{feature name: dotted path in the event}``; ``None`` takes every top-level field of the
        event except the key and timestamp fields.
    key_field
        Event field used as the result's key when the message has no key.
    timestamp_field
        Event field used as the result's timestamp instead of the message timestamp.
    max_message_bytes
        Larger messages are dead-lettered unread.
    label_field
        Top-level event field marking a known anomaly: never a feature (it is left out of the
        record), copied into the result's origin under its own name where the event has it.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> def message(value, offset):  # the attributes a ConsumerRecord has
    ...     return SimpleNamespace(topic="events", partition=0, offset=offset, key=None,
    ...                            value=value, timestamp=1700000000000)
    >>> decoder = JsonDecoder(fields={"t": "sensor.temp"}, key_field="id")
    >>> batch = decoder.decode([message(b'{"id": "a", "sensor": {"temp": 21.5}}', 7),
    ...                         message(b'{"id": ', 8)])
    >>> batch.records, batch.origins[0]["key"], batch.origins[0]["offset"]
    ([{'t': 21.5}], 'a', 7)
    >>> batch.dead_letters[0].reason
    'malformed_json'

    """

    def __init__(
        self,
        fields: Mapping[str, str] | None = None,
        key_field: str | None = None,
        timestamp_field: str | None = None,
        max_message_bytes: int = 1_048_576,
        label_field: str | None = None,
    ) -> None:
        self.fields = {name: path.split(".") for name, path in (fields or {}).items()} or None
        self.key_field = key_field
        self.timestamp_field = timestamp_field
        self.max_message_bytes = max_message_bytes
        self.label_field = label_field
        self._reserved = {key_field, timestamp_field, label_field} - {None}

    def decode(self, messages: Iterable[ConsumerRecord]) -> RecordBatch:
        """Records and their origins; every message that cannot be read becomes a dead letter."""
        payloads: list[bytes] = []
        keys: list[bytes | None] = []
        batch = RecordBatch([], [], payloads=payloads, keys=keys)
        for message in messages:
            origin = {"topic": message.topic, "partition": message.partition}
            origin["offset"] = message.offset
            try:
                event = self._parse(message.value)
                record = self._select(event)
                key, timestamp = self._key(message, event), self._timestamp(message, event)
            except _Rejected as rejected:
                batch.dead_letters.append(self._letter(message, origin, rejected.reason, rejected))
                continue
            except Exception as err:  # a bug, not the message: never let it stop the stream
                log.exception("decoding %s failed", origin)
                detail = f"{type(err).__name__}: {err}"
                batch.dead_letters.append(self._letter(message, origin, "processing_error", detail))
                continue
            origin["key"], origin["timestamp"] = key, timestamp
            if self.label_field is not None and self.label_field in event:
                origin[self.label_field] = _plain_label(event[self.label_field])
            batch.records.append(record)
            batch.origins.append(origin)
            payloads.append(message.value)
            keys.append(message.key)
        return batch

    @staticmethod
    def _letter(
        message: ConsumerRecord, origin: dict[str, Any], reason: str, detail: object
    ) -> DeadLetter:
        return DeadLetter(origin, reason, str(detail), message.value or b"", message.key)

    def _parse(self, value: bytes | None) -> dict[str, Any]:
        if value is None:
            raise _Rejected("malformed_json", "message has no value")
        if len(value) > self.max_message_bytes:
            raise _Rejected(
                "oversize", f"message is {len(value)} bytes; the limit is {self.max_message_bytes}"
            )
        try:
            event = _loads(value)
        except RecursionError as err:
            raise _Rejected("malformed_json", "JSON nested too deeply to read") from err
        except ValueError as err:  # also UnicodeDecodeError, and integers of 4,301+ digits
            raise _Rejected("malformed_json", f"not valid JSON: {err}") from err
        if not isinstance(event, dict):
            raise _Rejected("not_an_object", f"expected a JSON object, got {type(event).__name__}")
        if _SURROGATE_ESCAPE.search(value):
            _check_unicode(event)
        return event

    def _select(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.fields is None:
            if not self._reserved:
                return event
            return {k: v for k, v in event.items() if k not in self._reserved}
        record = {}
        for name, path in self.fields.items():
            value = event
            for part in path:
                value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
            if value is _MISSING:
                raise _Rejected("invalid_record", f"missing field {'.'.join(path)!r}")
            record[name] = value
        return record

    def _timestamp(self, message: ConsumerRecord, event: dict[str, Any]) -> int | float | str:
        value = (
            message.timestamp
            if self.timestamp_field is None
            else event.get(self.timestamp_field, message.timestamp)
        )
        if isinstance(value, str):
            return bounded_text(value, _MAX_ORIGIN_CHARS)
        if (isinstance(value, int) and abs(value) < 2**63) or (
            isinstance(value, float) and math.isfinite(value)
        ):
            return value
        # keep odd timestamps readable, never let them break a result
        return bounded_text(json.dumps(value), _MAX_ORIGIN_CHARS)

    def _key(self, message: ConsumerRecord, event: dict[str, Any]) -> str | None:
        if message.key is not None:
            key = message.key.decode("utf-8", errors="backslashreplace")
            return bounded_text(key, _MAX_ORIGIN_CHARS)
        value = event.get(self.key_field) if self.key_field else None
        return None if value is None else bounded_text(str(value), _MAX_ORIGIN_CHARS)


def _plain_label(value: Any) -> Any:
    """A label as it goes into a result: a bool, number or short text (anything else, such
    as a list, as its JSON text: it labels nothing, see ``label_values``)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    return bounded_text(text, _MAX_ORIGIN_CHARS)


def _loads(value: bytes) -> Any:
    """``json.loads(value)``, through orjson where it gives the same: orjson refuses what json
    alone accepts (NaN, Infinity, a BOM, lone surrogates), and json then reads it or raises its
    own error, so records and dead letters do not depend on orjson."""
    brackets = value.count(b"{") + value.count(b"[")
    if orjson is not None and brackets < _MAX_ORJSON_BRACKETS and not _LONG_DIGITS.search(value):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            pass
    return json.loads(value)


def _check_unicode(event: dict[str, Any]) -> None:
    """Reject lone surrogates: valid JSON escapes, but no text column or UTF-8 sink takes them."""
    try:
        json.dumps(event, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        raise _Rejected("malformed_json", "a string holds a lone UTF-16 surrogate") from err
    except RecursionError as err:
        raise _Rejected("malformed_json", "JSON nested too deeply to read") from err


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class KafkaSink:
    """Produce one JSON result per scored record and the original bytes of each dead letter.

    Call :meth:`flush` before committing offsets: it raises if any send since the last flush
    failed, so a batch whose results did not reach the broker is never committed.

    A dead letter too large for one produce request (``max_record_bytes``, the producer's
    ``max_request_size``) would fail every flush and stall its partition for good, so it is sent
    as a small JSON summary instead (header ``streammem-payload: summary``): reason, error,
    origin, the payload's size and its first bytes.
    """

    def __init__(
        self,
        producer: KafkaProducer,
        output_topic: str,
        dead_letter_topic: str,
        max_record_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.producer = producer
        self.output_topic = output_topic
        self.dead_letter_topic = dead_letter_topic
        self.max_record_bytes = max_record_bytes
        self._futures: list = []

    def write(self, results: list[dict[str, Any]]) -> None:
        send = self.producer.send
        for result in results:
            key = result.get("key")
            value = encode_result(result)
            self._futures.append(send(self.output_topic, value=value, key=utf8(key)))

    def dead_letter(self, letters: list[DeadLetter]) -> None:
        for letter in letters:
            value, key, headers = dead_letter_message(letter, self.max_record_bytes)
            future = self.producer.send(
                self.dead_letter_topic, value=value, key=key, headers=headers
            )
            self._futures.append(future)

    def flush(self, timeout_s: float | None = None) -> None:
        self.producer.flush(timeout=timeout_s)
        futures, self._futures = self._futures, []
        for future in futures:
            if future.failed():
                raise future.exception

    def close(self, timeout_s: float | None = None) -> None:
        """Close the producer; ``timeout_s=0`` drops unsent records instead of waiting."""
        self.producer.close(timeout=timeout_s)


def dead_letter_message(
    letter: DeadLetter, max_record_bytes: int = MAX_REQUEST_BYTES
) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    """Value, key and headers of a dead letter's message: its original bytes, or a summary of
    them when they would not fit one produce request of ``max_record_bytes``."""
    headers = [
        ("streammem-reason", letter.reason.encode()),
        ("streammem-error", letter.detail.encode("utf-8", "backslashreplace")),
        ("streammem-origin", encode_result(letter.origin)),
    ]
    value, key = letter.payload, letter.key
    size = len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
    if size + _RECORD_OVERHEAD > max_record_bytes:
        value, key = _summary(letter), None
        headers.append(("streammem-payload", b"summary"))
    return value, key, headers


def utf8(text: str | None) -> bytes | None:
    """A key or header as UTF-8 bytes; lone surrogates escaped."""
    return None if text is None else text.encode("utf-8", "backslashreplace")


def _summary(letter: DeadLetter) -> bytes:
    """A bounded stand-in for a dead letter whose payload does not fit one request."""
    head = letter.payload[:_SUMMARY_HEAD_BYTES].decode("utf-8", "backslashreplace")
    return encode_result(
        {
            "reason": letter.reason,
            "error": letter.detail,
            "origin": letter.origin,
            "payload_bytes": len(letter.payload),
            "key_bytes": None if letter.key is None else len(letter.key),
            "payload_head": head,
        }
    )


def encode_result(result: dict[str, Any]) -> bytes:
    """JSON bytes of a result; non-finite numbers (a diverged model's NaN score) become null.

    Through orjson where installed (it writes NaN and inf as null itself; what it cannot write,
    such as an integer beyond 64 bits, goes to json), else json.

    Examples
    --------
    >>> json.loads(encode_result({"offset": 3, "score": float("nan"), "alert": False}))
    {'offset': 3, 'score': None, 'alert': False}

    """
    if orjson is not None:
        try:
            return orjson.dumps(result)
        except orjson.JSONEncodeError:
            pass
    try:
        return json.dumps(result, allow_nan=False).encode()
    except ValueError:
        finite = {k: None if _non_finite(v) else v for k, v in result.items()}
        return json.dumps(finite, allow_nan=False).encode()


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def make_consumer(bootstrap_servers: str, group_id: str, **settings: Any) -> KafkaConsumer:
    """A consumer that never commits on its own and starts from the earliest offset."""
    return KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **settings,
    )


def make_producer(bootstrap_servers: str, **settings: Any) -> KafkaProducer:
    """A producer that waits for every in-sync replica and retries transient failures."""
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        retries=5,
        linger_ms=20,
        batch_size=262_144,
        max_request_size=MAX_REQUEST_BYTES,
        **settings,
    )
