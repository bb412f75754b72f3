"""Kafka source and sink (kafka-python): JSON events in, JSON results and dead letters out.

The consumer never auto-commits: the caller commits offsets only after the results of those
offsets are produced and flushed (at-least-once). The producer waits for all in-sync replicas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from connectors import DeadLetter, RecordBatch

__all__ = ["JsonDecoder", "KafkaSink", "encode_result", "make_consumer", "make_producer"]

_MISSING = object()


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
    ) -> None:
        self.fields = {name: path.split(".") for name, path in (fields or {}).items()} or None
        self.key_field = key_field
        self.timestamp_field = timestamp_field
        self.max_message_bytes = max_message_bytes
        self._reserved = {key_field, timestamp_field} - {None}

    def decode(self, messages: Iterable[ConsumerRecord]) -> RecordBatch:
        batch = RecordBatch([], [], payloads=[], keys=[])
        for message in messages:
            origin = {"topic": message.topic, "partition": message.partition}
            origin["offset"] = message.offset
            try:
                event = self._parse(message.value)
                record = self._select(event)
            except _Rejected as rejected:
                letter = DeadLetter(origin, rejected.reason, str(rejected), message.value or b"")
                letter.key = message.key
                batch.dead_letters.append(letter)
                continue
            origin["key"] = self._key(message, event)
            origin["timestamp"] = self._timestamp(message, event)
            batch.records.append(record)
            batch.origins.append(origin)
            batch.payloads.append(message.value)
            batch.keys.append(message.key)
        return batch

    def _parse(self, value: bytes | None) -> dict[str, Any]:
        if value is None:
            raise _Rejected("malformed_json", "message has no value")
        if len(value) > self.max_message_bytes:
            raise _Rejected(
                "oversize", f"message is {len(value)} bytes; the limit is {self.max_message_bytes}"
            )
        try:
            event = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise _Rejected("malformed_json", f"not valid JSON: {err}") from err
        if not isinstance(event, dict):
            raise _Rejected("not_an_object", f"expected a JSON object, got {type(event).__name__}")
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
        value = event.get(self.timestamp_field, message.timestamp)
        if isinstance(value, (int, str)) or (isinstance(value, float) and math.isfinite(value)):
            return value
        return json.dumps(value)  # keep odd timestamps readable, never let them break a result

    def _key(self, message: ConsumerRecord, event: dict[str, Any]) -> str | None:
        if message.key is not None:
            return message.key.decode("utf-8", errors="backslashreplace")
        value = event.get(self.key_field) if self.key_field else None
        return None if value is None else str(value)


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class KafkaSink:
    """Produce one JSON result per scored record and the original bytes of each dead letter.

    Call :meth:`flush` before committing offsets: it raises if any send since the last flush
    failed, so a batch whose results did not reach the broker is never committed.
    """

    def __init__(self, producer: KafkaProducer, output_topic: str, dead_letter_topic: str):
        self.producer = producer
        self.output_topic = output_topic
        self.dead_letter_topic = dead_letter_topic
        self._futures: list = []

    def write(self, results: list[dict[str, Any]]) -> None:
        send = self.producer.send
        for result in results:
            key = result.get("key")
            value = encode_result(result)
            self._futures.append(
                send(self.output_topic, value=value, key=None if key is None else key.encode())
            )

    def dead_letter(self, letters: list[DeadLetter]) -> None:
        for letter in letters:
            origin = letter.origin
            headers = [
                ("streammem-reason", letter.reason.encode()),
                ("streammem-error", letter.detail.encode()),
                ("streammem-origin", encode_result(origin)),
            ]
            future = self.producer.send(
                self.dead_letter_topic, value=letter.payload, key=letter.key, headers=headers
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


def encode_result(result: dict[str, Any]) -> bytes:
    """JSON bytes of a result; non-finite numbers (a diverged model's NaN score) become null.

    Examples
    --------
    >>> encode_result({"offset": 3, "score": float("nan"), "alert": False})
    b'{"offset": 3, "score": null, "alert": false}'

    """
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
        **settings,
    )
