"""The streaming estimator shared by every model: River's AnomalyDetector over a torch model.

Data path: a record is vectorised by a :class:`~streammem.FeatureEncoder`; ``learn_one`` /
``learn_many`` update the encoder's scaling statistics at once, add the record to a replay
window, and take the gradient steps the :class:`~streammem.Schedule` owes, each on a mini-batch
drawn from that window. ``score_one`` / ``score_many`` never change state. For MLP models on CPU
both run a NumPy snapshot of the model (torch stays off the per-event path, and its per-call
overhead off small batches); conv models and GPUs score with torch.

What a score means: 0.0 before anything is learned. From the first learned record on, for records
the encoder centres (robust or standard scaling, the tabular default), a sum over the encoded
columns of two terms, each in the units of what is normal for that column:

* the column's squared reconstruction error over the model's own typical squared error on it
  (:attr:`MemoryDetector.fit_`: measured on records before they were learned), so a sensor the
  model rebuilds to 1 % counts a 10 % miss as loudly as a sensor it rebuilds to 10 % counts a
  100 % one: the record breaks the structure the model has learned;
* ``DISTANCE_WEIGHT`` (0.25) times its squared scaled value: the record lies far from the centre
  of the data, along directions the model may rebuild well (the model-free distance);

over ``(1 + DISTANCE_WEIGHT)`` times the width. Each column's term is its share of the score, so
explanations add up to it. On normal records the first term is about 1 per column and the
second about 1 too (less for columns rebuilt better than the tracker's floor), so a score
near 1 or below is ordinary. The weight was chosen on the 35 ADBench dev
sets and :mod:`bench.generators`' sensor streams (the error alone: 0.811 AUROC on the sensors but
0.722 on the tables; 0.25: 0.808 and 0.753). The decoder's output layer starts at zero, so until
the model has trained its reconstruction is the centre of the data, the first term is measured
against 1 (there is no fit of the model's own yet) and a score is the mean squared robust
z-score. Images (pixels the encoder does not centre) score by reconstruction
error alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
import os
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, ClassVar

import numpy as np
import pandas as pd
import torch
from river import base as river_base
from threadpoolctl import ThreadpoolController

from streammem.checks import check_integer
from streammem.explain import fold
from streammem.features.encoder import EncodedBatch, FeatureEncoder, to_frame_or_array
from streammem.features.replay import ReplayWindow
from streammem.learning.fit import FitTracker, TrainingStats
from streammem.learning.inference import numpy_reconstructor
from streammem.learning.schedule import Schedule
from streammem.learning.training import Trainer, make_trainer
from streammem.nn.models import ReconstructionModel
from streammem.nn.network import Network, fold_network_params
from streammem.persistence import CheckpointError, save, stateful
from streammem.reprs import describe

__all__ = ["MemoryDetector"]

_SCORE_CHUNK = 4096
_MEMORY_SEED_ROWS = 256

_NO_SCORER = object()
_CENTRED_SCALINGS = ("robust", "standard")
_REPAIR_ROUNDS = 5  # reconstructions per explained field, see _repair_parts
#: Weight of a record's distance from the centre beside its normalised reconstruction error
#: (chosen on the 35 ADBench dev sets and bench.generators' streams, see the module docstring).
DISTANCE_WEIGHT = 0.25


def _in_chunks(compute: Any, batch: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """``compute`` over ``_SCORE_CHUNK`` rows at a time (bounds the working memory); ``empty``
    for an empty batch."""
    parts = [
        compute(batch[start : start + _SCORE_CHUNK]) for start in range(0, len(batch), _SCORE_CHUNK)
    ]
    return np.concatenate(parts) if parts else empty


def _check_device(device: Any) -> None:
    if device == "auto":
        return
    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {device!r}"
        ) from None


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
    schedule
        How the detector learns from the stream: replay window, gradient steps per record
        (``budget``), batch size, learning rate; ``None``: :class:`~streammem.Schedule`'s
        defaults (the class's own for image models).
    device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    seed
        Seeds model initialisation, replay sampling and training randomness; the global torch
        RNG is left alone.
    num_threads
        Torch CPU threads while this detector computes (``None``: torch's own setting).
    network
        The encoder / decoder around the memory: backbone, widths, activations, batch norm
        (:class:`~streammem.Network`; its defaults: one hidden layer of 64, MLP).
    encoder
        How records become vectors; by default a :class:`~streammem.features.encoder.FeatureEncoder`
        that scales numbers robustly (``mlp``) or passes pixels through (conv backbones).
    """

    _default_schedule: ClassVar[Schedule] = Schedule()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        stateful(cls)

    def __init__(
        self,
        schedule: Schedule | None = None,
        device: str = "auto",
        seed: int = 42,
        num_threads: int | None = 1,
        network: Network = Network(),  # noqa: B008 (frozen: one shared default is safe)
        encoder: FeatureEncoder | None = None,
    ) -> None:
        self.schedule = schedule
        self.device = device
        self.seed = seed
        self.num_threads = num_threads
        self.network = network
        self.encoder = encoder

    def __repr__(self) -> str:
        return describe(self, self._repr_notes())

    def _repr_notes(self) -> dict[str, str]:
        """What each argument left ``None`` stands for (for the repr)."""
        return {
            "schedule": repr(self._default_schedule),
            "num_threads": "torch's own setting",
            "encoder": f"FeatureEncoder(scaling={self.new_encoder().scaling!r})",
        }

    # ------------------------------------------------------------------ to implement
    def _build_net(self, input_shape: tuple[int, ...]) -> ReconstructionModel:
        raise NotImplementedError

    def _network_kwargs(self) -> dict[str, Any]:
        """The net's arguments beside the backbone's name (:meth:`Network.model_kwargs`)."""
        return self.network_.model_kwargs(self._latent_width())

    def _latent_width(self) -> int:
        return self.network_.default_latent_size(self.input_shape_)

    # ------------------------------------------------------------------ set-up
    @property
    def network_(self) -> Network:
        """The network in force (``network``; MemGAN's follows its ``input_shape``)."""
        return self.network

    @property
    def schedule_(self) -> Schedule:
        """The schedule in force (``schedule``, else the class's default)."""
        return self.schedule if self.schedule is not None else self._default_schedule

    def check_params(self) -> None:
        """Raise ``ValueError`` naming the argument if a setting is not allowed (called on the
        first learn or score; call it to check earlier)."""
        if self.schedule is not None and not isinstance(self.schedule, Schedule):
            raise ValueError(
                f"schedule must be a streammem.Schedule or None, got {type(self.schedule).__name__}"
            )
        if not isinstance(self.network_, Network):
            raise ValueError(
                f"network must be a streammem.Network, got {type(self.network_).__name__}"
            )
        if self.encoder is not None and not isinstance(self.encoder, FeatureEncoder):
            raise ValueError(
                f"encoder must be a streammem.FeatureEncoder or None, got "
                f"{type(self.encoder).__name__}"
            )
        _check_device(self.device)
        check_integer("seed", self.seed, 0)
        check_integer("num_threads", self.num_threads, 1, optional=True)

    def new_encoder(self) -> FeatureEncoder:
        if self.encoder is not None:
            return self.encoder.clone()
        return FeatureEncoder(scaling="robust" if self.network_.is_mlp else None)

    @property
    def has_schema(self) -> bool:
        """Whether the fields read are fixed: learned from a first record, or declared."""
        encoder = self.__dict__.get("encoder_")
        fitted = encoder is not None and encoder.is_fitted
        return fitted or (self.encoder is not None and self.encoder.is_declared)

    def with_schema(
        self,
        records: Sequence[Mapping[Any, Any]],
        kinds: Mapping[Any, str] | None = None,
    ) -> MemoryDetector | None:
        """An unfitted copy whose encoder declares the schema ``records`` agree on, by the
        rule of :func:`~streammem.features.schema_example`; None if they agree on no field."""
        encoder = self.new_encoder().declared_from(records, kinds)
        return self.clone({"encoder": encoder}) if encoder is not None else None

    @property
    def _encoder(self) -> FeatureEncoder:
        """The fitted encoder, or a throw-away one for pure calls before a schema is fixed
        (none learned yet, or the first learned record was rejected)."""
        encoder = self.__dict__.get("encoder_")
        if encoder is not None and encoder.is_fitted:
            return encoder
        self.check_params()  # the first score of an unfitted detector checks the settings
        return self.new_encoder()

    def model_input_shape(self, width: int) -> tuple[int, ...]:
        return self.network_.input_shape_for(width)

    def _init_model(self, width: int) -> None:
        self.device_ = resolve_device(self.device)
        self.input_shape_ = self.model_input_shape(width)
        self.rng_state_ = torch.Generator().manual_seed(self.seed).get_state()
        if self.device_.type == "cuda":
            generator = torch.Generator(self.device_).manual_seed(self.seed)
            self.cuda_rng_state_ = generator.get_state()
        with self._threads(), self._own_rng():
            self.model_ = self._build_net(self.input_shape_).to(self.device_).eval()
            _start_at_the_centre(self.model_)
        schedule = self.schedule_
        self.trainer_: Trainer = make_trainer(
            self.model_, schedule.learning_rate, trim=schedule.trim
        )
        self.replay_ = ReplayWindow(self.schedule_.replay_size, width)
        self.fit_ = FitTracker(width)
        self.sampler_ = np.random.default_rng(self.seed)
        self.n_seen_ = 0
        self.pending_: list[np.ndarray] = []
        self.step_credit_ = 0.0
        self.n_updates_ = 0
        self.last_losses_: dict[str, float] | None = None

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """Run torch and the BLAS behind NumPy with ``num_threads`` threads each, then restore
        the process's settings (only our own work is limited).

        Small models lose far more to thread start-up and contention than they gain: a step
        took 4 ms vs 50 ms with 1 vs 2 torch threads on a loaded 2-core machine, and the batch
        path ran 4x slower with OpenBLAS's 2 threads under load (7.8k vs 32.8k events/s).
        """
        if self.num_threads is None:
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            with _thread_pools().limit(limits=self.num_threads, user_api="blas"):
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
            self.check_params()
            encoder = self.encoder_ = self.new_encoder()
        return encoder

    def learn_one(self, x: Mapping[Any, Any]) -> None:
        encoder = self._learning_encoder()
        self._learn_raw(encoder.vectorize_one(x, learn=True)[None, :])

    def learn_many(self, X: Any) -> None:
        """Learn from a batch of records, in order (or from an :meth:`encode_many` batch)."""
        encoder = self._learning_encoder()
        if isinstance(X, EncodedBatch):
            if X.learnable:
                encoder.n_learned_ += len(X)
                self._learn_raw(X.raw)
                return
            X = X.source
        self._learn_raw(encoder.vectorize_many(X, learn=True))

    def encode_many(self, X: Any) -> EncodedBatch:
        """Read a batch once for ``score_many`` then ``learn_many`` (pure).

        Scoring and then learning the same records is the hot path of a stream; passing the
        result of this to both encodes the batch once instead of twice, with the same results.
        """
        X = to_frame_or_array(X)
        encoder = self.__dict__.get("encoder_")
        if encoder is None or not encoder.is_fitted:
            return EncodedBatch(None, X, learnable=False)  # nothing to read it with yet
        return EncodedBatch(encoder.vectorize_many(X), X, encoder.vocabulary_frozen_)

    def _learn_raw(self, raw: np.ndarray) -> None:
        """Take in raw vectors in chunks of ``schedule.chunk_size``: records wait in
        ``pending_`` until their chunk is full, so ``learn_one`` and ``learn_many`` cut the
        stream at the same places and build the same model."""
        if len(raw) == 0:
            return
        if "model_" not in self.__dict__:
            self._init_model(raw.shape[1])
        schedule = self.schedule_
        if len(raw) + len(self.pending_) < schedule.chunk_size(self.n_seen_):
            self.pending_.extend(raw)  # the chunk is not full: no work yet (learn_one's path)
            return
        if self.pending_:
            raw = np.vstack([*self.pending_, raw])
            self.pending_ = []
        start = 0
        while len(raw) - start >= (size := schedule.chunk_size(self.n_seen_)):
            self._take_chunk(raw[start : start + size])
            start += size
        self.pending_ = list(raw[start:])

    def records_until_update(self) -> int:
        """How many more records ``learn_one`` / ``learn_many`` take in before this detector's
        scores can change (at least 1): it changes only when a chunk of the schedule fills,
        and at every record while a learned vocabulary may still grow.

        :class:`~streammem.AlertFilter` scores the runs in between as one batch, which is how
        batches give the alerts of one record at a time.
        """
        if "model_" not in self.__dict__ or not self.encoder_.vocabulary_frozen_:
            return 1
        return self.schedule_.chunk_size(self.n_seen_) - len(self.pending_)

    def _take_chunk(self, chunk: np.ndarray) -> None:
        """The model's fit on the chunk (before it learns it), scaling statistics, replay
        window, then the gradient steps the chunk earned."""
        schedule = self.schedule_
        if self.n_seen_ >= schedule.min_records:  # the scale means something by now
            scaled = self.encoder_.scale(chunk)
            self.fit_.update(scaled, scaled - np.sqrt(self._column_errors(scaled)))
        self.encoder_.update_scaler(chunk)
        self.replay_.extend(chunk)
        self.step_credit_ += schedule.steps_owed(self.n_seen_, len(chunk))
        self.n_seen_ += len(chunk)
        if self.n_seen_ >= schedule.min_records and self.step_credit_ >= 1.0:
            steps = int(self.step_credit_)
            self.step_credit_ -= steps
            self._train(steps)

    def _train(self, steps: int) -> None:
        """``steps`` gradient steps, each on a mini-batch drawn from the replay window."""
        batch_size = self.schedule_.step_batch(self.n_seen_)
        with self._threads(), self._own_rng():
            if self.n_updates_ == 0:
                self._seed_memory()
            for _ in range(steps):
                sample = self.replay_.sample(batch_size, self.sampler_)
                tensor = self._to_tensor(self.encoder_.scale(sample))
                self.last_losses_ = self.trainer_.step(tensor)
        self.n_updates_ += steps
        self._last_batch = tensor
        self._scorer = _NO_SCORER

    def _seed_memory(self) -> None:
        """Before the first step, put the memory's slots where real records encode."""
        seed = getattr(self.model_, "initialize_memory", None)
        if seed is None:
            return
        sample = self.replay_.sample(_MEMORY_SEED_ROWS, self.sampler_)
        self.model_.train()
        seed(self._to_tensor(self.encoder_.scale(sample)))
        self.model_.eval()

    def _to_tensor(self, batch: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return tensor.reshape(-1, *self.input_shape_).to(self.device_)

    # ------------------------------------------------------------------ scoring
    def check_one(self, x: Mapping[Any, Any]) -> None:
        """Raise ``ValueError`` naming the field if ``x`` cannot be encoded; changes nothing."""
        self._encoder.check_one(x)

    def score_one(self, x: Mapping[Any, Any]) -> float:
        vector = self._encoder.encode_one(x)
        if "model_" not in self.__dict__:
            return 0.0
        if self.measures_against_fit:
            return float(self._column_parts(vector[None, :])[0].sum())
        return float(self._model_scores(vector[None, :])[0])

    def score_many(self, X: Any) -> np.ndarray:
        """Scores of a batch (pure). A detector that has learned nothing scores each row
        against the rows before it in the batch (see :meth:`_cold_scores`)."""
        if isinstance(X, EncodedBatch) and (X.raw is None or "model_" not in self.__dict__):
            X = X.source
        if "model_" not in self.__dict__:
            return self._cold_scores(X)
        batch = self._scaled(X)
        if self.measures_against_fit:
            return self._column_parts(batch).sum(axis=1)
        return self._model_scores(batch)

    @property
    def measures_against_fit(self) -> bool:
        """Whether a score measures each column's error against the model's own typical error
        on it (records the encoder centres: tables); otherwise it is the model's
        reconstruction error alone (images)."""
        return self._encoder.scaling in _CENTRED_SCALINGS

    def _reconstructor(self) -> Any:
        """The NumPy mirror of the model on CPU (it beats torch's per-call overhead at stream
        batch sizes too), else None (torch)."""
        return self._numpy_scorer() if self.device_.type == "cpu" else None

    def _reconstruct(self, batch: np.ndarray) -> np.ndarray:
        """The model's reconstruction of each row of the scaled ``batch``, flat."""
        reconstruct = self._reconstructor()
        empty = np.zeros((0, math.prod(batch.shape[1:])))
        if reconstruct is not None:
            with self._threads():
                return _in_chunks(
                    lambda chunk: reconstruct(np.asarray(chunk, dtype=np.float64)), batch, empty
                )

        def rebuild(chunk: np.ndarray) -> np.ndarray:
            output = self.model_(self._to_tensor(chunk)).reconstruction
            return output.flatten(1).cpu().numpy()

        with self._threads(), torch.inference_mode():
            return _in_chunks(rebuild, batch, empty)

    def _column_errors(self, batch: np.ndarray) -> np.ndarray:
        """Each column's squared reconstruction error, per row of the scaled ``batch``."""
        flat = np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)
        return np.square(self._reconstruct(batch).astype(np.float64) - flat)

    def _column_parts(self, batch: np.ndarray) -> np.ndarray:
        """Each column's share of a tabular score (see the module's "what a score means"):
        its squared error over the model's typical squared error on it (:attr:`fit_`), plus
        ``DISTANCE_WEIGHT`` times its squared scaled value, over ``(1 + DISTANCE_WEIGHT)``
        times the width."""
        errors = self._column_errors(batch)
        flat = np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)
        # Until its first step the model rebuilds the centre: no fit of its own to measure by.
        typical = self.fit_.error_ if self.n_updates_ else 1.0
        parts = errors / typical + DISTANCE_WEIGHT * np.square(flat)
        return parts / ((1.0 + DISTANCE_WEIGHT) * flat.shape[1])

    def _model_scores(self, batch: np.ndarray) -> np.ndarray:
        """The model's own score of each row (images: its reconstruction error)."""
        reconstruct = self._reconstructor()
        if reconstruct is not None:
            errors = self._column_errors(batch)
            return errors.sum(axis=1) / max(errors.shape[1], 1)

        def scores(chunk: np.ndarray) -> np.ndarray:
            return self.model_.anomaly_score(self._to_tensor(chunk)).double().cpu().numpy()

        with self._threads(), torch.inference_mode():
            return _in_chunks(scores, batch, np.zeros(0))

    def _scaled(self, X: Any) -> np.ndarray:
        """A batch (or an :meth:`encode_many` reading of it) as the model's scaled input."""
        encoder = self._encoder
        return encoder.scale(X.raw if isinstance(X, EncodedBatch) else encoder.vectorize_many(X))

    def _cold_scores(self, X: Any) -> np.ndarray:
        """What the rows would score one by one if each had been learned after being scored.

        Before its first gradient step a detector's reconstruction is the centre of the data,
        so a row's score is its mean squared scaled value under the statistics of the rows
        learned before it; a throw-away encoder replays that for the batch, so even the first
        batch of a stream is ranked (its first row scores 0.0, as ``score_one`` does).
        """
        return self._cold_parts(X)[0].sum(axis=1)

    def _cold_parts(self, X: Any) -> tuple[np.ndarray, FeatureEncoder]:
        """Each column's share of :meth:`_cold_scores` (its squared scaled value over the
        width), and the throw-away encoder that read the batch."""
        encoder = self.new_encoder()
        raw = encoder.vectorize_many(X)
        parts = np.zeros(raw.shape)
        if encoder.scaling is None:
            return parts, encoder
        for i in range(1, len(raw)):
            encoder.update_scaler(raw[i - 1 : i])
            scaled = encoder.scale(raw[i])
            parts[i] = np.square(scaled, dtype=np.float64) / len(scaled)
        return parts, encoder

    # ------------------------------------------------------------------ explanations
    def explain_one(self, x: Mapping[Any, Any]) -> dict[Hashable, float]:
        """Each field's contribution to ``score_one(x)``; they add up to it (pure).

        See :meth:`explain_many` for what a contribution is.
        """
        row = self.explain_many([x]).iloc[0]
        return {field: float(value) for field, value in row.items()}

    def explain_many(self, X: Any) -> pd.DataFrame:
        """Each field's contribution to each row's score (pure, like :meth:`score_many`).

        A score is a sum over the model's input columns, so it splits exactly: one column per
        field as the records name it (a categorical field's one-hot columns summed back into
        it), rows aligned with ``X`` (its index for a DataFrame); every contribution is >= 0
        and a row adds up to its ``score_many`` (to float32 precision).

        What a contribution is: for the autoencoders (MemAE, Memorizer, RFTM, AE) on tabular
        records, how much of the score would go away if the field alone held the value the
        model expects of it. The score is computed again with the field's columns replaced by
        their reconstruction (a category: the one the model rebuilds most), once per field,
        and the score is split in proportion to those drops (a record whose score no repair
        lowers is split by its columns' own terms, see the module docstring). A field that
        breaks the record's structure gets the blame, not the well-rebuilt fields whose
        reconstructions it disturbed. The field's reconstruction is taken five times over
        (each from the record with the field as last rebuilt), so that it reaches what the
        other fields say: five passes of the model per field. On images, the squared errors
        of the pixels over their number.
        Before the detector has learned anything, the squared robust z-score of the field
        under the rows before it, over the number of encoded columns. For MemGAN, whose score
        is ``‖x − G(P(E(x)))‖₂``, a pixel's squared error over that norm: a per-pixel map
        (reshape a row to ``input_shape``).

        Parameters
        ----------
        X
            A DataFrame, a pyarrow table, a 2-D (or image) numpy array, a list of dicts, or an
            :meth:`encode_many` reading.

        Examples
        --------
        >>> import random
        >>> import streammem
        >>> rng = random.Random(0)
        >>> det = streammem.MemAE(seed=1)
        >>> for _ in range(1500):
        ...     a = rng.gauss(0, 1)
        ...     det.learn_one({"a": a, "b": 2 * a + rng.gauss(0, 0.1), "c": rng.gauss(0, 0.1) - a,
        ...                    "line": rng.choice("xy")})
        >>> broken = {"a": 0.3, "b": -0.6, "c": -0.3, "line": "x"}  # b should be 0.6
        >>> parts = det.explain_one(broken)
        >>> list(parts), max(parts, key=parts.get)
        (['a', 'b', 'c', 'line'], 'b')
        >>> abs(sum(parts.values()) - det.score_one(broken)) < 1e-5 * det.score_one(broken)
        True
        """
        if not isinstance(X, EncodedBatch):
            X = to_frame_or_array(X)  # once: a pyarrow table is converted here only
        source = X.source if isinstance(X, EncodedBatch) else X
        parts, encoder = self._explain_parts(X)
        sums, fields = fold(parts, encoder.column_fields())
        index = source.index if isinstance(source, pd.DataFrame) else None
        return pd.DataFrame(sums, columns=fields, index=index)

    def _explain_parts(self, X: Any) -> tuple[np.ndarray, FeatureEncoder]:
        """Each encoded column's share of each row's score, and the encoder of the columns."""
        if isinstance(X, EncodedBatch) and (X.raw is None or "model_" not in self.__dict__):
            X = X.source
        if "model_" not in self.__dict__:
            return self._cold_parts(X)
        batch = self._scaled(X)
        if self.measures_against_fit:
            return self._repair_parts(batch), self._encoder
        if self._reconstructor() is not None:
            errors = self._column_errors(batch)
            return errors / max(errors.shape[1], 1), self._encoder
        return self._torch_parts(batch), self._encoder

    def _repair_parts(self, batch: np.ndarray) -> np.ndarray:
        """Each column's share of a tabular score by repair (see :meth:`explain_many`): a
        field's share is the score's drop when its columns take their reconstruction, over
        the drops of all fields; within a field, its columns share by their own terms."""
        parts = self._column_parts(batch)
        score = parts.sum(axis=1)
        owners = self._encoder.column_fields()
        fields = list(dict.fromkeys(owners))
        columns = [np.flatnonzero([o == f for o in owners]) for f in fields]
        categorical = self._encoder.vocabulary_
        n, width = len(batch), parts.shape[1]
        repaired = np.repeat(
            np.asarray(batch, dtype=np.float64).reshape(n, width)[None], len(fields), 0
        )
        # A field's reconstruction still leans towards its own faulty value; rebuilding it
        # again from the record with the field repaired walks it to what the other fields
        # say (top-1 on 5-sigma spikes: 0.78 after one round, 0.98 after three, 1.0 after six)
        for _ in range(_REPAIR_ROUNDS):
            rebuilt = self._reconstruct(repaired.reshape(len(fields) * n, width))
            rebuilt = rebuilt.reshape(len(fields), n, width)
            for k, (field, cols) in enumerate(zip(fields, columns, strict=True)):
                if field in categorical:  # the category the model expects, not a blend
                    expected = np.zeros((n, len(cols)))
                    expected[np.arange(n), rebuilt[k][:, cols].argmax(axis=1)] = 1.0
                    repaired[k][:, cols] = expected
                else:
                    repaired[k][:, cols] = rebuilt[k][:, cols]
        after = self._column_parts(repaired.reshape(len(fields) * n, -1)).sum(axis=1)
        drops = np.maximum(score[None, :] - after.reshape(len(fields), n), 0.0).T  # (n, fields)
        total = drops.sum(axis=1, keepdims=True)
        out = parts.copy()
        repairable = total[:, 0] > 0
        for k, cols in enumerate(columns):
            own = parts[repairable][:, cols]
            own_sum = own.sum(axis=1, keepdims=True)
            within = np.where(own_sum > 0, own / np.where(own_sum > 0, own_sum, 1.0), 1 / len(cols))
            share = drops[repairable, k : k + 1] / total[repairable]
            out[np.ix_(repairable, cols)] = score[repairable, None] * share * within
        return out

    def _torch_parts(self, batch: np.ndarray) -> np.ndarray:
        """The model's own per-element shares of its score (MemGAN's are not squared errors
        over the width), with torch."""

        def parts(chunk: np.ndarray) -> np.ndarray:
            tensor = self._to_tensor(chunk)
            shares = self.model_.score_parts(tensor, self.model_(tensor))
            return shares.flatten(1).double().cpu().numpy()

        with self._threads(), torch.inference_mode():
            return _in_chunks(parts, batch, np.zeros((0, math.prod(batch.shape[1:]))))

    def _numpy_scorer(self):
        scorer = self.__dict__.get("_scorer", _NO_SCORER)
        if scorer is _NO_SCORER:
            scorer = numpy_reconstructor(self.model_)
            self._scorer = scorer
        return scorer

    # ------------------------------------------------------------------ monitoring
    @property
    def fit_r2_(self) -> dict[Hashable, float]:
        """How well the model rebuilds each field of records before it learns them: R² over
        the last few thousand records (see :class:`~streammem.learning.fit.FitTracker`), by field as
        the records name it (a categorical field's columns pooled); NaN for a field that has
        not varied, and empty before anything is learned. Label-free: check it before tuning
        a threshold; a field near 0 is one the model has not learned.

        Examples
        --------
        >>> import random
        >>> import streammem
        >>> rng = random.Random(0)
        >>> det = streammem.AE(seed=0)
        >>> for _ in range(4000):
        ...     a = rng.gauss(0, 1)
        ...     det.learn_one({"a": a, "b": -a + rng.gauss(0, 0.05), "line": rng.choice("xy")})
        >>> sorted(det.fit_r2_), det.fit_r2_["b"] > 0.95
        (['a', 'b', 'line'], True)
        """
        if "model_" not in self.__dict__:
            return {}
        return self.fit_.r2_(self.encoder_.column_fields())

    def training_stats(self) -> TrainingStats:
        """Gradient steps so far, the last losses, memory usage and the fit by field."""
        if "model_" not in self.__dict__:
            return TrainingStats()
        return TrainingStats(self.n_updates_, self.last_losses_, self.memory_usage(), self.fit_r2_)

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
        }
        if "model_" in self.__dict__:
            state["replay"] = self.replay_.state_dict()
            state["fit"] = self.fit_.state_dict()
            state["sampler"] = self.sampler_.bit_generator.state
            state["n_seen"] = self.n_seen_
            state["pending"] = torch.from_numpy(np.vstack(self.pending_)) if self.pending_ else None
            state["step_credit"] = self.step_credit_
            # clone: on CPU .cpu() is the live tensor, and a snapshot must not move on
            state["model"] = {
                k: v.detach().cpu().clone() for k, v in self.model_.state_dict().items()
            }
            state["trainer"] = self.trainer_.state_dict()
            state["n_updates"] = self.n_updates_
            state["last_losses"] = self.last_losses_
            state["rng_state"] = self.rng_state_.clone()
            if "cuda_rng_state_" in self.__dict__:  # a GPU's own stream: exact resume there too
                state["cuda_rng_state"] = self.cuda_rng_state_.clone()
        return state

    def _load_state(self, state: Mapping[str, Any]) -> None:
        if state.get("encoder") is not None:
            self.encoder_ = self.new_encoder()
            self.encoder_.load_fitted(state["encoder"])
        if "model" in state:
            self._init_model(self.encoder_.width_)
            self.replay_ = ReplayWindow.from_state(state["replay"])
            self.fit_ = FitTracker.from_state(state["fit"])
            self.sampler_.bit_generator.state = state["sampler"]
            self.n_seen_ = int(state["n_seen"])
            pending = state["pending"]
            self.pending_ = list(pending.double().numpy()) if pending is not None else []
            self.step_credit_ = float(state["step_credit"])
            self.model_.load_state_dict(state["model"])
            self.model_.eval()
            self.trainer_.load_state_dict(state["trainer"])
            self.n_updates_ = int(state["n_updates"])
            self.last_losses_ = state["last_losses"]
            self.rng_state_ = state["rng_state"]
            if self.device_.type == "cuda" and state.get("cuda_rng_state") is not None:
                self.cuda_rng_state_ = state["cuda_rng_state"]

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MemoryDetector:
        """Rebuild a detector of this class from :meth:`state_dict` (``streammem.from_state``
        and ``streammem.load`` find the class from the state)."""
        if state.get("class") != cls.__name__:
            raise CheckpointError(f"the state is of {state.get('class')!r}, not {cls.__name__!r}")
        # Checkpoints from before Network hold its settings beside the detector's own.
        accepted = tuple(inspect.signature(cls).parameters)
        detector = cls(**fold_network_params(_decode_params(state["params"]), accepted))
        detector._load_state(state)
        return detector

    def save(self, path: str | os.PathLike | BinaryIO) -> None:
        """Write a versioned checkpoint that :func:`streammem.load` restores exactly, to a
        path (atomically) or a binary file object."""
        save(self, path)


@functools.lru_cache(maxsize=1)
def _thread_pools() -> ThreadpoolController:
    """The process's thread pools, found once (a scan costs ~0.5 ms, a limit ~10 µs)."""
    return ThreadpoolController()


def _start_at_the_centre(model: torch.nn.Module) -> None:
    """Zero an MLP decoder's last linear layer: until it trains, the model reconstructs every
    record as the centre of the scaled data, so its scores are robust z-scores, not noise."""
    decoder = getattr(model, "decoder", None)
    if isinstance(decoder, torch.nn.Sequential) and isinstance(decoder[-1], torch.nn.Linear):
        with torch.no_grad():
            decoder[-1].weight.zero_()
            decoder[-1].bias.zero_()


def _encode_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in params.items():
        if isinstance(value, Schedule):
            value = {"schedule": dataclasses.asdict(value)}
        elif isinstance(value, Network):
            value = {"network": _encode_params(dataclasses.asdict(value))}
        elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], type):
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
        elif isinstance(value, dict) and "schedule" in value:
            value = Schedule(**value["schedule"])
        elif isinstance(value, dict) and "network" in value:
            value = Network(**value["network"])
        elif isinstance(value, list) and name == "input_shape":  # MemGAN's
            value = tuple(value)
        out[name] = value
    return out
