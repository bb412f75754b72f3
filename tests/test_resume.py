"""Exact resume: an object saved at any point of its stream, and loaded, goes on to give the
scores and alerts it would have given had it never stopped.

The saved state covers every moving part: the replay window's ring (``sample`` draws by
position, so it must come back in the same slots), the encoder's robust-scaling window, the
schedule's pending records and step credit, the optimiser's moments, the torch and NumPy random
states, the calibrator's reference window and the time window's histories. A small schedule
and windows make the property test's streams wrap every window several times over; the
last test saves a default detector past its replay window's wrap, where saves used to go wrong.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streammem
from streammem.alerts.calibration import Judged

N_EVENTS = 700
# replay and scaling windows far shorter than the stream: saves land before and after they wrap
SCHEDULE = streammem.Schedule(batch_size=32, replay_size=96, young_records=512, min_records=16)
DETECTORS = {
    "MemAE": streammem.MemAE,
    "AE": streammem.AE,
    "Memorizer": streammem.Memorizer,
    "RFTM": streammem.RFTM,
}


@functools.lru_cache(maxsize=1)
def readings() -> pd.DataFrame:
    """Two machines' correlated sensors with a broken relation every 37th reading."""
    rng = np.random.default_rng(11)
    t = np.arange(N_EVENTS)
    base = np.sin(t / 60) + rng.normal(0, 0.1, N_EVENTS)
    frame = pd.DataFrame(
        {
            "m": np.where(t % 3 == 0, "x", "y"),
            "a": base,
            "b": 2 * base + rng.normal(0, 0.1, N_EVENTS),
            "c": rng.normal(0, 1, N_EVENTS),
        }
    )
    frame.loc[t % 37 == 36, "b"] *= -3
    return frame


def detector(name: str) -> streammem.MemoryDetector:
    encoder = streammem.FeatureEncoder(scaling_window=64)
    return DETECTORS[name](device="cpu", seed=5, schedule=SCHEDULE, encoder=encoder)


def make(kind: str, name: str):
    if kind == "detector":
        return detector(name)
    calibrator = streammem.ConformalCalibrator(alpha=0.05, window_size=80, min_reference=40)
    alerts = streammem.AlertFilter(detector(name), calibrator)
    if kind == "filter":
        return alerts
    return streammem.TimeWindow(size=4, features=["mean", "std", "last"], key="m") | alerts


def feed(obj, kind: str, frame: pd.DataFrame, sizes: list[int]) -> np.ndarray:
    """Feed ``frame`` in chunks of ``sizes`` (cycled); returns every score, p-value and alert."""
    parts, start = [], 0
    while start < len(frame):
        chunk = frame.iloc[start : start + sizes[len(parts) % len(sizes)]]
        start += len(chunk)
        if kind == "detector":
            scores = obj.score_many(chunk.drop(columns="m"))
            obj.learn_many(chunk.drop(columns="m"))
            parts.append(Judged(scores, scores, np.zeros(len(scores), bool), scores))
        else:
            parts.append(obj.process_many(chunk if kind == "windowed" else chunk.drop(columns="m")))
    judged = Judged.concat(parts)
    return np.concatenate([judged.scores, judged.p_values, judged.alerts])


def reload(obj):
    """Through a file object: what a service writes to disk, byte for byte."""
    buffer = io.BytesIO()
    streammem.save(obj, buffer)
    buffer.seek(0)
    return streammem.load(buffer)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["detector", "filter", "windowed"]),
    name=st.sampled_from(list(DETECTORS)),
    saved_at=st.integers(1, N_EVENTS - 50),
    sizes=st.lists(st.integers(1, 150), min_size=1, max_size=3),
)
def test_a_save_at_any_point_resumes_exactly(kind, name, saved_at, sizes):
    frame = readings()
    original = make(kind, name)
    feed(original, kind, frame.iloc[:saved_at], sizes)
    restored = reload(original)
    rest = frame.iloc[saved_at:]
    after_restore = feed(restored, kind, rest, sizes)
    never_stopped = feed(original, kind, rest, sizes)
    np.testing.assert_array_equal(after_restore, never_stopped)


def test_the_property_tests_streams_wrap_every_window_and_save_mid_schedule():
    """What the property test relies on: its windows wrap, and saves find records pending."""
    det = detector("MemAE")
    det.learn_many(readings().drop(columns="m").iloc[:301])
    assert det.n_seen_ > 3 * SCHEDULE.replay_size and det.encoder_.count_ > 3 * 64
    assert det.pending_ and det.step_credit_ > 0 and det.n_updates_ > 0


@pytest.mark.slow
def test_a_default_detector_saved_after_its_replay_window_wrapped_resumes_exactly(tmp_path):
    """The report's case: 2,500 records (the default window holds 2,048), then the same
    batches to both; the scores parted at the next gradient step, by up to 2.2."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3400, 5))
    values[:, 1] = 2 * values[:, 0] + rng.normal(0, 0.1, len(values))
    frame = pd.DataFrame(values, columns=list("abcde"))
    original = streammem.AlertFilter(streammem.MemAE(device="cpu"))
    original.process_many(frame.iloc[:2500])
    streammem.save(original, tmp_path / "alerts.ckpt")
    restored = streammem.load(tmp_path / "alerts.ckpt")
    for start in range(2500, len(frame), 300):
        batch = frame.iloc[start : start + 300]
        a, b = restored.process_many(batch), original.process_many(batch)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.alerts, b.alerts)
