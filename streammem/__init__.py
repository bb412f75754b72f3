"""streammem: online anomaly detection with memory-augmented autoencoders behind River's API."""

from __future__ import annotations

from streammem.detectors import (
    AE,
    RFTM,
    MemAE,
    MemGAN,
    Memorizer,
    MemoryDetector,
    detector_from_state,
    load,
)
from streammem.features import FeatureEncoder
from streammem.schedule import Schedule

__version__ = "0.1.0"

__all__ = [
    "AE",
    "RFTM",
    "FeatureEncoder",
    "MemAE",
    "MemGAN",
    "Memorizer",
    "MemoryDetector",
    "Schedule",
    "__version__",
    "detector_from_state",
    "load",
]
