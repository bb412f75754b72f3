"""A fresh model's schema comes from many records (or the config), never from the first one.

../shared/research/reliability.md, failure 3: a wrong-typed first record sent the next 499
valid events to dead letters and then crash-looped; a first record missing ``temp`` dropped
``temp`` for good; a column of numeric strings became a category.
"""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sinks import ListSink

import streammem
from connectors import RecordBatch, SourceError
from connectors.kafka import JsonDecoder
from connectors.parquet import ParquetSource
from streammem.alerts.calibration import ConformalCalibrator
from streammem.alerts.filter import AlertFilter
from streammem.features.encoder import FeatureEncoder, schema_example
from streammem.metrics import ServiceMetrics
from streammem.persistence import CheckpointError
from streammem.service.build import new_pipeline, pipeline_from_state
from streammem.service.config import ConfigError, parse_config
from streammem.service.pipeline import ScoringPipeline


def event(rng: random.Random, i: int) -> dict:
    return {"temp": rng.gauss(20, 1), "rpm": rng.gauss(900, 5), "line": "ab"[i % 2]}


def message(value: bytes, offset: int) -> SimpleNamespace:
    return SimpleNamespace(
        topic="events", partition=0, offset=offset, key=None, value=value, timestamp=0
    )


def fresh_pipeline(**kwargs) -> ScoringPipeline:
    detector = streammem.MemAE(
        num_slots=10, network=streammem.Network(hidden_sizes=(8,), latent_size=4)
    )
    return ScoringPipeline(AlertFilter(detector, ConformalCalibrator()), ServiceMetrics(), **kwargs)


def run_polls(pipeline: ScoringPipeline, first: dict, polls: list[int]) -> ListSink:
    """``first``, then valid events, in polls of the given sizes, through the daemon's path."""
    rng, decoder, sink = random.Random(0), JsonDecoder(), ListSink()
    values = [json.dumps(first).encode()]
    values += [json.dumps(event(rng, i)).encode() for i in range(sum(polls) - 1)]
    offset = 0
    for size in polls:
        batch = decoder.decode(
            [message(v, offset + i) for i, v in enumerate(values[offset : offset + size])]
        )
        pipeline.process(batch, sink)
        offset += size
    return sink


@pytest.mark.parametrize(
    ("first", "dead"),
    [
        ({"temp": "hot", "rpm": 900.0, "line": "a"}, 1),  # wrong type
        ({"temp": 20.0, "rpm": 900.0, "line": "a", "extra": 1}, 0),  # an extra numeric field
        ({"rpm": 900.0, "line": "a"}, 1),  # temp missing
        ({"temp": None, "rpm": 900.0, "line": "a"}, 1),  # temp null
    ],
    ids=["wrong_type", "extra_numeric_field", "missing_field", "null_field"],
)
@pytest.mark.parametrize("polls", [[500, 500, 500], [1] * 40 + [460]], ids=["big", "one_by_one"])
def test_an_odd_first_record_does_not_become_the_schema(first, dead, polls):
    pipeline = fresh_pipeline()
    sink = run_polls(pipeline, first, polls)
    if polls[0] == 1:
        dead = 0  # alone, it was judged by its own schema: a result, scored 0, never learned
    assert [letter.origin["offset"] for letter in sink.letters] == [0] * dead
    assert len(sink.results) == sum(polls) - dead
    encoder = pipeline.detector.encoder_
    assert (sorted(encoder.numeric_), list(encoder.vocabulary_)) == (["rpm", "temp"], ["line"])
    assert pipeline.is_trained


def test_no_record_is_learned_before_enough_records_agree_on_a_schema():
    pipeline = fresh_pipeline(schema_records=32)
    sink = run_polls(pipeline, {"temp": "hot", "rpm": 1.0, "line": "a"}, [1] * 31)
    assert getattr(pipeline.detector, "encoder_", None) is None  # nothing learned yet
    assert len(sink.results) == 31 and {r["score"] for r in sink.results} == {0.0}
    # Judged by the schema most records seen so far agree on: temp is a number now.
    decoder, late = JsonDecoder(), ListSink()
    pipeline.process(decoder.decode([message(b'{"temp": "hot", "rpm": 1, "line": "a"}', 31)]), late)
    assert late.results == [] and "'temp': expected a number" in late.letters[0].detail


def test_numbers_written_as_strings_are_numbers():
    rng = random.Random(1)
    records = [{**event(rng, i), "temp": f"{20 + i % 7}.5"} for i in range(300)]
    pipeline, sink = fresh_pipeline(), ListSink()
    pipeline.process(RecordBatch(records, [{"row": i} for i in range(300)]), sink)
    assert pipeline.detector.encoder_.numeric_ == ["temp", "rpm"]
    assert len(sink.results) == 300 and sink.letters == []
    # One policy on both paths: a record alone and a table read "20.5" the same way.
    encoder = pipeline.detector.encoder_
    alone = encoder.vectorize_one({"temp": "20.5", "rpm": 900.0, "line": "a"})
    table = encoder.vectorize_many(pd.DataFrame([{"temp": "20.5", "rpm": 900.0, "line": "a"}]))
    np.testing.assert_array_equal(alone, table[0])
    with pytest.raises(ValueError, match="'temp': expected a number, got str 'hot'"):
        encoder.check_one({"temp": "hot", "rpm": 900.0, "line": "a"})


def test_schema_example_takes_the_type_most_records_agree_on():
    rows = [
        {"t": "hot", "n": None, "line": "a", "odd": [1]},
        {"t": 20.5, "n": None, "line": "b", "odd": [2]},
        {"t": "21", "n": None, "line": "a", "rare": 1.0},
    ]
    assert schema_example(rows) == {"t": 0.0, "line": ""}
    assert schema_example(rows, kinds={"n": "number"}) == {"t": 0.0, "n": 0.0, "line": ""}
    frame = pd.DataFrame({"t": [1.0, np.nan], "s": ["1", "x"], "u": ["x", None]})
    assert schema_example(frame) == {"t": 0.0, "s": 0.0, "u": ""}


def test_a_declared_schema_is_used_from_the_first_record():
    config = parse_config(
        {
            "model": {"name": "MemAE", "params": {"num_slots": 10}},
            "schema": {"numeric": ["temp"], "categorical": {"line": ["a", "b"]}},
        }
    )
    pipeline, sink = new_pipeline(config, ServiceMetrics(), ("events", "0")), ListSink()
    records = [{"temp": 20.0, "rpm": 1.0, "line": "a"}, {"temp": "hot", "line": "b"}]
    pipeline.process(RecordBatch(records, [{"row": 0}, {"row": 1}]), sink)
    assert [r["row"] for r in sink.results] == [0] and sink.letters[0].origin == {"row": 1}
    encoder = pipeline.detector.encoder_
    assert encoder.numeric_ == ["temp"] and encoder.vocabulary_ == {"line": ["a", "b"]}
    with pytest.raises(ConfigError, match=r"schema\.categorical\.line: expected a list, got str"):
        parse_config({"schema": {"categorical": {"line": "a"}}})


def test_a_parquet_column_null_in_the_first_batch_keeps_its_declared_type(tmp_path):
    n = 1500
    temp = np.random.default_rng(0).normal(20, 1, n)
    temp[:600] = np.nan  # the first batch holds no temp at all
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"temp": pa.array(temp, from_pandas=True), "rpm": np.ones(n)}), path)
    pipeline, sink = fresh_pipeline(), ListSink()
    for batch in ParquetSource(path, batch_size=512):
        pipeline.process(batch, sink)
    assert pipeline.detector.encoder_.numeric_ == ["temp", "rpm"]
    assert len(sink.letters) == 600 and len(sink.results) == n - 600


def test_a_parquet_feature_that_is_neither_numbers_nor_text_is_refused(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"temp": [1.0], "tags": [[1, 2]]}), path)
    with pytest.raises(
        SourceError, match=r"column 'tags' is list<.*>; features must be numbers or text"
    ):
        ParquetSource(path)
    assert ParquetSource(path, passthrough=["tags"]).features == ["temp"]


def test_a_table_fixes_its_schema_from_all_its_rows_not_its_first():
    encoder = FeatureEncoder()
    frame = pd.DataFrame(
        [{"t": "hot", "line": "a"}] + [{"t": 20.0 + i, "line": "b"} for i in range(5)]
    )
    with pytest.raises(ValueError, match="'t': expected a number, got str 'hot'"):
        encoder.vectorize_many(frame)
    assert encoder.numeric_ == ["t"] and list(encoder.vocabulary_) == ["line"]


def wrong_typed(i: int) -> dict:
    return {"temp": f"hot{i % 5}", "rpm": "fast", "line": "a"}


def feed(pipeline: ScoringPipeline, records: list[dict], start: int, sink: ListSink) -> None:
    """``records`` in polls of 100, numbered from ``start``."""
    for first in range(0, len(records), 100):
        chunk = records[first : first + 100]
        origins = [{"row": start + first + i} for i in range(len(chunk))]
        pipeline.process(RecordBatch(chunk, origins), sink)


def revisions(pipeline: ScoringPipeline) -> float | None:
    return pipeline.metrics.registry.get_sample_value(
        "streammem_schema_revisions_total", {"topic": "events", "partition": "0"}
    )


INFERRED = parse_config({"model": {"name": "MemAE", "params": {"num_slots": 10}}})


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
def test_a_stream_that_starts_wrong_typed_does_not_keep_its_types(restart):
    """500 wrong-typed events, then 1,000 valid ones, in polls of 100: the first polls' types
    became the schema, were checkpointed, and every valid event after them was dead-lettered
    (1,000 of 1,000), restart or not. An inferred schema stays provisional until it has held
    for schema.confirm_records records, and is revised when most of the latest disagree."""
    rng, sink = random.Random(0), ListSink()
    pipeline = new_pipeline(INFERRED, ServiceMetrics(), ("events", "0"))
    feed(pipeline, [wrong_typed(i) for i in range(500)], 0, sink)
    if restart:
        state = pipeline.state_dict()
        pipeline = pipeline_from_state(state, INFERRED, ServiceMetrics(), ("events", "0"))
    feed(pipeline, [event(rng, i) for i in range(1000)], 500, sink)
    assert [letter for letter in sink.letters if letter.origin["row"] >= 500] == []
    assert len(sink.results) == 1500
    encoder = pipeline.detector.encoder_
    assert (sorted(encoder.numeric_), list(encoder.vocabulary_)) == (["rpm", "temp"], ["line"])
    assert revisions(pipeline) == 1 and pipeline.is_trained


def test_wrong_typed_records_mixed_into_the_first_polls_are_dead_lettered():
    """Most of the first poll is wrong-typed, the rest of the stream is not: their types last
    that poll; from the next on, wrong-typed records are dead letters, valid ones results."""
    rng, sink = random.Random(0), ListSink()
    first = [wrong_typed(i) if i % 10 < 6 else event(rng, i) for i in range(100)]
    rest = [wrong_typed(i) if i % 10 == 0 else event(rng, i) for i in range(900)]
    pipeline = new_pipeline(INFERRED, ServiceMetrics(), ("events", "0"))
    feed(pipeline, first + rest, 0, sink)
    dead = {letter.origin["row"] for letter in sink.letters}
    assert {row for row in range(100, 1000) if row % 10 == 0} <= dead  # wrong-typed, later
    assert len([row for row in dead if row >= 100 and row % 10]) == 0  # no valid one, later
    assert revisions(pipeline) == 1


def test_a_fixed_schema_is_not_revised():
    """Once it has held for schema.confirm_records records, wrong-typed records are only
    dead letters, however many."""
    rng, sink = random.Random(0), ListSink()
    pipeline = new_pipeline(INFERRED, ServiceMetrics(), ("events", "0"))
    feed(pipeline, [event(rng, i) for i in range(1100)], 0, sink)
    feed(pipeline, [wrong_typed(i) for i in range(300)], 1100, sink)
    assert sorted(letter.origin["row"] for letter in sink.letters) == list(range(1100, 1400))
    assert not revisions(pipeline)


def test_a_checkpoint_whose_schema_is_not_the_configured_one_is_refused():
    """A checkpoint that learned ``temp`` as a category was adopted as it was."""
    pipeline = new_pipeline(INFERRED, ServiceMetrics(), ("events", "0"))
    feed(pipeline, [wrong_typed(i) for i in range(200)], 0, ListSink())
    declared = parse_config(
        {
            "model": {"name": "MemAE", "params": {"num_slots": 10}},
            "schema": {"numeric": ["temp", "rpm"], "categorical": {"line": None}},
        }
    )
    with pytest.raises(CheckpointError, match=r"schema.numeric \['temp', 'rpm'\]"):
        pipeline_from_state(pipeline.state_dict(), declared, ServiceMetrics(), ("events", "0"))
