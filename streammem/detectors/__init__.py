"""Streaming detectors: one file per algorithm, all River ``AnomalyDetector`` s."""

from __future__ import annotations

from streammem.detectors.ae import AE
from streammem.detectors.base import MemoryDetector
from streammem.detectors.memae import MemAE
from streammem.detectors.memgan import MemGAN
from streammem.detectors.memorizer import Memorizer
from streammem.detectors.rftm import RFTM

__all__ = [
    "AE",
    "RFTM",
    "MemAE",
    "MemGAN",
    "Memorizer",
    "MemoryDetector",
]
