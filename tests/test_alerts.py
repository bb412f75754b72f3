"""AlertFilter: calibrated alerts and protected learning in the Python API."""

from __future__ import annotations

import inspect
import random

import numpy as np
import pandas as pd
import pytest
from river import anomaly, base, evaluate, metrics

import streammem
from streammem import AlertFilter, ConformalCalibrator, QuantileThreshold


def stream(n: int, seed: int = 0):
    """b follows a; every 50th record breaks that."""
    rng = random.Random(seed)
    for i in range(n):
        a = rng.gauss(0, 1)
        is_anomaly = i % 50 == 49
        b = 2 * a + (rng.choice([-6.0, 6.0]) if is_anomaly else rng.gauss(0, 0.1))
        yield {"a": a, "b": b}, is_anomaly


def warmed(protect: bool = True, n: int = 1500) -> AlertFilter:
    alerts = AlertFilter(
        streammem.MemAE(device="cpu"),
        ConformalCalibrator(alpha=0.01, window_size=500, min_reference=100),
        protect_anomaly_detector=protect,
    )
    for x, _ in stream(n):
        alerts.learn_one(x)
    return alerts


def test_is_a_river_anomaly_filter_with_its_parameters():
    alerts = AlertFilter(streammem.MemAE())
    assert isinstance(alerts, base.AnomalyFilter)
    assert set(inspect.signature(AlertFilter).parameters) == {
        "anomaly_detector",
        "calibrator",
        "protect_anomaly_detector",
    }
    # River rebuilds the clone from those parameters, read back from attributes of their names
    assert isinstance(alerts.clone(), AlertFilter)
    assert alerts.calibrator is None and isinstance(alerts.calibrator_, ConformalCalibrator)


def test_nothing_is_flagged_while_the_calibrator_warms_up():
    alerts = AlertFilter(streammem.MemAE(device="cpu"))
    for x, _ in stream(50):
        assert not alerts.classify(alerts.score_one({**x, "b": 100.0}))
        alerts.learn_one(x)


@pytest.mark.parametrize("protect", [True, False])
def test_flagged_records_leave_the_model_alone_only_when_protected(protect):
    alerts = warmed(protect)
    detector = alerts.anomaly_detector
    broken = {"a": 0.3, "b": -40.0}
    assert alerts.classify(alerts.score_one(broken))
    seen, pending = detector.n_seen_, len(detector.pending_)
    alerts.learn_one(broken)
    learned = detector.n_seen_ + len(detector.pending_) - seen - pending
    assert learned == (0 if protect else 1)  # River's own filter learns nothing when False


def test_normal_records_are_learned_and_every_score_is_calibrated():
    alerts = warmed()
    before = len(alerts.calibrator_.reference_)
    detector = alerts.anomaly_detector
    seen = detector.n_seen_ + len(detector.pending_)
    alerts.learn_one({"a": 0.1, "b": 0.2})
    alerts.learn_one({"a": 0.3, "b": -40.0})  # flagged: not learned, but its score is kept
    assert detector.n_seen_ + len(detector.pending_) == seen + 1
    assert len(alerts.calibrator_.reference_) == min(before + 2, 500)


def test_batches_agree_with_records_and_learn_only_what_is_not_flagged():
    alerts = warmed()
    frame = pd.DataFrame([{"a": 0.1, "b": 0.2}, {"a": 0.3, "b": -40.0}, {"a": -1.0, "b": -2.0}])
    scores = alerts.score_many(frame)
    np.testing.assert_allclose(
        scores, [alerts.score_one(x) for x in frame.to_dict("records")], rtol=1e-5
    )
    p_values = alerts.p_values_many(frame)
    assert ((p_values > 0) & (p_values <= 1)).all() and p_values[1] < 0.01
    detector = alerts.anomaly_detector
    seen = detector.n_seen_ + len(detector.pending_)
    judged = alerts.process_many(frame)
    assert judged.alerts.tolist() == [False, True, False]
    assert detector.n_seen_ + len(detector.pending_) == seen + 2


def test_a_quantile_threshold_works_too():
    alerts = AlertFilter(streammem.MemAE(device="cpu"), QuantileThreshold(q=0.95, window_size=500))
    for x, _ in stream(1500):
        alerts.learn_one(x)
    assert alerts.classify(alerts.score_one({"a": 0.3, "b": -40.0}))


def test_inside_rivers_progressive_validation():
    """alpha above the 2% anomaly rate: the filter's flags separate the anomalies (flags are
    0 / 1, so this AUROC is (recall + 1 - false-alarm rate) / 2: 0.85 needs most anomalies
    caught at a low false-alarm rate)."""
    alerts = AlertFilter(streammem.MemAE(device="cpu"), ConformalCalibrator(alpha=0.03))
    result = evaluate.progressive_val_score(stream(3000), alerts, metrics.ROCAUC())
    assert result.get() > 0.85


def test_state_round_trips_through_the_service_format():
    alerts = warmed(n=600)
    state = alerts.state_dict()
    restored = streammem.from_state(state["detector"])
    probe = pd.DataFrame([{"a": 0.5, "b": 1.0}])
    assert restored.score_many(probe)[0] == pytest.approx(alerts.score_many(probe)[0])
    assert state["protect_anomaly_detector"] is True


def test_any_river_detector_can_be_wrapped():
    alerts = AlertFilter(anomaly.HalfSpaceTrees(seed=1), ConformalCalibrator(min_reference=20))
    for x, _ in stream(300):
        alerts.learn_one(x)
    frame = pd.DataFrame([x for x, _ in stream(5, seed=1)])
    assert alerts.score_many(frame).shape == (5,)
    alerts.learn_many(frame)
