"""What a NAB run measures: a contender's cells and their figures, and the scorer check.

Kept apart from :mod:`bench.nab` (which runs the contenders) so that the report reads results
without importing the runner.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from bench.nab_score import (
    NAB,
    PROFILES,
    Series,
    corpus_score,
    normalised_scores,
    per_series_auroc,
    score_at,
    vus_pr,
)

__all__ = ["RECOMPUTED", "TOLERANCE", "Cell", "Measures", "ScorerCheck", "check_scorer", "measure"]

#: NAB's own code on the 41 shared files (the shared folder's README): standard, low FP, low FN.
RECOMPUTED = {
    "numenta": (75.52, 70.68, 78.99),
    "ARTime": (74.60, 66.49, 79.42),
    "randomCutForest": (59.40, 49.10, 65.86),
    "knncad": (58.53, 48.64, 63.50),
    "windowedGaussian": (41.42, 26.48, 48.45),
}
TOLERANCE = 0.1


@dataclasses.dataclass
class Cell:
    """One contender with one seed: each series' NAB anomaly score (likelihood) and alerts."""

    contender: str
    seed: int | None
    likelihood: dict[str, np.ndarray]
    alerts: dict[str, np.ndarray]
    seconds: float


@dataclasses.dataclass
class Measures:
    """One cell's figures: NAB per profile, NAB standard at the default alert threshold, and
    per series AUROC, VUS-PR and raw NAB score (standard)."""

    nab: dict[str, float]
    nab_at_alerts: float
    auroc: dict[str, float]
    vus_pr: dict[str, float]
    per_series: dict[str, float]

    @property
    def mean_auroc(self) -> float:
        return float(np.nanmean(list(self.auroc.values())))

    @property
    def mean_vus_pr(self) -> float:
        return float(np.nanmean(list(self.vus_pr.values())))


def measure(
    cell_scores: dict[str, np.ndarray],
    corpus: Sequence[Series],
    profiles: dict,
    alerts: dict[str, np.ndarray] | None = None,
    vus: bool = True,
) -> Measures:
    """Every figure of one set of per-series scores (``alerts``: the default threshold's)."""
    nab = normalised_scores(corpus, cell_scores, profiles)
    standard = profiles["standard"]
    at_alerts = math.nan
    if alerts is not None:
        flags = {n: a.astype(np.float64) for n, a in alerts.items()}
        at_alerts = score_at(corpus, flags, profiles, 1.0)["standard"]
    per_series = corpus_score(corpus, cell_scores, standard).per_series
    auroc = {s.name: per_series_auroc(s, cell_scores[s.name]) for s in corpus if s.windows}
    vus_values = {}
    if vus:
        vus_values = {s.name: vus_pr(s, cell_scores[s.name]) for s in corpus if s.windows}
    return Measures(nab, at_alerts, auroc, vus_values, per_series)


@dataclasses.dataclass
class ScorerCheck:
    detector: str
    ours: tuple[float, ...]
    recomputed: tuple[float, ...]

    @property
    def passed(self) -> bool:
        return all(abs(a - b) <= TOLERANCE for a, b in zip(self.ours, self.recomputed, strict=True))


def check_scorer(nab: NAB, corpus: Sequence[Series]) -> list[ScorerCheck]:
    """Our scorer on the published detectors' results against NAB's own recomputation."""
    profiles = nab.profiles()
    checks = []
    for detector, expected in RECOMPUTED.items():
        got = normalised_scores(corpus, nab.published(detector), profiles)
        checks.append(ScorerCheck(detector, tuple(got[p] for p in PROFILES), expected))
    return checks


# ---------------------------------------------------------------------- command line
