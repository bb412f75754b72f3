"""Reports from the cell cache: per-table CSV and Markdown, ``summary.csv`` and pictures.

Reports are rebuilt from *every* cached cell of each table's full grid (not only the cells of the
last invocation), so results accumulate over several commands; cells that never ran say so. A
cell missing from the cache (which is not committed) is taken from the committed cells CSV when a
row there carries its key, i.e. came from the same configuration: a checkout that trains one new
cell keeps every committed result, and a changed hyper-parameter drops the stale rows.
Each invocation is appended to ``runs.jsonl`` (command, wall time, cell counts), and every table's
Markdown lists the invocations that touched it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.datasets import CIFAR10, DataMissing, get_dataset
from bench.papers import TABLES, PaperTable, reported
from bench.runner import Cell, CellResult, cached_arrays
from bench.zoo import ModelSpec, model_specs

__all__ = [
    "SUMMARY_COLUMNS",
    "TableResults",
    "cell_arrays",
    "collect",
    "committed_cells",
    "lookup",
    "memory_models",
    "read_runs",
    "record_run",
    "runs_for",
    "summary_rows",
    "write_reports",
]

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
_COLUMNS = ("offline", "streaming")
_KDD_METRICS = ("precision", "recall", "f1", "auroc", "auprc", "best_f1")
_MEMORY_MODELS = ("MemAE", "MEMGAN", "Memorizer")


@dataclass
class TableResults:
    """The cached results of one table's grid: ``cells[(model, column, task, seed)]``."""

    table: PaperTable
    specs: dict[str, ModelSpec]
    cells: dict[tuple[str, str, int, int], CellResult]
    missing: str

    def metrics(self) -> tuple[str, ...]:
        """Metrics reported for this table (KDD: threshold and ranking metrics)."""
        return _KDD_METRICS if self.table.protocol == "kdd" else self.table.metrics

    def values(self, model: str, column: str, metric: str) -> dict[int, float]:
        """Mean over seeds of ``metric`` per task, for the tasks that ran."""
        per_task: dict[int, list[float]] = {}
        for (m, c, task, _), result in self.cells.items():
            if m == model and c == column and metric in result.metrics:
                per_task.setdefault(task, []).append(result.metrics[metric])
        return {task: float(np.mean(v)) for task, v in sorted(per_task.items())}

    def seeds(self, model: str, column: str) -> int:
        """Number of distinct seeds that ran for (model, column)."""
        return len({s for (m, c, _, s), r in self.cells.items() if (m, c) == (model, column)})

    def seed_means(self, model: str, column: str, metric: str) -> list[float]:
        """Per seed, the mean of ``metric`` over the tasks that every seed ran."""
        runs: dict[int, dict[int, float]] = {}
        for (m, c, task, seed), result in self.cells.items():
            if (m, c) == (model, column) and metric in result.metrics:
                runs.setdefault(seed, {})[task] = result.metrics[metric]
        common = set.intersection(*(set(v) for v in runs.values())) if runs else set()
        return [float(np.mean([v[t] for t in common])) for v in runs.values() if common]


def _meta_path(cache_dir: Path, cell: Cell) -> Path:
    return cache_dir / f"{cell.dataset}-{cell.protocol}-{cell.key()}.json"


def _missing_data(dataset: str, root: str | None) -> str:
    """The error naming the first absent file of ``dataset``, or ``""`` when all are there."""
    data = get_dataset(dataset, root)
    if isinstance(data, CIFAR10):
        names = [data.tarball if data.available(data.tarball) else data.repack]
    else:
        names = [name for name, _ in data.resources]
    for name in names:
        if not data.available(name):
            try:
                data.path(name)
            except DataMissing as error:
                return str(error)
    return ""


def committed_cells(path: Path, trace_path: Path | None = None) -> dict[str, CellResult]:
    """The results of a cells CSV written by this module, by cell key (rows without a key are
    skipped); ``trace_path`` adds the traces of a trace CSV (``key,epoch,name,value``)."""
    if not path.is_file():
        return {}
    found: dict[str, CellResult] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("key"):
                continue
            result = found.setdefault(
                row["key"],
                CellResult(row["status"], {}, float(row["seconds"]), int(row["epochs"])),
            )
            result.metrics[row["metric"]] = float(row["value"])
    if trace_path is not None and trace_path.is_file():
        _read_traces(trace_path, found)
    return found


def _read_traces(path: Path, found: dict[str, CellResult]) -> None:
    points: dict[tuple[str, int], dict[str, float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["key"] in found:
                point = points.setdefault((row["key"], int(row["epoch"])), {})
                point[row["name"]] = float(row["value"])
    for (key, epoch), point in sorted(points.items()):
        found[key].trace.append({"epoch": epoch, **point})


def lookup(cache_dir: Path, cell: Cell, committed: dict[str, CellResult]) -> CellResult | None:
    """``cell``'s result from the cache, else from ``committed`` (by key), else ``None``."""
    path = _meta_path(cache_dir, cell)
    if path.is_file():
        return CellResult(**json.loads(path.read_text())["result"])
    return committed.get(cell.key())


def collect(
    table: PaperTable,
    cache_dir: Path,
    quick: bool,
    root: str | None,
    committed: dict[str, CellResult] | None = None,
) -> TableResults:
    """Look up every cell of ``table``'s grid in the cache, else in ``committed`` (nothing is
    trained)."""
    specs = {
        s.name: s for s in model_specs(table.protocol, table.dataset) if s.name in table.models
    }
    cells: dict[tuple[str, str, int, int], CellResult] = {}
    tasks = table.tasks[:2] if quick else table.tasks
    for spec in specs.values():
        for column in _COLUMNS:
            for task in tasks:
                for seed in table.seeds:
                    cell = Cell(table.dataset, table.protocol, spec, column, task, seed, quick)
                    result = lookup(cache_dir, cell, committed or {})
                    if result is not None:
                        cells[(spec.name, column, task, seed)] = result
    return TableResults(table, specs, cells, _missing_data(table.dataset, root))


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
        for column in _COLUMNS:
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


def runs_for(runs: list[dict], name: str) -> list[str]:
    """One Markdown line per recorded invocation that touched the table called ``name``."""
    lines = []
    for run in runs:
        if name in run.get("tables", []):
            lines.append(
                f"- `{run['command']}` — {run['wall_s']:.0f} s wall, {run['counts']} "
                f"({run['finished']})" + (f" — {run['note']}" if run.get("note") else "")
            )
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


def read_runs(path: Path) -> list[dict]:
    """Every invocation recorded in ``runs.jsonl`` (none if the file is absent)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def record_run(
    args: argparse.Namespace,
    command: str,
    wall_s: float,
    counts: dict[str, int],
    tables: list[str] | None = None,
) -> None:
    """Append one invocation (command, wall time, cell counts, tables) to ``runs.jsonl``;
    ``tables`` defaults to the paper tables that ``args`` selects."""
    args.out.mkdir(parents=True, exist_ok=True)
    run = {
        "command": command,
        "wall_s": round(wall_s, 1),
        "counts": counts,
        "tables": tables or sorted(t.name for t in TABLES if _touches(args, t)),
        "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    with open(args.out / "runs.jsonl", "a") as handle:
        handle.write(json.dumps(run) + "\n")


def write_reports(args: argparse.Namespace) -> list[Path]:
    """Rewrite every table's reports from the cache; returns the files written."""
    from bench.figures import draw_figures
    from bench.notes import table_notes

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


def _touches(args: argparse.Namespace, table: PaperTable) -> bool:
    papers = args.paper.split(",") if args.paper else None
    datasets = args.dataset.split(",") if args.dataset else None
    return (not papers or table.paper in papers) and (not datasets or table.dataset in datasets)


def memory_models() -> tuple[str, ...]:
    """Models whose decoded memory slots are drawn."""
    return _MEMORY_MODELS


def cell_arrays(
    results: TableResults, cache_dir: Path, quick: bool, model: str, task: int
) -> dict[str, np.ndarray] | None:
    """Cached arrays of (model, offline, task, first seed)."""
    t = results.table
    cell = Cell(t.dataset, t.protocol, results.specs[model], "offline", task, t.seeds[0], quick)
    return cached_arrays(cache_dir, cell)
