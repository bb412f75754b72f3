"""A PNG of scores over the stream, with alerts and, where the file is labelled, which known
anomalies the alerts caught and which they missed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe on servers and in CI

from streammem.service.agreement import LabelAgreement

__all__ = ["plot_scores", "score_figure"]


def plot_scores(
    results: str | Path,
    target: str | Path,
    label_column: str = "is_anomaly",
    kind_column: str = "fault",
) -> Path:
    """Plot ``score`` against row order from a results file written by the Parquet sink."""
    fig = score_figure(pq.read_table(results), label_column, kind_column)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    return target


def score_figure(
    table: pa.Table, label_column: str = "is_anomaly", kind_column: str = "fault"
) -> Figure:
    """Scores against row order, the alert limit in force for each, alerts coloured by their
    top field, the legend beside the plot; with a ``likelihood`` column (a
    :class:`~streammem.TailLikelihood` calibrator), a panel of it on a tail scale.

    The warm-up (until the calibrator can flag anything: p-values are 1 before) is shaded, and
    scores of 0 (nothing learned yet) are not drawn on the log scale. With ``label_column``,
    a strip under the scores marks each labelled anomaly as caught (an alert on it) or missed,
    and the title gives precision and recall, per kind of anomaly with ``kind_column``. With
    a ``top_fields`` column, each alert's colour names the field that contributed most to its
    score (the eight most frequent; the rest share one); without one, alerts are red.
    """
    scores = table.column("score").to_numpy()
    alerts = table.column("alert").to_numpy(zero_copy_only=False).astype(bool)
    p_values = table.column("p_value").to_numpy()
    labelled = None
    if label_column in table.column_names:
        labelled = table.column(label_column).to_numpy(zero_copy_only=False).astype(bool)
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
    ax.plot(index, np.where(scores > 0, scores, np.nan), lw=0.5, color="tab:blue", label="score")
    limits = np.full(len(scores), np.nan)
    if "limit" in table.column_names:  # the score above which each record would alert
        limits = np.asarray(table.column("limit").to_pylist(), dtype=np.float64)
        ax.plot(index, limits, lw=0.9, color="0.35", drawstyle="steps-post", label="alert limit")
    _alerts(ax, index, scores, alerts, _top_field(table))
    ax.set_yscale("log")
    ax.set_ylabel("anomaly score (log)")
    if tail_ax is not None:
        _likelihood(tail_ax, index, likelihood, alerts)
    title = f"{len(scores)} events, {int(alerts.sum())} alerts"
    if labelled is not None:
        kinds = None
        if kind_column in table.column_names:
            kinds = np.asarray(table.column(kind_column).to_pylist(), dtype=object)
        judged = p_values < 1.0 if "limit" not in table.column_names else np.isfinite(limits)
        agreement = LabelAgreement.of(alerts, labelled, judged)
        title += f"\n{agreement.summary()}" + _by_kind(alerts, labelled, kinds)
        _strip(strip, index, alerts, labelled)
    (strip or tail_ax or ax).set_xlabel("event")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    fig.tight_layout()
    return fig


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
    """Alerts as dots: red, or one colour per top field (the most frequent first)."""
    if top is None:
        ax.scatter(index[alerts], scores[alerts], s=12, color="tab:red", zorder=3, label="alert")
        return
    names, counts = np.unique(top[alerts & (top != "")].astype(str), return_counts=True)
    shown = [str(name) for name in names[np.argsort(-counts, kind="stable")]][: len(_FIELD_COLOURS)]
    for name, colour in zip(shown, _FIELD_COLOURS, strict=False):
        rows = alerts & (top == name)
        label = f"alert, top field {name} ({rows.sum()})"
        ax.scatter(index[rows], scores[rows], s=12, color=colour, zorder=3, label=label)
    rest = alerts & ~np.isin(top, shown)
    if rest.any():
        label = f"alert, other field ({rest.sum()})"
        ax.scatter(index[rest], scores[rest], s=12, color="0.3", zorder=3, label=label)


def _likelihood(ax, index: np.ndarray, likelihood: np.ndarray, alerts: np.ndarray) -> None:
    """The calibrated likelihood on a tail scale, ``-log10(1 - likelihood)``: 3 is 0.999."""
    tail = -np.log10(np.clip(1.0 - likelihood, 1e-16, 1.0))
    ax.plot(index, tail, lw=0.5, color="tab:purple", label="likelihood")
    ax.scatter(index[alerts], tail[alerts], s=10, color="tab:red", zorder=3)
    ax.set_ylabel("-log10(1 - likelihood)", fontsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)


def _strip(ax, index: np.ndarray, alerts: np.ndarray, labelled: np.ndarray) -> None:
    """Labelled anomalies in two rows: caught (an alert on them) above, missed below."""
    caught, missed = labelled & alerts, labelled & ~alerts
    ax.scatter(index[caught], np.ones(caught.sum()), marker="|", s=80, color="tab:green")
    ax.scatter(index[missed], np.zeros(missed.sum()), marker="|", s=80, color="0.4")
    ax.set_yticks([0, 1], [f"missed ({missed.sum()})", f"caught ({caught.sum()})"], fontsize=8)
    ax.set_ylim(-0.7, 1.7)
    ax.tick_params(axis="y", length=0)
    ax.set_title("labelled anomalies", fontsize=8, loc="left")


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
        f"{k} {int((alerts & (kinds == k)).sum())} of {int((kinds == k).sum())}" for k in names
    ]
    return "\ncaught: " + ", ".join(parts)
