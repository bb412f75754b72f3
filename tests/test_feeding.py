"""Feeding does not change the answer: one record at a time, any chunking, dicts, DataFrames
or numpy give the same scores and the same alerts; saved state resumes exactly."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import evaluate, metrics
from sklearn.metrics import roc_auc_score

import streammem
from streammem.evaluation import ExactROCAUC

N_EVENTS = 900


@functools.lru_cache(maxsize=1)
def readings() -> pd.DataFrame:
    """Three correlated sensors that drift, with a broken relation every 40th reading."""
    rng = np.random.default_rng(3)
    t = np.arange(N_EVENTS)
    base = np.sin(t / 150) + rng.normal(0, 0.1, N_EVENTS)
    frame = pd.DataFrame(
        {"a": base, "b": 2 * base + rng.normal(0, 0.1, N_EVENTS), "c": rng.normal(0, 1, N_EVENTS)}
    )
    frame.loc[t % 40 == 39, "b"] *= -3
    return frame


def new_filter() -> streammem.AlertFilter:
    calibrator = streammem.ConformalCalibrator(alpha=0.02)
    return streammem.AlertFilter(streammem.MemAE(device="cpu", seed=3), calibrator)


@functools.lru_cache(maxsize=1)
def one_at_a_time() -> tuple[np.ndarray, np.ndarray]:
    alerts = new_filter()
    scores, flags = [], []
    for x in readings().to_dict("records"):
        score = alerts.score_one(x)
        scores.append(score)
        flags.append(alerts.classify(score))
        alerts.learn_one(x)
    return np.array(scores), np.array(flags)


def fed_in_chunks(sizes: list[int], form: str) -> streammem.alerts.filter.Judged:
    frame, alerts, parts, start = readings(), new_filter(), [], 0
    while start < len(frame):
        size = sizes[len(parts) % len(sizes)]
        chunk = frame.iloc[start : start + size]
        batch = chunk.to_dict("records") if form == "records" else chunk
        parts.append(alerts.process_many(batch))
        start += size
    return streammem.alerts.calibration.Judged.concat(parts)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 400), min_size=1, max_size=4),
    form=st.sampled_from(["frame", "records"]),
)
def test_any_chunking_gives_the_alerts_of_one_record_at_a_time(sizes, form):
    scores, flags = one_at_a_time()
    judged = fed_in_chunks(sizes, form)
    assert flags.sum() > 5  # the stream does raise alerts
    np.testing.assert_array_equal(judged.alerts, flags)
    np.testing.assert_allclose(judged.scores, scores, rtol=1e-4, atol=1e-7)  # float32 sums


def test_the_whole_stream_in_one_call_is_judged_as_it_arrives():
    scores, flags = one_at_a_time()
    judged = new_filter().process_many(readings())
    np.testing.assert_array_equal(judged.alerts, flags)
    np.testing.assert_allclose(judged.scores, scores, rtol=1e-4, atol=1e-7)  # float32 sums


def test_numpy_columns_are_named_by_position_like_dict_keys():
    values = readings().to_numpy()
    by_array = new_filter().process_many(values)
    by_records = new_filter().process_many([dict(enumerate(row)) for row in values.tolist()])
    by_frame = new_filter().process_many(pd.DataFrame(values))
    np.testing.assert_array_equal(by_array.alerts, by_records.alerts)
    np.testing.assert_array_equal(by_array.alerts, by_frame.alerts)
    np.testing.assert_allclose(by_array.scores, by_records.scores, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------- saved state
def _windowed() -> streammem.WindowedFilter:
    window = streammem.TimeWindow(size=5, features=["mean", "std"], key="m")
    return window | new_filter()


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(m=np.where(np.arange(len(frame)) % 2, "x", "y"))


STATEFUL = {
    "MemAE": (lambda: streammem.MemAE(device="cpu"), "detector"),
    "AE": (lambda: streammem.AE(device="cpu"), "detector"),
    "Memorizer": (lambda: streammem.Memorizer(device="cpu"), "detector"),
    "RFTM": (lambda: streammem.RFTM(device="cpu"), "detector"),
    "AlertFilter": (new_filter, "filter"),
    "AlertFilter(default calibrator)": (
        lambda: streammem.AlertFilter(streammem.MemAE(device="cpu")),
        "filter",
    ),
    "WindowedFilter": (_windowed, "windowed"),
    "FeatureEncoder": (streammem.FeatureEncoder, "encoder"),
    "TimeWindow": (lambda: streammem.TimeWindow(size=4, key="m"), "window"),
    "ConformalCalibrator": (lambda: streammem.ConformalCalibrator(alpha=0.05), "calibrator"),
    "QuantileThreshold": (lambda: streammem.QuantileThreshold(q=0.9), "calibrator"),
    "TailLikelihood": (lambda: streammem.TailLikelihood(min_reference=100), "calibrator"),
}


def _feed(obj, kind: str, frame: pd.DataFrame) -> np.ndarray:
    """Feed ``frame`` and return what the object says about it."""
    if kind == "detector":
        scores = obj.score_many(frame)
        obj.learn_many(frame)
        return scores
    if kind in ("filter", "windowed"):
        judged = obj.process_many(_keyed(frame) if kind == "windowed" else frame)
        return np.concatenate([judged.scores, judged.p_values, judged.alerts])
    if kind == "encoder":
        for x in frame.to_dict("records"):
            obj.learn_one(x)
        return np.array([obj.encode_one(x) for x in frame.to_dict("records")])
    if kind == "window":
        out = obj.transform_many(_keyed(frame))
        obj.learn_many(_keyed(frame))
        return out.drop(columns="m").to_numpy()
    scores = frame["a"].to_numpy() ** 2  # a calibrator
    judged = obj.judge_sequence(scores)
    obj.learn_many(scores)
    return np.concatenate([judged.p_values, judged.alerts, judged.limits])


@pytest.mark.parametrize("name", list(STATEFUL))
def test_every_stateful_object_resumes_exactly_after_save_and_load(name, tmp_path):
    make, kind = STATEFUL[name]
    frame = readings()
    original = make()
    _feed(original, kind, frame.iloc[:500])
    streammem.save(original, tmp_path / "state.ckpt")
    restored = streammem.load(tmp_path / "state.ckpt")
    assert type(restored) is type(original)
    after = frame.iloc[500:700]
    np.testing.assert_array_equal(_feed(restored, kind, after), _feed(original, kind, after))


def test_what_cannot_be_saved_safely_is_refused_clearly(tmp_path):
    from river import anomaly

    with pytest.raises(TypeError, match="cannot be saved safely"):
        streammem.save(anomaly.HalfSpaceTrees(), tmp_path / "x.ckpt")
    with pytest.raises(TypeError, match="only streammem detectors"):
        streammem.save(streammem.AlertFilter(anomaly.HalfSpaceTrees()), tmp_path / "x.ckpt")


# ---------------------------------------------------------------------- River's evaluation
def _dataset() -> list[tuple[dict, bool]]:
    frame = readings()
    labels = (np.arange(len(frame)) % 40 == 39).tolist()
    return list(zip(frame.to_dict("records"), labels, strict=True))


def test_exact_rocauc_in_progressive_validation_is_sklearns_auroc():
    dataset = _dataset()
    detector, scores = streammem.MemAE(device="cpu"), []
    for x, _ in dataset:
        scores.append(detector.score_one(x))
        detector.learn_one(x)
    metric = evaluate.progressive_val_score(dataset, streammem.MemAE(device="cpu"), ExactROCAUC())
    expected = roc_auc_score([y for _, y in dataset], scores)
    assert expected > 0.6
    assert metric.get() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("metric", [metrics.F1(), metrics.Precision(), metrics.Recall()])
def test_alert_filters_work_with_rivers_classification_metrics(metric):
    dataset = _dataset()
    result = evaluate.progressive_val_score(dataset, new_filter(), metric)
    flags = one_at_a_time()[1]
    truth = [y for _, y in dataset]
    expected = type(metric)()
    for y, flag in zip(truth, flags.tolist(), strict=True):
        expected.update(y, flag)
    assert result.get() == pytest.approx(expected.get())
    assert result.get() > 0


# ---------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: streammem.MemAE(num_slots=0).score_one({"a": 1.0}), "num_slots must be"),
        (lambda: streammem.MemAE(num_slots=-3).learn_one({"a": 1.0}), "num_slots must be"),
        (lambda: streammem.MemAE(device="tpu").score_one({"a": 1.0}), "device must be"),
        (lambda: streammem.MemAE(temperature=0).score_one({"a": 1.0}), "temperature must be"),
        (lambda: streammem.RFTM(forget=1.5).score_one({"a": 1.0}), "forget must be"),
        (lambda: streammem.AlertFilter("MemAE"), "anomaly_detector must be"),
        (
            lambda: streammem.AlertFilter(
                streammem.MemAE(), streammem.ConformalCalibrator(alpha=0.001, window_size=500)
            ),
            "can never alert",
        ),
    ],
)
def test_bad_settings_fail_with_the_arguments_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_nothing_alerts_before_the_filter_is_ready():
    alerts = new_filter()  # alpha 0.02: ready after 1 / alpha = 50 scores
    first = alerts.process_many(readings().iloc[:49])
    assert not alerts.is_ready
    assert not first.alerts.any() and np.isinf(first.limits).all()
    assert (first.p_values == 1.0).all()
    rest = alerts.process_many(readings().iloc[49:])
    assert alerts.is_ready and np.isfinite(rest.limits[1:]).all()
