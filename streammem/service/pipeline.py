"""The one processing path shared by the Python API, file jobs and the Kafka daemon.

validate (bad -> dead letters) -> score_many -> calibrate -> sink -> learn_many -> metrics.

Validation and scoring share one pass: a batch is scored as a table, and only a batch that the
detector rejects is checked record by record (``check_one``) to isolate its bad records.

Scoring happens before learning, so every record is judged by a model that has not seen it.
Records the calibrator flags are not learned (unless ``learn_on_alert``): an attack must not
teach the model's memory that it is normal.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import numpy as np
import pandas as pd

from connectors import DeadLetter, RecordBatch, Sink
from streammem.calibration import Calibrator
from streammem.metrics import ServiceMetrics

__all__ = ["BatchSummary", "ScoringPipeline"]


@dataclasses.dataclass
class BatchSummary:
    """Counts for one processed batch (add them up for a job summary)."""

    events: int = 0
    alerts: int = 0
    dead_letters: int = 0

    def __iadd__(self, other: BatchSummary) -> BatchSummary:
        self.events += other.events
        self.alerts += other.alerts
        self.dead_letters += other.dead_letters
        return self


class ScoringPipeline:
    """A detector, its calibrator and the steps that run every batch through them.

    Parameters
    ----------
    detector
        A streammem detector (any River anomaly detector with ``check_one``, ``score_many`` and
        ``learn_many``).
    calibrator
        Turns scores into p-values and alerts.
    metrics
        Where counts, scores and latencies are recorded.
    learn_on_alert
        Also learn from flagged records.

    """

    def __init__(
        self,
        detector: Any,
        calibrator: Calibrator,
        metrics: ServiceMetrics,
        learn_on_alert: bool = False,
    ) -> None:
        self.detector = detector
        self.calibrator = calibrator
        self.metrics = metrics
        self.learn_on_alert = learn_on_alert

    def process(self, batch: RecordBatch, sink: Sink) -> BatchSummary:
        """Run one batch through the whole path; results and dead letters go to ``sink``."""
        started = time.perf_counter()
        origins, table, raw_scores, letters = self._validated_scores(batch)
        sink.dead_letter(letters)
        for letter in letters:
            self.metrics.record_dead_letter(letter.reason)
        summary = BatchSummary(dead_letters=len(letters))
        if origins:
            scores, p_values, alerts = self._calibrate(raw_scores)
            sink.write(_results(origins, scores, p_values, alerts))
            self._learn(table, scores, alerts)
            summary.events, summary.alerts = len(origins), int(alerts.sum())
            self.metrics.record_batch(
                scores.tolist(),
                summary.alerts,
                time.perf_counter() - started,
                self.calibrator.threshold(),
            )
        return summary

    def _validated_scores(
        self, batch: RecordBatch
    ) -> tuple[list[dict], pd.DataFrame, np.ndarray, list[DeadLetter]]:
        """Score the batch as one table (the detector encodes tables column by column, several
        times faster than record by record, and raises on any bad value without changing
        state); only when that fails, check record by record to dead-letter the culprits."""
        letters = list(batch.dead_letters)
        records, origins = batch.records, batch.origins
        if not records:
            return [], pd.DataFrame(), np.zeros(0), letters
        try:
            table = _table(records)
            return origins, table, self._raw_scores(table), letters
        except ValueError:
            records, origins, invalid = self._validate(batch)
        table = _table(records)
        scores = self._raw_scores(table) if records else np.zeros(0)
        return origins, table, scores, letters + invalid

    def _raw_scores(self, table: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.detector.score_many(table), dtype=np.float64)

    def _validate(self, batch: RecordBatch) -> tuple[list[dict], list[dict], list[DeadLetter]]:
        checker = self._schema_checker(batch.records)
        records, origins, letters = [], [], []
        for i, (record, origin) in enumerate(zip(batch.records, batch.origins, strict=True)):
            try:
                checker.check_one(record)
            except ValueError as err:
                letters.append(_invalid(batch, i, str(err)))
                continue
            records.append(record)
            origins.append(origin)
        return records, origins, letters

    def _schema_checker(self, records: list[dict]) -> Any:
        """The detector once its schema is fixed; before that, a throw-away clone whose schema
        is set by the first valid record, so one batch cannot mix incompatible records."""
        if getattr(self.detector, "encoder_", None) is not None:
            return self.detector
        probe = self.detector.clone()
        for record in records:
            try:
                probe.check_one(record)
            except ValueError:
                continue
            probe.learn_one(record)  # only fixes the schema: far fewer rows than a batch
            break
        return probe

    def _calibrate(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.is_trained:
            # An untrained model scores 0.0: nothing to judge yet, and nothing to calibrate on.
            return scores, np.ones_like(scores), np.zeros(len(scores), dtype=bool)
        p_values = self.calibrator.p_values(scores)
        return scores, p_values, self.calibrator.alerts(scores, p_values)

    def _learn(self, table: pd.DataFrame, scores: np.ndarray, alerts: np.ndarray) -> None:
        was_trained = self.is_trained
        updates_before = self.n_updates
        learnable = table if self.learn_on_alert else table[~alerts]
        if len(learnable):
            self.detector.learn_many(learnable)
        if was_trained:
            # All scores, flagged or not: a window that drops its own top alpha shrinks its
            # threshold every turnover until everything is flagged.
            self.calibrator.learn_many(scores)
        if self.n_updates > updates_before:
            self.metrics.record_training(
                self.n_updates - updates_before,
                getattr(self.detector, "last_losses_", None),
                self.detector.memory_usage() if hasattr(self.detector, "memory_usage") else None,
            )

    @property
    def n_updates(self) -> int:
        return getattr(self.detector, "n_updates_", 0)

    @property
    def is_trained(self) -> bool:
        return self.n_updates > 0

    def state_dict(self) -> dict:
        """Detector and calibrator state, loadable with ``torch.load(weights_only=True)``."""
        return {
            "detector": self.detector.state_dict(),
            "calibrator": self.calibrator.state_dict(),
        }


def _table(records: list[dict]) -> pd.DataFrame:
    """Column-wise, which is several times faster than ``DataFrame.from_records``; records
    whose fields differ from the first one's take the slower, general path."""
    fields = records[0].keys()
    try:
        return pd.DataFrame({field: [r[field] for r in records] for field in fields})
    except KeyError:
        return pd.DataFrame.from_records(records)


def _invalid(batch: RecordBatch, i: int, detail: str) -> DeadLetter:
    if batch.payloads is not None:
        payload, key = batch.payloads[i], batch.keys[i] if batch.keys else None
    else:
        payload, key = json.dumps(batch.records[i], default=repr).encode(), None
    return DeadLetter(batch.origins[i], "invalid_record", detail, payload, key)


def _results(
    origins: list[dict], scores: np.ndarray, p_values: np.ndarray, alerts: np.ndarray
) -> list[dict]:
    return [
        {**origin, "score": score, "p_value": p, "alert": alert}
        for origin, score, p, alert in zip(
            origins, scores.tolist(), p_values.tolist(), alerts.tolist(), strict=True
        )
    ]
