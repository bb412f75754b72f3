"""Which model, with which hyper-parameters, each (protocol, data set) cell trains.

Values marked *paper* come from ``research/papers.md`` (verified or secondary); everything else is
our choice, fixed before any run and never tuned on a test split.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

__all__ = [
    "ModelSpec",
    "TrainConfig",
    "ablation_specs",
    "build_model",
    "model_specs",
    "trace_epochs",
    "train_config",
]


@dataclass(frozen=True)
class TrainConfig:
    """Offline optimisation of one cell.

    ``patience`` enables early stopping on the validation score and keeps the best epoch (ROCO,
    KDD, and one-class models that set it, which then hold out 10% of the normal images);
    ``None`` trains exactly ``max_epochs`` epochs. ``weight_decay`` is Adam's L2 penalty.
    ``trace`` records the validation score after every epoch and the test metrics after the
    epochs of :func:`trace_epochs` — a diagnostic of how a metric moves with training, never
    used to select anything.
    """

    learning_rate: float
    batch_size: int
    max_epochs: int
    patience: int | None = None
    weight_decay: float = 0.0
    trace: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """A bench model: class path, constructor kwargs, input scaling, streaming estimator.

    ``score`` is ``"model"`` (the model's own ``anomaly_score``) or ``"relative"`` (that score
    divided by the input's mean square, a per-image normalisation tried as an ablation).
    """

    name: str
    cls: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    scaling: str = "unit"
    estimator: str | None = None
    train: TrainConfig | None = None
    score: str = "model"


_NN = "streammem.nn.models."
_BASE = "streammem.nn.baselines."


def _one_class_specs(dataset: str) -> list[ModelSpec]:
    conv = {"backbone": "conv32" if dataset == "cifar10" else "conv28"}
    slots = 500 if dataset == "cifar10" else 100  # paper (MemAE): N = 100 MNIST, 500 CIFAR-10
    memgan = {"num_units": 100, "unit_dim": 256} if dataset == "cifar10" else {}
    memgan_epochs = 10 if dataset == "cifar10" else 7  # paper (MEMGAN)
    return [
        ModelSpec("AE", _NN + "AENet", conv, estimator="AE"),
        ModelSpec("MemAE", _NN + "MemAENet", {**conv, "num_slots": slots}, estimator="MemAE"),
        ModelSpec(
            "MemAE-nonSpar",
            _NN + "MemAENet",
            {**conv, "num_slots": slots, "shrink_threshold": 0.0},
            estimator="MemAE",
        ),
        ModelSpec(
            "MEMGAN",
            "streammem.nn.memgan.MemGANNet",
            memgan,
            scaling="signed",
            estimator="MemGAN",
            # keep the epoch with the lowest cycle error on 10% held-out normal images
            train=TrainConfig(1e-4, 64, memgan_epochs, patience=memgan_epochs),
        ),
    ]


def _roco_specs(dataset: str) -> list[ModelSpec]:
    mlp = {"backbone": "mlp", "output_activation": "block"}  # paper (Memorizer): FC6 is a block
    slots = 8 if dataset == "mnist" else 10  # paper (Memorizer)
    memorizer = {**mlp, "num_slots": slots, "rounds": 8}
    return [
        ModelSpec("AE", _NN + "AENet", mlp, estimator="AE"),
        ModelSpec("SAE", _BASE + "SparseAENet", mlp),
        ModelSpec("DAE", _BASE + "DenoisingAENet", mlp),
        ModelSpec("VAE", _BASE + "VAENet", mlp),
        ModelSpec("MemAE", _NN + "MemAENet", {**mlp, "num_slots": 100}, estimator="MemAE"),
        ModelSpec("MNAD", _BASE + "MNADNet", mlp),
        ModelSpec("SSPCAB", _BASE + "SSPCABNet", mlp),
        ModelSpec("Memorizer", _NN + "MemorizerNet", memorizer, estimator="Memorizer"),
        ModelSpec("RFTM", _NN + "RFTMNet", {**mlp, "num_slots": slots}, estimator="RFTM"),
        ModelSpec("RFTM-noforget", _NN + "RFTMNet", {**mlp, "num_slots": slots, "forget": 0.0}),
        ModelSpec(
            "RFTM-projection",
            _NN + "RFTMNet",
            {**mlp, "num_slots": slots, "decomposition": "projection"},
        ),
        ModelSpec(
            "RFTM-cascade",
            _NN + "RFTMNet",
            {**mlp, "num_slots": slots, "reintegration": "cascade"},
        ),
    ]


def _kdd_specs() -> list[ModelSpec]:
    # 118 one-hot features -> 60-30-10 -> 3 (tanh) as in DAGMM's compression net; memory 50 x 3.
    mlp = {"backbone": "mlp", "hidden_sizes": (60, 30, 10), "latent_size": 3, "activation": "tanh"}
    return [
        ModelSpec("AE", _NN + "AENet", mlp, scaling="minmax", estimator="AE"),
        ModelSpec(
            "MemAE-nonSpar",
            _NN + "MemAENet",
            {**mlp, "num_slots": 50, "shrink_threshold": 0.0},
            scaling="minmax",
        ),
        ModelSpec(
            "MemAE",
            _NN + "MemAENet",
            {**mlp, "num_slots": 50},
            scaling="minmax",
            estimator="MemAE",
        ),
    ]


def _variant(spec: ModelSpec, name: str, **changes: Any) -> ModelSpec:
    """``spec`` renamed, with ``changes`` to its fields (``kwargs`` entries are merged in)."""
    kwargs = {**spec.kwargs, **changes.pop("kwargs", {})}
    return replace(spec, name=name, kwargs=kwargs, **changes)


def _one_class_ablations(dataset: str) -> list[ModelSpec]:
    base = {s.name: s for s in _one_class_specs(dataset)}
    ae, memae, dense, memgan = base["AE"], base["MemAE"], base["MemAE-nonSpar"], base["MEMGAN"]
    epochs = train_config("one_class", ae)
    gan = train_config("one_class", memgan)
    return [
        # best of the 20 epochs on 10% held-out normal images, with the test curve beside it
        _variant(ae, "AE-val", train=replace(epochs, patience=epochs.max_epochs, trace=True)),
        _variant(ae, "AE-signed", scaling="signed"),
        _variant(ae, "AE-signed-tanh", scaling="signed", kwargs={"output_activation": "tanh"}),
        _variant(ae, "AE-sigmoid", kwargs={"output_activation": "sigmoid"}),
        _variant(ae, "AE-relative", score="relative"),
        _variant(ae, "AE-wd", train=replace(epochs, weight_decay=5e-4)),
        _variant(ae, "AE-lr1e-4", train=replace(epochs, learning_rate=1e-4)),
        _variant(ae, "AE-nobn", kwargs={"batch_norm": False}),
        # the authors' code addresses the memory by inner product, the paper by cosine
        _variant(memae, "MemAE-dot", kwargs={"similarity": "dot"}),
        _variant(dense, "MemAE-nonSpar-dot", kwargs={"similarity": "dot"}),
        _variant(memgan, "MEMGAN-trace", train=replace(gan, trace=True)),
        _variant(memgan, "MEMGAN-lr1e-5", train=replace(gan, learning_rate=1e-5, trace=True)),
    ]


def _kdd_ablations() -> list[ModelSpec]:
    base = {s.name: s for s in _kdd_specs()}
    # DAGMM's schedule (Adam 1e-4, batch 1024, 200 epochs), best validation epoch kept
    dagmm = TrainConfig(1e-4, 1024, 200, patience=200, trace=True)
    return [
        _variant(base["MemAE"], "MemAE-dagmm", train=dagmm),
        _variant(base["AE"], "AE-dagmm", train=dagmm),
        _variant(base["MemAE"], "MemAE-minmax-train", scaling="minmax_train"),
        # on a 3-wide latent, cosine addressing sees only the direction of the encoding
        _variant(base["MemAE"], "MemAE-dot", kwargs={"similarity": "dot"}),
        _variant(base["MemAE"], "MemAE-nobn", kwargs={"batch_norm": False}),
    ]


def ablation_specs(protocol: str, dataset: str) -> list[ModelSpec]:
    """Named variants of the paper specs, one changed setting each (``bench.ablations``)."""
    if protocol == "one_class":
        return _one_class_ablations(dataset)
    if protocol == "kdd":
        return _kdd_ablations()
    return []


def trace_epochs(max_epochs: int) -> list[int]:
    """The epochs a traced cell is tested after: roughly log-spaced, always the last.

    Examples
    --------
    >>> trace_epochs(20)
    [1, 2, 3, 5, 7, 10, 15, 20]
    """
    marks = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200)
    return sorted({m for m in marks if m < max_epochs} | {max_epochs})


def model_specs(protocol: str, dataset: str) -> list[ModelSpec]:
    """Every model the bench runs for ``protocol`` on ``dataset``, in table order."""
    if protocol == "one_class":
        return _one_class_specs(dataset)
    if protocol == "roco":
        return _roco_specs(dataset)
    if protocol == "kdd":
        return _kdd_specs()
    raise ValueError(f"unknown protocol {protocol!r}")


def train_config(protocol: str, spec: ModelSpec) -> TrainConfig:
    """The spec's own optimisation, else the protocol's default.

    one-class: Adam 1e-3, batch 64, 20 epochs (our choice; the MemAE paper gives none for images).
    ROCO: Adam 1e-3, batch 256, early stopping patience 10 (paper), capped at 30 epochs (budget).
    KDD: Adam 1e-3, batch 256, ≤10 epochs (~7k steps; DAGMM: batch 1024, 200 epochs, ~39k),
    keeping the epoch with the best validation score (training-class rows only).
    """
    if spec.train is not None:
        return spec.train
    defaults = {
        "one_class": TrainConfig(1e-3, 64, 20),
        "roco": TrainConfig(1e-3, 256, 30, patience=10),
        "kdd": TrainConfig(1e-3, 256, 10, patience=5),
    }
    return defaults[protocol]


def build_model(spec: ModelSpec, input_shape: tuple[int, ...]) -> nn.Module:
    """Instantiate ``spec`` for inputs of ``input_shape`` (without the batch dim)."""
    module, _, name = spec.cls.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(input_shape, **spec.kwargs)
