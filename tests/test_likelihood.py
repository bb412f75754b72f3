"""TailLikelihood: a peaks-over-threshold anomaly likelihood in [0, 1]."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import streammem
from streammem import TailLikelihood
from streammem.alerts.calibration import Judged


def _scores(n: int = 6000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scores = rng.lognormal(size=n)
    scores[[2500, 4100, 5200]] = [40.0, 80.0, 1e4]
    return scores


def test_likelihood_is_monotone_in_the_score_and_in_the_unit_interval():
    calibrator = TailLikelihood()
    calibrator.learn_many(_scores()[:3000])
    grid = np.concatenate([np.linspace(-1, 30, 2000), np.geomspace(30, 1e6, 2000)])
    likelihood = calibrator.likelihoods(grid)
    assert ((likelihood >= 0) & (likelihood <= 1)).all()
    assert (np.diff(likelihood) >= 0).all()
    # fine in the tail: beyond every score seen the tail probability still falls strictly
    # (a conformal p-value stays at 1 / (n + 1)); 1 - p rounds to 1 only below p ~ 1e-16
    beyond = grid[grid > max(calibrator.reference_)]
    assert (np.diff(calibrator.p_values(beyond)) < 0).all()


def test_false_alarms_match_alpha_far_below_a_conformal_window_s_resolution():
    """A conformal window of 2,000 cannot flag fewer than 1 in 2,001; the tail fit aims at 1
    in 10,000 (on average over windows: 200 peaks leave the fit its variance)."""
    rates = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        calibrator = TailLikelihood(alpha=1e-4, window_size=2000)
        calibrator.learn_many(rng.exponential(size=2000))
        fresh = rng.exponential(size=200_000)
        rates.append(calibrator.alerts(fresh, calibrator.p_values(fresh)).mean())
    assert 0.4e-4 < np.mean(rates) < 2e-4 and max(rates) < 5e-4


def test_feeding_does_not_change_the_answer():
    scores = _scores()
    whole = TailLikelihood().judge_sequence(scores)
    for chunk in (1, 7, 256, 3001):
        calibrator, parts = TailLikelihood(), []
        for start in range(0, len(scores), chunk):
            part = scores[start : start + chunk]
            parts.append(calibrator.judge_sequence(part))
            calibrator.learn_many(part)
        judged = Judged.concat(parts)
        np.testing.assert_array_equal(judged.p_values, whole.p_values)
        np.testing.assert_array_equal(judged.alerts, whole.alerts)
        np.testing.assert_array_equal(judged.limits, whole.limits)
    assert whole.alerts[[4100, 5200]].all()


def test_limit_is_where_the_p_value_crosses_alpha():
    calibrator = TailLikelihood(alpha=1e-3)
    calibrator.learn_many(_scores()[:2000])
    limit = calibrator.threshold()
    p = calibrator.p_values(np.array([limit * (1 - 1e-9), limit * (1 + 1e-9)]))
    assert p[0] >= 1e-3 > p[1]
    judged = calibrator.judge_sequence(np.array([limit * 2]))
    assert judged.limits[0] == pytest.approx(limit) and judged.alerts[0]


def test_warm_up_flat_scores_and_nan():
    calibrator = TailLikelihood(min_reference=100)
    calibrator.learn_many(np.ones(99))
    assert calibrator.likelihoods(np.array([1e9])).tolist() == [0.0]
    calibrator.learn_many(np.ones(1))
    # all scores equal: anything above them is beyond everything seen
    assert calibrator.likelihoods(np.array([1.0 + 1e-6]))[0] > 0.999
    assert calibrator.likelihoods(np.array([1.0]))[0] < 0.1
    assert calibrator.p_values(np.array([np.nan])).tolist() == [0.0]
    assert calibrator.judge_sequence(np.array([np.nan])).alerts.tolist() == [True]


def test_state_round_trip_and_settings(tmp_path):
    calibrator = TailLikelihood(alpha=1e-4, window_size=500, tail_share=0.2)
    calibrator.learn_many(_scores()[:700])
    streammem.save(calibrator, tmp_path / "c.ckpt")
    restored = streammem.load(tmp_path / "c.ckpt")
    probe = _scores(seed=5)[:300]
    np.testing.assert_array_equal(restored.p_values(probe), calibrator.p_values(probe))
    assert (restored.alpha, restored.tail_share, restored.window_size) == (1e-4, 0.2, 500)
    with pytest.raises(ValueError, match="alpha must be below tail_share"):
        TailLikelihood(alpha=0.2).check_params()
    with pytest.raises(ValueError, match="peaks to fit"):
        TailLikelihood(min_reference=20).check_params()


def test_alert_filter_flags_a_spike_with_it():
    rng = np.random.default_rng(0)
    alerts = streammem.AlertFilter(streammem.MemAE(device="cpu"), TailLikelihood())
    frame = np.column_stack([rng.normal(size=1500), rng.normal(size=1500)])
    frame[1400] = [12.0, -12.0]
    judged = alerts.process_many(pd.DataFrame(frame, columns=["a", "b"]))
    assert judged.alerts[1400] and judged.alerts[300:].mean() < 0.01
