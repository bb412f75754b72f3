"""A PNG of scores over the stream with alerts (and known anomalies, if labelled) marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe on servers and in CI

__all__ = ["plot_scores"]


def plot_scores(results: str | Path, target: str | Path, label_column: str = "is_anomaly") -> Path:
    """Plot ``score`` against row order from a results file written by the Parquet sink."""
    table = pq.read_table(results)
    scores = table.column("score").to_numpy()
    alerts = table.column("alert").to_numpy(zero_copy_only=False)
    index = np.arange(len(scores))
    fig = Figure(figsize=(11, 4), dpi=110)
    ax = fig.add_subplot()
    ax.plot(index, scores, lw=0.6, color="tab:blue", label="score")
    ax.scatter(index[alerts], scores[alerts], s=14, color="tab:red", zorder=3, label="alert")
    title = f"{len(scores)} events, {int(alerts.sum())} alerts"
    if label_column in table.column_names:
        labelled = table.column(label_column).to_numpy(zero_copy_only=False).astype(bool)
        title += _agreement(alerts.astype(bool), labelled)
        positive = scores[scores > 0]
        floor = np.full(labelled.sum(), positive.min() / 2 if len(positive) else 1e-6)
        ax.scatter(
            index[labelled], floor, marker="|", s=60, color="tab:orange", label="labelled anomaly"
        )
    ax.set_yscale("log")
    ax.set_xlabel("event")
    ax.set_ylabel("anomaly score (log)")
    ax.set_title(title)
    ax.legend(loc="lower left", framealpha=0.9)
    fig.tight_layout()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    return target


def _agreement(alerts: np.ndarray, labelled: np.ndarray) -> str:
    """How the alerts match the labelled anomalies: precision and recall.

    Examples
    --------
    >>> _agreement(np.array([True, True, False, False]), np.array([True, False, True, False]))
    ': precision 0.50, recall 0.50 (1 of 2 labelled anomalies caught)'
    """
    caught = int((alerts & labelled).sum())
    precision = caught / alerts.sum() if alerts.any() else float("nan")
    recall = caught / labelled.sum() if labelled.any() else float("nan")
    return (
        f": precision {precision:.2f}, recall {recall:.2f} "
        f"({caught} of {int(labelled.sum())} labelled anomalies caught)"
    )
