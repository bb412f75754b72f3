"""A PNG of scores over the stream, with alerts and, where the file is labelled, which known
anomalies the alerts caught and which they missed."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib import patheffects
from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe on servers and in CI

from streammem.service.agreement import LabelAgreement, label_values

__all__ = ["DENSE_ROWS", "plot_scores", "score_figure"]


def plot_scores(
    results: str | Path,
    target: str | Path,
    label_column: str | None = "is_anomaly",
    kind_column: str = "fault",
    by_field: bool = True,
) -> Path:
    """Plot ``score`` against row order from a results file written by the Parquet sink."""
    fig = score_figure(pq.read_table(results), label_column, kind_column, by_field)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    return target


#: Above this many rows the scores are drawn as a band per pixel column, not point by point:
#: 494k points made a solid block that hid the limit.
DENSE_ROWS = 20_000
_BINS = 1_200  # about the plot's width in pixels


def score_figure(
    table: pa.Table,
    label_column: str | None = "is_anomaly",
    kind_column: str = "fault",
    by_field: bool = True,
) -> Figure:
    """Scores against row order, the alert limit in force for each, alerts coloured by their
    top field, the legend beside the plot; with a ``likelihood`` column (a
    :class:`~streammem.TailLikelihood` calibrator), a panel of it on a tail scale.

    The warm-up (until the calibrator can flag anything: p-values are 1 before) is shaded, and
    scores of 0 (nothing learned yet) are not drawn on the log scale. Beyond
    :data:`DENSE_ROWS` rows the scores are a band from each column's lowest to highest score
    with its median as a line, and the labelled rows are marked per column; the limit is drawn
    over everything, outlined, so it always shows. With ``label_column``, a strip under the
    scores marks the labelled anomalies judged after the warm-up as caught (an alert on them)
    or missed, the counts the title gives (precision and recall, per kind of anomaly with
    ``kind_column``). With ``by_field`` and a ``top_fields`` column, each alert's colour
    names the field that contributed most to its score (the eight most frequent; the rest
    share one); otherwise (images, whose fields are pixels) alerts are red.
    """
    scores = table.column("score").to_numpy()
    alerts = table.column("alert").to_numpy(zero_copy_only=False).astype(bool)
    p_values = table.column("p_value").to_numpy()
    labelled = anomalous = None
    if label_column is not None and label_column in table.column_names:
        anomalous, labelled = label_values(table.column(label_column).to_pylist())
    index = np.arange(len(scores))
    likelihood = None
    if "likelihood" in table.column_names:
        likelihood = np.asarray(table.column("likelihood").to_pylist(), dtype=np.float64)
    ratios = [5, *([3] if likelihood is not None else []), *([1] if labelled is not None else [])]
    height = 4 + (2 if likelihood is not None else 0) + (1 if labelled is not None else 0)
    fig = Figure(figsize=(12, height), dpi=110)
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    axes = list(np.atleast_1d(axes))
    ax = axes.pop(0)
    tail_ax = axes.pop(0) if likelihood is not None else None
    strip = axes.pop(0) if labelled is not None else None
    warm = int(np.argmax(p_values < 1.0)) if (p_values < 1.0).any() else len(scores)
    if warm:
        ax.axvspan(0, warm, color="0.9", lw=0, label="warm-up: nothing flagged yet")
    positive = np.where(scores > 0, scores, np.nan)
    dense = len(scores) > DENSE_ROWS
    if dense:
        _score_band(ax, positive)
    else:
        ax.plot(index, positive, lw=0.5, color="tab:blue", label="score")
    limits = np.full(len(scores), np.nan)
    if "limit" in table.column_names:  # the score above which each record would alert
        limits = np.asarray(table.column("limit").to_pylist(), dtype=np.float64)
        _limit_line(ax, index, limits, dense)
    top = _top_field(table) if by_field else None
    _alerts(ax, index, scores, alerts, top)
    ax.set_yscale("log")
    ax.set_ylabel("anomaly score (log)")
    if tail_ax is not None and likelihood is not None:
        _likelihood(tail_ax, index, likelihood, alerts)
    title = f"{len(scores)} events, {int(alerts.sum())} alerts"
    if labelled is not None and anomalous is not None:
        kinds = None
        if kind_column in table.column_names:
            kinds = np.asarray(table.column(kind_column).to_pylist(), dtype=object)
        after_warm_up = p_values < 1.0 if "limit" not in table.column_names else np.isfinite(limits)
        judged = labelled & after_warm_up
        agreement = LabelAgreement.of(alerts, anomalous, judged)
        title += f"\nafter the warm-up: {agreement.summary()}" + _by_kind(
            alerts, anomalous & judged, kinds
        )
        _strip(strip, index, alerts, anomalous & judged, int((anomalous & ~judged).sum()), dense)
    (strip or tail_ax or ax).set_xlabel("event")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    fig.tight_layout()
    return fig


def _bins(n: int) -> np.ndarray:
    """Start of each of (at most) :data:`_BINS` equal runs of ``n`` rows, and ``n``."""
    return np.unique(np.linspace(0, n, min(_BINS, n) + 1).astype(np.int64))


def _score_band(ax, positive: np.ndarray) -> None:
    """Each run's 1st to 99th percentile of scores as a band, its median as a line (the
    highest scores are the alerts' dots)."""
    edges = _bins(len(positive))
    bands = np.full((len(edges) - 1, 3), np.nan)
    for i, (a, b) in enumerate(itertools.pairwise(edges)):
        run = positive[a:b]
        run = run[np.isfinite(run)]
        if len(run):
            bands[i] = np.quantile(run, [0.01, 0.5, 0.99])
    centre = (edges[:-1] + edges[1:]) / 2
    label = "scores, 1st-99th percentile"
    ax.fill_between(
        centre, bands[:, 0], bands[:, 2], color="tab:blue", alpha=0.3, lw=0, label=label
    )
    ax.plot(centre, bands[:, 1], lw=0.6, color="tab:blue", label="median score")


def _limit_line(ax, index: np.ndarray, limits: np.ndarray, dense: bool) -> None:
    """The limit as a step line above the scores and alerts, outlined so it shows on them."""
    if dense:  # a step function keeps its shape sampled at each run's start
        edges = _bins(len(limits))[:-1]
        index, limits = index[edges], limits[edges]
    outline = [patheffects.withStroke(linewidth=2.4, foreground="white")]
    ax.plot(
        index,
        limits,
        lw=1.0,
        color="0.15",
        drawstyle="steps-post",
        label="alert limit",
        zorder=5,
        path_effects=outline,
    )


_FIELD_COLOURS = (
    "tab:red",
    "tab:orange",
    "tab:green",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
)


def _top_field(table: pa.Table) -> np.ndarray | None:
    """Each result's top field ("" where it has none); None without a top_fields column."""
    if "top_fields" not in table.column_names:
        return None
    ranked = table.column("top_fields").to_pylist()
    return np.array([top[0]["field"] if top else "" for top in ranked], dtype=object)


def _alerts(
    ax, index: np.ndarray, scores: np.ndarray, alerts: np.ndarray, top: np.ndarray | None
) -> None:
    """Alerts as dots (smaller when there are thousands): red, or one colour per top field
    (the most frequent first)."""
    size = 12 if alerts.sum() <= 2_000 else 3
    if top is None:
        ax.scatter(index[alerts], scores[alerts], s=size, color="tab:red", zorder=3, label="alert")
        return
    names, counts = np.unique(top[alerts & (top != "")].astype(str), return_counts=True)
    shown = [str(name) for name in names[np.argsort(-counts, kind="stable")]][: len(_FIELD_COLOURS)]
    for name, colour in zip(shown, _FIELD_COLOURS, strict=False):
        rows = alerts & (top == name)
        label = f"alert, top field {name} ({rows.sum()})"
        ax.scatter(index[rows], scores[rows], s=size, color=colour, zorder=3, label=label)
    rest = alerts & ~np.isin(top, shown)
    if rest.any():
        label = f"alert, other field ({rest.sum()})"
        ax.scatter(index[rest], scores[rest], s=size, color="0.3", zorder=3, label=label)


def _likelihood(ax, index: np.ndarray, likelihood: np.ndarray, alerts: np.ndarray) -> None:
    """The calibrated likelihood on a tail scale, ``-log10(1 - likelihood)``: 3 is 0.999."""
    tail = -np.log10(np.clip(1.0 - likelihood, 1e-16, 1.0))
    ax.plot(index, tail, lw=0.5, color="tab:purple", label="likelihood")
    ax.scatter(index[alerts], tail[alerts], s=10, color="tab:red", zorder=3)
    ax.set_ylabel("-log10(1 - likelihood)", fontsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)


def _strip(
    ax, index: np.ndarray, alerts: np.ndarray, counted: np.ndarray, in_warm_up: int, dense: bool
) -> None:
    """The labelled anomalies judged after the warm-up: caught (an alert on them) above,
    missed below; beyond :data:`DENSE_ROWS` rows, where marks would merge into bars, the
    share of each run's labelled anomalies that was caught."""
    caught, missed = counted & alerts, counted & ~alerts
    note = f" ({in_warm_up} more in the warm-up, not counted)" if in_warm_up else ""
    counts = f"caught {caught.sum()}, missed {missed.sum()}"
    if dense:
        starts = _bins(len(index))[:-1]
        labelled = np.add.reduceat(counted, starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.add.reduceat(caught, starts) / labelled
        ax.fill_between(starts, 0, share, step="post", color="tab:green", lw=0)
        ax.set_yticks([0, 1], ["0", "1"], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("caught\nshare", fontsize=8)
        ax.set_title(
            f"labelled anomalies after the warm-up: {counts}{note}", fontsize=8, loc="left"
        )
        return
    for row, rows, colour in ((1, caught, "tab:green"), (0, missed, "0.4")):
        ax.scatter(index[rows], np.full(rows.sum(), row), marker="|", s=80, color=colour)
    ax.set_yticks([0, 1], [f"missed ({missed.sum()})", f"caught ({caught.sum()})"], fontsize=8)
    ax.set_ylim(-0.7, 1.7)
    ax.tick_params(axis="y", length=0)
    ax.set_title(f"labelled anomalies after the warm-up{note}", fontsize=8, loc="left")


def _by_kind(alerts: np.ndarray, labelled: np.ndarray, kinds: np.ndarray | None) -> str:
    """Readings caught per kind of anomaly, on a second line.

    Examples
    --------
    >>> kinds = np.array(["stuck", "stuck", "spike", ""], dtype=object)
    >>> _by_kind(np.array([True, False, True, True]), kinds != "", kinds)
    '\\ncaught: spike 1 of 1, stuck 1 of 2'
    """
    if kinds is None:
        return ""
    names = sorted({k for k in kinds[labelled] if k})
    if not names:
        return ""
    parts = [
        f"{k} {int((alerts & labelled & (kinds == k)).sum())} of "
        f"{int((labelled & (kinds == k)).sum())}"
        for k in names
    ]
    return "\ncaught: " + ", ".join(parts)
