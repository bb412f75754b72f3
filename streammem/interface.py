"""The detector interface that alerts, windows and the service rely on, and nothing more.

Every streammem detector implements :class:`StreamDetector`; :class:`~streammem.AlertFilter`
also takes any plain River anomaly detector (``score_one`` / ``learn_one``), which it serves
one record at a time. The service only runs streammem detectors.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from streammem.features import EncodedBatch
from streammem.fit import TrainingStats

__all__ = ["StreamDetector", "is_stream_detector"]


@runtime_checkable
class StreamDetector(Protocol):
    """A River anomaly detector that reads batches, says when it changes, and saves safely."""

    def score_one(self, x: Mapping[Hashable, Any]) -> float:
        """Score of one record (pure)."""

    def learn_one(self, x: Mapping[Hashable, Any]) -> None:
        """Learn one record."""

    def encode_many(self, X: Any) -> EncodedBatch:
        """Read a batch once for :meth:`score_many` and :meth:`learn_many` (pure); raises
        ``ValueError`` naming the field when a record cannot be read."""

    def score_many(self, X: Any) -> np.ndarray:
        """Scores of a batch or of an :meth:`encode_many` reading (pure)."""

    def learn_many(self, X: Any) -> None:
        """Learn a batch, in order, exactly as one record at a time would."""

    def check_one(self, x: Mapping[Hashable, Any]) -> None:
        """Raise ``ValueError`` naming the field if ``x`` cannot be read; changes nothing."""

    def records_until_update(self) -> int:
        """Records that can be learned before any score changes (at least 1)."""

    @property
    def has_schema(self) -> bool:
        """Whether the fields read (and so the input width) are fixed."""

    def with_schema(
        self, records: Sequence[Mapping[Hashable, Any]], kinds: Mapping[Hashable, str] | None = None
    ) -> StreamDetector | None:
        """An unfitted copy that declares the schema ``records`` agree on (None if none)."""

    def memory_usage(self) -> float | None:
        """Share of memory slots in use (None without memory or before learning)."""

    def training_stats(self) -> TrainingStats:
        """Gradient steps, last losses, memory usage and the fit by field, as one value."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, ``torch.load(weights_only=True)``-safe."""


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
