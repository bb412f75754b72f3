"""Prometheus instruments for the scoring service (``streammem_`` prefix).

Each :class:`ServiceMetrics` owns its own registry, so several pipelines (or tests) in one
process never clash on metric names. Labels stay low-cardinality: dead-letter reasons come from
a fixed set, loss names from the model, topics and partitions from the subscription.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streammem.learning.fit import TrainingStats
from streammem.windows import EVICTION_REASONS

__all__ = ["DEAD_LETTER_REASONS", "MODEL_LABELS", "SCORE_BUCKETS", "ServiceMetrics"]

#: Labels of the gauges each model sets: one model per partition (a file job's is its file).
MODEL_LABELS = ("topic", "partition")
MAX_FIT_FIELDS = 64  # a label value per field: bounded, so a wide table cannot flood the registry

#: Every reason a record can be sent to the dead-letter topic (the label's whole value set):
#: not readable as JSON (or not valid Unicode, or nested too deeply); JSON but not an object;
#: larger than ``kafka.max_message_bytes``; rejected by the model's schema; and the last
#: resort, a batch whose processing kept failing for a reason that is not the record's.
DEAD_LETTER_REASONS = (
    "malformed_json",
    "not_an_object",
    "oversize",
    "invalid_record",
    "processing_error",
)

#: Reconstruction errors of standardised features span several decades around 1.
SCORE_BUCKETS = (
    *(round(0.001 * 2**i, 6) for i in range(20)),
    float("inf"),
)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """The service's instruments, registered in a private registry.

    Examples
    --------
    >>> from prometheus_client import generate_latest
    >>> metrics = ServiceMetrics()
    >>> metrics.record_batch([0.1, 5.0], alerts=1, seconds=0.02, threshold=3.0, model=("t", "0"))
    >>> metrics.record_dead_letter("malformed_json")
    >>> text = generate_latest(metrics.registry).decode()
    >>> "streammem_events_total 2.0" in text, "streammem_alerts_total 1.0" in text
    (True, True)
    >>> 'streammem_dead_letters_total{reason="malformed_json"} 1.0' in text
    True

    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._last_checkpoint: float | None = None
        self._loss_names: dict[tuple[str, str], set[str]] = {}
        self._build_instruments()

    def _build_instruments(self) -> None:
        reg = self.registry
        self.events = Counter("streammem_events", "Records scored.", registry=reg)
        self.alerts = Counter("streammem_alerts", "Records flagged as anomalies.", registry=reg)
        self.alerts_by_top_field = Counter(
            "streammem_alerts_by_top_field",
            "Alerts by the field that contributed most to their score (a field of the schema, "
            "or under a window the reading's field; never a value).",
            ["field"],
            registry=reg,
        )
        self.dead_letters = Counter(
            "streammem_dead_letters",
            "Records that failed to decode or validate, by reason.",
            ["reason"],
            registry=reg,
        )
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)  # export zeros so rates work from the start
        self.scores = Histogram(
            "streammem_score", "Raw anomaly scores.", buckets=SCORE_BUCKETS, registry=reg
        )
        self.threshold = Gauge(
            "streammem_threshold",
            "Score above which records are flagged now, by model.",
            MODEL_LABELS,
            registry=reg,
        )
        self.batch_seconds = Histogram(
            "streammem_batch_seconds",
            "Time to validate, score, calibrate, sink and learn one batch.",
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.model_updates = Counter(
            "streammem_model_updates", "Gradient steps taken by the models.", registry=reg
        )
        self.training_loss = Gauge(
            "streammem_training_loss",
            "Last training loss, by model and loss term.",
            [*MODEL_LABELS, "loss"],
            registry=reg,
        )
        self.memory_usage = Gauge(
            "streammem_memory_slot_usage",
            "Fraction of memory slots carrying addressing weight on recent data, by model.",
            MODEL_LABELS,
            registry=reg,
        )
        self.fit_r2 = Gauge(
            "streammem_fit_r2",
            "How well the model rebuilds each field of records before learning them "
            f"(prequential R² over recent records; the first {MAX_FIT_FIELDS} fields), by model.",
            [*MODEL_LABELS, "field"],
            registry=reg,
        )
        self._fit_fields: dict[tuple[str, str], set[str]] = {}
        self.checkpoint_age = Gauge(
            "streammem_checkpoint_age_seconds",
            "Seconds since the model state on disk was last brought up to date by this process "
            "(-1 before its first checkpoint).",
            registry=reg,
        )
        self.checkpoint_age.set_function(self._checkpoint_age)
        self.checkpoint_fallbacks = Counter(
            "streammem_checkpoint_fallbacks",
            "Unreadable checkpoints skipped in favour of an older one.",
            registry=reg,
        )
        self.checkpoint_failures = Counter(
            "streammem_checkpoint_failures",
            "Checkpoints that could not be written (no space, read-only, too many open files...) "
            "or checkpoint folders that could not be read, by operation (save, load); scoring "
            "and committing go on without them.",
            ["operation"],
            registry=reg,
        )
        for operation in ("save", "load"):
            self.checkpoint_failures.labels(operation)
        self.consumer_lag = Gauge(
            "streammem_consumer_lag",
            "Records between the consumer position and the partition's high watermark.",
            ["topic", "partition"],
            registry=reg,
        )
        self.batch_failures = Counter(
            "streammem_batch_failures",
            "Attempts to process a batch that raised; retried, then dead-lettered.",
            registry=reg,
        )
        self.offset_resets = Counter(
            "streammem_offset_resets",
            "Times a partition's log moved backwards (the broker lost it, or the topic was "
            "recreated); its offsets were started over with the model kept.",
            ["topic", "partition"],
            registry=reg,
        )
        self.offsets_reread = Counter(
            "streammem_offsets_reread",
            "Offsets read again after the log moved backwards: events of the new log at offsets "
            "the old one had already reached (each scored or dead-lettered, none passed over).",
            ["topic", "partition"],
            registry=reg,
        )
        self.offsets_relearned = Counter(
            "streammem_offsets_relearned",
            "Offsets learned again after a restart: scored and sent before the last checkpoint "
            "was overtaken by a crash, they are replayed into the resumed model (results not "
            "sent again) so that it goes on as if it had never stopped.",
            ["topic", "partition"],
            registry=reg,
        )
        self.offsets_skipped = Counter(
            "streammem_offsets_skipped",
            "Offsets the broker did not deliver (deleted by retention or compaction, or "
            "transaction markers); nothing to score.",
            ["topic", "partition"],
            registry=reg,
        )
        self.schema_revisions = Counter(
            "streammem_schema_revisions",
            "Inferred schemas replaced while provisional because most of the latest records "
            "disagreed with them (the model started again), by model.",
            MODEL_LABELS,
            registry=reg,
        )
        self.broker_retries = Counter(
            "streammem_broker_retries",
            "Attempts to reach the broker that failed and were retried.",
            registry=reg,
        )
        self.broker_up = Gauge(
            "streammem_broker_up",
            "1 while the broker answers; 0 from a request to it that failed (connecting, "
            "polling, producing, or probing an idle consumer) until one succeeds.",
            registry=reg,
        )
        self.last_poll = Gauge(
            "streammem_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll the broker answered: one that brought records, or an "
            "idle one confirmed by asking for the partitions' end offsets (every 5 s at most; "
            "a consumer with no partition asks nothing). 0: none yet.",
            registry=reg,
        )
        self.window_keys = Gauge(
            "streammem_window_keys",
            "Keys whose time windows are held, by model.",
            MODEL_LABELS,
            registry=reg,
        )
        self.window_evictions = Counter(
            "streammem_window_evictions",
            "Keys whose windows were dropped, by reason: lru (more keys than window.max_keys) "
            "or ttl (not seen for window.ttl).",
            ["reason"],
            registry=reg,
        )
        for reason in EVICTION_REASONS:
            self.window_evictions.labels(reason)
        self.window_gaps = Counter(
            "streammem_window_gaps",
            "Windows started afresh after a gap longer than window.max_gap.",
            registry=reg,
        )

    def record_batch(
        self,
        scores: list[float],
        alerts: int,
        seconds: float,
        threshold: float,
        model: tuple[str, str],
    ) -> None:
        """Count a processed batch and observe its scores and latency; ``model`` is the
        (topic, partition) whose model scored it."""
        self.events.inc(len(scores))
        self.alerts.inc(alerts)
        for score in scores:
            self.scores.observe(score)
        self.batch_seconds.observe(seconds)
        self.threshold.labels(*model).set(threshold)

    def record_top_fields(self, top_fields: Sequence[Sequence[tuple]], alerts: list[bool]) -> None:
        """Count each alert under its top field (the first of its ``top_fields``).

        The label's values are field names from the model's schema, so they stay as few as
        the schema's fields: a categorical field is one label whatever its values.

        Examples
        --------
        >>> metrics = ServiceMetrics()
        >>> metrics.record_top_fields([[("s3", 0.4), ("s1", 0.1)], []], alerts=[True, False])
        >>> sample = metrics.registry.get_sample_value
        >>> sample("streammem_alerts_by_top_field_total", {"field": "s3"})
        1.0
        """
        for ranked, alert in zip(top_fields, alerts, strict=True):
            if alert and ranked:
                self.alerts_by_top_field.labels(str(ranked[0][0])).inc()

    def record_dead_letter(self, reason: str) -> None:
        if reason not in DEAD_LETTER_REASONS:
            raise ValueError(f"unknown dead-letter reason {reason!r}; use {DEAD_LETTER_REASONS}")
        self.dead_letters.labels(reason).inc()

    def record_training(
        self, new_updates: int, stats: TrainingStats, model: tuple[str, str]
    ) -> None:
        """Observe the model of ``model`` (topic, partition) after a learning step."""
        if new_updates > 0:
            self.model_updates.inc(new_updates)
        for name, value in (stats.losses or {}).items():
            self.training_loss.labels(*model, name).set(value)
            self._loss_names.setdefault(model, set()).add(name)
        if stats.memory_usage is not None:
            self.memory_usage.labels(*model).set(stats.memory_usage)
        for field, r2 in list(stats.fit_r2.items())[:MAX_FIT_FIELDS]:
            self.fit_r2.labels(*model, str(field)).set(r2)
            self._fit_fields.setdefault(model, set()).add(str(field))

    def record_window(
        self, keys: int, evicted: Mapping[str, int], gaps: int, model: tuple[str, str]
    ) -> None:
        """Observe a model's time windows after a batch: keys held now, and the evictions
        (by reason) and gaps of that batch."""
        self.window_keys.labels(*model).set(keys)
        for reason, count in evicted.items():
            if count:
                self.window_evictions.labels(reason).inc(count)
        if gaps:
            self.window_gaps.inc(gaps)

    def forget_model(self, model: tuple[str, str]) -> None:
        """Drop the gauges of a model this process no longer owns (a revoked partition)."""
        for gauge in (self.threshold, self.memory_usage, self.window_keys):
            with contextlib.suppress(KeyError):
                gauge.remove(*model)
        for name in self._loss_names.pop(model, ()):
            self.training_loss.remove(*model, name)
        for field in self._fit_fields.pop(model, ()):
            self.fit_r2.remove(*model, field)

    def record_broker_answer(self, polled: bool = False) -> None:
        """The broker answered a request; ``polled``: it was a poll (or confirmed one)."""
        self.broker_up.set(1)
        if polled:
            self.last_poll.set(time.time())

    def record_broker_failure(self) -> None:
        """A request to the broker failed and will be retried."""
        self.broker_retries.inc()
        self.broker_up.set(0)

    def record_checkpoint(self) -> None:
        self._last_checkpoint = time.monotonic()

    def _checkpoint_age(self) -> float:
        if self._last_checkpoint is None:
            return -1.0
        return time.monotonic() - self._last_checkpoint
