"""How well a detector models its stream: prequential reconstruction quality, label-free.

A detector takes in each record before it learns it; at that moment its reconstruction of the
record is an honest test of the model (the record was never trained on). :class:`FitTracker`
keeps, per encoded column and over a recent window (an exponential one, ``half_life`` records),

* the mean squared prequential error ``error_[j]`` (the model's own typical error on column
  ``j``: scores are measured against it, see :mod:`streammem.detectors.base`), and
* the column's mean and variance, so ``1 - error / variance`` is its **R²**: 1 when the model
  rebuilds the column perfectly, 0 when it does no better than the column's mean.

Anomalies must not teach the tracker that large errors are normal: an update clips each squared
error at ``clip`` times the column's current typical error, so a burst of faults moves the
window by a bounded amount while a real change of the model's fit (which persists) is followed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["FitTracker", "TrainingStats"]


@dataclasses.dataclass(frozen=True)
class TrainingStats:
    """Where a detector's learning stands: what the service exports and ``streammem run``
    prints.

    ``fit_r2`` is each field's prequential R² over the recent window (records rebuilt before
    they were learned; see :class:`FitTracker`), NaN for a field that has not varied; empty
    before the model exists.
    """

    n_updates: int = 0
    losses: Mapping[str, float] | None = None
    memory_usage: float | None = None
    fit_r2: Mapping[Hashable, float] = dataclasses.field(default_factory=dict)

    def fit_summary(self) -> str | None:
        """``"min 0.91 (s05), median 0.98 over 12 fields"``; None without a fit yet."""
        finite = {k: v for k, v in self.fit_r2.items() if np.isfinite(v)}
        if not finite:
            return None
        worst = min(finite, key=finite.get)
        median = float(np.median(list(finite.values())))
        return f"min {finite[worst]:.2f} ({worst}), median {median:.2f} over {len(finite)} fields"


_ERROR_FLOOR = 1e-3  # scaled units (a standardised column varies by ~1): R² 0.999


class FitTracker:
    """Per-column prequential error, mean and variance over an exponential window.

    Parameters
    ----------
    width
        Encoded columns.
    half_life
        Records after which an observation weighs half (the window's length scale).
    clip
        An update takes each squared error at most ``clip`` times the column's typical one.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> tracker = FitTracker(width=2, half_life=500)
    >>> for _ in range(20):
    ...     x = rng.normal(size=(100, 2))
    ...     rebuilt = np.column_stack([x[:, 0] + rng.normal(0, 0.1, 100), np.zeros(100)])
    ...     tracker.update(x, rebuilt)
    >>> rebuilt_well, not_at_all = tracker.r2_()
    >>> round(rebuilt_well, 2), abs(not_at_all) < 0.05
    (0.99, True)
    """

    def __init__(self, width: int, half_life: float = 2048.0, clip: float = 9.0) -> None:
        self.width = width
        self.half_life = half_life
        self.clip = clip
        self.weight_ = 0.0
        self.error_sum_ = np.zeros(width)
        self.value_sum_ = np.zeros(width)
        self.square_sum_ = np.zeros(width)
        self.n_seen_ = 0

    def update(self, scaled: np.ndarray, reconstruction: np.ndarray) -> None:
        """Take in a chunk of records (rows, as the model reads them) and their reconstructions
        by the model as it stood before learning them."""
        scaled = np.asarray(scaled, dtype=np.float64).reshape(len(scaled), -1)
        reconstruction = np.asarray(reconstruction, dtype=np.float64).reshape(scaled.shape)
        n = len(scaled)
        if n == 0:
            return
        squared = np.square(scaled - reconstruction)
        if self.weight_ > 0:
            squared = np.minimum(squared, self.clip * self.error_)
        decay = 0.5 ** (n / self.half_life)
        self.weight_ = decay * self.weight_ + n
        self.error_sum_ = decay * self.error_sum_ + squared.sum(axis=0)
        self.value_sum_ = decay * self.value_sum_ + scaled.sum(axis=0)
        self.square_sum_ = decay * self.square_sum_ + np.square(scaled).sum(axis=0)
        self.n_seen_ += n

    @property
    def error_(self) -> np.ndarray:
        """Each column's typical squared error (at least a small floor)."""
        if self.weight_ == 0:
            return np.ones(self.width)
        return np.maximum(self.error_sum_ / self.weight_, _ERROR_FLOOR)

    @property
    def variance_(self) -> np.ndarray:
        """Each column's variance over the window."""
        if self.weight_ == 0:
            return np.zeros(self.width)
        mean = self.value_sum_ / self.weight_
        return np.maximum(self.square_sum_ / self.weight_ - mean**2, 0.0)

    def r2_(self, owners: Sequence[Hashable] | None = None) -> list[float] | dict:
        """R² per column, or per owner (a field's columns pooled) when ``owners`` names the
        owner of each column; NaN where the values have not varied."""
        error = self.error_sum_ / self.weight_ if self.weight_ else np.full(self.width, np.nan)
        variance = self.variance_
        if owners is None:
            return [_r2(e, v) for e, v in zip(error, variance, strict=True)]
        pooled: dict[Hashable, list[float]] = {}
        for owner, e, v in zip(owners, error, variance, strict=True):
            sums = pooled.setdefault(owner, [0.0, 0.0])
            sums[0] += e
            sums[1] += v
        return {owner: _r2(e, v) for owner, (e, v) in pooled.items()}

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "half_life": self.half_life,
            "clip": self.clip,
            "weight": self.weight_,
            "n_seen": self.n_seen_,
            "sums": torch.from_numpy(
                np.stack([self.error_sum_, self.value_sum_, self.square_sum_])
            ),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FitTracker:
        tracker = cls(int(state["width"]), float(state["half_life"]), float(state["clip"]))
        tracker.weight_ = float(state["weight"])
        tracker.n_seen_ = int(state["n_seen"])
        sums = np.asarray(state["sums"], dtype=np.float64)
        tracker.error_sum_, tracker.value_sum_, tracker.square_sum_ = sums.copy()
        return tracker


def _r2(error: float, variance: float) -> float:
    return float(1.0 - error / variance) if variance > 1e-12 else float("nan")
