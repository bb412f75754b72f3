"""JSON decoding and result encoding of the Kafka connector (no broker needed)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from connectors.kafka import JsonDecoder, encode_result


def message(value: bytes | None, offset: int = 0, key: bytes | None = None):
    """The attributes of a kafka-python ConsumerRecord that the decoder reads."""
    return SimpleNamespace(
        topic="events", partition=2, offset=offset, key=key, value=value, timestamp=1_700_000
    )


def decode_one(decoder: JsonDecoder, value: bytes | None, **kwargs):
    return decoder.decode([message(value, **kwargs)])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"a": 1', "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (None, "malformed_json"),
        (b'"just a string"', "not_an_object"),
        (b"[1, 2]", "not_an_object"),
        (json.dumps({"a": "x" * 200}).encode(), "oversize"),
    ],
)
def test_undecodable_messages_become_dead_letters_with_their_bytes(value, reason):
    batch = decode_one(JsonDecoder(max_message_bytes=100), value, offset=9, key=b"k")
    assert batch.records == []
    (letter,) = batch.dead_letters
    assert letter.reason == reason
    assert letter.payload == (value or b"")
    assert letter.key == b"k"
    assert letter.origin == {"topic": "events", "partition": 2, "offset": 9}


def test_field_mapping_reads_nested_paths_and_rejects_missing_ones():
    decoder = JsonDecoder(fields={"temp": "sensor.temp", "site": "site"})
    good = decode_one(decoder, b'{"sensor": {"temp": 3.5, "unit": "C"}, "site": "a", "x": 1}')
    assert good.records == [{"temp": 3.5, "site": "a"}]
    assert good.payloads == [b'{"sensor": {"temp": 3.5, "unit": "C"}, "site": "a", "x": 1}']
    bad = decode_one(decoder, b'{"sensor": 7, "site": "a"}')
    assert bad.dead_letters[0].reason == "invalid_record"
    assert "sensor.temp" in bad.dead_letters[0].detail


def test_key_and_timestamp_fields_are_metadata_not_features():
    decoder = JsonDecoder(key_field="id", timestamp_field="ts")
    batch = decode_one(decoder, b'{"id": 42, "ts": "2026-01-01T00:00:00Z", "v": 1.0}')
    assert batch.records == [{"v": 1.0}]
    assert batch.origins[0]["key"] == "42"
    assert batch.origins[0]["timestamp"] == "2026-01-01T00:00:00Z"
    keyed = decode_one(decoder, b'{"id": 42, "v": 1.0}', key=b"message-key")
    assert keyed.origins[0]["key"] == "message-key"
    assert keyed.origins[0]["timestamp"] == 1_700_000  # the message's own timestamp


def test_values_the_model_must_judge_pass_through_the_decoder():
    # NaN, wrong types and missing fields are the detector's call (check_one), not JSON's.
    batch = decode_one(JsonDecoder(), b'{"a": NaN, "b": "text", "c": [1]}')
    assert len(batch.records) == 1 and batch.dead_letters == []


def test_results_are_strict_json_even_with_non_finite_scores():
    result = {"offset": 1, "score": float("inf"), "p_value": float("nan"), "alert": True}
    assert json.loads(encode_result(result)) == {
        "offset": 1,
        "score": None,
        "p_value": None,
        "alert": True,
    }
    odd = decode_one(JsonDecoder(timestamp_field="ts"), b'{"ts": [NaN], "v": 1}')
    assert json.loads(encode_result(odd.origins[0]))["timestamp"] == "[NaN]"
