"""The two contracts between detectors and what runs them, and nothing more.

* :class:`StreamDetector`: what alerts and windows need of a detector: River's two methods,
  the batch methods and its state. Every streammem detector is one; :class:`~streammem.AlertFilter`
  also takes any plain River anomaly detector (``score_one`` / ``learn_one``), which it serves
  one record at a time.
* :class:`ServedDetector`: what the service needs on top: the fields it reads (a
  :class:`Schema` value), a copy on another schema, when it next changes, how it is learning,
  record checks and explanations. The service is typed against it, never against a detector
  class, and reads nothing else of a detector.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from streammem.features.encoder import EncodedBatch
from streammem.learning.fit import TrainingStats

__all__ = [
    "Schema",
    "ServedDetector",
    "StreamDetector",
    "is_stream_detector",
    "records_until_update",
]


@dataclasses.dataclass(frozen=True)
class Schema:
    """The fields a model reads: numeric ones, and categorical ones with their declared
    vocabulary (``None`` where it is learned from the stream).

    Two schemas are equal when they read the same fields as the same kinds, whatever the
    order the fields were listed in (a vocabulary's order is its one-hot layout, so it counts).

    Examples
    --------
    >>> a = Schema.of(["temp", "rpm"], {"line": None})
    >>> a == Schema.of(["rpm", "temp"], {"line": None}), a == Schema.of(["temp"], {"line": None})
    (True, False)
    >>> a
    Schema(numeric=('temp', 'rpm'), categorical=(('line', None),))
    """

    numeric: tuple[Hashable, ...]
    categorical: tuple[tuple[Hashable, tuple[str, ...] | None], ...]

    @classmethod
    def of(
        cls,
        numeric: Sequence[Hashable],
        categorical: Mapping[Any, Sequence[str] | None],
    ) -> Schema:
        return cls(
            tuple(numeric),
            tuple((k, None if v is None else tuple(v)) for k, v in categorical.items()),
        )

    def _key(self) -> tuple[frozenset, frozenset]:
        return frozenset(self.numeric), frozenset(self.categorical)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def fields(self) -> list[Hashable]:
        """Every field, numeric ones first."""
        return [*self.numeric, *(k for k, _ in self.categorical)]

    def vocabularies(self) -> dict[Hashable, list[str] | None]:
        """The categorical fields with their declared vocabulary (None: learned)."""
        return {k: None if v is None else list(v) for k, v in self.categorical}


@runtime_checkable
class StreamDetector(Protocol):
    """A River anomaly detector that also reads, scores and learns batches, and saves safely."""

    def score_one(self, x: Mapping[Any, Any]) -> float:
        """Score of one record (pure)."""

    def learn_one(self, x: Mapping[Any, Any]) -> None:
        """Learn one record."""

    def encode_many(self, X: Any) -> EncodedBatch:
        """Read a batch once for :meth:`score_many` and :meth:`learn_many` (pure); raises
        ``ValueError`` naming the field when a record cannot be read."""

    def score_many(self, X: Any) -> np.ndarray:
        """Scores of a batch or of an :meth:`encode_many` reading (pure)."""

    def learn_many(self, X: Any) -> None:
        """Learn a batch, in order, exactly as one record at a time would."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, ``torch.load(weights_only=True)``-safe."""


@runtime_checkable
class ServedDetector(StreamDetector, Protocol):
    """A :class:`StreamDetector` the service can run: everything the service asks of one."""

    @property
    def schema(self) -> Schema | None:
        """The fields read, once fixed (declared, or learned from a first record); None
        before."""

    def with_schema(
        self, records: Sequence[Mapping[Any, Any]], kinds: Mapping[Any, str] | None = None
    ) -> ServedDetector | None:
        """An unfitted copy that declares the schema ``records`` agree on (None if none)."""

    def records_until_update(self) -> int:
        """Records that can be learned before any score changes (at least 1)."""

    def training_stats(self) -> TrainingStats:
        """Gradient steps, last losses, memory usage and the fit by field, as one value."""

    def check_one(self, x: Mapping[Any, Any]) -> None:
        """Raise ``ValueError`` naming the field if ``x`` cannot be read; changes nothing."""

    def explain_many(self, X: Any) -> pd.DataFrame:
        """Each field's contribution to each row's score (pure)."""

    def model_input_shape(self, width: int) -> tuple[int, ...]:
        """The model's input shape for records of ``width`` encoded values; ``ValueError``
        if they cannot fill it (an image model on records that are not its images)."""

    @property
    def reads_fields(self) -> bool:
        """Whether its inputs are fields a person named (a sensor, a column), not pixels:
        whether a per-field explanation means something to show."""


_KNOWN: dict[type, bool] = {}


def is_stream_detector(detector: Any) -> bool:
    """``isinstance(detector, StreamDetector)``, decided once per class: the structural check
    costs about 12 us, and the alert filter asks at every run of records (every record for a
    plain River detector). The protocol's members are all the class's, so its answer is the
    same for every instance of it.

    Examples
    --------
    >>> import streammem
    >>> from river import anomaly
    >>> is_stream_detector(streammem.MemAE()), is_stream_detector(anomaly.HalfSpaceTrees())
    (True, False)
    """
    kind = type(detector)
    known = _KNOWN.get(kind)
    if known is None:
        known = _KNOWN[kind] = isinstance(detector, StreamDetector)
    return known


@runtime_checkable
class _SaysWhenItChanges(Protocol):
    def records_until_update(self) -> int: ...


_SAYS: dict[type, bool] = {}


def records_until_update(detector: Any) -> int:
    """Records ``detector`` can learn before any of its scores changes: its own
    ``records_until_update`` (at least 1) where it has one, else 1 (a plain River detector,
    or a :class:`StreamDetector` that does not say, may change at every record).

    Examples
    --------
    >>> import streammem
    >>> from river import anomaly
    >>> det = streammem.MemAE()
    >>> det.learn_many([{"a": float(i % 7)} for i in range(300)])
    >>> records_until_update(det) == det.records_until_update() > 1
    True
    >>> records_until_update(anomaly.HalfSpaceTrees())
    1
    """
    kind = type(detector)
    says = _SAYS.get(kind)
    if says is None:
        says = _SAYS[kind] = isinstance(detector, _SaysWhenItChanges)
    return max(1, detector.records_until_update()) if says else 1
