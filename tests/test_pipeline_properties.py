"""Property tests: no input can make the scoring path raise or lose a record.

decode -> validate -> encode -> score -> learn, over batches of arbitrary JSON (odd floats and
strings, nesting, missing, extra and wrong-typed fields), of any size and in any order. The
invariant: every input record comes out exactly once, as a result or as a dead letter.
Example counts are bounded so the suite stays quick.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sinks import ListSink

import streammem
from connectors import RecordBatch
from connectors.kafka import JsonDecoder
from streammem.alerts.calibration import ConformalCalibrator
from streammem.alerts.filter import AlertFilter
from streammem.metrics import ServiceMetrics
from streammem.service.pipeline import ScoringPipeline

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

odd_text = st.text(max_size=8) | st.sampled_from(["", "\ud800", "a\udfffb", "20.5", "nan", "线"])
odd_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 5e-324, 1.7976931348623157e308]
)
odd_ints = st.integers(-(2**70), 2**70) | st.sampled_from([10**400, -(10**400), True, False])
scalars = st.none() | odd_ints | odd_floats | odd_text
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(odd_text, children, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = {"temp": st.floats(15, 25), "rpm": st.floats(800, 1000), "line": st.sampled_from("ab")}


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid events; each field may be missing or any JSON value, extras may appear."""
    record = {}
    for name, valid in FIELDS.items():
        choice = draw(st.integers(0, 9))
        if choice < 7:
            record[name] = draw(valid)
        elif choice < 9:
            record[name] = draw(json_values)
    record.update(draw(st.dictionaries(odd_text, json_values, max_size=2)))
    return record


def dumps(record: dict[str, Any]) -> bytes:
    """JSON as a producer might write it: NaN and Infinity literals, escaped surrogates."""
    return json.dumps(record).encode()


raw_messages = st.sampled_from(
    [
        None,
        b"",
        b"not json",
        b"[1, 2]",
        b"null",
        b'{"temp": 1' + b"0" * 4300 + b"}",
        b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"temp": 20.0, "rpm": 900.0, "line": "\xff"}',
    ]
) | st.binary(max_size=20)
messages = st.one_of(records().map(dumps), records().map(dumps), raw_messages)
batches = st.lists(st.lists(messages, max_size=40), min_size=1, max_size=4)


def valid_event(rng: random.Random, i: int) -> dict[str, Any]:
    return {"temp": rng.gauss(20, 1), "rpm": rng.gauss(900, 5), "line": "ab"[i % 2]}


def new_pipeline() -> ScoringPipeline:
    detector = streammem.MemAE(
        num_slots=10, network=streammem.Network(hidden_sizes=(8,), latent_size=4)
    )
    calibrator = ConformalCalibrator(alpha=0.05, window_size=200, min_reference=20)
    return ScoringPipeline(AlertFilter(detector, calibrator), ServiceMetrics())


@pytest.fixture(scope="module")
def trained() -> ScoringPipeline:
    """A pipeline that has trained and calibrated on 600 valid events."""
    rng = random.Random(0)
    pipeline = new_pipeline()
    for start in range(0, 600, 100):
        events = [valid_event(rng, i) for i in range(start, start + 100)]
        pipeline.process(RecordBatch(events, [{"row": i} for i in range(len(events))]), ListSink())
    assert pipeline.is_trained and pipeline.calibrator.is_warm
    return pipeline


def start_from(trained: ScoringPipeline, fresh: bool) -> ScoringPipeline:
    if fresh:
        return new_pipeline()
    detector, calibrator = copy.deepcopy((trained.detector, trained.calibrator))
    return ScoringPipeline(AlertFilter(detector, calibrator), ServiceMetrics())


def assert_each_input_out_once(sink: ListSink, key: str, expected: list) -> None:
    outputs = Counter(r[key] for r in sink.results)
    outputs.update(letter.origin[key] for letter in sink.letters)
    assert outputs == Counter(expected)
    for letter in sink.letters:
        assert letter.reason in ("malformed_json", "not_an_object", "oversize", "invalid_record")
        letter.detail.encode()  # always valid text


def message(value: bytes | None, offset: int) -> SimpleNamespace:
    return SimpleNamespace(
        topic="t", partition=0, offset=offset, key=None, value=value, timestamp=0
    )


@PROPERTY_SETTINGS
@given(polls=batches, fresh=st.booleans())
def test_kafka_messages_each_become_one_result_or_one_dead_letter(trained, polls, fresh):
    pipeline = start_from(trained, fresh)
    decoder = JsonDecoder(max_message_bytes=30_000)
    offset = 0
    for poll in polls:
        sink = ListSink()
        batch = decoder.decode([message(value, offset + i) for i, value in enumerate(poll)])
        summary = pipeline.process(batch, sink)
        expected = list(range(offset, offset + len(poll)))
        assert_each_input_out_once(sink, "offset", expected)
        assert summary.events + summary.dead_letters == len(poll)
        assert all(0 < r["p_value"] <= 1 for r in sink.results)
        offset += len(poll)


python_values = json_values | st.sampled_from([math.nan, math.inf, object(), b"bytes", (1, 2)])


@st.composite
def python_records(draw: st.DrawFn) -> dict[str, Any]:
    """Records as a file source or a caller builds them: any Python value in any field."""
    record = draw(records())
    if draw(st.booleans()):
        record[draw(st.sampled_from(list(FIELDS)))] = draw(python_values)
    return record


@PROPERTY_SETTINGS
@given(
    polls=st.lists(st.lists(python_records(), max_size=40), min_size=1, max_size=4),
    fresh=st.booleans(),
)
def test_python_records_each_become_one_result_or_one_dead_letter(trained, polls, fresh):
    pipeline = start_from(trained, fresh)
    row = 0
    for poll in polls:
        sink = ListSink()
        origins = [{"row": row + i} for i in range(len(poll))]
        pipeline.process(RecordBatch(poll, origins), sink)
        assert_each_input_out_once(sink, "row", [o["row"] for o in origins])
        row += len(poll)
