"""A streammem detector as the service runs it: a :class:`~streammem.interface.ServedDetector`.

:class:`~streammem.detectors.base.MemoryDetector` has every member of the contract but two,
``schema`` and ``reads_fields``; :class:`Served` supplies them from the detector's public
attributes (its declared or fitted encoder, its backbone) and passes everything else through.
This module is the one place in the service that reads those attributes: once the detector
class has the two members itself, the service holds detectors directly and this module goes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from streammem.detectors.base import MemoryDetector
from streammem.features.encoder import EncodedBatch
from streammem.interface import Schema
from streammem.learning.fit import TrainingStats

__all__ = ["Served"]


class Served:
    """``detector`` behind the :class:`~streammem.interface.ServedDetector` contract.

    Examples
    --------
    >>> import streammem
    >>> served = Served(streammem.MemAE())
    >>> served.schema is None, served.reads_fields
    (True, True)
    >>> served.learn_many([{"temp": 20.0 + i % 3, "line": "ab"[i % 2]} for i in range(40)])
    >>> served.schema
    Schema(numeric=('temp',), categorical=(('line', None),))
    """

    def __init__(self, detector: object) -> None:
        if not isinstance(detector, MemoryDetector):
            raise TypeError(f"the service runs streammem detectors, got {type(detector).__name__}")
        self.detector = detector

    def __repr__(self) -> str:
        return f"Served({self.detector!r})"

    # ------------------------------------------------------------------ the two it supplies
    @property
    def schema(self) -> Schema | None:
        detector = self.detector
        if not detector.has_schema:
            return None
        declared = detector.encoder
        if declared is not None and declared.is_declared:
            return Schema.of(declared.numeric or [], declared.categorical or {})
        fitted = detector.encoder_
        learned = set(fitted.learned_fields_)
        vocabulary = {k: None if k in learned else v for k, v in fitted.vocabulary_.items()}
        return Schema.of(fitted.numeric_, vocabulary)

    @property
    def reads_fields(self) -> bool:
        return self.detector.network_.is_mlp  # the conv backbones read images

    # ------------------------------------------------------------------ passed through
    def with_schema(
        self, records: Sequence[Mapping[Any, Any]], kinds: Mapping[Any, str] | None = None
    ) -> Served | None:
        copy = self.detector.with_schema(records, kinds)
        return Served(copy) if copy is not None else None

    def records_until_update(self) -> int:
        return self.detector.records_until_update()

    def training_stats(self) -> TrainingStats:
        return self.detector.training_stats()

    def check_one(self, x: Mapping[Any, Any]) -> None:
        self.detector.check_one(x)

    def explain_many(self, X: Any) -> pd.DataFrame:
        return self.detector.explain_many(X)

    def model_input_shape(self, width: int) -> tuple[int, ...]:
        return self.detector.model_input_shape(width)

    def score_one(self, x: Mapping[Any, Any]) -> float:
        return self.detector.score_one(x)

    def learn_one(self, x: Mapping[Any, Any]) -> None:
        self.detector.learn_one(x)

    def encode_many(self, X: Any) -> EncodedBatch:
        return self.detector.encode_many(X)

    def score_many(self, X: Any) -> np.ndarray:
        return self.detector.score_many(X)

    def learn_many(self, X: Any) -> None:
        self.detector.learn_many(X)

    def state_dict(self) -> dict[str, Any]:
        return self.detector.state_dict()
