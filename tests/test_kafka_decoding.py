"""JSON decoding and result encoding of the Kafka connector (no broker needed), each decoding
test with orjson (the fast extra) and with json alone."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import connectors.kafka
from connectors.kafka import JsonDecoder, encode_result


@pytest.fixture(autouse=True, params=["orjson", "json"])
def parser(request, monkeypatch) -> str:
    """The decoder reads through orjson when it is installed, through json when not."""
    if request.param == "json":
        monkeypatch.setattr(connectors.kafka, "orjson", None)
    elif connectors.kafka.orjson is None:
        pytest.skip("orjson is not installed (pip install 'streammem[fast]')")
    return request.param


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


@pytest.mark.parametrize(
    "value",
    [
        b'{"v": NaN, "w": Infinity, "x": -Infinity}',  # json alone reads these literals
        b'\xef\xbb\xbf{"v": 1}',  # a UTF-8 byte order mark
        b'{"v": 1, "k": 123456789012345678901234567890}',  # beyond 64 bits: exact, not a float
        b'{"v": 1, "k": -9223372036854775809}',
        b'{"v": 1e400, "k": 1' + b"0" * 400 + b"}",
        b'{"v": "\xed\xa0\x80"}',  # a surrogate's UTF-8 bytes
        b'{"v": 1, "v": 2}',
        b'{"v": ' + b"[" * 2000 + b"]" * 2000 + b"}",  # orjson reads any depth
        b'{"v": ' + b"[" * 300 + b"]" * 300 + b"}",
        b'{"v": 0.1, "w": 4.9e-324, "x": -0.0, "y": 18446744073709551615}',
    ],
)
def test_records_keys_and_dead_letters_are_those_of_json_loads(value):
    batch = decode_one(JsonDecoder(key_field="k", timestamp_field="k"), value)
    try:
        event = json.loads(value)
    except (ValueError, RecursionError):
        assert batch.dead_letters[0].reason == "malformed_json"
        return
    if "\ud800" in json.dumps(event):
        assert batch.dead_letters[0].reason == "malformed_json"
        return
    record = {k: v for k, v in event.items() if k != "k"}
    assert repr(batch.records) == repr([record])  # repr: NaN != NaN, and -0.0 == 0.0
    if "k" in event:
        assert batch.origins[0]["key"] == str(event["k"])


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
    # what orjson cannot write (an integer beyond 64 bits) is still written, by json
    assert json.loads(encode_result({"key": 2**70, "score": float("-inf")})) == {
        "key": 2**70,
        "score": None,
    }
