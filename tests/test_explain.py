"""Explanations: every score splits exactly into its fields' contributions, one-hot and window
columns fold back to the field the user named, and a planted fault's field comes out on top."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import streammem
from streammem.explain import TopFields

SMALL = streammem.Schedule(batch_size=16, min_records=16)
NET = streammem.Network(hidden_sizes=(16,), latent_size=8)
FAST = {"schedule": SMALL, "network": NET, "device": "cpu"}
TABULAR = [streammem.AE, streammem.MemAE, streammem.Memorizer, streammem.RFTM]
FIELDS = ["a", "b", "c", "d", "proto"]


def readings(n: int, seed: int = 0) -> pd.DataFrame:
    """``b`` and ``c`` follow ``a`` (so any of the three is judged by the other two); ``d`` is
    noise; ``proto`` a category."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return pd.DataFrame(
        {
            "a": a,
            "b": 2 * a + 0.1 * rng.normal(size=n),
            "c": 0.1 * rng.normal(size=n) - a,
            "d": rng.normal(size=n),
            "proto": rng.choice(["tcp", "udp"], n),
        }
    )


def assert_adds_up(parts: pd.DataFrame, scores: np.ndarray) -> None:
    assert (parts.to_numpy() >= 0).all()
    np.testing.assert_allclose(parts.sum(axis=1).to_numpy(), scores, rtol=1e-5, atol=1e-9)


@pytest.fixture(scope="module")
def memae() -> streammem.MemAE:
    """MemAE with defaults, after 3,000 normal readings."""
    det = streammem.MemAE(seed=0)
    det.learn_many(readings(3000))
    return det


@pytest.mark.parametrize("cls", TABULAR, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("learned", [0, 200], ids=["cold", "learned"])
def test_rows_add_up_to_the_score(cls, learned):
    det = cls(**FAST)
    frame = readings(260).set_index(np.arange(1000, 1260))
    if learned:
        det.learn_many(frame.iloc[:learned])
    batch = frame.iloc[learned : learned + 60]
    parts = det.explain_many(batch)
    assert list(parts.columns) == FIELDS
    assert parts.index.equals(batch.index)
    assert_adds_up(parts, det.score_many(batch))


@pytest.mark.parametrize("cls", TABULAR, ids=lambda cls: cls.__name__)
def test_every_input_form_explains_alike_and_explaining_is_pure(cls):
    det = cls(**FAST)
    frame = readings(300)
    det.learn_many(frame.iloc[:200])
    batch = frame.iloc[200:240].reset_index(drop=True)
    before = det.score_many(batch)
    expected = det.explain_many(batch)
    for form in (batch.to_dict("records"), det.encode_many(batch)):
        pd.testing.assert_frame_equal(det.explain_many(form), expected, rtol=1e-6)
    numbers = batch[["a", "b", "c", "d"]]
    numeric = cls(**FAST, encoder=streammem.FeatureEncoder(numeric=["a", "b", "c", "d"]))
    numeric.learn_many(frame[["a", "b", "c", "d"]].iloc[:200])
    expected_numbers = numeric.explain_many(numbers)
    pd.testing.assert_frame_equal(numeric.explain_many(numbers.to_numpy()), expected_numbers)
    x = batch.iloc[7].to_dict()
    one = det.explain_one(x)
    assert list(one) == FIELDS and all(isinstance(v, float) for v in one.values())
    assert one == pytest.approx(expected.iloc[7].to_dict(), rel=1e-5)
    assert sum(one.values()) == pytest.approx(det.score_one(x), rel=1e-5)
    np.testing.assert_array_equal(det.score_many(batch), before)


def test_an_unlearned_detector_explains_a_record_as_zero_like_its_score():
    det = streammem.MemAE()
    assert det.explain_one({"a": 1.0, "proto": "tcp"}) == {"a": 0.0, "proto": 0.0}


def test_memgan_explains_each_pixel():
    det = streammem.MemGAN(num_units=5, unit_dim=8, width=4, device="cpu", schedule=SMALL)
    det = det.clone({"schedule": streammem.Schedule(batch_size=16, min_records=16, trim=0)})
    images = np.random.default_rng(0).uniform(-1, 1, (32, 1, 28, 28))
    det.learn_many(images)
    parts = det.explain_many(images[:4])
    assert parts.shape == (4, 784) and list(parts.columns) == list(range(784))
    assert_adds_up(parts, det.score_many(images[:4]))  # the score is the residual's norm
    assert parts.to_numpy().reshape(-1, 1, 28, 28).shape == (4, 1, 28, 28)


def test_one_hot_columns_fold_back_to_their_field(memae):
    """Its values, spare slots and unknown bucket are one field: an unseen value is named."""
    encoder = streammem.FeatureEncoder(categorical={"proto": ["tcp", "udp", "icmp"]})
    det = streammem.MemAE(seed=0, encoder=encoder)
    frame = readings(2000)
    det.learn_many(frame)
    assert len(det.encoder_.columns_) == 8  # a, b, c, d and four proto columns
    unseen = {"a": 0.5, "b": 1.0, "c": -0.5, "d": 0.0, "proto": "icmp"}
    parts = det.explain_one(unseen)
    assert list(parts) == FIELDS and max(parts, key=parts.get) == "proto"
    learned = memae.explain_one({**unseen, "proto": "sctp"})  # a learned vocabulary too
    assert max(learned, key=learned.get) == "proto"


def test_window_columns_fold_back_to_the_reading_field():
    window = streammem.TimeWindow(size=5, features=("mean", "std", "last_minus_mean"), key="m")
    model = window | streammem.AlertFilter(streammem.MemAE(**FAST))
    frame = readings(400).rename(columns={"proto": "m"})
    model.process_many(frame.iloc[:300])
    batch = frame.iloc[300:]
    parts = model.explain_many(batch)
    assert list(parts.columns) == ["a", "b", "c", "d", "m"]
    assert parts.index.equals(batch.index)
    assert_adds_up(parts, model.score_many(batch))
    x = batch.iloc[0].to_dict()
    one = model.explain_one(x)
    assert list(one) == ["a", "b", "c", "d", "m"]
    assert sum(one.values()) == pytest.approx(model.score_one(x), rel=1e-5)


@pytest.mark.parametrize(
    ("field", "fault", "share"),
    [
        ("d", lambda r: {**r, "d": r["d"] + 8.0}, 1.0),
        ("b", lambda r: {**r, "b": r["b"] + 20.0 * np.sign(r["b"])}, 1.0),
        ("b", lambda r: {**r, "b": -2 * r["a"]}, 0.75),  # a plausible b, wrong by 4|a| > 2
    ],
    ids=["spike-alone", "spike-related", "correlation-break"],
)
def test_a_planted_fault_comes_out_on_top(memae, field, fault, share):
    """A field that breaks the relation it shares with two others is named from their
    agreement, not by the model at every record (it is not a regression)."""
    normal = readings(40, seed=1).to_dict("records")
    broken = [fault(r) for r in normal if abs(r["a"]) > 0.5]
    tops = memae.explain_many(broken).idxmax(axis=1)
    assert (tops == field).mean() >= share


def warmed_filter() -> streammem.AlertFilter:
    calibrator = streammem.ConformalCalibrator(alpha=0.01, window_size=500, min_reference=100)
    alerts = streammem.AlertFilter(streammem.MemAE(seed=0), calibrator)
    alerts.process_many(readings(2000))
    return alerts


def broken_batch() -> tuple[pd.DataFrame, list[int]]:
    batch = readings(300, seed=2)
    rows = [50, 150, 250]
    batch.loc[rows, "d"] += 9.0
    return batch, rows


def test_alerts_carry_their_top_fields_and_nothing_else_does():
    alerts = warmed_filter()
    batch, rows = broken_batch()
    judged = alerts.process_many(batch)
    assert set(rows) <= set(np.flatnonzero(judged.alerts))
    for i, (alert, ranked) in enumerate(zip(judged.alerts, judged.top_fields, strict=True)):
        assert bool(ranked) == alert
        if i in rows:
            # fields whose repair lowers the score, at most three: d first
            assert 1 <= len(ranked) <= 3 and ranked[0][0] == "d"
            values = [value for _, value in ranked]
            assert values == sorted(values, reverse=True)
    assert all(ranked == [] for ranked in warmed_filter().process_many(batch, 0).top_fields)


def test_every_record_is_explained_by_the_model_that_scored_it():
    """All five fields' contributions add up to each score, though the model learns between
    the runs of the batch."""
    alerts = warmed_filter()
    updates = alerts.anomaly_detector.n_updates_
    batch, _ = broken_batch()
    judged = alerts.process_many(batch, TopFields(5, every_record=True))
    assert alerts.anomaly_detector.n_updates_ > updates
    totals = [sum(value for _, value in ranked) for ranked in judged.top_fields]
    np.testing.assert_allclose(totals, judged.scores, rtol=1e-5)


def test_windowed_alerts_name_the_reading_field():
    window = streammem.TimeWindow(size=10, features=("std", "last_minus_mean"), key="m")
    calibrator = streammem.ConformalCalibrator(alpha=0.01, window_size=500, min_reference=100)
    model = window | streammem.AlertFilter(streammem.MemAE(seed=0), calibrator)
    frame = readings(2600).rename(columns={"proto": "m"})
    model.process_many(frame.iloc[:2500])
    batch = frame.iloc[2500:].copy()
    batch.loc[2550, "a"] += 9.0
    judged = model.process_many(batch)
    assert judged.alerts[50] and judged.top_fields[50][0][0] == "a"
    assert all(field in {*FIELDS[:4], "m"} for r in judged.top_fields for field, _ in r)


def test_a_detector_that_cannot_explain_says_so_and_alerts_carry_none():
    from river import anomaly

    alerts = streammem.AlertFilter(anomaly.HalfSpaceTrees(seed=0))
    with pytest.raises(TypeError, match="cannot explain its scores"):
        alerts.explain_one({"a": 1.0})
    judged = alerts.process_many(
        [{"a": float(i % 7)} for i in range(50)], TopFields(every_record=True)
    )
    assert judged.top_fields == [[] for _ in range(50)]
