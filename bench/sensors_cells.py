"""What ``python -m bench.sensors`` runs and what it yields, shared with its reports: the
contenders (parsed from the command line), the columns, a cell's result and a protocol check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import re
from functools import lru_cache
from typing import Any

import numpy as np

from bench.cli import BENCH_DIR, variant_kwargs, variant_sources
from bench.skab import Counts

__all__ = [
    "ABLATION",
    "COLUMNS",
    "DETECTORS",
    "HEADLINE",
    "LEADERBOARD_MODELS",
    "STREAMING_MARGINS",
    "CellResult",
    "Check",
    "Contender",
    "parse_contender",
]

PACKAGE_DIR = BENCH_DIR.parent / "streammem"
#: Streaming columns and the margin on their limit: the Vanilla-AE rule's (fixed before the
#: first run), and none (quantile 0.99 alone, AlertFilter's default alpha; added after it).
STREAMING_MARGINS = {"streaming": 5 / 2, "streaming-q99": 1.0}
COLUMNS = ("offline", *STREAMING_MARGINS)
DETECTORS = ("MemAE", "Memorizer", "RFTM", "AE")
LEADERBOARD_MODELS = {"T2Q": "T-squared+Q (PCA)", "IForest": "Isolation forest"}
TOLERANCE = 0.005
HEADLINE = [
    "T2Q",
    "IForest",
    "flag-all",
    "nomodel",
    "nomodel@60",
    *(f"{name}{window}" for name in DETECTORS for window in ("", "@60")),
]
ABLATION = [
    *(f"{who}@{size}" for size in (15, 30, 120) for who in ("MemAE", "nomodel")),
    *(
        f"{who}@60:{feature}"
        for feature in ("values", "last", "mean", "std", "slope", "last_minus_mean")
        for who in ("MemAE", "nomodel")
    ),
    "MemAE[encoder=FeatureEncoder(soft_clip=None)]",
    "MemAE[encoder=FeatureEncoder(soft_clip=None)]@60",
]
# What decides a cell besides the package: the scoring (sensors.py), the contenders (this
# module) and upstream's rules (skab.py).
_BENCH_SOURCES = tuple(BENCH_DIR / name for name in ("sensors.py", "sensors_cells.py", "skab.py"))


@dataclasses.dataclass(frozen=True)
class Contender:
    """A row of the tables: a detector (or reference), its parameters and its window."""

    text: str
    kind: str  # leaderboard, flag-all, nomodel, streammem
    model: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    window: tuple[int, tuple[str, ...]] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return COLUMNS if self.kind in ("nomodel", "streammem") else ("offline",)

    @property
    def all_files(self) -> bool:
        """Leaderboard rows always run on every file: the protocol check needs them all."""
        return self.kind in ("leaderboard", "flag-all")

    def new_window(self) -> Any:
        import streammem

        if self.window is None:
            return None
        size, features = self.window
        return streammem.TimeWindow(size=size, **({"features": features} if features else {}))

    def new_detector(self) -> Any:
        import streammem

        return getattr(streammem, self.model)(**variant_kwargs(self.params))

    def fingerprint(self) -> str:
        """What, besides the data, decides this contender's results."""
        if self.kind == "leaderboard":
            return f"scikit-learn {importlib.metadata.version('scikit-learn')} {_source_hash()}"
        return _source_hash()


_CONTENDER = re.compile(
    r"^(?P<name>[\w-]+)(\[(?P<params>[^\]]*)\])?(@(?P<size>\d+)(:(?P<features>[\w+]+))?)?$"
)


def parse_contender(text: str) -> Contender:
    """``T2Q``, ``IForest``, ``flag-all``, ``nomodel`` or a streammem detector, with optional
    constructor overrides and window: ``MemAE[schedule=Schedule(budget=4)]@30:mean+std``.

    Examples
    --------
    >>> parse_contender("MemAE@30:mean+std").window
    (30, ('mean', 'std'))
    >>> parse_contender("nomodel@60").kind
    'nomodel'
    """
    text = text.strip()
    match = _CONTENDER.match(text)
    if match is None:
        raise ValueError(f"cannot read contender {text!r}; e.g. MemAE, MemAE@60, nomodel@30:std")
    name, params = match["name"], match["params"]
    window = None
    if match["size"]:
        features = tuple(match["features"].split("+")) if match["features"] else ()
        window = (int(match["size"]), features)
    if name in LEADERBOARD_MODELS or name == "flag-all":
        if params or window:
            raise ValueError(f"{text!r}: the leaderboard rows take no parameters or window")
        kind = "leaderboard" if name in LEADERBOARD_MODELS else "flag-all"
        return Contender(text, kind, name)
    if name == "nomodel":
        if params:
            raise ValueError(f"{text!r}: nomodel takes no parameters")
        return Contender(text, "nomodel", window=window)
    if name not in DETECTORS:
        raise ValueError(
            f"unknown contender {name!r}; choose from {[*LEADERBOARD_MODELS, 'flag-all']}, "
            f"nomodel or {list(DETECTORS)}"
        )
    contender = Contender(text, "streammem", name, variant_sources(params or ""), window)
    if window is not None:
        contender.new_window().check_params()
    return contender


@lru_cache(maxsize=1)
def _source_hash() -> str:
    digest = hashlib.sha1()
    for path in [*sorted(PACKAGE_DIR.rglob("*.py")), *_BENCH_SOURCES]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class CellResult:
    """One contender in one column, file by file."""

    contender: str
    column: str
    status: str  # ok, data missing
    files: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def pooled(self, rule: str) -> tuple[float, float, float] | None:
        """F1, FAR %, MAR % under ``rule``, with counts summed over files."""
        counts = [Counts(*f["counts"][rule]) for f in self.files.values() if rule in f["counts"]]
        if not counts:
            return None
        return sum(counts, Counts()).scores()

    def mean_auroc(self) -> float | None:
        values = [f["auroc"] for f in self.files.values() if f["auroc"] is not None]
        return float(np.mean(values)) if values else None


@dataclasses.dataclass
class Check:
    """A leaderboard row reproduced: ours (F1, FAR, MAR) against the published one."""

    name: str
    ours: tuple[float, float, float]
    published: tuple[float, float, float]

    @property
    def passed(self) -> bool:
        return abs(self.ours[0] - self.published[0]) <= TOLERANCE
