"""The Kafka sinks of both clients against a real Tansu broker (no consumer group, so no slow
join)."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaConsumer, TopicPartition

from connectors import DeadLetter
from connectors.kafka import KafkaSink, make_producer

pytestmark = pytest.mark.kafka


def new_sink(client: str, bootstrap: str, output: str, dead: str):
    if client == "confluent":
        from connectors.confluent import ConfluentSink, make_confluent_producer

        return ConfluentSink(make_confluent_producer(bootstrap), output, dead)
    return KafkaSink(make_producer(bootstrap), output, dead)


def read_all(broker, topic: str, expected: int) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        fetch_max_bytes=8_000_000,
        max_partition_fetch_bytes=8_000_000,
        consumer_timeout_ms=10_000,
    )
    consumer.assign([TopicPartition(topic, 0)])
    messages = []
    for record in consumer:
        messages.append(record)
        if len(messages) == expected:
            break
    consumer.close()
    return messages


def test_dead_letters_too_large_for_a_request_are_sent_as_bounded_summaries(broker, client):
    scores, dead = f"sink-scores-{client}", f"sink-dead-{client}"
    broker.create_topic(scores)
    broker.create_topic(dead)
    sink = new_sink(client, broker.bootstrap, scores, dead)
    origin = {"topic": "events", "partition": 0, "offset": 7}
    huge = b'{"pad": "' + b"x" * 1_100_000 + b'"}'
    near_limit = b'{"temp": "' + b"y" * 1_000_000 + b'"}'
    sink.dead_letter(
        [
            DeadLetter(origin, "oversize", "message is 1100011 bytes", huge, b"key"),
            DeadLetter(origin, "invalid_record", "got str " + "y" * 1_000_000, near_limit),
            DeadLetter(
                origin,
                "invalid_record",
                "bad \ud800 text",
                b"{}",
                "\ud800".encode("utf-8", "surrogatepass"),
            ),
        ]
    )
    sink.write([{**origin, "key": "k\udfff", "score": 1.0, "p_value": 0.5, "alert": False}])
    sink.flush(timeout_s=30)  # raised MessageSizeTooLargeError before: a stalled partition
    sink.close()

    summary, below, odd = read_all(broker, dead, 3)
    headers = dict(summary.headers)
    assert headers["streammem-payload"] == b"summary" and summary.key is None
    body = json.loads(summary.value)
    assert body["payload_bytes"] == len(huge) and body["reason"] == "oversize"
    assert body["origin"] == origin and body["payload_head"].startswith('{"pad": "xxx')
    # Below the limit once its error text is cut: the original bytes, as they came.
    assert below.value == near_limit and "streammem-payload" not in dict(below.headers)
    assert len(dict(below.headers)["streammem-error"]) < 1100
    assert dict(odd.headers)["streammem-error"] == b"bad \\ud800 text"
    (result,) = read_all(broker, scores, 1)
    assert result.key == b"k\\udfff" and json.loads(result.value)["score"] == 1.0
