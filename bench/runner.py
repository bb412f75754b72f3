"""Run one bench cell (:class:`bench.cells.Cell`): load the task's data, train a model (offline
or streaming), score it.

Results are cached by the hash of the cell's full configuration in ``bench/cache/`` (JSON
metrics + an ``.npz`` with the test scores and decoded memory slots), so an interrupted run
resumes where it stopped and a changed hyper-parameter retrains.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.cells import QUICK_SIZES, Cell, CellResult, TaskData
from bench.datasets import DataMissing, Split, get_dataset
from bench.protocols import (
    TaskSplit,
    hold_out,
    kdd_split,
    one_class_split,
    ranking_metrics,
    roco_split,
    threshold_metrics,
)
from bench.streaming import stream_scores
from bench.zoo import TrainConfig, build_model, trace_epochs
from streammem.learning.training import make_trainer

__all__ = [
    "cached_arrays",
    "decode_slots",
    "fit",
    "load_task",
    "run_cell",
    "score",
]


@lru_cache(maxsize=4)
def _load(dataset: str, root: str | None, download: bool) -> tuple[Split, Split]:
    data = get_dataset(dataset, root, download)
    if dataset == "kddcup":
        full = data.load(True)
        return full, full
    return data.load(True), data.load(False)


def _split(protocol: str, train: Split, test: Split, task: int) -> TaskSplit:
    if protocol == "one_class":
        return one_class_split(train.y, test.y, task)
    if protocol == "roco":
        return roco_split(train.y, test.y, task)
    return kdd_split(train.y, seed=task)


def _subsample(rows: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(rows, size, replace=False)) if len(rows) > size else rows


def _scale(scaling: str, x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``unit``: x/255; ``signed``: [-1, 1]; ``minmax`` / ``minmax_train``: per column over
    ``reference``."""
    x = x.astype(np.float32)
    if scaling == "unit":
        return x / 255.0
    if scaling == "signed":
        return x / 127.5 - 1.0
    low, high = reference.min(axis=0), reference.max(axis=0)
    return (x - low) / np.where(high > low, high - low, 1.0).astype(np.float32)


def load_task(cell: Cell, root: str | None = None, download: bool = False) -> TaskData:
    """The cell's train / validation / test arrays, scaled as its model expects."""
    train, test = _load(cell.dataset, root, download)
    split = _split(cell.protocol, train, test, cell.task)
    if cell.protocol == "one_class" and cell.train().patience is not None:
        split = hold_out(split)  # one-class models that select their epoch on normal data
    rows = {"train": split.train, "val": split.val}
    positions = np.arange(len(split.test))
    if cell.quick:
        rng = np.random.default_rng(0)
        rows = {k: _subsample(v, QUICK_SIZES[k], rng) for k, v in rows.items()}
        positions = _subsample(positions, QUICK_SIZES["test"], rng)
    rows["test"] = split.test[positions]
    labels = split.test_labels[positions]
    # minmax (KDD) follows DAGMM's preprocessing: min and max over every row of the data set;
    # minmax_train (an ablation) takes them over the training rows only.
    reference = train.x[rows["train"]] if cell.spec.scaling == "minmax_train" else train.x
    return TaskData(
        _scale(cell.spec.scaling, train.x[rows["train"]], reference),
        _scale(cell.spec.scaling, train.x[rows["val"]], reference),
        _scale(cell.spec.scaling, test.x[rows["test"]], reference),
        labels,
    )


@torch.no_grad()
def score(
    model: nn.Module,
    x: np.ndarray,
    batch_size: int = 1024,
    device: str = "cpu",
    kind: str = "model",
) -> np.ndarray:
    """Per-sample anomaly scores of ``x`` with ``model.anomaly_score`` (eval mode).

    ``kind="relative"`` divides each score by the sample's mean square (see ``ModelSpec``).
    """
    model.eval()
    parts = [
        model.anomaly_score(torch.from_numpy(x[i : i + batch_size]).to(device)).cpu().numpy()
        for i in range(0, len(x), batch_size)
    ]
    scores = np.concatenate(parts).astype(np.float64)
    if kind == "relative":
        energy = np.square(x.reshape(len(x), -1), dtype=np.float64).mean(axis=1)
        return scores / np.maximum(energy, 1e-12)
    return scores


def fit(
    model: nn.Module,
    x_train: np.ndarray,
    x_val: np.ndarray,
    config: TrainConfig,
    seed: int,
    device: str = "cpu",
    progress: Any = None,
    on_epoch: Callable[[int], None] | None = None,
) -> int:
    """Train for ``config.max_epochs`` epochs (early stopping on the validation score when
    ``config.patience`` is set and validation rows exist); returns the epochs run.

    ``on_epoch(epoch)`` is called after each epoch's updates (the trace; it must not train).
    """
    trainer = make_trainer(model, config.learning_rate, config.weight_decay)
    rng = np.random.default_rng(seed)
    best, best_state, waited = np.inf, None, 0
    for epoch in range(1, config.max_epochs + 1):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            if len(batch) > 1:  # BatchNorm needs two rows
                trainer.step(torch.from_numpy(x_train[batch]).to(device))
        if progress is not None:
            progress.set_postfix(epoch=epoch)
        if on_epoch is not None:
            on_epoch(epoch)
        if config.patience is None or len(x_val) == 0:
            continue
        val = float(score(model, x_val, device=device).mean())
        if val < best:
            best, best_state, waited = val, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return epoch


@torch.no_grad()
def decode_slots(model: nn.Module) -> np.ndarray | None:
    """What each memory slot decodes to (slots, *input_shape), or ``None`` without a memory."""
    model.eval()
    if hasattr(model, "decode_memory"):
        return model.decode_memory().cpu().numpy()
    memory = getattr(model, "memory", None)
    if memory is None:
        return None
    if hasattr(memory, "reads"):
        slots = memory.reads[-1].slots
    elif hasattr(memory, "slots") and not getattr(model, "per_position", False):
        slots = memory.slots
    else:
        return None
    decoded = model.decoder(slots.reshape(-1, *model.latent_shape))
    return decoded.reshape(len(slots), *model.input_shape).cpu().numpy()


def _metrics(protocol: str, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    if protocol == "kdd":
        return threshold_metrics(labels, scores) | ranking_metrics(labels, scores)
    return ranking_metrics(labels, scores)


def _tracer(
    cell: Cell, model: nn.Module, data: TaskData, device: str, trace: list[dict[str, float]]
) -> Callable[[int], None] | None:
    """The ``on_epoch`` hook of a traced cell (``None``: not traced): appends the mean
    validation score after every epoch, and the test metrics after the epochs of
    :func:`~bench.zoo.trace_epochs`, to ``trace``."""
    config = cell.train()
    if not config.trace:
        return None
    marks = set(trace_epochs(config.max_epochs))

    def record(epoch: int) -> None:
        point: dict[str, float] = {"epoch": epoch}
        if len(data.val):
            point["val"] = float(score(model, data.val, device=device).mean())
        if epoch in marks:
            scores = score(model, data.test, device=device, kind=cell.spec.score)
            point |= _metrics(cell.protocol, data.test_labels, scores)
        trace.append(point)

    return record


def _offline(
    cell: Cell, data: TaskData, device: str, progress: Any
) -> tuple[np.ndarray, int, Any, list]:
    model = build_model(cell.spec, data.train.shape[1:]).to(device)
    trace: list[dict[str, float]] = []
    hook = _tracer(cell, model, data, device, trace)
    epochs = fit(model, data.train, data.val, cell.train(), cell.seed, device, progress, hook)
    scores = score(model, data.test, device=device, kind=cell.spec.score)
    return scores, epochs, decode_slots(model), trace


def _streaming(cell: Cell, data: TaskData, device: str) -> tuple[np.ndarray, int, Any, list]:
    return stream_scores(cell, data, device), 1, None, []


def _cache_paths(cache_dir: Path, cell: Cell) -> tuple[Path, Path]:
    stem = cache_dir / f"{cell.dataset}-{cell.protocol}-{cell.key()}"
    return stem.with_suffix(".json"), stem.with_suffix(".npz")


def run_cell(
    cell: Cell,
    cache_dir: Path,
    root: str | None = None,
    download: bool = False,
    device: str = "cpu",
    progress: Any = None,
) -> CellResult:
    """Train and evaluate ``cell`` unless its result is cached; cache what it computed."""
    meta_path, arrays_path = _cache_paths(cache_dir, cell)
    if meta_path.is_file():
        return CellResult(**json.loads(meta_path.read_text())["result"])
    try:
        data = load_task(cell, root, download)
    except DataMissing as missing:
        return CellResult("data missing", note=str(missing))
    torch.manual_seed(cell.seed)
    start = time.perf_counter()
    if cell.column == "streaming":
        scores, epochs, slots, trace = _streaming(cell, data, device)
    else:
        scores, epochs, slots, trace = _offline(cell, data, device, progress)
    metrics = _metrics(cell.protocol, data.test_labels, scores)
    result = CellResult("ok", metrics, time.perf_counter() - start, epochs, trace=trace)
    cache_dir.mkdir(parents=True, exist_ok=True)
    arrays = {"scores": scores.astype(np.float32), "labels": data.test_labels.astype(np.int8)}
    if slots is not None:
        arrays["slots"] = slots.astype(np.float32)
    np.savez_compressed(arrays_path, **arrays)
    meta_path.write_text(
        json.dumps({"config": cell.config(), "result": asdict(result)}, default=str, indent=1)
    )
    return result


def cached_arrays(cache_dir: Path, cell: Cell) -> dict[str, np.ndarray] | None:
    """The cached test scores / labels / decoded slots of ``cell``, if it has run."""
    _, arrays_path = _cache_paths(cache_dir, cell)
    if not arrays_path.is_file():
        return None
    with np.load(arrays_path) as arrays:
        return {k: arrays[k] for k in arrays.files}
