"""The results of each paper table's grid of cells, and the log of the runs that made them.

A cell's result comes from the cell cache, else from the table's committed cells CSV when a row
there carries its key, i.e. came from the same configuration (see :mod:`bench.report`, which
writes both). Every invocation is appended to ``runs.jsonl``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.cells import Cell, CellResult
from bench.datasets import CIFAR10, DataMissing, get_dataset
from bench.papers import TABLES, PaperTable
from bench.runner import cached_arrays
from bench.zoo import ModelSpec, model_specs

__all__ = [
    "COLUMNS",
    "TableResults",
    "cell_arrays",
    "collect",
    "committed_cells",
    "lookup",
    "memory_models",
    "read_runs",
    "record_run",
    "runs_for",
]

COLUMNS = ("offline", "streaming")
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
        for column in COLUMNS:
            for task in tasks:
                for seed in table.seeds:
                    cell = Cell(table.dataset, table.protocol, spec, column, task, seed, quick)
                    result = lookup(cache_dir, cell, committed or {})
                    if result is not None:
                        cells[(spec.name, column, task, seed)] = result
    return TableResults(table, specs, cells, _missing_data(table.dataset, root))


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
