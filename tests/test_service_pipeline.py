from __future__ import annotations

import logging

import numpy as np
import pytest
from sinks import ListSink

import streammem
from connectors import RecordBatch
from streammem.alerts.calibration import ConformalCalibrator
from streammem.alerts.filter import AlertFilter
from streammem.metrics import ServiceMetrics
from streammem.persistence import load_checkpoint
from streammem.service.checkpoint import CheckpointStore
from streammem.service.pipeline import ScoringPipeline


def normal_batch(rng: np.random.Generator, n: int, first_row: int = 0) -> RecordBatch:
    x = rng.normal(size=n)
    records = [{"a": float(v), "b": float(2 * v + 0.05 * rng.normal()), "proto": "tcp"} for v in x]
    return RecordBatch(records, [{"row": first_row + i} for i in range(n)])


def warmed_pipeline(learn_on_alert: bool = False) -> tuple[ScoringPipeline, ListSink]:
    rng = np.random.default_rng(0)
    calibrator = ConformalCalibrator(alpha=0.01, window_size=500, min_reference=100)
    pipeline = ScoringPipeline(
        AlertFilter(streammem.MemAE(), calibrator, not learn_on_alert), ServiceMetrics()
    )
    sink = ListSink()
    for i in range(12):
        pipeline.process(normal_batch(rng, 250, 250 * i), sink)
    return pipeline, sink


def test_every_record_gets_a_result_or_a_dead_letter_even_in_the_first_batch():
    batch = RecordBatch(
        [
            {"a": 1.0, "b": 2.0, "proto": "tcp"},
            {"a": "high", "b": 2.0, "proto": "tcp"},
            {"a": float("inf"), "b": 2.0, "proto": "tcp"},
            {"a": 1.0, "proto": "tcp"},
            {"a": 1.0, "b": 2.0, "proto": 7},
            {"a": 1.0, "b": 2.0, "proto": "never-seen"},
        ],
        [{"row": i} for i in range(6)],
    )
    pipeline = ScoringPipeline(
        AlertFilter(streammem.MemAE(), ConformalCalibrator()), ServiceMetrics()
    )
    sink = ListSink()
    summary = pipeline.process(batch, sink)
    assert [r["row"] for r in sink.results] == [0, 5]
    assert [letter.origin["row"] for letter in sink.letters] == [1, 2, 3, 4]
    assert all(letter.reason == "invalid_record" for letter in sink.letters)
    assert "'a'" in sink.letters[0].detail and "'b'" in sink.letters[2].detail
    assert (summary.events, summary.dead_letters) == (2, 4)


def test_results_carry_origin_score_p_value_and_alert():
    pipeline, sink = warmed_pipeline()
    assert pipeline.is_trained and pipeline.calibrator.is_warm
    last = sink.results[-1]
    assert last["row"] == 12 * 250 - 1
    assert set(last) == {"row", "score", "p_value", "alert", "limit"}
    assert last["score"] > last["limit"] if last["alert"] else last["score"] <= last["limit"]
    assert 0 < last["p_value"] <= 1 and np.isfinite(last["score"])


@pytest.mark.parametrize("learn_on_alert", [False, True])
def test_flagged_records_are_learned_only_when_asked(learn_on_alert):
    pipeline, _ = warmed_pipeline(learn_on_alert)
    rng = np.random.default_rng(1)
    batch = normal_batch(rng, 100, 10_000)
    # Fewer broken records than the window's top alpha: each enters the window before the
    # next is judged (as one record at a time), so a longer burst raises the limit.
    for record in batch.records[::25]:
        record["b"] = -50.0 * record["a"] - 40.0  # breaks the a-b relation
    learned_before = pipeline.detector.encoder_.n_learned_
    sink = ListSink()
    summary = pipeline.process(batch, sink)
    flagged = [r["row"] for r in sink.results if r["alert"]]
    assert set(range(10_000, 10_100, 25)) <= set(flagged)
    learned = pipeline.detector.encoder_.n_learned_ - learned_before
    assert learned == (100 if learn_on_alert else 100 - summary.alerts)


def test_metrics_follow_the_batches():
    pipeline, sink = warmed_pipeline()
    metrics = pipeline.metrics
    sample = metrics.registry.get_sample_value
    assert sample("streammem_events_total") == len(sink.results) == 3000
    assert sample("streammem_alerts_total") == sum(r["alert"] for r in sink.results)
    assert sample("streammem_model_updates_total") == pipeline.detector.n_updates_
    threshold = metrics.registry.get_sample_value(
        "streammem_threshold", {"topic": "", "partition": ""}
    )
    assert threshold == pipeline.calibrator.threshold()


def test_checkpoint_store_falls_back_to_the_previous_file_when_the_latest_is_corrupt(
    tmp_path, caplog
):
    pipeline, _ = warmed_pipeline()
    fallbacks = []
    store = CheckpointStore(tmp_path, keep=2, on_fallback=lambda: fallbacks.append(1))
    for offset in (100, 200, 300):
        store.save("events-0", {**pipeline.state_dict(), "offset": offset})
    assert len(store.paths("events-0")) == 2
    newest = store.paths("events-0")[0]
    newest.write_bytes(newest.read_bytes()[:100])  # a torn write from another tool
    with caplog.at_level(logging.ERROR):
        state = store.load_latest("events-0")
    assert state["offset"] == 200
    assert fallbacks == [1] and "unreadable checkpoint" in caplog.text
    restored = streammem.from_state(state["detector"])
    probe = [{"a": 0.3, "b": 0.6, "proto": "tcp"}]
    assert restored.score_many(probe)[0] == pytest.approx(pipeline.detector.score_many(probe)[0])


def test_checkpoint_store_returns_none_when_nothing_is_readable(tmp_path):
    store = CheckpointStore(tmp_path)
    assert store.load_latest("nothing") is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "ckpt-0000000000.pt").write_bytes(b"not a checkpoint")
    assert store.load_latest("bad") is None


def test_checkpoints_load_with_weights_only(tmp_path):
    pipeline, _ = warmed_pipeline()
    path = CheckpointStore(tmp_path).save("job", pipeline.state_dict())
    state = load_checkpoint(path)  # torch.load(weights_only=True) underneath
    assert state["calibrator"]["reference"] == list(pipeline.calibrator.reference_)
