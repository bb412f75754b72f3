"""The streaming column: one pass of ``learn_many`` with the public estimator, then ``score_many``.

Each record arrives once; every full mini-batch drives ``steps_per_batch`` gradient steps (by
default as many as the offline column's epochs, see :meth:`bench.cells.Cell.steps_per_batch`):
the estimator gets ``Schedule(young_records=1, replay_size=batch_size)``, which turns off the
streaming defaults' young-model rules, replay and trimming, so the column measures one pass of
the paper's optimisation. The estimator's own choices stay: the memory's slots start at real
encodings and an MLP decoder's output layer starts at zero.

The estimator gets the cell's model hyper-parameters, batch size, learning rate and seed, and an
identity :class:`~streammem.FeatureEncoder` (``scaling=None``) because the bench has already scaled
the data exactly as in the offline column. Model hyper-parameters the estimator does not expose
keep the estimator's defaults; :func:`estimator_params` says which (none for the zoo's cells,
checked by ``tests/test_bench.py``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np

from bench.cells import Cell, TaskData
from bench.zoo import train_config
from streammem.nn.network import fold_network_params

__all__ = ["CHUNK", "build_estimator", "estimator_params", "stream_scores"]

CHUNK = 1024  # rows handed to learn_many per call (the estimator re-batches them)
_MLP_DEFAULTS = {"hidden_sizes": (512, 256), "latent_size": 128}  # the offline mlp backbone's


def _estimator_class(name: str) -> type:
    """``streammem.<name>``, else ``streammem.detectors.<name lower>.<name>`` (not exported yet)."""
    import streammem

    if hasattr(streammem, name):
        return getattr(streammem, name)
    return getattr(importlib.import_module(f"streammem.detectors.{name.lower()}"), name)


def estimator_params(
    cell: Cell, input_shape: tuple[int, ...] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Constructor kwargs for the cell's estimator (with ``input_shape``, for records of that
    shape) and the model kwargs it cannot take."""
    cls = _estimator_class(cell.spec.estimator or "")
    accepted = tuple(inspect.signature(cls).parameters)
    model_kwargs = dict(cell.spec.kwargs)
    if model_kwargs.get("backbone", "mlp") == "mlp" and "network" in accepted:
        model_kwargs = _MLP_DEFAULTS | model_kwargs
    if "temperature" in accepted:  # the papers' addressing, not the streaming default
        model_kwargs = {"temperature": 1.0} | model_kwargs
    if input_shape is not None:
        model_kwargs["input_shape"] = input_shape
    # The offline nets take the network's settings one by one; the estimators as a Network.
    folded = fold_network_params(model_kwargs, accepted)
    dropped = sorted(k for k in folded if k not in accepted)
    kwargs = {k: v for k, v in folded.items() if k in accepted}
    return kwargs, dropped


def build_estimator(cell: Cell, input_shape: tuple[int, ...], device: str) -> Any:
    """The public estimator configured like the offline cell."""
    from streammem import FeatureEncoder, Schedule

    kwargs, _ = estimator_params(cell, input_shape)
    config = train_config(cell.protocol, cell.spec)
    schedule = Schedule(
        budget=cell.steps_per_batch(),
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        replay_size=config.batch_size,
        young_records=1,
        min_records=config.batch_size,
        trim=0.0,
    )
    return _estimator_class(cell.spec.estimator or "")(
        **kwargs,
        schedule=schedule,
        seed=cell.seed,
        device=device,
        num_threads=None,
        encoder=FeatureEncoder(scaling=None),
    )


def stream_scores(cell: Cell, data: TaskData, device: str = "cpu") -> np.ndarray:
    """Learn the shuffled training stream once (``learn_many``), score the test set."""
    estimator = build_estimator(cell, data.train.shape[1:], device)
    order = np.random.default_rng(cell.seed).permutation(len(data.train))
    for start in range(0, len(order), CHUNK):
        estimator.learn_many(data.train[order[start : start + CHUNK]])
    return np.asarray(estimator.score_many(data.test), dtype=np.float64)
