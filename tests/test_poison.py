"""Poison messages through the daemon's own path (JsonDecoder + ScoringPipeline), no broker.

Each payload arrives after 300 valid events, alone in its poll and mixed into a poll of valid
ones (../shared/research/reliability.md, failure 1): it must take its route, and never raise.
"""

from __future__ import annotations

import copy
import json
import logging
import random
from types import SimpleNamespace

import pytest
from sinks import ListSink

import streammem
from connectors import RecordBatch
from connectors.kafka import JsonDecoder
from streammem.alerts.calibration import ConformalCalibrator
from streammem.alerts.filter import AlertFilter
from streammem.metrics import ServiceMetrics
from streammem.service.backoff import Backoff
from streammem.service.pipeline import ScoringPipeline


def valid(i: int, rng: random.Random) -> bytes:
    event = {"temp": rng.gauss(20, 1), "rpm": rng.gauss(900, 5), "line": "ab"[i % 2]}
    return json.dumps(event).encode()


def message(value: bytes | None, offset: int, key: bytes | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        topic="events", partition=0, offset=offset, key=key, value=value, timestamp=1_700_000
    )


def nested(depth: int) -> bytes:
    inner = b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"temp": 20.0, "rpm": 900.0, "line": "a", "x": ' + inner + b"}"


ROUTES = {
    "malformed_json": {
        "invalid_utf8": b'{"temp": 20.0, "rpm": 900.0, "line": "\xff\xfe"}',
        "non_json": b"hello world",
        "empty_message": b"",
        "tombstone": None,
        "nested_10000_deep": nested(10_000),
        "int_of_4301_digits": b'{"temp": 1' + b"0" * 4300 + b', "rpm": 900, "line": "a"}',
        "lone_surrogate": b'{"temp": 20.0, "rpm": 900, "line": "\\ud800"}',
        "lone_surrogate_in_a_key": b'{"temp": 20.0, "rpm": 900, "line": "a", "\\udfff": 1}',
    },
    "not_an_object": {
        "array": b"[1, 2, 3]",
        "string": b'"a string"',
        "number": b"42",
        "null": b"null",
    },
    "oversize": {"above_max_message_bytes": b'{"pad": "' + b"x" * 150_000 + b'"}'},
    "invalid_record": {
        "string_in_a_number": b'{"temp": "hot", "rpm": 900, "line": "a"}',
        "number_in_a_category": b'{"temp": 20.0, "rpm": 900, "line": 5}',
        "bool_in_a_category": b'{"temp": 20.0, "rpm": 900, "line": true}',
        "object_in_a_number": b'{"temp": {"a": 1}, "rpm": 900, "line": "a"}',
        "list_in_a_number": b'{"temp": [1, 2], "rpm": 900, "line": "a"}',
        "null_value": b'{"temp": null, "rpm": 900, "line": "a"}',
        "nan": b'{"temp": NaN, "rpm": 900, "line": "a"}',
        "infinity": b'{"temp": Infinity, "rpm": 900, "line": "a"}',
        "minus_infinity": b'{"temp": -Infinity, "rpm": 900, "line": "a"}',
        "1e400": b'{"temp": 1e400, "rpm": 900, "line": "a"}',
        "int_of_400_digits": b'{"temp": 1' + b"0" * 400 + b', "rpm": 900, "line": "a"}',
        "missing_field": b'{"rpm": 900, "line": "a"}',
        "empty_object": b"{}",
        "duplicate_keys_bad_last": b'{"temp": 20.0, "temp": "hot", "rpm": 900, "line": "a"}',
    },
    "result": {
        "extra_field": b'{"temp": 20.0, "rpm": 900, "line": "a", "extra": [1, {"b": 2}]}',
        "extra_numeric_field": b'{"temp": 20.0, "rpm": 900, "line": "a", "extra": 1}',
        "unicode": '{"temp": 20.0, "rpm": 900, "line": "线", "温度": 1}'.encode(),
        "surrogate_pair": b'{"temp": 20.0, "rpm": 900, "line": "\\ud83d\\ude00"}',
        "duplicate_keys_good_last": b'{"temp": "hot", "temp": 20.0, "rpm": 900, "line": "a"}',
        "int_2_to_the_64": b'{"temp": 18446744073709551616, "rpm": 900, "line": "a"}',
        "nested_900_deep": nested(900),
    },
}
CASES = [
    (route, name, payload) for route, cases in ROUTES.items() for name, payload in cases.items()
]


@pytest.fixture(scope="module")
def warmed() -> tuple[ScoringPipeline, JsonDecoder]:
    """A pipeline that has learned 300 valid events in polls of 100, like the daemon's."""
    rng = random.Random(0)
    detector = streammem.MemAE(
        num_slots=20, network=streammem.Network(hidden_sizes=(16,), latent_size=4)
    )
    calibrator = ConformalCalibrator(alpha=0.01, window_size=500, min_reference=50)
    pipeline = ScoringPipeline(AlertFilter(detector, calibrator), ServiceMetrics())
    decoder = JsonDecoder(max_message_bytes=100_000)
    for start in range(0, 300, 100):
        batch = decoder.decode([message(valid(i, rng), i) for i in range(start, start + 100)])
        pipeline.process(batch, ListSink())
    assert pipeline.is_trained
    return pipeline, decoder


def fresh_copy(
    warmed: tuple[ScoringPipeline, JsonDecoder], backoff: Backoff | None = None
) -> tuple[ScoringPipeline, JsonDecoder]:
    """The warmed pipeline's state in a new pipeline with its own metrics."""
    pipeline, decoder = warmed
    detector, calibrator = copy.deepcopy((pipeline.detector, pipeline.calibrator))
    alerts = AlertFilter(detector, calibrator)
    return ScoringPipeline(alerts, ServiceMetrics(), backoff=backoff), copy.deepcopy(decoder)


def route_of(sink: ListSink, offset: int) -> list[str]:
    routes = [letter.reason for letter in sink.letters if letter.origin["offset"] == offset]
    return routes + ["result" for r in sink.results if r["offset"] == offset]


@pytest.mark.parametrize("mixed", [False, True], ids=["alone", "mixed"])
@pytest.mark.parametrize(("route", "name", "payload"), CASES, ids=[c[1] for c in CASES])
def test_a_poison_message_takes_its_route_and_the_rest_are_scored(
    warmed, route, name, payload, mixed
):
    pipeline, decoder = fresh_copy(warmed)
    rng = random.Random(1)
    messages = [message(payload, 300, key=b"k")]
    if mixed:
        messages = [
            *(message(valid(i, rng), i) for i in range(250, 300)),
            *messages,
            *(message(valid(i, rng), i) for i in range(301, 350)),
        ]
    sink = ListSink()
    summary = pipeline.process(decoder.decode(messages), sink)
    assert route_of(sink, 300) == [route]
    assert summary.events + summary.dead_letters == len(messages)
    assert sorted(r["offset"] for r in sink.results if r["offset"] != 300) == (
        [*range(250, 300), *range(301, 350)] if mixed else []
    )


def test_a_dead_letter_keeps_the_original_bytes_and_a_bounded_error(warmed):
    pipeline, decoder = fresh_copy(warmed)
    payload = json.dumps({"temp": "x" * 100_000, "rpm": 900, "line": "a"}).encode()
    decoder.max_message_bytes = len(payload)
    sink = ListSink()
    pipeline.process(decoder.decode([message(payload, 7, key=b"k")]), sink)
    (letter,) = sink.letters
    assert (letter.reason, letter.payload, letter.key) == ("invalid_record", payload, b"k")
    assert "'temp'" in letter.detail and len(letter.detail) < 1100


def test_a_batch_of_only_invalid_records_is_all_dead_letters(warmed):
    pipeline, _ = fresh_copy(warmed)
    records = [{"temp": float("nan"), "rpm": 1.0, "line": "a"}] * 512
    sink = ListSink()
    summary = pipeline.process(RecordBatch(records, [{"row": i} for i in range(512)]), sink)
    assert (summary.events, summary.dead_letters) == (0, 512)
    assert [letter.origin["row"] for letter in sink.letters] == list(range(512))
    assert json.loads(sink.letters[0].payload)["rpm"] == 1.0


def test_a_batch_that_keeps_failing_is_dead_lettered_as_a_processing_error(warmed, caplog):
    waits = []
    pipeline, decoder = fresh_copy(warmed, Backoff(initial=0.05, sleep=waits.append))
    rng = random.Random(2)

    def broken(table):
        raise RuntimeError("a bug in learning")

    pipeline.detector.learn_many = broken
    messages = [message(valid(i, rng), i) for i in range(10)] + [message(b"[1]", 10)]
    sink = ListSink()
    with caplog.at_level(logging.ERROR):
        summary = pipeline.process(decoder.decode(messages), sink)
    assert sink.results == [] and (summary.events, summary.dead_letters) == (0, 11)
    reasons = [letter.reason for letter in sink.letters]
    assert reasons == ["not_an_object"] + ["processing_error"] * 10
    assert "failed 3 times: RuntimeError: a bug in learning" in sink.letters[1].detail
    registry = pipeline.metrics.registry
    assert registry.get_sample_value("streammem_batch_failures_total") == 3
    letters = registry.get_sample_value(
        "streammem_dead_letters_total", {"reason": "processing_error"}
    )
    assert letters == 10
    assert waits == [0.05, 0.1]  # before each new try, longer each time
    assert "Traceback" in caplog.text and "a bug in learning" in caplog.text
