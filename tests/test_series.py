"""SeriesFeatures and for_series: the recipe for metric series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import streammem
from streammem import SeriesFeatures, for_series
from streammem.series import CALENDAR


def _readings(n: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    frame = pd.DataFrame(
        {
            "ts": 1_700_000_000.0 + 300.0 * t,
            "host": np.where(t % 3 == 0, "a", "b"),
            "cpu": 50 + 10 * np.sin(2 * np.pi * t / 96) + rng.normal(0, 1, n),
        }
    )
    if n > 700:
        frame.loc[700, "cpu"] = 95.0
    return frame


def test_columns_are_the_history_at_each_scale_per_key():
    features = SeriesFeatures(scales=(2, 3), key="host")
    frame = pd.DataFrame({"host": ["a", "b", "a", "a", "b"], "v": [1.0, 10.0, 2.0, 4.0, 20.0]})
    out = features.transform_many(frame)
    assert list(out.columns) == ["v", "v_diff", "v_dev2", "v_std2", "v_dev3", "v_std3", "host"]
    a = out[frame["host"] == "a"]  # a's readings 1, 2, 4: its own history only
    assert a["v_diff"].tolist() == [0.0, 1.0, 2.0]
    assert a["v_dev3"].iloc[-1] == pytest.approx(4 - 7 / 3)
    assert a["v_std2"].iloc[-1] == pytest.approx(1.0)
    assert out["v_diff"].iloc[-1] == 10.0  # b: 20 - 10


def test_calendar_columns_place_the_time_on_circles():
    features = SeriesFeatures(scales=(2,), time_field="ts")
    times = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 12:00", "2024-01-07 23:59"])
    out = features.transform_many(pd.DataFrame({"ts": times, "v": [1.0, 2.0, 3.0]}))
    assert list(out.columns[-4:]) == list(CALENDAR) and "ts" not in out.columns
    assert out["time_day_cos"].round(6).tolist()[:2] == [1.0, -1.0]
    # Monday 00:00 and Sunday 23:59 are neighbours on the week's circle
    assert out["time_week_cos"].iloc[0] == pytest.approx(out["time_week_cos"].iloc[2], abs=1e-3)
    assert list(SeriesFeatures(scales=(2,)).transform_many(pd.DataFrame({"v": [1.0]}))) == [
        "v",
        "v_diff",
        "v_dev2",
        "v_std2",
    ]


def test_transforms_are_pure_and_feeding_does_not_change_the_features():
    frame = _readings(300)
    whole = SeriesFeatures(scales=(4, 16), key="host", time_field="ts")
    expected = whole.transform_many(frame).drop(columns="host")  # pure: the rows before it
    np.testing.assert_allclose(whole.transform_many(frame).drop(columns="host"), expected)
    one = SeriesFeatures(scales=(4, 16), key="host", time_field="ts")
    rows = []
    for x in frame.to_dict("records"):
        rows.append(one.transform_one(x))
        one.learn_one(x)
    np.testing.assert_allclose(pd.DataFrame(rows)[expected.columns], expected)


def test_for_series_gives_the_same_alerts_whatever_the_feeding_and_flags_the_spike():
    frame = _readings()
    whole = for_series(time_field="ts", key="host").process_many(frame)
    model = for_series(time_field="ts", key="host")
    parts = [model.process_many(frame.iloc[i : i + 97]) for i in range(0, len(frame), 97)]
    chunked = streammem.alerts.calibration.Judged.concat(parts)
    np.testing.assert_array_equal(chunked.alerts, whole.alerts)
    np.testing.assert_allclose(chunked.p_values, whole.p_values, rtol=1e-5, atol=1e-7)
    assert whole.alerts[700] and whole.alerts.sum() <= 10


def test_the_recipe_builds_its_own_detector_settings():
    model = for_series()
    detector = model.anomaly_filter.anomaly_detector
    assert detector.schedule == streammem.series.SERIES_SCHEDULE
    assert detector.radius_quantile is None  # no trust region: every code read from memory
    ae = streammem.series_detector(streammem.AE, seed=3)
    assert (ae.seed, ae.schedule) == (3, streammem.series.SERIES_SCHEDULE)
    mine = streammem.series_detector(radius_quantile=0.9)  # params win over the recipe's
    assert mine.radius_quantile == 0.9


def test_recipe_round_trips_through_save_and_load(tmp_path):
    frame = _readings()
    model = for_series(time_field="ts", key="host")
    model.process_many(frame.iloc[:600])
    streammem.save(model, tmp_path / "recipe.ckpt")
    restored = streammem.load(tmp_path / "recipe.ckpt")
    assert isinstance(restored.window, SeriesFeatures)
    assert restored.window.params() == model.window.params()
    assert isinstance(restored.anomaly_filter.calibrator_, streammem.TailLikelihood)
    after = frame.iloc[600:]
    a, b = restored.process_many(after), model.process_many(after)
    np.testing.assert_array_equal(a.alerts, b.alerts)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.p_values, b.p_values)


def test_bad_settings_and_readings_are_named():
    with pytest.raises(ValueError, match=r"series\.scales"):
        SeriesFeatures(scales=(8, 4)).check_params()
    with pytest.raises(ValueError, match=r"series\.max_gap needs a time_field"):
        SeriesFeatures(max_gap=60).check_params()
    with pytest.raises(ValueError, match="'cpu'"):
        SeriesFeatures().learn_many(pd.DataFrame({"cpu": [1.0, np.nan]}))
    features = SeriesFeatures(key="host")
    with pytest.raises(ValueError, match="key is missing"):
        features.check_one({"cpu": 1.0})


def test_a_gap_restarts_a_key_s_history():
    features = SeriesFeatures(scales=(3,), time_field="ts", max_gap=600, calendar=False)
    for t, v in ((0, 1.0), (300, 2.0), (600, 3.0)):
        features.learn_one({"ts": t, "v": v})
    assert features.transform_one({"ts": 900, "v": 4.0})["v_diff"] == 1.0
    assert features.transform_one({"ts": 5000, "v": 4.0})["v_diff"] == 0.0  # after an outage
