"""Results of ``python -m bench.stream`` and its reports: the cells as CSV, a Markdown table and
two figures.

* ``cells.csv`` — one row per (data set, contender): every metric, seconds, status;
* ``stream.md`` — AUROC per data set and contender (a detector run with several seeds,
  ``MemAE``, ``MemAE[seed=1]``, ..., is one column: the mean over its seeds, with a table of each
  seed's figures and the spread per set), the mean over the 35 ADBench sets, the mean rank,
  each streammem detector's wins / ties / losses against every other contender, the
  floor checks, the learning curve and AUPRC, and the commands that made it;
* ``stream_auroc.png`` — AUROC per data set (sets ordered by the floor's AUROC), one marker per
  contender: where each model stands against the floor, at a glance;
* ``stream_ranks.png`` — mean rank over the 35 sets with the Nemenyi critical difference.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["StreamResult", "critical_difference", "mean_ranks", "merge_seeds", "write_reports"]

_TIE = 0.005  # AUROC differences below this count as ties in the win / tie / loss counts
# Studentised range q(0.05, k) / sqrt(2) for k = 2..20 contenders (Demšar, JMLR 2006, Table 5).
_NEMENYI_Q05 = (1.960, 2.344, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164, 3.219, 3.268,
                3.313, 3.354, 3.391, 3.426, 3.458, 3.489, 3.517, 3.544)  # fmt: skip
_METRICS = ("auroc", "auprc", "auroc_2k", "auroc_5k", "auroc_10k")
_SEED = re.compile(r"^(?P<base>.+)\[seed=(?P<seed>\d+)\]$")
_DEFAULT_SEED = 42  # the detectors' default ``seed``


@dataclasses.dataclass
class StreamResult:
    """One cell: data set x contender."""

    dataset: str
    contender: str
    group: str
    status: str  # ok, data missing, not installed
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


def _grid(results: Sequence[StreamResult], metric: str) -> dict[str, dict[str, float]]:
    """``grid[dataset][contender]`` for the cells that ran and have the metric."""
    grid: dict[str, dict[str, float]] = {}
    for result in results:
        value = result.metrics.get(metric)
        if result.status == "ok" and value is not None:
            grid.setdefault(result.dataset, {})[result.contender] = value
    return grid


def _seed_of(contender: str) -> tuple[str, int]:
    """``("MemAE", 1)`` for ``"MemAE[seed=1]"``; a name without a seed runs the default one."""
    match = _SEED.match(contender)
    if match is None:
        return contender, _DEFAULT_SEED
    return match["base"], int(match["seed"])


def merge_seeds(results: Sequence[StreamResult]) -> tuple[list[StreamResult], dict]:
    """One result per (data set, detector) for detectors run with several seeds: each metric
    the mean over the seeds that ran. Also ``runs[detector][seed][dataset]`` -> AUROC, for the
    seed table (detectors with one seed pass through unchanged and are not in it)."""
    seeds: dict[str, set[int]] = {}
    for r in results:
        base, seed = _seed_of(r.contender)
        seeds.setdefault(base, set()).add(seed)
    merged: dict[tuple[str, str], list[StreamResult]] = {}
    for r in results:
        base = _seed_of(r.contender)[0]
        merged.setdefault((r.dataset, base if len(seeds[base]) > 1 else r.contender), []).append(r)
    out, runs = [], {}
    for (dataset, name), group in merged.items():
        ok = [r for r in group if r.status == "ok"]
        if len(group) == 1 or not ok:
            out.append(dataclasses.replace(group[0], contender=name))
            continue
        metrics = {}
        for key in {k for r in ok for k in r.metrics}:
            values = [r.metrics[key] for r in ok if isinstance(r.metrics.get(key), (int, float))]
            if len(values) == len(ok):
                metrics[key] = float(np.mean(values))
        seconds = sum(r.seconds for r in ok)
        out.append(StreamResult(dataset, name, ok[0].group, "ok", metrics, seconds))
        for r in ok:
            if r.metrics.get("auroc") is not None:
                seed = _seed_of(r.contender)[1]
                runs.setdefault(name, {}).setdefault(seed, {})[dataset] = r.metrics["auroc"]
    return out, runs


def _seed_lines(runs: dict, floor: dict[str, float], sets: Sequence[str]) -> list[str]:
    """Per detector and seed: mean AUROC over the sets, sets at the floor, and the spread."""
    lines = [
        "| detector | seed | mean AUROC | sets ≥ floor | worst gap to the floor |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, by_seed in runs.items():
        for seed, row in sorted(by_seed.items()):
            values = [row[d] for d in sets if d in row]
            gaps = {d: row[d] - floor[d] for d in sets if d in row and d in floor}
            worst = min(gaps, key=gaps.get) if gaps else None
            lines.append(
                f"| {name} | {seed} | {_fmt(float(np.mean(values)) if values else None)} | "
                f"{sum(g >= 0 for g in gaps.values())} of {len(gaps)} | "
                + (f"{gaps[worst]:+.3f} ({worst.removeprefix('adbench:')})" if worst else "")
                + " |"
            )
    return lines


def _spread_table(runs: dict, datasets: Sequence[str]) -> list[str]:
    """Lowest and highest AUROC over the seeds, per data set and detector."""
    names = list(runs)
    lines = ["| data set | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for dataset in datasets:
        cells = []
        for name in names:
            values = [row[dataset] for row in runs[name].values() if dataset in row]
            cells.append(f"{min(values):.3f}–{max(values):.3f}" if values else "")
        lines.append(f"| {dataset.removeprefix('adbench:')} | " + " | ".join(cells) + " |")
    return lines


def _ordered(results: Sequence[StreamResult], attribute: str) -> list[str]:
    return list(dict.fromkeys(getattr(r, attribute) for r in results))


def mean_ranks(grid: dict[str, dict[str, float]], contenders: Sequence[str]) -> dict[str, float]:
    """Mean rank (1 = best, ties share their mean rank) over the sets every contender ran."""
    complete = [row for row in grid.values() if all(c in row for c in contenders)]
    if not complete:
        return {}
    from scipy.stats import rankdata

    ranks = np.array([rankdata([-row[c] for c in contenders]) for row in complete])
    return dict(zip(contenders, ranks.mean(axis=0).tolist(), strict=True))


def critical_difference(n_contenders: int, n_sets: int) -> float | None:
    """Nemenyi's critical difference of mean ranks at alpha = 0.05."""
    if not 2 <= n_contenders <= len(_NEMENYI_Q05) + 1 or n_sets == 0:
        return None
    q = _NEMENYI_Q05[n_contenders - 2]
    return q * np.sqrt(n_contenders * (n_contenders + 1) / (6.0 * n_sets))


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _benchmark_sets(datasets: Sequence[str]) -> list[str]:
    return [d for d in datasets if d.startswith("adbench:")]


def _table(grid, datasets, contenders, bold_best: bool = True) -> list[str]:
    short = [c.replace("_", " ") for c in contenders]
    lines = ["| data set | " + " | ".join(short) + " |", "|---|" + "---:|" * len(contenders)]
    for dataset in datasets:
        row = grid.get(dataset, {})
        best = max(row.values()) if row else None
        cells = []
        for c in contenders:
            text = _fmt(row.get(c))
            cells.append(f"**{text}**" if bold_best and text and row[c] == best else text)
        lines.append(f"| {dataset.removeprefix('adbench:')} | " + " | ".join(cells) + " |")
    return lines


def _means(grid, datasets, contenders) -> dict[str, float | None]:
    means = {}
    for c in contenders:
        values = [grid[d][c] for d in datasets if c in grid.get(d, {})]
        means[c] = float(np.mean(values)) if len(values) == len(datasets) and values else None
    return means


def _summary_lines(grid, sets, contenders) -> list[str]:
    means = _means(grid, sets, contenders)
    ranks = mean_ranks({d: grid[d] for d in sets if d in grid}, contenders)
    lines = [
        f"| **mean over the {len(sets)} ADBench sets** | "
        + " | ".join(_fmt(means[c]) for c in contenders)
        + " |",
        "| **mean rank** (1 = best) | "
        + " | ".join(f"{ranks[c]:.2f}" if c in ranks else "" for c in contenders)
        + " |",
    ]
    return lines


def _wins(grid, sets, model: str, contenders: Sequence[str]) -> list[str]:
    lines = [f"| {model} vs | wins | ties | losses |", "|---|---:|---:|---:|"]
    for other in contenders:
        if other == model:
            continue
        pairs = [(grid[d][model], grid[d][other]) for d in sets if {model, other} <= set(grid[d])]
        wins = sum(a > b + _TIE for a, b in pairs)
        losses = sum(a < b - _TIE for a, b in pairs)
        lines.append(f"| {other} | {wins} | {len(pairs) - wins - losses} | {losses} |")
    return lines


def _floor_checks(grid, sets, models: Sequence[str], nonfinite: dict[str, int]) -> list[str]:
    lines = [
        "| detector | sets ≥ floor | worst gap to the floor | sets at 0.50 ± 0.01 where the "
        "floor is above 0.6 | non-finite scores |",
        "|---|---:|---:|---|---:|",
    ]
    for model in models:
        rows = [
            (d, grid[d][model], grid[d]["floor"]) for d in sets if {model, "floor"} <= set(grid[d])
        ]
        if not rows:
            continue
        at_least = sum(m >= f for _, m, f in rows)
        worst = min(rows, key=lambda r: r[1] - r[2])
        stuck = [d.removeprefix("adbench:") for d, m, f in rows if abs(m - 0.5) <= 0.01 and f > 0.6]
        lines.append(
            f"| {model} | {at_least} of {len(rows)} | {worst[1] - worst[2]:+.3f} "
            f"({worst[0].removeprefix('adbench:')}) | {', '.join(stuck) or 'none'} "
            f"| {nonfinite[model]} |"
        )
    return lines


def _curve_lines(results, sets, contenders) -> list[str]:
    lines = [
        "| contender | AUROC to 2k (sets) | to 5k (sets) | to 10k (sets) | whole stream |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in contenders:
        cells = []
        for metric in ("auroc_2k", "auroc_5k", "auroc_10k", "auroc"):
            grid = _grid(results, metric)
            values = [grid[d][c] for d in sets if c in grid.get(d, {})]
            cells.append(f"{np.mean(values):.3f} ({len(values)})" if values else "")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return lines


def _fit_lines(results, sets, contenders) -> list[str]:
    """Mean over the sets of the median field's prequential R², at each curve point."""
    metrics = ("fit_r2_2k", "fit_r2_5k", "fit_r2_10k", "fit_r2")
    fitted = [
        c
        for c in contenders
        if _grid(results, "fit_r2") and any(c in row for row in _grid(results, "fit_r2").values())
    ]
    if not fitted:
        return []
    lines = [
        "| contender | R² at 2k (sets) | at 5k (sets) | at 10k (sets) | at the end |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in fitted:
        cells = []
        for metric in metrics:
            grid = _grid(results, metric)
            values = [grid[d][c] for d in sets if c in grid.get(d, {})]
            cells.append(f"{np.mean(values):.3f} ({len(values)})" if values else "")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return lines


def _seconds_lines(results, contenders) -> list[str]:
    total = {c: 0.0 for c in contenders}
    events = {c: 0 for c in contenders}
    for r in results:
        if r.status == "ok" and r.contender in total:
            total[r.contender] += r.seconds
            events[r.contender] += int(r.metrics.get("events", 0))
    lines = ["| contender | seconds, all cells | events/s |", "|---|---:|---:|"]
    for c in contenders:
        rate = events[c] / total[c] if total[c] > 0 else 0.0
        lines.append(f"| {c} | {total[c]:,.0f} | {rate:,.0f} |")
    return lines


def write_reports(
    results: Sequence[StreamResult], out: Path, command: str, seconds: float
) -> list[Path]:
    """Write ``cells.csv``, ``stream.md`` and the figures under ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = [_write_csv(results, out / "cells.csv")]
    runs = out / "runs.jsonl"
    with runs.open("a") as handle:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        handle.write(
            json.dumps({"command": command, "seconds": round(seconds, 1), "at": stamp}) + "\n"
        )
    merged, seed_runs = merge_seeds(results)
    written.append(_write_markdown(merged, out / "stream.md", runs, seed_runs))
    figures = _write_figures(merged, out)
    return written + figures


def _write_csv(results: Sequence[StreamResult], path: Path) -> Path:
    keys = sorted({k for r in results for k in r.metrics})
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "contender", "group", "status", "seconds", *keys])
        for r in results:
            writer.writerow(
                [r.dataset, r.contender, r.group, r.status, f"{r.seconds:.2f}"]
                + ["" if r.metrics.get(k) is None else r.metrics[k] for k in keys]
            )
    return path


def _write_markdown(
    results: Sequence[StreamResult], path: Path, runs: Path, seed_runs: dict
) -> Path:
    contenders = [
        c
        for c in _ordered(results, "contender")
        if any(r.contender == c and r.status == "ok" for r in results)
    ]
    datasets = _ordered(results, "dataset")
    sets = _benchmark_sets(datasets)
    auroc = _grid(results, "auroc")
    models = [
        c for c in contenders if any(r.contender == c and r.group == "streammem" for r in results)
    ]
    lines = [
        "# Streaming quality on real data (`python -m bench.stream`)",
        "",
        "Prequential: every event is scored before it is learned; AUROC over the events after a "
        "warm-up of min(1000, 10 % of n); streams in `default_rng(0)` order, at most 50,000 "
        "events. streammem detectors run with **default arguments** (DataFrames of 256 rows, "
        "`score_many` then `learn_many`); the **floor** is no model at all (mean squared running "
        "z-score); `offline IForest` sees every row first (a reference, not a streaming peer). "
        "Bold: best in the row."
        + (
            f" {', '.join(seed_runs)}: the mean over seeds "
            f"{', '.join(str(s) for s in sorted(next(iter(seed_runs.values()))))} "
            "(each seed's figures and the spread per set: see Seeds)."
            if seed_runs
            else ""
        ),
        "",
        "## AUROC",
        "",
        *_table(auroc, datasets, contenders),
        *_summary_lines(auroc, sets, contenders),
        "",
    ]
    cd = critical_difference(len(contenders), len(sets))
    if cd is not None:
        lines += [
            f"Nemenyi critical difference of mean ranks (alpha 0.05, {len(contenders)} "
            f"contenders, {len(sets)} sets): {cd:.2f}.",
            "",
        ]
    if "floor" in contenders and models:
        nonfinite = {
            m: sum(
                int(r.metrics.get("nonfinite", 0))
                for r in results
                if r.contender == m and r.status == "ok"
            )
            for m in models
        }
        lines += [
            "## Against the floor",
            "",
            *_floor_checks(auroc, sets, models, nonfinite),
            "",
        ]
    if seed_runs:
        floor = {d: auroc[d]["floor"] for d in sets if "floor" in auroc.get(d, {})}
        lines += [
            "## Seeds",
            "",
            "Each seed on its own (the tables above use their mean):",
            "",
            *_seed_lines(seed_runs, floor, sets),
            "",
            "AUROC, lowest–highest over the seeds:",
            "",
            *_spread_table(seed_runs, datasets),
            "",
        ]
    for model in models:
        lines += [
            f"## {model}: wins / ties / losses on the {len(sets)} sets (ties: within {_TIE} AUROC)",
            "",
            *_wins(auroc, sets, model, contenders),
            "",
        ]
    lines += [
        "## Learning curve (mean AUROC from the warm-up to the k-th event, over the sets "
        "that long)",
        "",
        *_curve_lines(results, sets, contenders),
        "",
    ]
    fit = _fit_lines(results, sets, contenders)
    if fit:
        lines += [
            "## Fit (prequential R² of the median field, records rebuilt before they are "
            "learned; mean over the sets that long)",
            "",
            *fit,
            "",
        ]
    auprc = _grid(results, "auprc")
    lines += [
        "## AUPRC",
        "",
        *_table(auprc, datasets, contenders),
        *_summary_lines(auprc, sets, contenders),
        "",
    ]
    lines += ["## Time (whole run, this machine)", "", *_seconds_lines(results, contenders), ""]
    lines += ["## Runs", "", "```"]
    lines += [
        json.loads(line)["command"] + f"   # {json.loads(line)['seconds']} s, "
        f"{json.loads(line)['at']}"
        for line in runs.read_text().splitlines()[-20:]
    ]
    lines += ["```", ""]
    path.write_text("\n".join(lines))
    return path


def _write_figures(results: Sequence[StreamResult], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    auroc = _grid(results, "auroc")
    contenders = [
        c for c in _ordered(results, "contender") if any(c in row for row in auroc.values())
    ]
    sets = [d for d in _benchmark_sets(_ordered(results, "dataset")) if d in auroc]
    if not sets or not contenders:
        return []
    paths = [_dots_figure(plt, auroc, sets, contenders, results, out / "stream_auroc.png")]
    ranks_path = _ranks_figure(plt, auroc, sets, contenders, out / "stream_ranks.png")
    return paths + ([ranks_path] if ranks_path else [])


def _dots_figure(plt, auroc, sets, contenders, results, path: Path) -> Path:
    streammem = {r.contender for r in results if r.group == "streammem"}
    floor = {d: auroc[d].get("floor", np.nan) for d in sets}
    order = sorted(sets, key=lambda d: floor[d])
    fig, ax = plt.subplots(figsize=(13, 5.5))
    x = np.arange(len(order))
    markers = "os^vD<>pPX*h"
    for i, c in enumerate(contenders):
        y = [auroc[d].get(c, np.nan) for d in order]
        if c == "floor":
            ax.plot(x, y, "k-", lw=2, label="floor (no model)", zorder=3)
        elif c in streammem:
            ax.plot(x, y, markers[i % len(markers)], ms=8, label=c, zorder=4)
        else:
            ax.plot(x, y, markers[i % len(markers)], ms=5, alpha=0.5, mfc="none", label=c)
    ax.set_xticks(x, [d.removeprefix("adbench:") for d in order], rotation=75, fontsize=8)
    ax.set_ylabel("AUROC (after warm-up)")
    ax.set_ylim(0, 1.02)
    ax.axhline(0.5, color="grey", lw=0.5, ls=":")
    ax.set_title("Prequential AUROC per data set (ordered by the floor's AUROC)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ranks_figure(plt, auroc, sets, contenders, path: Path) -> Path | None:
    ranks = mean_ranks({d: auroc[d] for d in sets}, contenders)
    if not ranks:
        return None
    cd = critical_difference(len(contenders), len(sets))
    ordered = sorted(ranks, key=ranks.get)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(ordered) + 1.4))
    y = np.arange(len(ordered))[::-1]
    values = [ranks[c] for c in ordered]
    colours = {"MemAE": "tab:red", "floor": "black"}
    ax.barh(y, values, color=[colours.get(c, "tab:grey") for c in ordered])
    ax.set_yticks(y, ordered, fontsize=9)
    ax.set_xlabel("mean rank over the ADBench sets (1 = best)")
    if cd is not None:
        best = values[0]
        ax.axvspan(
            best,
            best + cd,
            color="tab:blue",
            alpha=0.12,
            label=f"within the critical difference of the best ({cd:.2f})",
        )
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.set_title(f"Mean rank over {len(sets)} sets")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
