"""How a served stream's schema comes to be fixed: inferred, provisional, revised, fixed.

A declared schema (the config's ``schema``, or a detector's encoder that names its fields) is
never changed. Otherwise :class:`SchemaStage` decides, before each batch, which detector reads
it, and is the only place that does:

1. Until ``min_records`` records have been seen, a throw-away clone on the schema they infer
   judges the records (an untrained model scores them 0); nothing is learned.
2. Then that schema is adopted, provisionally: the model learns on it, and records that do not
   fit it are dead letters. When the latest records infer another one (most of them disagree
   with it: the stream started with wrong-typed records), it is revised, and the model starts
   again on the new one.
3. Once it has held for ``confirm_records`` more records, it is fixed.

Each field takes the type most of the sample agrees on (see
:func:`~streammem.features.schema_example`), so a minority of records cannot set it. The
stage compares schemas as values (:class:`~streammem.interface.Schema`) and reads detectors only
through :class:`~streammem.interface.ServedDetector`; the pipeline installs what it adopts and
counts the revisions.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from streammem.interface import ServedDetector

__all__ = ["SchemaStage", "SchemaStep"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SchemaStep:
    """The stage's answer for one batch: the detector that validates and scores it, and
    whether it is a model adopted for this batch (``adopted``) in place of a provisional one
    (``revised``)."""

    scorer: ServedDetector
    adopted: bool = False
    revised: bool = False


class SchemaStage:
    """The schema's life on one stream: see the module's docstring for the rule.

    Parameters
    ----------
    configured
        The detector as configured; each candidate schema is a copy of it
        (:meth:`~streammem.interface.ServedDetector.with_schema`).
    min_records
        Records a schema is inferred from, at least; they need not come in one batch.
    confirm_records
        Records an adopted schema must keep holding for before it is fixed.

    Attributes
    ----------
    held
        Records the adopted schema has held for while provisional; ``None`` before one is
        adopted and once it is fixed (or declared).
    sample
        The latest records, which the next candidate is inferred from.
    """

    def __init__(
        self, configured: ServedDetector, min_records: int = 32, confirm_records: int = 1_000
    ) -> None:
        self.configured = configured
        self.min_records = min_records
        self.confirm_records = confirm_records
        self.held: int | None = None
        self.sample: list[Mapping] = []

    def is_fixed(self, model: ServedDetector) -> bool:
        """Whether ``model``'s schema can no longer change (declared, or fixed)."""
        return self.held is None and model.schema is not None

    def step(
        self, model: ServedDetector, records: Sequence[Any], kinds: Mapping[Any, str] | None
    ) -> SchemaStep:
        """Which detector reads the next batch, ``records``, while ``model`` is in force."""
        if self.is_fixed(model):
            return SchemaStep(model)
        mappings = [r for r in records if isinstance(r, Mapping)]
        sample = [*self.sample, *mappings][-max(self.min_records, len(mappings)) :]
        self.sample = sample[-self.min_records :]
        candidate = self.configured.with_schema(sample, kinds)
        if candidate is None or len(sample) < self.min_records:
            if self.held is None:  # none adopted yet: a throw-away reads the batch
                return SchemaStep(candidate or model)
        elif self.held is None or candidate.schema != model.schema:
            return self._adopt(candidate, sample, revised=self.held is not None)
        self._held_for(len(mappings))
        return SchemaStep(model)

    def _adopt(self, candidate: ServedDetector, sample: list[Mapping], revised: bool) -> SchemaStep:
        schema = candidate.schema
        numeric = list(schema.numeric) if schema is not None else []
        categorical = [k for k, _ in schema.categorical] if schema is not None else []
        fields = (len(numeric), _shorten(numeric), len(categorical), _shorten(categorical))
        if revised:
            log.warning(
                "schema revised: most of the last %d records disagree with the provisional "
                "one; the model starts again on %d numeric %s, %d categorical %s",
                len(sample),
                *fields,
            )
        else:
            log.info(
                "schema inferred from %d records, provisional until %d more agree: %d numeric "
                "%s, %d categorical %s",
                len(sample),
                self.confirm_records,
                *fields,
            )
        _warn_left_out(sample, {*numeric, *categorical})
        self.held = 0
        self._held_for(0)
        return SchemaStep(candidate, adopted=True, revised=revised)

    def _held_for(self, records: int) -> None:
        assert self.held is not None  # counted only while provisional
        self.held += records
        if self.held >= self.confirm_records:
            self.held = None
            log.info("schema fixed: %d records agreed on it", self.confirm_records)

    # ------------------------------------------------------------------ state
    def state_dict(self, model: ServedDetector) -> dict[str, Any]:
        """How long the schema has held and, while it may still change, the records it is
        inferred from (as JSON text): ``torch.load(weights_only=True)`` reads both."""
        fixed = self.is_fixed(model)
        return {
            "schema_held": self.held,
            "schema_sample": None if fixed else json.dumps(self.sample, default=str),
        }

    def load_state(self, state: Mapping[str, Any], declared: bool) -> None:
        """Take back :meth:`state_dict`'s; ``ValueError`` saying what does not fit. A declared
        schema has nothing to count (older checkpoints lack both keys: fixed, no sample)."""
        held = state.get("schema_held")
        if held is not None and (type(held) is not int or held < 0):
            raise ValueError(f"its schema_held is {held!r}, not a count of records")
        text = state.get("schema_sample")
        try:
            sample = json.loads(text) if isinstance(text, str) else []
        except ValueError as err:  # json's own errors are ValueErrors
            raise ValueError(f"its schema_sample cannot be read: {err}") from err
        if not isinstance(sample, list) or not all(isinstance(r, dict) for r in sample):
            raise ValueError("its schema_sample is not a list of records")
        self.held = None if declared else held
        self.sample = sample


def _warn_left_out(sample: list[Mapping], schema_fields: set) -> None:
    held = collections.Counter(k for r in sample for k in r)
    left_out = [str(k) for k, n in held.items() if 2 * n > len(sample) and k not in schema_fields]
    if left_out:
        log.warning(
            "fields %s, held by most records, are not in the schema: no number or text in "
            "them, or left out of the declared one",
            left_out,
        )


def _shorten(fields: list) -> str:
    """A field list for a log line: an image's 784 pixel names would flood it."""
    return repr(fields) if len(fields) <= 12 else f"[{', '.join(map(repr, fields[:10]))}, ...]"
