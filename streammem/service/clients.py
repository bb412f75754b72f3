"""The broker clients the daemon runs on, in one place: a
:class:`~connectors.source.StreamSource` and a :class:`FlushingSink` for each client library
``kafka.client`` can name.

Adding a broker client takes two files: its connector module (a source and a sink, as
``connectors/kafka.py`` and ``connectors/confluent.py``) and its two factories here, with their
entry in :func:`client_factories` (and the client's name among ``KafkaConfig.client``'s values).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from kafka.errors import KafkaError

from connectors import Sink
from connectors.kafka import KafkaSink, make_consumer, make_producer
from connectors.source import Rebalance, StreamSource
from streammem.service.config import KafkaConfig

__all__ = [
    "FlushingSink",
    "SinkFactory",
    "SourceFactory",
    "client_factories",
    "confluent_consumer",
    "confluent_sink",
    "kafka_consumer",
    "kafka_sink",
]

# kafka-python's synchronous commit waits forever for a broker that is gone: bounded.
COMMIT_TIMEOUT_MS = 10_000
# One attempt to reach the broker; kafka-python's own 30 s kept SIGTERM waiting that long and
# the retry counter at 0 while the broker was down.
BOOTSTRAP_TIMEOUT_MS = 1_000


class FlushingSink(Sink, Protocol):
    """A :class:`~connectors.Sink` whose writes are confirmed by :meth:`flush`."""

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait for every write so far; raise ``KafkaError`` if one failed."""

    def close(self, timeout_s: float | None = None) -> None:
        """Release the sink; ``timeout_s=0`` drops what is not written yet."""


def kafka_consumer(kafka: KafkaConfig, listener: Rebalance) -> StreamSource:
    """A consumer of ``kafka.input_topic`` in ``kafka.group_id`` that reports its rebalances
    to ``listener``."""
    consumer = make_consumer(
        kafka.bootstrap_servers,
        kafka.group_id,
        max_poll_records=kafka.max_poll_records,
        session_timeout_ms=kafka.session_timeout_ms,
        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
    )
    consumer.subscribe([kafka.input_topic], listener=listener)
    return consumer


def kafka_sink(kafka: KafkaConfig) -> KafkaSink:
    """A sink producing to ``kafka.output_topic`` and ``kafka.dead_letter_topic``."""
    producer = make_producer(kafka.bootstrap_servers, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    return KafkaSink(producer, kafka.output_topic, kafka.dead_letter_topic)


def confluent_consumer(kafka: KafkaConfig, listener: Rebalance) -> StreamSource:
    """:func:`kafka_consumer` on confluent-kafka (``kafka.client: confluent``)."""
    from connectors.confluent import ConfluentConsumer, check_reachable, make_confluent_consumer

    settings = {
        "session.timeout.ms": kafka.session_timeout_ms,
        "socket.timeout.ms": COMMIT_TIMEOUT_MS,  # bounds the commit, which takes no timeout
    }
    raw = make_confluent_consumer(kafka.bootstrap_servers, kafka.group_id, **settings)
    try:
        check_reachable(raw, BOOTSTRAP_TIMEOUT_MS / 1000)
    except KafkaError:
        raw.close()
        raise
    consumer = ConfluentConsumer(raw, listener)
    consumer.subscribe([kafka.input_topic])
    return consumer


def confluent_sink(kafka: KafkaConfig) -> FlushingSink:
    """:func:`kafka_sink` on confluent-kafka (``kafka.client: confluent``)."""
    from connectors.confluent import ConfluentSink, check_reachable, make_confluent_producer

    producer = make_confluent_producer(kafka.bootstrap_servers)
    check_reachable(producer, BOOTSTRAP_TIMEOUT_MS / 1000)
    return ConfluentSink(producer, kafka.output_topic, kafka.dead_letter_topic)


#: ``(config.kafka, listener) -> source`` of the input topic.
SourceFactory = Callable[[KafkaConfig, Rebalance], StreamSource]
#: ``config.kafka -> sink`` for results and dead letters.
SinkFactory = Callable[[KafkaConfig], FlushingSink]


def client_factories(kafka: KafkaConfig) -> tuple[SourceFactory, SinkFactory]:
    """The consumer and sink factories of the client library ``kafka.client`` chooses."""
    if kafka.library == "confluent":
        return confluent_consumer, confluent_sink
    return kafka_consumer, kafka_sink
