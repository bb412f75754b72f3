"""The bundled demo's sensor story: the generated faults, and a plot that tells caught
anomalies from missed ones, keeps its legend off the data and does not plunge at warm-up."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from streammem.demo import SensorStream
from streammem.service.plot import score_figure


def test_faults_are_what_their_names_say():
    frame = SensorStream(n_events=6_000, seed=3, n_faults=4, fault_length=50).frame()
    sensors = [c for c in frame.columns if c.startswith("s")]
    assert frame.loc[frame["fault"] != "", "is_anomaly"].all()
    assert not frame.loc[frame["fault"] == "", "is_anomaly"].any()
    for kind in ("stuck", "noise"):
        rows = frame[frame["fault"] == kind]
        assert len(rows) == 2 * 50 and rows["machine"].nunique() <= 2
    for _, rows in frame[frame["fault"] == "stuck"].groupby("machine"):
        constant = [s for s in sensors if rows[s].nunique() == 1]
        assert len(constant) == 1  # one sensor repeats its last value, the others move on
    normal = frame[frame["fault"] == ""]
    for machine, rows in frame[frame["fault"] == "noise"].groupby("machine"):
        jumps = rows[sensors].diff().abs().median()
        usual = normal.loc[normal["machine"] == machine, sensors].diff().abs().median()
        assert (jumps / usual).max() > 2  # one sensor got noisy


def results(n: int = 400) -> pa.Table:
    rng = np.random.default_rng(0)
    scores = rng.gamma(2.0, size=n)
    scores[0] = 0.0  # the first event: nothing learned yet
    labelled = np.zeros(n, dtype=bool)
    labelled[[200, 201, 300, 350]] = True
    scores[[200, 300]] = 50.0
    alerts = scores > 20
    p_values = np.where(np.arange(n) < 100, 1.0, 0.5)
    kinds = np.where(labelled, "stuck", "")
    return pa.table(
        {
            "score": scores,
            "p_value": p_values,
            "alert": alerts,
            "is_anomaly": labelled,
            "fault": kinds,
        }
    )


def test_the_plot_marks_caught_and_missed_anomalies_apart():
    fig = score_figure(results())
    scores_axes, strip = fig.axes
    caught, missed = (c.get_offsets() for c in strip.collections)
    assert sorted(caught[:, 0]) == [200, 300] and set(caught[:, 1]) == {1}
    assert sorted(missed[:, 0]) == [201, 350] and set(missed[:, 1]) == {0}
    assert "caught: stuck 2 of 4" in scores_axes.get_title()


def test_the_legend_sits_beside_the_data_and_the_warm_up_is_shaded():
    fig = score_figure(results())
    scores_axes = fig.axes[0]
    fig.canvas.draw()
    legend = scores_axes.get_legend().get_window_extent()
    assert legend.x0 > scores_axes.get_window_extent().x1
    (line,) = scores_axes.lines
    assert np.isnan(line.get_ydata()[0])  # a score of 0 is not drawn as a plunge to the floor
    (warm_up,) = scores_axes.patches
    assert warm_up.get_label().startswith("warm-up") and warm_up.get_x() == 0


def test_the_strip_counts_what_the_title_counts_not_the_warm_up():
    """The caught/missed strip counted labelled rows of the warm-up, which the title did not."""
    table = results()
    flags = table.column("is_anomaly").to_numpy().copy()
    flags[[20, 40]] = True  # labelled, but judged while nothing could be flagged
    table = table.set_column(3, "is_anomaly", pa.array(flags))
    scores_axes, strip = score_figure(table).axes
    caught, missed = (c.get_offsets() for c in strip.collections)
    assert len(caught) == 2 and sorted(missed[:, 0]) == [201, 350]
    assert "2 more in the warm-up, not counted" in strip.get_title(loc="left")
    assert "caught 2 of 4 anomalous rows" in scores_axes.get_title()


def dense_results(n: int = 500_000) -> pa.Table:
    rng = np.random.default_rng(1)
    scores = np.exp(rng.normal(0, 1, n))
    limits = np.where(np.arange(n) < 1000, np.nan, 12.0)
    alerts = scores > np.nan_to_num(limits, nan=np.inf)
    top = [[{"field": "bytes", "contribution": 1.0}] if a else None for a in alerts]
    return pa.table(
        {
            "score": scores,
            "p_value": np.where(alerts, 0.001, np.where(np.isnan(limits), 1.0, 0.5)),
            "alert": alerts,
            "limit": pa.array(limits, from_pandas=True),
            "is_anomaly": rng.random(n) < 0.2,
            "top_fields": top,
        }
    )


def test_half_a_million_rows_draw_as_a_band_under_a_limit_that_shows():
    """494k points drew a solid block that hid the limit."""
    scores_axes, strip = score_figure(dense_results()).axes
    assert all(len(line.get_xdata()) <= 2_000 for line in scores_axes.lines)
    (limit,) = [line for line in scores_axes.lines if line.get_label() == "alert limit"]
    assert limit.get_zorder() > max(c.get_zorder() for c in scores_axes.collections)
    assert limit.get_path_effects()  # outlined: it shows over the band and the alerts
    assert np.nanmax(limit.get_ydata()) == 12.0
    assert "caught" in strip.get_title(loc="left")
    assert len(strip.collections) == 1  # a share, not marks


def test_alert_colours_name_fields_only_where_fields_have_names():
    """An image model's top field is a pixel (the MNIST plot coloured alerts by p406...)."""
    table = dense_results(3_000)
    by_field = score_figure(table).axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("alert, top field bytes") for label in by_field)
    pixels = score_figure(table, by_field=False).axes[0].get_legend_handles_labels()[1]
    assert "alert" in pixels and not any("top field" in label for label in pixels)
