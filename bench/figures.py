"""Pictures of a table's results (small PNGs, matplotlib's Agg backend).

* ``<table>_bars.png`` — per-class bars of the first metric, ours (offline) beside the paper's;
* ``<table>_<model>_slots.png`` — what the first 50 memory slots decode to (class 0, first seed),
  at native resolution;
* ``<table>_scores.png`` — test-score histograms, normal vs anomalous (class 0, first seed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.papers import reported
from bench.tables import TableResults, cell_arrays, memory_models

__all__ = ["draw_figures", "slot_grid"]

_DPI = 72
_MAX_SLOTS = 50  # slots drawn per memory (native resolution, 10 per row)
_PANELS_PER_ROW = 4


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def slot_grid(slots: np.ndarray, columns: int = 10) -> np.ndarray:
    """Tile decoded slots (N, C, H, W) into one (rows·H, columns·W[, C]) image in [0, 1]."""
    n, c, h, w = slots.shape
    rows = -(-n // columns)
    grid = np.zeros((rows * h, columns * w, c), np.float32)
    low, high = float(slots.min()), float(slots.max())
    scaled = (slots - low) / (high - low) if high > low else np.zeros_like(slots)
    for i in range(n):
        r, q = divmod(i, columns)
        grid[r * h : (r + 1) * h, q * w : (q + 1) * w] = scaled[i].transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


def _bars(results: TableResults, out: Path) -> Path | None:
    t = results.table
    metric = results.metrics()[0]
    models = [m for m in results.specs if results.values(m, "offline", metric)]
    if not models or t.protocol == "kdd":
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(models), 1, figsize=(7, 1.8 * len(models)), squeeze=False)
    x = np.arange(len(t.tasks))
    for ax, model in zip(axes[:, 0], models, strict=True):
        ours = results.values(model, "offline", metric)
        paper = [reported(t, model, metric, k) for k in t.tasks]
        ax.bar(x - 0.2, [ours.get(k, np.nan) for k in t.tasks], 0.4, label="ours")
        ax.bar(x + 0.2, [np.nan if v is None else v for v in paper], 0.4, label="paper")
        mean = reported(t, model, metric, "mean")
        if mean is not None:
            ax.axhline(mean, color="grey", lw=0.8, ls="--", label="paper mean")
        ax.set_ylabel(model, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_xticks(x)
    axes[0, 0].legend(fontsize=7, ncol=3, loc="lower right")
    axes[0, 0].set_title(f"{t.paper} {t.dataset} {t.protocol}: {metric} per class", fontsize=9)
    return _save(fig, out / f"{t.name}_bars.png")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    _pyplot().close(fig)
    return path


def _slots(results: TableResults, cache_dir: Path, quick: bool, out: Path) -> list[Path]:
    paths = []
    for model in memory_models():
        if model not in results.specs or results.table.protocol == "kdd":
            continue
        arrays = cell_arrays(results, cache_dir, quick, model, results.table.tasks[0])
        if arrays is None or "slots" not in arrays:
            continue
        path = out / f"{results.table.name}_{model}_slots.png"
        grid = slot_grid(arrays["slots"][:_MAX_SLOTS])
        _pyplot().imsave(path, grid, cmap="gray" if grid.ndim == 2 else None)
        paths.append(path)
    return paths


def _scores(results: TableResults, cache_dir: Path, quick: bool, out: Path) -> Path | None:
    task = results.table.tasks[0]
    found = {m: cell_arrays(results, cache_dir, quick, m, task) for m in results.specs}
    found = {m: a for m, a in found.items() if a is not None}
    if not found:
        return None
    plt = _pyplot()
    rows = -(-len(found) // _PANELS_PER_ROW)
    columns = min(len(found), _PANELS_PER_ROW)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.2 * rows), squeeze=False)
    for ax in axes.flat[len(found) :]:
        ax.set_axis_off()
    for ax, (model, arrays) in zip(axes.flat, found.items(), strict=False):
        scores, labels = np.log10(arrays["scores"] + 1e-12), arrays["labels"]
        bins = np.linspace(scores.min(), scores.max(), 40)
        ax.hist(scores[labels == 0], bins, alpha=0.6, density=True, label="normal")
        ax.hist(scores[labels == 1], bins, alpha=0.6, density=True, label="anomalous")
        ax.set_title(model, fontsize=8)
        ax.set_xlabel("log10 score", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6)
    return _save(fig, out / f"{results.table.name}_scores.png")


def draw_figures(results: TableResults, cache_dir: Path, quick: bool, out: Path) -> list[Path]:
    """Every picture the table's cached results allow; returns the files written."""
    paths = [_bars(results, out), *_slots(results, cache_dir, quick, out)]
    paths.append(_scores(results, cache_dir, quick, out))
    return [p for p in paths if p is not None]
