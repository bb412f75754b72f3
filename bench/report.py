"""Reports from the cell cache: per-table CSV and Markdown, ``summary.csv`` and pictures.

Reports are rebuilt from *every* cached cell of each table's full grid (not only the cells of the
last invocation), so results accumulate over several commands; cells that never ran say so. A
cell missing from the cache (which is not committed) is taken from the committed cells CSV when a
row there carries its key, i.e. came from the same configuration (:mod:`bench.tables`): a
checkout that trains one new cell keeps every committed result, and a changed hyper-parameter
drops the stale rows. Every table's Markdown lists the invocations, recorded in ``runs.jsonl``,
that touched it.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from bench.cells import Cell
from bench.figures import draw_figures
from bench.notes import table_notes
from bench.papers import TABLES, PaperTable, reported
from bench.tables import (
    COLUMNS,
    TableResults,
    collect,
    committed_cells,
    read_runs,
    runs_for,
)

__all__ = ["SUMMARY_COLUMNS", "summary_rows", "write_reports"]

SUMMARY_COLUMNS = (
    "paper",
    "dataset",
    "protocol",
    "model",
    "column",
    "metric",
    "reported",
    "ours",
    "classes",
    "seeds",
)


def _reported_mean(table: PaperTable, model: str, metric: str, tasks: list[int]) -> float | None:
    """The paper's mean over ``tasks`` when it reports them per class, else its printed mean."""
    per_class = [reported(table, model, metric, t) for t in tasks]
    if table.protocol != "kdd" and tasks and all(v is not None for v in per_class):
        if sorted(tasks) != list(table.tasks):
            return float(np.mean(per_class))
    return reported(table, model, metric, "mean")


def summary_rows(results: TableResults) -> list[dict[str, object]]:
    """One ``summary.csv`` row per (model, column, metric) that has results."""
    t = results.table
    rows = []
    for model in results.specs:
        for column in COLUMNS:
            for metric in results.metrics():
                values = results.values(model, column, metric)
                if not values:
                    continue
                ref = _reported_mean(t, model, metric, list(values))
                rows.append(
                    {
                        "paper": t.paper,
                        "dataset": t.dataset,
                        "protocol": t.protocol,
                        "model": model,
                        "column": column,
                        "metric": metric,
                        "reported": "" if ref is None else f"{ref:.4f}",
                        "ours": f"{np.mean(list(values.values())):.4f}",
                        "classes": 1 if t.protocol == "kdd" else len(values),
                        "seeds": len(values)
                        if t.protocol == "kdd"
                        else results.seeds(model, column),
                    }
                )
    return rows


def _write_cells_csv(results: TableResults, path: Path, quick: bool) -> None:
    t = results.table
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "paper",
                "dataset",
                "protocol",
                "model",
                "column",
                "task",
                "seed",
                "metric",
                "value",
                "seconds",
                "epochs",
                "status",
                "key",
            ]
        )
        for (model, column, task, seed), result in sorted(results.cells.items()):
            spec = results.specs[model]
            key = Cell(t.dataset, t.protocol, spec, column, task, seed, quick).key()
            for metric, value in sorted(result.metrics.items()):
                writer.writerow(
                    [
                        t.paper,
                        t.dataset,
                        t.protocol,
                        model,
                        column,
                        task,
                        seed,
                        metric,
                        f"{value:.6f}",
                        f"{result.seconds:.1f}",
                        result.epochs,
                        result.status,
                        key,
                    ]
                )


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _stream_cells(results: TableResults, model: str, metric: str) -> tuple[str, str, str]:
    """Streaming mean, its task count, and streaming − offline over the tasks both ran."""
    stream = results.values(model, "streaming", metric)
    if not stream:
        return "", "", ""
    offline = results.values(model, "offline", metric)
    common = [t for t in stream if t in offline]
    gap = np.mean([stream[t] - offline[t] for t in common]) if common else None
    n = len(stream)
    return _pct(float(np.mean(list(stream.values())))), str(n), _signed(gap)


def _signed(value: float | None) -> str:
    return "" if value is None else f"{100 * value:+.2f}"


def _summary_table(results: TableResults) -> list[str]:
    lines = [
        "| model | metric | reported | ours offline | diff | classes | seeds | ours streaming "
        "| classes | stream − offline (same classes) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary_rows(results):
        if row["column"] != "offline":
            continue
        model, metric = str(row["model"]), str(row["metric"])
        ours = float(row["ours"])  # type: ignore[arg-type]
        ref = float(row["reported"]) if row["reported"] != "" else None  # type: ignore[arg-type]
        stream, n_stream, gap = _stream_cells(results, model, metric)
        diff = None if ref is None else ours - ref
        spread = results.seed_means(model, "offline", metric)
        seeds = f" (seeds {_pct(min(spread))}–{_pct(max(spread))})" if len(spread) > 1 else ""
        lines.append(
            f"| {model} | {metric} | {_pct(ref)} | {_pct(ours)}{seeds} | {_signed(diff)} | "
            f"{row['classes']} | {row['seeds']} | {stream} | {n_stream} | {gap} |"
        )
    return lines


def _per_class_table(results: TableResults, metric: str) -> list[str]:
    models = [m for m in results.specs if results.values(m, "offline", metric)]
    if not models or results.table.protocol == "kdd":
        return []
    head = " | ".join(f"{m} paper | {m} ours | {m} stream" for m in models)
    lines = [f"| class | {head} |", "|---" * (1 + 3 * len(models)) + "|"]
    ran = {task for m in models for task in results.values(m, "offline", metric)}
    for task in sorted(ran):
        cells = []
        for m in models:
            ours = results.values(m, "offline", metric).get(task)
            stream = results.values(m, "streaming", metric).get(task)
            cells += [_pct(reported(results.table, m, metric, task)), _pct(ours), _pct(stream)]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def _markdown(results: TableResults, runs: list[dict], notes: str) -> str:
    t = results.table
    parts = [f"# {t.paper} — {t.dataset} ({t.protocol})", ""]
    if results.missing:
        parts += [f"**Data missing**: {results.missing}", ""]
    parts += [
        "Values in %. `diff` = ours − reported (the paper's mean over the same classes when it "
        "reports them per class, else its printed mean). Streaming = one pass of `learn_many` "
        "over the shuffled training stream with the public estimator (each full mini-batch takes "
        "as many gradient steps as the offline column has epochs), scored with `score_many`.",
        "",
        *_summary_table(results),
        "",
    ]
    for metric in results.metrics()[:1]:
        table = _per_class_table(results, metric)
        if table:
            parts += [f"## Per class — {metric}", "", *table, ""]
    parts += ["## Commands", "", *(runs_for(runs, t.name) or ["- (none recorded)"]), ""]
    if notes:
        parts += ["## Notes", "", notes, ""]
    return "\n".join(parts)


def write_reports(args: argparse.Namespace) -> list[Path]:
    """Rewrite every table's reports from the cache; returns the files written."""
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.jsonl"
    runs = read_runs(runs_path)
    written, summary = [], []
    for table in TABLES:
        committed = committed_cells(out / f"{table.name}.csv")
        results = collect(table, args.cache_dir, args.quick, args.data_root, committed)
        if not results.cells and not results.missing:
            continue
        _write_cells_csv(results, out / f"{table.name}.csv", args.quick)
        (out / f"{table.name}.md").write_text(_markdown(results, runs, table_notes(table)))
        written += [out / f"{table.name}.csv", out / f"{table.name}.md"]
        written += draw_figures(results, args.cache_dir, args.quick, out)
        summary += summary_rows(results)
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(summary)
    return [*written, out / "summary.csv"]
