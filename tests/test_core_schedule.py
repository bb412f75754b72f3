"""The learning schedule: useful scores from the first events, robust to heavy tails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import streammem
from streammem.features.replay import ReplayWindow
from streammem.learning.schedule import Schedule

DETECTORS = ["AE", "MemAE", "Memorizer", "RFTM"]


def planted(n: int, seed: int, rate: float = 0.05) -> tuple[pd.DataFrame, np.ndarray]:
    """Correlated normal records; anomalies break the correlation or sit far out."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, n))
    frame = pd.DataFrame({"a": a, "b": b, "c": a + b + rng.normal(0, 0.1, n), "d": a - b})
    labels = rng.random(n) < rate
    frame.loc[labels, "c"] += rng.choice([-6.0, 6.0], labels.sum())
    return frame, labels.astype(int)


def prequential(det, frame: pd.DataFrame, batch: int) -> np.ndarray:
    scores = np.empty(len(frame))
    for start in range(0, len(frame), batch):
        part = frame.iloc[start : start + batch]
        scores[start : start + batch] = det.score_many(part)
        det.learn_many(part)
    return scores


def test_schedule_checks_itself_when_made():
    with pytest.raises(ValueError, match="batch_size"):
        Schedule(batch_size=1)
    with pytest.raises(ValueError, match="budget"):
        Schedule(budget=True)
    with pytest.raises(ValueError, match="replay_size"):
        Schedule(batch_size=512, replay_size=256)
    with pytest.raises(ValueError, match="trim"):
        Schedule(trim=1.0)


def test_young_models_get_more_visits_and_smaller_batches():
    schedule = Schedule()
    assert schedule.visits(10) == 32 and schedule.visits(50_000) == schedule.budget == 4
    assert schedule.step_batch(0) == 16 and schedule.step_batch(50_000) == 256
    assert schedule.visits(200) > schedule.visits(500) > schedule.visits(1024) == 4.0
    # the young phase does not scale with the budget: a short stream trains whatever it is
    for budget in (0.25, 0.5, 1.0, 4.0):
        assert Schedule(budget=budget).visits(500) == schedule.visits(500)
    assert Schedule(budget=4).visits(50_000) == 4 and Schedule(budget=0).visits(10) == 0
    assert Schedule(budget=0.5, young_records=1).visits(1) == 0.5  # young rules off
    # the steps a stream earns do not depend on how it is cut into chunks
    whole = schedule.steps_owed(20_000, 256)
    pieces = sum(schedule.steps_owed(20_000 + i, 1) for i in range(256))
    assert whole == pytest.approx(pieces, rel=1e-9)


def test_replay_window_keeps_the_latest_rows_and_round_trips():
    window = ReplayWindow(capacity=5, width=2)
    for start in range(0, 12, 3):
        window.extend(np.arange(start, start + 3, dtype=float)[:, None].repeat(2, 1))
    assert window.rows()[:, 0].tolist() == [7.0, 8.0, 9.0, 10.0, 11.0]
    restored = ReplayWindow.from_state(window.state_dict())
    np.testing.assert_array_equal(restored.rows(), window.rows())
    sample = window.sample(3, np.random.default_rng(0))
    assert len({tuple(row) for row in sample}) == 3


@pytest.mark.parametrize("name", DETECTORS)
def test_a_short_stream_separates_planted_anomalies_in_batches(name):
    """200 events in batches of 256: the whole stream is scored before anything is learned."""
    frame, labels = planted(200, seed=1)
    scores = prequential(getattr(streammem, name)(device="cpu"), frame, batch=256)
    assert roc_auc_score(labels[20:], scores[20:]) >= 0.9


@pytest.mark.parametrize("name", DETECTORS)
def test_a_short_stream_separates_planted_anomalies_event_by_event(name):
    frame, labels = planted(200, seed=2)
    det = getattr(streammem, name)(device="cpu")
    scores = []
    for x in frame.to_dict("records"):
        scores.append(det.score_one(x))
        det.learn_one(x)
    assert det.n_updates_ > 0, "a 200-event stream should already train the model"
    assert roc_auc_score(labels[20:], scores[20:]) >= 0.9


def test_heavy_tailed_fields_keep_scores_finite_and_sane():
    """A byte count up to 1e9 must not drown the signal in the other fields."""
    rng = np.random.default_rng(3)
    frame, labels = planted(3000, seed=3)
    frame["bytes"] = np.exp(rng.normal(5.0, 3.0, len(frame)))  # lognormal: 1e-2 to 1e9
    frame["bytes"] = frame["bytes"].where(rng.random(len(frame)) > 0.01, 1e9)
    scores = prequential(streammem.MemAE(device="cpu"), frame, batch=256)
    assert np.isfinite(scores).all()
    assert scores.max() < 1e3, "a 1e9 field should not yield scores of its own magnitude"
    assert roc_auc_score(labels[300:], scores[300:]) >= 0.85


def test_budget_zero_still_follows_the_data():
    """No training at all: the score is the robust distance from typical values."""
    frame, labels = planted(1000, seed=4)
    det = streammem.MemAE(device="cpu", schedule=Schedule(budget=0))
    scores = prequential(det, frame, batch=256)
    assert det.n_updates_ == 0
    assert roc_auc_score(labels[100:], scores[100:]) >= 0.8
