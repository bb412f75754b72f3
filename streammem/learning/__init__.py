"""How the detectors train their networks: the schedule (when and how much), the optimisation
strategies, the prequential fit tracker and the NumPy mirror that scores a trained MLP.

Below the detectors and above :mod:`streammem.nn`: it trains pure modules and knows nothing of
records or streams' fields."""

from __future__ import annotations

from streammem.learning.fit import FitTracker, TrainingStats
from streammem.learning.schedule import Schedule

__all__ = ["FitTracker", "Schedule", "TrainingStats"]
