from __future__ import annotations

import inspect
import io

import numpy as np
import pytest
import river
import torch

import streammem
from streammem.alerts.calibration import (
    ConformalCalibrator,
    QuantileThreshold,
)


def test_conformal_false_alarm_rate_matches_alpha_on_exchangeable_scores():
    rng = np.random.default_rng(0)
    calibrator = ConformalCalibrator(alpha=0.05, window_size=2000, min_reference=100)
    calibrator.learn_many(rng.normal(size=2000))
    fresh = rng.normal(size=20_000)
    rate = calibrator.alerts(fresh, calibrator.p_values(fresh)).mean()
    assert 0.04 < rate < 0.06


def test_threshold_agrees_with_alerts_at_the_boundary():
    calibrator = ConformalCalibrator(alpha=0.05, window_size=500, min_reference=10)
    calibrator.learn_many(np.random.default_rng(1).exponential(size=500))
    threshold = calibrator.threshold()
    scores = np.array([threshold, np.nextafter(threshold, np.inf)])
    assert calibrator.alerts(scores, calibrator.p_values(scores)).tolist() == [False, True]


def test_nothing_flagged_while_warming_up():
    calibrator = ConformalCalibrator(alpha=0.1, window_size=100, min_reference=50)
    calibrator.learn_many([0.0] * 49)
    p = calibrator.p_values(np.array([1e9]))
    assert p.tolist() == [1.0]
    assert calibrator.threshold() == float("inf")


def test_window_forgets_old_scores():
    calibrator = QuantileThreshold(q=0.5, window_size=10, min_reference=10)
    calibrator.learn_many([100.0] * 10)
    calibrator.learn_many([1.0] * 10)
    assert calibrator.threshold() == 1.0


def test_non_finite_scores_are_not_learned_and_nan_is_flagged():
    calibrator = ConformalCalibrator(alpha=0.05, window_size=100, min_reference=20)
    calibrator.learn_many([*np.linspace(0, 1, 50), np.nan, np.inf])
    assert len(calibrator.reference_) == 50
    p = calibrator.p_values(np.array([np.nan]))
    assert calibrator.alerts(np.array([np.nan]), p).tolist() == [True]


@pytest.mark.parametrize(
    "calibrator",
    [
        ConformalCalibrator(alpha=0.02, window_size=300, min_reference=60),
        QuantileThreshold(q=0.97, window_size=300, min_reference=60),
    ],
)
def test_state_round_trips_through_weights_only_torch_load(calibrator):
    calibrator.learn_many(np.random.default_rng(2).gamma(2.0, size=400))
    buffer = io.BytesIO()
    torch.save(calibrator.state_dict(), buffer)
    buffer.seek(0)
    restored = streammem.from_state(torch.load(buffer, weights_only=True))
    scores = np.linspace(0, 10, 50)
    np.testing.assert_array_equal(restored.p_values(scores), calibrator.p_values(scores))
    assert restored.threshold() == calibrator.threshold()


def test_bad_parameters_and_states_are_rejected_with_clear_errors():
    # Parameters are checked at first use, not in __init__ (scikit-learn / River style).
    with pytest.raises(ValueError, match="alpha"):
        ConformalCalibrator(alpha=1.5).learn_many([1.0])
    with pytest.raises(ValueError, match="min_reference"):
        QuantileThreshold(window_size=10, min_reference=20).p_values(np.array([1.0]))
    with pytest.raises(ValueError, match="unknown class"):
        streammem.from_state({"kind": "os.system", "params": {}, "reference": []})
    with pytest.raises(ValueError, match="not 'QuantileThreshold'"):
        QuantileThreshold.from_state(ConformalCalibrator().state_dict())


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConformalCalibrator(alpha=0.05, window_size=60, min_reference=25),
        lambda: QuantileThreshold(q=0.9, window_size=60, min_reference=25),
        lambda: ConformalCalibrator(alpha=0.02),
    ],
)
def test_a_sequence_is_judged_as_one_score_at_a_time(make):
    """p-values, alerts and limits of judge_sequence are those of judging each score, then
    adding it to the window; every alert is a score above its limit."""
    rng = np.random.default_rng(5)
    scores = rng.gamma(2.0, size=400)
    scores[[7, 90]] = [np.nan, np.inf]
    batch, single = make(), make()
    batch.learn_many(rng.gamma(2.0, size=10))
    single.learn_many(batch.reference_)
    judged = batch.judge_sequence(scores)
    for i, score in enumerate(scores):
        one = single.judge(np.array([score]))
        assert judged.p_values[i] == one.p_values[0]
        assert judged.alerts[i] == one.alerts[0]
        assert judged.limits[i] == one.limits[0]
        single.learn_many([score])
    finite = np.isfinite(scores)
    assert judged.alerts.sum() > 5
    np.testing.assert_array_equal(judged.alerts[finite], (scores > judged.limits)[finite])


@pytest.mark.parametrize(
    "calibrator",
    [
        streammem.ConformalCalibrator(alpha=0.1, window_size=50),
        streammem.QuantileThreshold(q=0.9, window_size=50),
        streammem.TailLikelihood(alpha=0.05, window_size=80, tail_share=0.2),
    ],
    ids=lambda c: type(c).__name__,
)
def test_calibrators_are_river_estimators_with_one_score_forms(calibrator):
    """Parameters come from the signature (clone, state), and the one-score methods give what
    the batch methods give."""
    assert isinstance(calibrator, river.base.Base)
    declared = inspect.signature(type(calibrator)).parameters
    params = calibrator.state_dict()["params"]
    assert params == {name: getattr(calibrator, name) for name in declared}
    fresh = calibrator.clone()
    assert fresh.state_dict()["params"] == params and len(fresh.reference_) == 0
    scores = np.random.default_rng(0).normal(size=120)
    for score in scores[:100]:
        calibrator.learn_one(float(score))
    fresh.learn_many(scores[:100])
    assert list(calibrator.reference_) == list(fresh.reference_)
    ones = [calibrator.p_value_one(float(s)) for s in scores[100:]]
    assert ones == fresh.p_values(scores[100:]).tolist()
