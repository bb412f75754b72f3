"""Kafka source and sink on confluent-kafka (librdkafka): the fast extra, ``streammem[fast]``.

The same surface as the kafka-python clients of :mod:`connectors.kafka`, so the daemon runs on
either with the same guarantees: :class:`ConfluentConsumer` answers the part of
``KafkaConsumer`` the daemon uses (offsets, commits, and rebalances told to a
``ConsumerRebalanceListener``), :class:`ConfluentSink` is :class:`~connectors.kafka.KafkaSink`
on a librdkafka producer, and both raise ``kafka.errors.KafkaError`` where kafka-python would.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any, cast

import confluent_kafka
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from connectors import CLIENT_LOGGERS, DeadLetter
from connectors.kafka import MAX_REQUEST_BYTES, dead_letter_message, encode_result, utf8

__all__ = [
    "ConfluentConsumer",
    "ConfluentError",
    "ConfluentSink",
    "check_reachable",
    "make_confluent_consumer",
    "make_confluent_producer",
]

log = logging.getLogger(__name__)
# librdkafka's own log, apart from ours (see connectors.CLIENT_LOGGERS)
LIBRDKAFKA_LOG = logging.getLogger(CLIENT_LOGGERS[1])


class ConfluentError(KafkaError):
    """A librdkafka error, raised as kafka-python's so that the daemon handles both alike."""


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except KafkaException as err:
        raise ConfluentError(str(err)) from err


def _seconds(timeout_ms: int | None) -> float:
    return -1 if timeout_ms is None else timeout_ms / 1000  # -1: librdkafka's "no limit"


def _librdkafka(tp: TopicPartition, offset: int = confluent_kafka.OFFSET_INVALID) -> Any:
    return confluent_kafka.TopicPartition(tp.topic, tp.partition, offset)


def _offset(offset: int) -> int | None:
    """An offset, or None for librdkafka's logical ones (none committed, none known yet)."""
    return offset if offset >= 0 else None


class Message:
    """The attributes of a kafka-python ``ConsumerRecord`` that the decoder and daemon read."""

    __slots__ = ("key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, message: Any) -> None:
        self.topic = message.topic()
        self.partition = message.partition()
        self.offset = message.offset()
        self.key = message.key()
        self.value = message.value()
        self.timestamp = message.timestamp()[1]


class ConfluentConsumer:
    """The part of :class:`~kafka.KafkaConsumer` the daemon uses, on a librdkafka consumer.

    Rebalances reach ``listener`` from inside :meth:`poll`, on the caller's thread, as with
    kafka-python. Offsets librdkafka calls logical (none committed, none fetched yet) are None.

    Parameters
    ----------
    consumer
        A consumer made by :func:`make_confluent_consumer` (auto-commit off).
    listener
        Told which partitions the group assigns and revokes (and loses, as revoked).

    """

    def __init__(self, consumer: Consumer, listener: ConsumerRebalanceListener) -> None:
        self.consumer = consumer
        self.listener = listener
        # librdkafka forgets a partition's position at a seek until it delivers a message;
        # kafka-python's is the offset sought (the daemon compares it with the log's end).
        self._sought: dict[TopicPartition, int | None] = {}

    def subscribe(self, topics: list[str]) -> None:
        with _translated():
            self.consumer.subscribe(topics, on_assign=self._assigned, on_revoke=self._revoked)

    def _assigned(self, _consumer: Consumer, partitions: list) -> None:
        self.listener.on_partitions_assigned(
            {TopicPartition(p.topic, p.partition) for p in partitions}
        )

    def _revoked(self, _consumer: Consumer, partitions: list) -> None:
        revoked = {TopicPartition(p.topic, p.partition) for p in partitions}
        for tp in revoked:
            self._sought.pop(tp, None)
        self.listener.on_partitions_revoked(revoked)

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[TopicPartition, list]:
        """Up to ``max_records`` messages by partition, in offset order."""
        with _translated():
            messages = self.consumer.consume(max_records, timeout_ms / 1000)
        polled: dict[tuple[str, int], list[Message]] = {}
        for message in messages:
            error = message.error()
            if error is None:  # a delivered message always has its topic and partition
                where = (cast(str, message.topic()), cast(int, message.partition()))
                polled.setdefault(where, []).append(Message(message))
            elif error.fatal():
                raise ConfluentError(error.str())
            else:  # a topic not there yet, a partition's fetch failing: librdkafka retries
                log.warning("consuming: %s", error.str())
        return {TopicPartition(*tp): records for tp, records in polled.items()}

    def assignment(self) -> set[TopicPartition]:
        with _translated():
            return {TopicPartition(p.topic, p.partition) for p in self.consumer.assignment()}

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int | None:
        """The next offset :meth:`poll` returns (None until one is known, or sought); no
        request."""
        with _translated():
            (found,) = self.consumer.position([_librdkafka(tp)])
        return found.offset if found.offset >= 0 else self._sought.get(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        with _translated():
            self.consumer.seek(_librdkafka(tp, offset))
        self._sought[tp] = _offset(offset)

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.seek(tp, OFFSET_BEGINNING)

    def committed(self, tp: TopicPartition, timeout_ms: int | None = None) -> int | None:
        with _translated():
            (found,) = self.consumer.committed([_librdkafka(tp)], timeout=_seconds(timeout_ms))
        if found.error is not None:
            raise ConfluentError(found.error.str())
        return _offset(found.offset)

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's high watermark from its last fetch; None before one answered."""
        try:
            found = self.consumer.get_watermark_offsets(_librdkafka(tp), cached=True)
        except KafkaException:  # not assigned (any more)
            return None
        return None if found is None else _offset(found[1])

    def end_offsets(
        self, tps: list[TopicPartition], timeout_ms: int | None = None
    ) -> dict[TopicPartition, int]:
        """Ask the broker for each partition's end offset."""
        ends = {}
        for tp in tps:
            with _translated():
                found = self.consumer.get_watermark_offsets(
                    _librdkafka(tp), timeout=_seconds(timeout_ms), cached=False
                )
            if found is None:
                raise ConfluentError(f"no end offset for {tp} within {timeout_ms} ms")
            ends[tp] = found[1]
        return ends

    def commit(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata], timeout_ms: int | None = None
    ) -> None:
        """Commit synchronously. librdkafka takes no timeout here: its ``socket.timeout.ms``
        bounds the request (:func:`make_confluent_consumer` sets it for this)."""
        partitions = [_librdkafka(tp, meta.offset) for tp, meta in offsets.items()]
        with _translated():
            answered = self.consumer.commit(offsets=partitions, asynchronous=False)
        failed = [f"{p.topic}-{p.partition}: {p.error.str()}" for p in answered if p.error]
        if failed:
            raise ConfluentError(f"commit failed for {failed}")

    def close(self, autocommit: bool = False, timeout_ms: int | None = None) -> None:
        """Leave the group (the listener hears its partitions revoked) and close, waiting
        ``timeout_ms`` at most. Nothing is committed: the consumer's auto-commit is off,
        whatever ``autocommit`` says.

        librdkafka's close takes no timeout, and during a group join it waits for the join
        (4.5 s on Tansu): it runs on a thread of its own, left behind if it takes longer, and
        the group drops the member after its session timeout.
        """
        closing = threading.Thread(target=self._close, name="consumer-close", daemon=True)
        closing.start()
        closing.join(None if timeout_ms is None else timeout_ms / 1000)
        if closing.is_alive():
            log.warning("the consumer did not leave its group within %d ms", timeout_ms)

    def _close(self) -> None:
        try:
            self.consumer.close()
        except KafkaException as err:  # nothing to hand over that is not committed already
            log.warning("closing the consumer failed (%s)", err)


class ConfluentSink:
    """:class:`~connectors.kafka.KafkaSink` on a librdkafka producer: one JSON result per
    scored record, the original bytes (or a bounded summary) of each dead letter.

    Call :meth:`flush` before committing offsets: it raises if any message since the last
    flush was not delivered, so a batch whose results did not reach the broker is never
    committed.
    """

    def __init__(
        self,
        producer: Producer,
        output_topic: str,
        dead_letter_topic: str,
        max_record_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.producer = producer
        self.output_topic = output_topic
        self.dead_letter_topic = dead_letter_topic
        self.max_record_bytes = max_record_bytes
        self._failure: str | None = None  # the first failure since the last flush

    def write(self, results: list[dict[str, Any]]) -> None:
        for result in results:
            self._produce(self.output_topic, encode_result(result), utf8(result.get("key")))

    def dead_letter(self, letters: list[DeadLetter]) -> None:
        for letter in letters:
            value, key, headers = dead_letter_message(letter, self.max_record_bytes)
            self._produce(self.dead_letter_topic, value, key, headers)

    def _produce(
        self, topic: str, value: bytes, key: bytes | None, headers: list | None = None
    ) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=self._sent)
                return
            except BufferError:  # its queue is full: wait for deliveries (or their timeouts)
                self.producer.poll(0.1)
            except KafkaException as err:  # refused at once (too large): fail the next flush
                self._failure = self._failure or str(err)
                return

    def _sent(self, err: Any, _message: Any) -> None:
        if err is not None:
            self._failure = self._failure or err.str()

    def flush(self, timeout_s: float | None = None) -> None:
        left = self.producer.flush(-1 if timeout_s is None else timeout_s)
        failure, self._failure = self._failure, None
        if failure is not None:
            raise ConfluentError(f"a message was not delivered: {failure}")
        if left:
            raise ConfluentError(f"{left} messages not delivered within {timeout_s} s")

    def close(self, timeout_s: float | None = None) -> None:
        """Deliver what is queued; ``timeout_s=0`` drops it instead of waiting."""
        if timeout_s == 0:
            self.producer.purge()
        self.producer.flush(-1 if timeout_s is None else timeout_s)


def check_reachable(client: Consumer | Producer, timeout_s: float) -> None:
    """``ConfluentError`` unless the broker answers a metadata request within ``timeout_s``:
    librdkafka's clients connect in the background, where kafka-python's refuse to start."""
    with _translated():
        client.list_topics(timeout=timeout_s)


def make_confluent_consumer(bootstrap_servers: str, group_id: str, **settings: Any) -> Consumer:
    """A consumer that never commits on its own and starts from the earliest offset;
    ``settings`` are librdkafka's (``{"session.timeout.ms": 10000}``)."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "logger": LIBRDKAFKA_LOG,
            **settings,
        }
    )


def make_confluent_producer(bootstrap_servers: str, **settings: Any) -> Producer:
    """A producer that waits for every in-sync replica and reports failed deliveries only;
    requests as large as kafka-python's (``MAX_REQUEST_BYTES``)."""
    return Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "acks": "all",
            "linger.ms": 20,
            "batch.size": 262_144,
            "message.max.bytes": MAX_REQUEST_BYTES,
            "delivery.report.only.error": True,
            "logger": LIBRDKAFKA_LOG,
            **settings,
        }
    )
