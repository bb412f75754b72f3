"""``features.window`` in the service: config validation, one code path with the Python API,
dead letters, metrics, protected learning, and windows that resume from checkpoints."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from prometheus_client import generate_latest
from sinks import ListSink

from connectors import RecordBatch
from streammem.metrics import ServiceMetrics
from streammem.persistence import CheckpointError, load_checkpoint, save_checkpoint
from streammem.service.build import new_pipeline, pipeline_from_state
from streammem.service.config import ConfigError, parse_config

CONFIG = {
    "model": {"name": "MemAE", "params": {"schedule": {"batch_size": 32}}},
    "calibration": {"alpha": 0.01, "window_size": 500, "min_reference": 100},
    "features": {"window": {"size": 10, "key": "machine", "ttl": 5000}},
    "metrics": {"port": None},
}


def batches(n_batches: int, size: int = 200, seed: int = 0) -> list[RecordBatch]:
    """Readings of two machines: ``b`` follows ``a``, in time order."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_batches):
        records, origins = [], []
        for i in range(k * size, (k + 1) * size):
            a = np.sin(i / 50) + 0.1 * rng.normal()
            machine = ["press", "lathe"][i % 2]
            records.append({"machine": machine, "a": a, "b": 2 * a + 0.1 * rng.normal()})
            origins.append({"row": i})
        out.append(RecordBatch(records, origins))
    return out


def config(**changes) -> object:
    data = copy.deepcopy(CONFIG)
    for section, values in changes.items():
        data[section] = values
    return parse_config(data)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"size": 0}, "features.window.size must be an integer >= 1, got 0"),
        ({"features": ["median"]}, "features.window.features must be distinct names among"),
        ({"max_gap": 30}, "features.window.max_gap needs a time_field"),
        ({"ttl": 0}, "features.window.ttl must be a number > 0 or null, got 0.0"),
        ({"max_keys": True}, "features.window.max_keys: expected int, got bool True"),
        ({"key": "m", "fields": ["m"]}, "features.window.fields must name at least one field"),
        ({"sise": 3}, "features.window.sise: unknown key; allowed keys are ['size'"),
        ("yes", "features.window: expected a mapping, got str"),
    ],
)
def test_window_config_errors_name_the_key(window, message):
    with pytest.raises(ConfigError) as error:
        config(features={"window": window})
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_no_window_by_default_and_a_window_when_configured():
    assert new_pipeline(config(features={}), ServiceMetrics()).window is None
    window = new_pipeline(config(), ServiceMetrics()).window
    assert (window.size, window.key, window.ttl) == (10, "machine", 5000)


def test_the_pipeline_scores_what_the_python_api_scores():
    """Service and Python API share one path: window, then the alert filter."""
    pipeline = new_pipeline(config(), ServiceMetrics())
    twin = new_pipeline(config(), ServiceMetrics())
    model = twin.window | twin.alerts
    sink = ListSink()
    for batch in batches(6):
        pipeline.process(batch, sink)
        expected = model.process_many(batch.records)
        got = np.array([r["score"] for r in sink.results[-len(batch.records) :]])
        np.testing.assert_allclose(got, expected.scores, rtol=1e-6)


def test_restarts_resume_windows(tmp_path):
    """A pipeline rebuilt from its weights_only checkpoint goes on exactly where the first
    one stood: same windows, same model, same scores."""
    data = batches(10)
    straight, sink = new_pipeline(config(), ServiceMetrics()), ListSink()
    for batch in data:
        straight.process(batch, sink)

    first, resumed_sink = new_pipeline(config(), ServiceMetrics()), ListSink()
    for batch in data[:6]:
        first.process(batch, resumed_sink)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(first.state_dict(), path)
    second = pipeline_from_state(load_checkpoint(path), config(), ServiceMetrics())
    assert second.window.n_keys == 2
    for batch in data[6:]:
        second.process(batch, resumed_sink)
    scores = [r["score"] for r in resumed_sink.results]
    assert scores == pytest.approx([r["score"] for r in sink.results], rel=1e-6)


def test_a_checkpoint_resumes_only_under_its_own_window(tmp_path):
    pipeline = new_pipeline(config(), ServiceMetrics())
    pipeline.process(batches(1)[0], ListSink())
    state = pipeline.state_dict()
    with pytest.raises(CheckpointError, match="the checkpoint has a window"):
        pipeline_from_state(state, config(features={}), ServiceMetrics())
    other = config(features={"window": {"size": 20, "key": "machine", "ttl": 5000}})
    with pytest.raises(CheckpointError, match=r"is not features\.window"):
        pipeline_from_state(state, other, ServiceMetrics())
    plain = new_pipeline(config(features={}), ServiceMetrics()).state_dict()
    with pytest.raises(CheckpointError, match="the checkpoint has no window"):
        pipeline_from_state(plain, config(), ServiceMetrics())


def test_readings_the_window_cannot_use_are_dead_letters():
    pipeline, sink = new_pipeline(config(), ServiceMetrics()), ListSink()
    batch = batches(1, size=40)[0]
    batch.records[3] = {"machine": "press", "a": "stuck", "b": 1.0}
    batch.records[7] = {"a": 1.0, "b": 2.0}  # no key
    batch.records[9] = ["not", "a", "record"]
    summary = pipeline.process(batch, sink)
    assert (summary.events, summary.dead_letters) == (37, 3)
    assert [letter.origin["row"] for letter in sink.letters] == [3, 7, 9]
    assert "field 'a'" in sink.letters[0].detail and "field 'machine'" in sink.letters[1].detail
    assert pipeline.window.state_dict()["clock"] == 37  # only the good readings entered


def test_protected_learning_leaves_the_model_alone_but_not_the_window():
    pipeline, sink = new_pipeline(config(), ServiceMetrics()), ListSink()
    for batch in batches(8):
        pipeline.process(batch, sink)
    detector = pipeline.detector
    seen = detector.n_seen_ + len(detector.pending_)
    clock = pipeline.window.state_dict()["clock"]
    broken = RecordBatch([{"machine": "press", "a": 0.0, "b": 40.0}], [{"row": -1}])
    pipeline.process(broken, sink)
    assert sink.results[-1]["alert"]
    assert detector.n_seen_ + len(detector.pending_) == seen
    assert pipeline.window.state_dict()["clock"] == clock + 1


def test_window_keys_and_evictions_are_metrics():
    metrics = ServiceMetrics()
    small = config(features={"window": {"size": 3, "key": "machine", "max_keys": 5}})
    pipeline = new_pipeline(small, metrics, labels=("sensors", "0"))
    records = [{"machine": f"m{i}", "a": 1.0, "b": 2.0} for i in range(12)]
    pipeline.process(RecordBatch(records, [{"row": i} for i in range(12)]), ListSink())
    text = generate_latest(metrics.registry).decode()
    assert 'streammem_window_keys{partition="0",topic="sensors"} 5.0' in text
    assert 'streammem_window_evictions_total{reason="lru"} 7.0' in text
    assert 'streammem_window_evictions_total{reason="ttl"} 0.0' in text
    metrics.forget_model(("sensors", "0"))
    assert "streammem_window_keys{" not in generate_latest(metrics.registry).decode()
