"""The streaming estimator shared by every model: River's AnomalyDetector over a torch model.

Data path: a record is vectorised by a :class:`~streammem.features.FeatureEncoder`, buffered by
``learn_one`` / ``learn_many``; each full buffer of ``batch_size`` updates the encoder's scaling
statistics and drives ``steps_per_batch`` gradient steps on the device. ``score_one`` /
``score_many`` never change state. For MLP models on CPU both run a NumPy snapshot of the model
(torch stays off the per-event path, and its per-call overhead off small batches); conv models and
GPUs score with torch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from river import base as river_base

from streammem.features import FeatureEncoder
from streammem.inference import numpy_reconstructor
from streammem.nn.models import ReconstructionModel
from streammem.persistence import CheckpointError, load_checkpoint, save_checkpoint
from streammem.training import Trainer

__all__ = ["MemoryDetector", "detector_from_state", "load"]

_DEFAULT_IMAGE_SHAPES = {"conv28": (1, 28, 28), "conv32": (3, 32, 32)}
_SCORE_CHUNK = 4096
_NO_SCORER = object()


def _numpy_scores(reconstruct: Any, batch: np.ndarray) -> np.ndarray:
    """Mean squared reconstruction error per row, in chunks to bound the working memory."""
    scores = []
    for start in range(0, len(batch), _SCORE_CHUNK):
        chunk = np.asarray(batch[start : start + _SCORE_CHUNK], dtype=np.float32)
        residual = reconstruct(chunk) - chunk
        scores.append(np.einsum("ij,ij->i", residual, residual) / residual.shape[1])
    return np.concatenate(scores).astype(np.float64) if scores else np.zeros(0)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but CUDA is not available here; "
            "use device='auto' (CUDA when present) or 'cpu'"
        )
    return resolved


class MemoryDetector(river_base.AnomalyDetector):
    """Base class; subclasses add their model's parameters and implement ``_build_net``.

    Parameters
    ----------
    batch_size
        Records per gradient update.
    learning_rate
        Adam's step size.
    steps_per_batch
        Gradient steps taken on each full batch.
    device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    seed
        Seeds model initialisation and training randomness; the global torch RNG is left alone.
    num_threads
        Torch CPU threads while this detector computes (``None``: torch's own setting).
    backbone
        ``"mlp"``, ``"conv28"`` (1x28x28 images) or ``"conv32"`` (3x32x32 images).
    input_shape
        Shape of one record for the model; by default the encoded width (or the conv image).
    hidden_sizes, latent_size
        MLP widths, encoder side (the decoder mirrors them).
    activation
        MLP hidden activation, ``"leaky_relu"`` or ``"tanh"``.
    output_activation
        ``"linear"``, ``"sigmoid"``, ``"tanh"``, or ``"block"`` (mlp only: the last layer is a
        full Linear-BatchNorm-activation block, as in the Memorizer paper).
    encoder
        How records become vectors; by default a :class:`~streammem.features.FeatureEncoder`
        that standardises numbers (``mlp``) or passes pixels through (conv backbones).
    """

    _registry: ClassVar[dict[str, type[MemoryDetector]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MemoryDetector._registry[cls.__name__] = cls

    def __init__(
        self,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        steps_per_batch: int = 1,
        device: str = "auto",
        seed: int = 42,
        num_threads: int | None = 1,
        backbone: str = "mlp",
        input_shape: Sequence[int] | None = None,
        hidden_sizes: Sequence[int] = (64, 32),
        latent_size: int = 16,
        activation: str = "leaky_relu",
        output_activation: str = "linear",
        encoder: FeatureEncoder | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.steps_per_batch = steps_per_batch
        self.device = device
        self.seed = seed
        self.num_threads = num_threads
        self.backbone = backbone
        self.input_shape = input_shape
        self.hidden_sizes = hidden_sizes
        self.latent_size = latent_size
        self.activation = activation
        self.output_activation = output_activation
        self.encoder = encoder

    # ------------------------------------------------------------------ to implement
    def _build_net(self, input_shape: tuple[int, ...]) -> ReconstructionModel:
        raise NotImplementedError

    def _backbone_kwargs(self) -> dict[str, Any]:
        if self.backbone != "mlp":
            return {"output_activation": self.output_activation}
        return {
            "hidden_sizes": tuple(self.hidden_sizes),
            "latent_size": self.latent_size,
            "activation": self.activation,
            "output_activation": self.output_activation,
        }

    # ------------------------------------------------------------------ set-up
    def _check_params(self) -> None:
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size must be >= 2 (batch norm needs it), got {self.batch_size}"
            )
        if self.steps_per_batch < 1:
            raise ValueError(f"steps_per_batch must be >= 1, got {self.steps_per_batch}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.backbone != "mlp" and self.activation != "leaky_relu":
            raise ValueError(
                f"activation={self.activation!r} applies to the 'mlp' backbone only; "
                f"{self.backbone!r} has fixed activations"
            )
        if self.backbone != "mlp" and self.output_activation == "block":
            raise ValueError("output_activation='block' applies to the 'mlp' backbone only")

    def _new_encoder(self) -> FeatureEncoder:
        if self.encoder is not None:
            return self.encoder.clone()
        return FeatureEncoder(scaling="standard" if self.backbone == "mlp" else None)

    @property
    def _encoder(self) -> FeatureEncoder:
        """The fitted encoder, or a throw-away one for pure calls before a schema is fixed
        (none learned yet, or the first learned record was rejected)."""
        encoder = self.__dict__.get("encoder_")
        return encoder if encoder is not None and encoder.is_fitted else self._new_encoder()

    def _model_input_shape(self, width: int) -> tuple[int, ...]:
        shape = self.input_shape or _DEFAULT_IMAGE_SHAPES.get(self.backbone) or (width,)
        if math.prod(shape) != width:
            raise ValueError(
                f"input_shape {tuple(shape)} holds {math.prod(shape)} values but records encode "
                f"to {width}"
            )
        return tuple(shape)

    def _init_model(self, width: int) -> None:
        self.device_ = resolve_device(self.device)
        self.input_shape_ = self._model_input_shape(width)
        self.rng_state_ = torch.Generator().manual_seed(self.seed).get_state()
        if self.device_.type == "cuda":
            generator = torch.Generator(self.device_).manual_seed(self.seed)
            self.cuda_rng_state_ = generator.get_state()
        with self._threads(), self._own_rng():
            self.model_ = self._build_net(self.input_shape_).to(self.device_).eval()
        self.trainer_: Trainer = self.model_.make_trainer(self.learning_rate)
        self.n_updates_ = 0
        self.last_losses_: dict[str, float] | None = None

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """Run torch with ``num_threads`` intra-op threads, then restore the global setting.

        Small models lose far more to thread start-up and contention than they gain
        (measured: 4 ms vs 50 ms a step with 1 vs 2 threads on a loaded 2-core machine).
        """
        if self.num_threads is None:
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        """Run torch on this detector's own random state, then restore the global one.

        Results depend only on ``seed``, not on what else the process draws; swapping states
        costs microseconds, where ``torch.manual_seed`` per batch cost ~1 ms here.
        """
        cuda = self.device_ if self.device_.type == "cuda" else None
        saved = torch.get_rng_state()
        saved_cuda = torch.cuda.get_rng_state(cuda) if cuda else None
        torch.set_rng_state(self.rng_state_)
        if cuda:
            torch.cuda.set_rng_state(self.cuda_rng_state_, cuda)
        try:
            yield
        finally:
            self.rng_state_ = torch.get_rng_state()
            torch.set_rng_state(saved)
            if cuda:
                self.cuda_rng_state_ = torch.cuda.get_rng_state(cuda)
                torch.cuda.set_rng_state(saved_cuda, cuda)

    # ------------------------------------------------------------------ learning
    def _learning_encoder(self) -> FeatureEncoder:
        """The encoder that learns; created (after checking the parameters) on first use."""
        encoder = self.__dict__.get("encoder_")
        if encoder is None:
            self._check_params()
            encoder = self.encoder_ = self._new_encoder()
        return encoder

    def learn_one(self, x: Mapping[Hashable, Any]) -> None:
        encoder = self._learning_encoder()
        self._buffer.append(encoder.vectorize_one(x, learn=True))
        if len(self._buffer) >= self.batch_size:
            self._fit_batch(np.vstack(self._buffer))
            self._buffer.clear()

    def learn_many(self, X: Any) -> None:
        """Learn from a batch; leftover rows stay buffered for the next call."""
        encoder = self._learning_encoder()
        raw = encoder.vectorize_many(X, learn=True)
        if self._buffer:
            raw = np.vstack([np.vstack(self._buffer), raw])
            self._buffer.clear()
        n_full = len(raw) - len(raw) % self.batch_size
        for start in range(0, n_full, self.batch_size):
            self._fit_batch(raw[start : start + self.batch_size])
        self._buffer.extend(raw[n_full:])

    @property
    def _buffer(self) -> list[np.ndarray]:
        return self.__dict__.setdefault("buffer_", [])

    def _fit_batch(self, raw: np.ndarray) -> None:
        self.encoder_.update_scaler(raw)
        batch = self.encoder_.scale(raw)
        if "model_" not in self.__dict__:
            self._init_model(batch.shape[1])
        tensor = self._to_tensor(batch)
        with self._threads(), self._own_rng():
            for _ in range(self.steps_per_batch):
                self.last_losses_ = self.trainer_.step(tensor)
        self.n_updates_ += self.steps_per_batch
        self._last_batch = tensor
        self._scorer = _NO_SCORER

    def _to_tensor(self, batch: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return tensor.reshape(-1, *self.input_shape_).to(self.device_)

    # ------------------------------------------------------------------ scoring
    def check_one(self, x: Mapping[Hashable, Any]) -> None:
        """Raise ``ValueError`` naming the field if ``x`` cannot be encoded; changes nothing."""
        self._encoder.check_one(x)

    def score_one(self, x: Mapping[Hashable, Any]) -> float:
        vector = self._encoder.encode_one(x)
        if "model_" not in self.__dict__:
            return 0.0
        reconstruct = self._numpy_scorer()
        if reconstruct is None:
            return float(self._torch_scores(vector[None, :])[0])
        residual = (reconstruct(vector[None, :]) - vector)[0]
        return float(residual @ residual) / residual.size

    def score_many(self, X: Any) -> np.ndarray:
        encoder = self._encoder
        raw = encoder.vectorize_many(X)
        if "model_" not in self.__dict__:
            return np.zeros(len(raw))
        batch = encoder.scale(raw)
        # On CPU the NumPy copy beats torch's per-call overhead at stream batch sizes too.
        reconstruct = self._numpy_scorer() if self.device_.type == "cpu" else None
        if reconstruct is None:
            return self._torch_scores(batch)
        return _numpy_scores(reconstruct, batch)

    def _torch_scores(self, batch: np.ndarray) -> np.ndarray:
        scores = []
        with self._threads(), torch.inference_mode():
            for start in range(0, len(batch), _SCORE_CHUNK):
                chunk = self._to_tensor(batch[start : start + _SCORE_CHUNK])
                scores.append(self.model_.anomaly_score(chunk).double().cpu().numpy())
        return np.concatenate(scores) if scores else np.zeros(0)

    def _numpy_scorer(self):
        scorer = self.__dict__.get("_scorer", _NO_SCORER)
        if scorer is _NO_SCORER:
            scorer = numpy_reconstructor(self.model_)
            self._scorer = scorer
        return scorer

    # ------------------------------------------------------------------ monitoring
    def memory_usage(self) -> float | None:
        """Fraction of memory slots holding at least a tenth of a uniform share of the
        addressing weight on the last training batch; ``None`` without memory or data."""
        batch = self.__dict__.get("_last_batch")
        if batch is None:
            return None
        with self._threads(), torch.inference_mode():
            weights = self.model_(batch).memory_weights
        if weights is None:
            return None
        share = weights.double().mean(dim=0)
        share = share / share.sum()
        return float((share >= 0.1 / share.numel()).double().mean())

    # ------------------------------------------------------------------ persistence
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_scorer", "_last_batch")}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as tensors and plain values (``weights_only``-safe)."""
        state: dict[str, Any] = {
            "class": type(self).__name__,
            "params": _encode_params(self._get_params()),
            "encoder": self.encoder_.state_dict() if "encoder_" in self.__dict__ else None,
            "buffer": torch.from_numpy(np.vstack(self._buffer)) if self._buffer else None,
        }
        if "model_" in self.__dict__:
            # clone: on CPU .cpu() is the live tensor, and a snapshot must not move on
            state["model"] = {
                k: v.detach().cpu().clone() for k, v in self.model_.state_dict().items()
            }
            state["trainer"] = self.trainer_.state_dict()
            state["n_updates"] = self.n_updates_
            state["last_losses"] = self.last_losses_
            state["rng_state"] = self.rng_state_.clone()
        return state

    def _load_state(self, state: Mapping[str, Any]) -> None:
        if state.get("encoder") is not None:
            self.encoder_ = self._new_encoder()
            self.encoder_.load_state_dict(state["encoder"])
        if state.get("buffer") is not None:
            self.buffer_ = list(state["buffer"].double().numpy())
        if "model" in state:
            self._init_model(self.encoder_.width_)
            self.model_.load_state_dict(state["model"])
            self.model_.eval()
            self.trainer_.load_state_dict(state["trainer"])
            self.n_updates_ = int(state["n_updates"])
            self.last_losses_ = state["last_losses"]
            self.rng_state_ = state["rng_state"]

    def save(self, path: str) -> None:
        """Write a versioned checkpoint that :func:`streammem.load` restores exactly."""
        save_checkpoint({"kind": "detector", "detector": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str) -> MemoryDetector:
        return load(path)


def _encode_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in params.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], type):
            value = {"estimator": value[0].__name__, "params": _encode_params(value[1])}
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def _decode_params(params: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in params.items():
        if isinstance(value, dict) and value.get("estimator") == "FeatureEncoder":
            value = FeatureEncoder(**_decode_params(value["params"]))
        elif isinstance(value, list) and name in ("hidden_sizes", "input_shape"):
            value = tuple(value)
        out[name] = value
    return out


def detector_from_state(state: Mapping[str, Any]) -> MemoryDetector:
    """Rebuild a detector from :meth:`MemoryDetector.state_dict`."""
    name = state.get("class")
    cls = MemoryDetector._registry.get(name)
    if cls is None:
        known = sorted(MemoryDetector._registry)
        raise CheckpointError(f"unknown detector class {name!r}; known: {known}")
    detector = cls(**_decode_params(state["params"]))
    detector._load_state(state)
    return detector


def load(path: str) -> MemoryDetector:
    """Load a detector saved with ``save(path)`` (safe: ``torch.load(weights_only=True)``)."""
    payload = load_checkpoint(path)
    if payload.get("kind") != "detector":
        raise CheckpointError(f"{path} holds a {payload.get('kind')!r} checkpoint, not a detector")
    return detector_from_state(payload["detector"])
