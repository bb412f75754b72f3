"""The papers' tables the bench reproduces and their reported numbers.

``reported.csv`` (beside this module) holds every reported value as a fraction, transcribed from
the papers (``research/papers.md`` §1.5, §3.4, §4.4 and the Memorizer paper's Tables 1-3):
columns ``paper,dataset,protocol,model,metric,task,value`` where ``task`` is a class index or
``mean`` (the paper's printed average).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["TABLES", "PaperTable", "reported", "tables_for"]

_REPORTED = Path(__file__).with_name("reported.csv")


@dataclass(frozen=True)
class PaperTable:
    """One (paper, data set) table: its protocol, models in column order, metrics and tasks."""

    paper: str
    dataset: str
    protocol: str
    models: tuple[str, ...]
    metrics: tuple[str, ...]
    tasks: tuple[int, ...] = tuple(range(10))
    seeds: tuple[int, ...] = (0,)

    @property
    def name(self) -> str:
        """``<paper>_<dataset>``, the stem of the table's result files."""
        return f"{self.paper}_{self.dataset}"


_ROCO_MODELS = (
    "AE",
    "SAE",
    "DAE",
    "VAE",
    "MemAE",
    "MNAD",
    "SSPCAB",
    "Memorizer",
    "RFTM",
    "RFTM-noforget",
    "RFTM-projection",
    "RFTM-cascade",
)
_RANKING = ("auroc", "auprc", "best_f1")
_SEEDS = (0, 1, 2)

TABLES: tuple[PaperTable, ...] = (
    # MNIST one-class: the papers average several runs (MemAE 3, MEMGAN 10); we run 3 seeds.
    PaperTable(
        "memae", "mnist", "one_class", ("AE", "MemAE-nonSpar", "MemAE"), ("auroc",), seeds=_SEEDS
    ),
    PaperTable("memae", "cifar10", "one_class", ("AE", "MemAE-nonSpar", "MemAE"), ("auroc",)),
    # KDD: the 20 seeded runs of the DAGMM protocol are the tasks (one split each).
    PaperTable(
        "memae",
        "kddcup",
        "kdd",
        ("AE", "MemAE-nonSpar", "MemAE"),
        ("precision", "recall", "f1"),
        tasks=tuple(range(20)),
    ),
    PaperTable("memgan", "mnist", "one_class", ("MemAE", "MEMGAN"), ("auroc",), seeds=_SEEDS),
    PaperTable("memgan", "cifar10", "one_class", ("MemAE", "MEMGAN"), ("auroc",)),
    PaperTable("memorizer", "mnist", "roco", _ROCO_MODELS, _RANKING),
    PaperTable("memorizer", "fashion", "roco", _ROCO_MODELS, _RANKING),
    PaperTable("memorizer", "kmnist", "roco", _ROCO_MODELS, _RANKING),
)


@lru_cache(maxsize=1)
def _reported() -> dict[tuple[str, ...], float]:
    with open(_REPORTED, newline="") as handle:
        return {
            (r["paper"], r["dataset"], r["model"], r["metric"], r["task"]): float(r["value"])
            for r in csv.DictReader(handle)
        }


def reported(table: PaperTable, model: str, metric: str, task: int | str) -> float | None:
    """The paper's value for one class (``task`` an int) or its average (``"mean"``)."""
    return _reported().get((table.paper, table.dataset, model, metric, str(task)))


def tables_for(papers: list[str] | None, datasets: list[str] | None) -> list[PaperTable]:
    """The tables selected by paper and data set names (``None`` = all)."""
    return [
        t
        for t in TABLES
        if (not papers or t.paper in papers) and (not datasets or t.dataset in datasets)
    ]
