"""The one processing path shared by file jobs and the Kafka daemon.

[window] -> validate (bad -> dead letters) -> score_many -> calibrate -> learn_many -> sink ->
metrics.
Calibration and protected learning are the :class:`~streammem.AlertFilter`'s, the same
object a Python user wraps a detector in; the pipeline adds validation, schema inference,
dead letters, retries and metrics.

Validation reads a batch once, as a table; only a batch that the detector rejects is checked
record by record (``check_one``), then read in halves, to isolate its bad records. No record can
make :meth:`ScoringPipeline.process` raise: each one becomes a result or a dead letter. The
valid records then go through :meth:`AlertFilter.process_many`, which gives the alerts of one
record at a time whatever the batch size, so the service and the Python API agree.

Scoring happens before learning, so every record is judged by a model that has not seen it.
Records the calibrator flags are not learned (unless the filter's ``protect_anomaly_detector``
is off): an attack must not teach the model's memory that it is normal.

With a :class:`~streammem.TimeWindow` (``features.window``), the batch's readings become window
vectors first, as ``window | alerts`` does in River: the filter scores the windows, and the
window takes in every reading that got a result, flagged or not (a window is the sensor's
recent history, not something learned as normal). A reading the window cannot use is
dead-lettered before anything else sees it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from river import base as river_base

from connectors import DeadLetter, RecordBatch, Sink
from streammem.alerts.calibration import Calibrator, TailLikelihood
from streammem.alerts.filter import AlertFilter, Judged
from streammem.explain import Ranked, TopFields
from streammem.interface import ServedDetector
from streammem.metrics import ServiceMetrics
from streammem.service.agreement import LabelAgreement, label_values
from streammem.service.backoff import Backoff
from streammem.service.schema_stage import SchemaStage
from streammem.service.served import Served
from streammem.windows import TimeWindow

__all__ = ["BatchSummary", "ScoringPipeline"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class BatchSummary:
    """Counts for one processed batch (add them up for a job summary); ``labels``: the alerts
    against the source's label, on its labelled rows judged after the warm-up."""

    events: int = 0
    alerts: int = 0
    dead_letters: int = 0
    labels: LabelAgreement = dataclasses.field(default_factory=LabelAgreement)

    def __iadd__(self, other: BatchSummary) -> BatchSummary:
        self.events += other.events
        self.alerts += other.alerts
        self.dead_letters += other.dead_letters
        self.labels += other.labels
        return self


class ScoringPipeline:
    """An alert filter (detector + calibrator) and the steps that run every batch through it.

    Parameters
    ----------
    alerts
        A streammem detector behind its calibrator; it decides p-values, alerts and what is
        learned. The pipeline reads the detector only through the
        :class:`~streammem.interface.ServedDetector` contract (:attr:`model`).
    metrics
        Where counts, scores and latencies are recorded.
    max_attempts
        Tries for a batch whose processing raises; after the last, its records are
        dead-lettered as ``processing_error``.
    backoff
        How long to wait before each new try; ``Backoff()`` if None.
    schema_records
        Records a schema is inferred from, at least (unless the detector's encoder declares
        it): they need not come in one batch. See :mod:`~streammem.service.schema_stage`.
    confirm_records
        Records an inferred schema must keep holding for before it is fixed; until then it is
        revised when most of the latest records disagree with it.
    configured
        The detector as configured, into a copy of which schemas are inferred; the alert
        filter's own if None (a resumed pipeline's has its schema already).
    labels
        (topic, partition) of this model's gauges.
    window
        Turns each reading into its window vector before the filter sees it; ``None``: records
        go to the filter as they are.
    top_fields
        Which results carry ``top_fields``, their largest contributions by field (the
        readings' fields under a window); ``None``: none do, and results have no such key.
    label
        The origin field holding each record's known-anomaly label (``source.label``), for
        the summaries' false-alarm rate and recall; records without one are not counted.

    Attributes
    ----------
    schema_stage
        The :class:`~streammem.service.schema_stage.SchemaStage` that decides, before each
        batch, which detector reads it.

    """

    def __init__(
        self,
        alerts: AlertFilter,
        metrics: ServiceMetrics,
        max_attempts: int = 3,
        backoff: Backoff | None = None,
        schema_records: int = 32,
        labels: tuple[str, str] = ("", ""),
        window: TimeWindow | None = None,
        top_fields: TopFields | None = None,
        confirm_records: int = 1_000,
        configured: ServedDetector | None = None,
        label: str | None = None,
    ) -> None:
        self.alerts = alerts
        self.model: ServedDetector = Served(alerts.anomaly_detector)
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.backoff = Backoff() if backoff is None else backoff
        self.labels = labels
        self.window = window
        self.top_fields = top_fields
        self.label = label
        self.schema_stage = SchemaStage(
            self.model if configured is None else configured, schema_records, confirm_records
        )

    def process(self, batch: RecordBatch, sink: Sink) -> BatchSummary:
        """Run one batch through the whole path; results and dead letters go to ``sink``.

        Never raises on input: every record of the batch becomes one result or one dead
        letter. Only the sink's own errors (a broker that is gone) reach the caller.
        """
        started = time.perf_counter()
        outcome = self._attempt(batch)
        alerts = int(outcome.judged.alerts.sum())
        # The sink comes last, so a failed attempt leaves nothing of its batch in the output.
        sink.dead_letter(outcome.letters)
        for letter in outcome.letters:
            self.metrics.record_dead_letter(letter.reason)
        if outcome.origins:
            sink.write(outcome.results())
            if outcome.explained:
                judged = outcome.judged
                assert judged.top_fields is not None  # a Judged always has them
                self.metrics.record_top_fields(judged.top_fields, judged.alerts.tolist())
            self.metrics.record_batch(
                outcome.judged.scores.tolist(),
                alerts,
                time.perf_counter() - started,
                self.calibrator.threshold(),
                self.labels,
            )
        return BatchSummary(
            len(outcome.origins), alerts, len(outcome.letters), self._agreement(outcome)
        )

    def _agreement(self, outcome: _Outcome) -> LabelAgreement:
        """The batch's alerts against its labels, on the rows judged after the warm-up."""
        if self.label is None or not outcome.origins:
            return LabelAgreement()
        anomalous, labelled = label_values([o.get(self.label) for o in outcome.origins])
        judged = labelled & np.isfinite(outcome.judged.limits)
        return LabelAgreement.of(outcome.judged.alerts, anomalous, judged)

    def _attempt(self, batch: RecordBatch) -> _Outcome:
        """Score, calibrate and learn; a batch that keeps failing for a reason that is not one
        of its records (a bug) is dead-lettered whole, so it cannot stop the stream."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self._score_and_learn(batch)
            except Exception as err:
                self.metrics.batch_failures.inc()
                log.exception(
                    "processing a batch failed (attempt %d of %d)", attempt, self.max_attempts
                )
                failure = err
            if attempt < self.max_attempts:
                self.backoff.wait(attempt)
        detail = f"processing failed {self.max_attempts} times: {type(failure).__name__}: {failure}"
        failed = [
            _dead_letter(batch, i, "processing_error", detail) for i in range(len(batch.records))
        ]
        return _Outcome(letters=[*batch.dead_letters, *failed])

    def _score_and_learn(self, batch: RecordBatch) -> _Outcome:
        window, readings = self.window, None
        if window is not None:
            batch, readings = _windowed(window, batch)
        scorer = self._scorer(batch)
        chunks, invalid = _Validator(scorer, batch).run()
        explain = self._explain(readings)
        judged = self._judge(chunks, learn=scorer is self.model, scorer=scorer, explain=explain)
        if window is not None and readings is not None:
            self._learn_window(window, [readings[i] for chunk in chunks for i in chunk.rows])
        origins = [batch.origins[i] for chunk in chunks for i in chunk.rows]
        explained = self.top_fields is not None
        letters = [*batch.dead_letters, *invalid]
        return _Outcome(origins, judged, letters, explained, self.gives_likelihood)

    @property
    def gives_likelihood(self) -> bool:
        """Whether results carry ``likelihood`` (``1 - p_value``): with a TailLikelihood."""
        return isinstance(self.calibrator, TailLikelihood)

    def _explain(self, readings: list[Mapping] | None) -> TopFields:
        """What to explain in this batch: under a window, by the readings' fields."""
        explain = self.top_fields if self.top_fields is not None else TopFields(0)
        if self.window is None or not (readings and explain.k):
            return explain
        return dataclasses.replace(explain, fold_into=self.window.column_fields(readings))

    @property
    def detector(self) -> river_base.AnomalyDetector:
        """The detector itself, as the alert filter holds it."""
        return self.alerts.anomaly_detector

    def _install(self, model: ServedDetector) -> None:
        """Score, judge and learn with ``model`` from now on (the filter holds the detector
        itself, as River's filters do)."""
        self.model = model
        # Not Served: a detector class that has the contract itself, a River AnomalyDetector.
        held = model.detector if isinstance(model, Served) else model
        self.alerts.anomaly_detector = held  # type: ignore[assignment]

    @property
    def calibrator(self) -> Calibrator:
        return self.alerts.calibrator_

    def _scorer(self, batch: RecordBatch) -> ServedDetector:
        """The detector that validates and scores ``batch``: the schema stage's choice, which
        is installed as the model when the stage adopts it."""
        step = self.schema_stage.step(self.model, batch.records, batch.kinds)
        if step.adopted:
            self._install(step.scorer)
        if step.revised:
            self.metrics.schema_revisions.labels(*self.labels).inc()
        return step.scorer

    def _judge(
        self, chunks: list[_Chunk], learn: bool, scorer: ServedDetector, explain: TopFields
    ) -> Judged:
        """Judge the valid chunks in order: with learning through the filter's exact path, or
        (while the schema is provisional) with the throw-away scorer, learning nothing."""
        if not learn:
            return Judged.concat(
                [self._judge_provisionally(scorer, chunk, explain) for chunk in chunks]
            )
        updates_before = self.n_updates
        judged = [self.alerts.process_many(chunk.table, explain) for chunk in chunks]
        if self.n_updates > updates_before:
            stats = self.model.training_stats()
            self.metrics.record_training(stats.n_updates - updates_before, stats, self.labels)
        return Judged.concat(judged)

    def _judge_provisionally(
        self, scorer: ServedDetector, chunk: _Chunk, explain: TopFields
    ) -> Judged:
        judged = self.alerts.judge(np.asarray(scorer.score_many(chunk.table), np.float64))
        judged.top_fields = explain.of(scorer, chunk.table, judged.alerts)
        return judged

    def _learn_window(self, window: TimeWindow, readings: list[Mapping]) -> None:
        evicted, gaps = window.evictions(), window.gaps
        if readings:
            window.learn_many(readings)
        now = window.evictions()
        since = {reason: count - evicted[reason] for reason, count in now.items()}
        self.metrics.record_window(window.n_keys, since, window.gaps - gaps, self.labels)

    @property
    def n_updates(self) -> int:
        return self.model.training_stats().n_updates

    @property
    def is_trained(self) -> bool:
        return self.n_updates > 0

    def state_dict(self) -> dict:
        """Detector, calibrator and window state, and the schema stage's (how long an inferred
        schema has held and, while it may still change, its sample), loadable with
        ``torch.load(weights_only=True)``."""
        return {
            "detector": self.model.state_dict(),
            "calibrator": self.calibrator.state_dict(),
            "window": self.window.state_dict() if self.window is not None else None,
            **self.schema_stage.state_dict(self.model),
        }


@dataclasses.dataclass
class _Outcome:
    """What a batch became: scored records (origin, score, p-value, alert) and dead letters."""

    origins: list[dict] = dataclasses.field(default_factory=list)
    judged: Judged = dataclasses.field(default_factory=lambda: Judged.concat([]))
    letters: list[DeadLetter] = dataclasses.field(default_factory=list)
    explained: bool = False  # whether results carry the judgement's top_fields
    likelihood: bool = False  # whether results carry the likelihood, 1 - p_value

    def results(self) -> list[dict]:
        """One result per scored record; ``limit`` is the score above which it would have
        alerted (null while the calibrator warms up: JSON has no infinity); with a
        :class:`~streammem.TailLikelihood`, ``likelihood`` is ``1 - p_value`` (0 while it
        warms up)."""
        judged = self.judged
        limits = [v if math.isfinite(v) else None for v in judged.limits.tolist()]
        results = [
            {**origin, "score": score, "p_value": p, "alert": alert, "limit": limit}
            for origin, score, p, alert, limit in zip(
                self.origins,
                judged.scores.tolist(),
                judged.p_values.tolist(),
                judged.alerts.tolist(),
                limits,
                strict=True,
            )
        ]
        if self.likelihood:
            for result, p in zip(results, judged.p_values.tolist(), strict=True):
                result["likelihood"] = 1.0 - p
        if self.explained:
            assert judged.top_fields is not None  # a Judged always has them
            for result, ranked in zip(results, judged.top_fields, strict=True):
                result["top_fields"] = _top_fields_record(ranked)
        return results


def _top_fields_record(ranked: Ranked) -> list[dict] | None:
    """A result's ``top_fields``: ``[{"field", "contribution"}, ...]``; None if unexplained."""
    if not ranked:
        return None
    return [{"field": str(field), "contribution": value} for field, value in ranked]


@dataclasses.dataclass
class _Chunk:
    """Rows of a batch (their positions in it) that were read together as one table, as the
    detector read them (scoring and learning reuse that reading)."""

    rows: list[int]
    table: Any


class _Validator:
    """Validates one batch with one detector, isolating the records it rejects.

    The batch is read as one table (the detector encodes tables column by column, several
    times faster than record by record, and raises on any bad value without changing state);
    only when that fails is each record checked (``check_one``), and what remains read in
    halves until each part reads: a record that fails alone is dead-lettered. Halving catches
    what ``check_one`` cannot see, such as values a table column cannot hold.
    """

    def __init__(self, detector: ServedDetector, batch: RecordBatch) -> None:
        self.detector = detector
        self.batch = batch
        self.rejected: list[tuple[int, DeadLetter]] = []

    def run(self) -> tuple[list[_Chunk], list[DeadLetter]]:
        rows = list(range(len(self.batch.records)))
        if not rows:
            return [], []
        try:
            return [self._chunk(rows)], []
        except Exception:  # whatever the error, the culprits are found below
            chunks = self._bisect(self._valid(rows))
        return chunks, [letter for _, letter in sorted(self.rejected, key=lambda pair: pair[0])]

    def _chunk(self, rows: list[int]) -> _Chunk:
        table = _table([self.batch.records[i] for i in rows])
        read = self.detector.encode_many(table)
        if read.raw is None:  # nothing read it (no schema yet): scoring does
            self.detector.score_many(table)
        return _Chunk(rows, read)

    def _valid(self, rows: list[int]) -> list[int]:
        valid = []
        for i in rows:
            try:
                self.detector.check_one(self.batch.records[i])
            except Exception as err:
                self._reject(i, err)
                continue
            valid.append(i)
        return valid

    def _bisect(self, rows: list[int]) -> list[_Chunk]:
        if not rows:
            return []
        try:
            return [self._chunk(rows)]
        except Exception as err:
            if len(rows) == 1:
                self._reject(rows[0], err)
                return []
        half = len(rows) // 2
        return self._bisect(rows[:half]) + self._bisect(rows[half:])

    def _reject(self, i: int, err: Exception) -> None:
        # The detector's own ValueErrors name the field; anything else is shown with its type.
        detail = str(err) if type(err) is ValueError else f"{type(err).__name__}: {err}"
        self.rejected.append((i, _dead_letter(self.batch, i, "invalid_record", detail)))


def _windowed(window: TimeWindow, batch: RecordBatch) -> tuple[RecordBatch, list[Mapping]]:
    """The batch with each reading replaced by its window vector, and the readings, in the
    same order; readings the window cannot use become dead letters."""
    try:
        window.fit_fields(batch.records)
    except ValueError as err:  # no numeric field in the batch: no reading can be windowed
        problems: list[str | None] = [str(err)] * len(batch.records)
    else:
        problems = [_window_problem(window, record) for record in batch.records]
    kept = [i for i, problem in enumerate(problems) if problem is None]
    letters = [
        _dead_letter(batch, i, "invalid_record", problem)
        for i, problem in enumerate(problems)
        if problem is not None
    ]
    readings: list[Mapping] = [batch.records[i] for i in kept]
    windowed = RecordBatch(
        window.transform_many(readings) if readings else [],
        [batch.origins[i] for i in kept],
        [*batch.dead_letters, *letters],
        [batch.payloads[i] for i in kept] if batch.payloads is not None else None,
        [batch.keys[i] for i in kept] if batch.keys is not None else None,
        batch.kinds,
    )
    return windowed, readings


def _window_problem(window: TimeWindow, record: Any) -> str | None:
    try:
        window.check_one(record)
    except ValueError as err:
        return str(err)
    return None


def _table(records: list[dict]) -> pd.DataFrame:
    """Column-wise, which is several times faster than ``DataFrame.from_records``; records
    whose fields differ from the first one's take the slower, general path."""
    if not records:
        return pd.DataFrame()
    fields = records[0].keys()
    try:
        return pd.DataFrame({field: [r[field] for r in records] for field in fields})
    except KeyError:
        return pd.DataFrame.from_records(records)


def _dead_letter(batch: RecordBatch, i: int, reason: str, detail: str) -> DeadLetter:
    if batch.payloads is not None:
        payload, key = batch.payloads[i], batch.keys[i] if batch.keys else None
    else:
        payload, key = _record_bytes(batch.records[i]), None
    return DeadLetter(batch.origins[i], reason, detail, payload, key)


def _record_bytes(record: Any) -> bytes:
    """A record as JSON bytes for its dead letter, whatever it holds."""
    for show in (lambda r: json.dumps(r, default=repr), repr):
        try:
            return show(record).encode("utf-8", "backslashreplace")
        except (ValueError, RecursionError):  # circular, too deep, or an int too long to print
            continue
    return f"<unprintable {type(record).__name__}>".encode()
