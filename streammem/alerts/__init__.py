"""From scores to alerts: calibrators (p-values, thresholds, tail likelihoods) and the
:class:`AlertFilter` that judges a detector's scores with one and protects what it learns."""

from __future__ import annotations

from streammem.alerts.calibration import (
    Calibrator,
    ConformalCalibrator,
    QuantileThreshold,
    TailLikelihood,
)
from streammem.alerts.filter import AlertFilter, Judged

__all__ = [
    "AlertFilter",
    "Calibrator",
    "ConformalCalibrator",
    "Judged",
    "QuantileThreshold",
    "TailLikelihood",
]
