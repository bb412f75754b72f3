"""What a bench cell is, what it yields, and the data it runs on (see :mod:`bench.runner`).

A *cell* is (data set, protocol, model, column, task, seed); ``task`` is the class (one-class,
ROCO) or the run index (KDD). Its :meth:`Cell.key`, the hash of its full configuration, names
its cached result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from bench.zoo import ModelSpec, TrainConfig, train_config

__all__ = ["CACHE_VERSION", "QUICK_SIZES", "Cell", "CellResult", "TaskData"]

CACHE_VERSION = 1
QUICK_SIZES = {"train": 256, "val": 64, "test": 512, "epochs": 1}


@dataclass(frozen=True)
class Cell:
    """One unit of work; ``root``/``download`` only locate data and are not part of its key."""

    dataset: str
    protocol: str
    spec: ModelSpec
    column: str
    task: int
    seed: int
    quick: bool = False
    stream_steps: int | None = None

    def train(self) -> TrainConfig:
        """The offline optimisation (one epoch in quick mode)."""
        train = train_config(self.protocol, self.spec)
        return replace(train, max_epochs=QUICK_SIZES["epochs"]) if self.quick else train

    def steps_per_batch(self) -> int:
        """Gradient steps per streamed mini-batch (streaming column).

        By default the offline column's epochs: both columns then take the same number of
        gradient steps, while the streaming one still sees each record in a single pass.
        """
        return self.train().max_epochs if self.stream_steps is None else self.stream_steps

    def config(self) -> dict[str, Any]:
        """Everything that determines the result (the cache key)."""
        streaming = (
            {"steps_per_batch": self.steps_per_batch()} if self.column == "streaming" else {}
        )
        return {
            "version": CACHE_VERSION,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "model": asdict(self.spec) | {"train": asdict(self.train())},
            "column": self.column,
            "task": self.task,
            "seed": self.seed,
            "quick": QUICK_SIZES if self.quick else None,
            **streaming,
        }

    def key(self) -> str:
        """Short SHA-1 of :meth:`config`, the cell's cache file name."""
        text = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:20]


@dataclass
class CellResult:
    """Metrics (fractions), wall seconds, epochs run and a status (``ok`` / ``data missing``).

    ``trace`` (traced cells only): one dict per epoch, ``epoch``, ``val`` (mean validation
    score, when there are validation rows) and, after some epochs, the test metrics.
    """

    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    epochs: int = 0
    note: str = ""
    trace: list[dict[str, float]] = field(default_factory=list)


@dataclass
class TaskData:
    """Scaled float32 inputs of one task and its test labels (1 = anomaly)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
