"""Reproduce the papers' tables: ``python -m bench.reproduce [--paper ...] [--quick]``.

Runs every selected cell (cached and resumable, see :mod:`bench.runner`), then rewrites the
reports under ``--out`` from everything cached: one CSV of cells and one Markdown table per
(paper, data set), ``summary.csv`` and the pictures (see :mod:`bench.report`).

Examples
--------
The CI smoke test (tiny subsets, one epoch, results under ``bench/cache/quick/``)::

    python -m bench.reproduce --quick

MNIST one-class AE and MemAE, all ten classes, on one pinned core::

    taskset -c 1 python -m bench.reproduce --paper memae --dataset mnist --models AE,MemAE
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from bench.cells import Cell
from bench.cli import BENCH_DIR, bench_parser, parse_ints, report_dir
from bench.papers import PaperTable, tables_for
from bench.report import write_reports
from bench.runner import run_cell
from bench.tables import record_run
from bench.zoo import model_specs

__all__ = ["iter_cells", "main", "parse_args"]

COLUMNS = ("offline", "streaming")


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags (see ``--help``)."""
    parser = bench_parser(
        __name__,
        __doc__,
        quick="tiny subsets, one epoch",
        data="mnist/, cifar-10/, ...",
        download=True,
        out="papers",
    )
    parser.add_argument("--paper", help="memae, memgan, memorizer (comma-separated; default all)")
    parser.add_argument("--dataset", help="mnist, fashion, kmnist, cifar10, kddcup (default all)")
    parser.add_argument("--models", help="model names as in the tables, e.g. AE,MemAE")
    parser.add_argument("--classes", help="class indices, e.g. 0-9 or 0,3 (KDD: run indices)")
    parser.add_argument("--seeds", help="training seeds, e.g. 0 or 0-2 (default 0)")
    parser.add_argument("--columns", default="offline,streaming", help="offline and/or streaming")
    parser.add_argument(
        "--stream-steps",
        type=int,
        help="streaming: gradient steps per mini-batch (default: epochs)",
    )
    parser.add_argument("--device", default="cpu", help="torch device for training (cpu, cuda)")
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("STREAMMEM_THREADS", "1")),
        help="torch CPU threads (env STREAMMEM_THREADS, default 1)",
    )
    parser.add_argument("--cache-dir", type=Path, help="cell cache (default bench/cache/cells)")
    parser.add_argument("--no-report", action="store_true", help="train only, write no report")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing, rewrite the reports from the cache",
    )
    args = parser.parse_args(argv)
    sub = Path("quick") if args.quick else Path()
    args.cache_dir = args.cache_dir or BENCH_DIR / "cache" / sub / "cells"
    args.out = report_dir(args, "papers", BENCH_DIR / "cache" / "quick" / "results")
    return args


def _quick_table(table: PaperTable) -> PaperTable:
    return PaperTable(
        table.paper,
        table.dataset,
        table.protocol,
        table.models,
        table.metrics,
        table.tasks[:2],
        table.seeds[:1],
    )


def iter_cells(args: argparse.Namespace) -> Iterator[tuple[PaperTable, Cell]]:
    """Every (table, cell) the flags select, tables in order, offline before streaming."""
    models, columns = _names(args.models), _names(args.columns) or list(COLUMNS)
    classes, seeds = parse_ints(args.classes), parse_ints(args.seeds)
    seen: set[str] = set()
    for table in tables_for(_names(args.paper), _names(args.dataset)):
        table = _quick_table(table) if args.quick else table
        specs = [s for s in model_specs(table.protocol, table.dataset) if s.name in table.models]
        for spec in specs:
            if models and spec.name not in models:
                continue
            for column in columns:
                if column == "streaming" and spec.estimator is None:
                    continue
                for task in classes if classes is not None else table.tasks:
                    for seed in seeds if seeds is not None else table.seeds:
                        cell = Cell(
                            table.dataset,
                            table.protocol,
                            spec,
                            column,
                            task,
                            seed,
                            args.quick,
                            args.stream_steps,
                        )
                        if cell.key() not in seen:
                            seen.add(cell.key())
                            yield table, cell


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected cells, then write the reports; returns the exit status."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.report_only:
        _run_cells(args, argv)
    if not args.no_report:
        write_reports(args)
        print(f"reports in {args.out}")
    return 0


def _run_cells(args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    started = time.perf_counter()
    cells = list(iter_cells(args))
    bar = tqdm(cells, desc="cells", unit="cell", dynamic_ncols=True)
    counts: dict[str, int] = {}
    problems: dict[tuple[str, str], list[str]] = {}  # one line per cause, not per cell
    for table, cell in bar:
        bar.set_description(
            f"{table.dataset} {cell.spec.name} {cell.column} c{cell.task} s{cell.seed}"
        )
        result = run_cell(cell, args.cache_dir, args.data_root, args.download, args.device, bar)
        counts[result.status] = counts.get(result.status, 0) + 1
        if result.status != "ok":
            where = f"{table.name} {cell.spec.name} task {cell.task}"
            problems.setdefault((result.status, result.note), []).append(where)
    wall = time.perf_counter() - started
    command = "python -m bench.reproduce " + shlex.join(sys.argv[1:] if argv is None else argv)
    record_run(args, command.strip(), wall, counts)
    for (status, note), where in problems.items():
        more = f" and {len(where) - 1} more cells" if len(where) > 1 else ""
        print(f"{where[0]}{more}: {status}: {note}")
    print(f"{len(cells)} cells in {wall:.0f} s: {counts}; cells cached in {args.cache_dir}")


if __name__ == "__main__":
    sys.exit(main())
