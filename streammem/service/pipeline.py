"""The one processing path shared by the Python API, file jobs and the Kafka daemon.

validate (bad -> dead letters) -> score_many -> calibrate -> sink -> learn_many -> metrics.

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
        records, origins, letters = self._validate(batch)
        sink.dead_letter(letters)
        for letter in letters:
            self.metrics.record_dead_letter(letter.reason)
        summary = BatchSummary(dead_letters=len(letters))
        if records:
            scores, p_values, alerts = self._score(records)
            sink.write(_results(origins, scores, p_values, alerts))
            self._learn(records, scores, alerts)
            summary.events, summary.alerts = len(records), int(alerts.sum())
            self.metrics.record_batch(
                scores.tolist(),
                summary.alerts,
                time.perf_counter() - started,
                self.calibrator.threshold(),
            )
        return summary

    def _validate(self, batch: RecordBatch) -> tuple[list[dict], list[dict], list[DeadLetter]]:
        checker = self._schema_checker(batch.records)
        records, origins, letters = [], [], list(batch.dead_letters)
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

    def _score(self, records: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scores = np.asarray(self.detector.score_many(records), dtype=np.float64)
        if not self.is_trained:
            # An untrained model scores 0.0: nothing to judge yet, and nothing to calibrate on.
            return scores, np.ones_like(scores), np.zeros(len(scores), dtype=bool)
        p_values = self.calibrator.p_values(scores)
        return scores, p_values, self.calibrator.alerts(scores, p_values)

    def _learn(self, records: list[dict], scores: np.ndarray, alerts: np.ndarray) -> None:
        was_trained = self.is_trained
        updates_before = self.n_updates
        learnable = (
            records
            if self.learn_on_alert
            else [r for r, alert in zip(records, alerts.tolist(), strict=True) if not alert]
        )
        if learnable:
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
