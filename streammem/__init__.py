"""streammem: online anomaly detection with memory-augmented autoencoders behind River's API."""

from __future__ import annotations

from streammem.alerts.calibration import (
    Calibrator,
    ConformalCalibrator,
    QuantileThreshold,
    TailLikelihood,
)
from streammem.alerts.filter import AlertFilter
from streammem.detectors import (
    AE,
    RFTM,
    MemAE,
    MemGAN,
    Memorizer,
    MemoryDetector,
)
from streammem.explain import TopFields
from streammem.features.encoder import FeatureEncoder
from streammem.interface import StreamDetector
from streammem.learning.schedule import Schedule
from streammem.nn.network import Network
from streammem.persistence import from_state, load, save
from streammem.series import SeriesFeatures, for_series, series_detector
from streammem.windows import TimeWindow, WindowedFilter

__version__ = "0.1.0"

__all__ = [
    "AE",
    "RFTM",
    "AlertFilter",
    "Calibrator",
    "ConformalCalibrator",
    "FeatureEncoder",
    "MemAE",
    "MemGAN",
    "Memorizer",
    "MemoryDetector",
    "Network",
    "QuantileThreshold",
    "Schedule",
    "SeriesFeatures",
    "StreamDetector",
    "TailLikelihood",
    "TimeWindow",
    "TopFields",
    "WindowedFilter",
    "__version__",
    "for_series",
    "from_state",
    "load",
    "save",
    "series_detector",
]
