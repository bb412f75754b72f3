"""The Kafka daemon: the scoring pipeline between an input topic and an output topic.

Each poll: decode -> pipeline (per partition) -> produce -> flush -> checkpoint (when due) ->
commit. Offsets are committed only once the results they cover are flushed, and a checkpoint is
written before the commit that follows it, so a crash at any point replays, never skips.

A restart resumes each partition's model from its checkpoint, which may be older than the
group's commit (checkpoints are written every ``checkpoint.interval_s``, commits every poll):
the offsets in between were scored and sent before the crash, so the daemon reads them again
and only learns them (their results are not sent twice). The resumed model then goes on from
the commit exactly as the model that crashed would have.

Model state is kept per partition so a rebalance moves a model with its partition: state is
checkpointed when a partition is revoked and loaded after it is assigned, with its first message.

The daemon is built from its collaborators: a :class:`~connectors.source.StreamSource` and a
:class:`~streammem.service.clients.FlushingSink` come from the factories it is given (by default
those of ``kafka.client``, :mod:`streammem.service.clients`), so it runs on any source and sink
with those contracts. What the offsets of each poll mean (a log that went on, a restart behind
the commit, a lost log) is decided by the partition's
:class:`~streammem.service.partition_log.PartitionLog`; the daemon carries it out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from connectors import DeadLetter
from connectors.kafka import JsonDecoder
from connectors.source import StreamSource, log_bounds
from streammem.learning.training import preload_optimizer
from streammem.metrics import ServiceMetrics
from streammem.service.backoff import Backoff
from streammem.service.build import new_pipeline, pipeline_from_state
from streammem.service.checkpoint import CheckpointStore
from streammem.service.clients import (
    COMMIT_TIMEOUT_MS,
    FlushingSink,
    SinkFactory,
    SourceFactory,
    client_factories,
)
from streammem.service.config import Config, ConfigError
from streammem.service.exposition import MetricsServer, serve_metrics
from streammem.service.partition_log import PartitionLog, Step
from streammem.service.pipeline import BatchSummary, ScoringPipeline

__all__ = ["Daemon"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# kafka-python's synchronous flush and close wait forever for a broker that is gone: bound
# them, so SIGTERM during an outage still exits (what is not committed replays).
_SHUTDOWN_TIMEOUT_S = 10.0
# A consumer that owns no partition yet (SIGTERM during a group join) has nothing to hand
# over: its request to leave the group waits behind the join on the broker (3.5 s on Tansu,
# 8 s seen), so it gets only this long, and the group drops it by its session timeout at worst.
_LEAVE_WHILE_JOINING_MS = 500
# An idle consumer's polls do not say whether the broker answers: ask it this often, this long.
_PROBE_INTERVAL_S = 5.0
_PROBE_TIMEOUT_MS = 2_000


class _Discard:
    """Where relearned messages' results go: they were sent before the restart."""

    def write(self, results: list[dict[str, Any]]) -> None:
        pass

    def dead_letter(self, letters: list[DeadLetter]) -> None:
        pass

    def close(self) -> None:
        pass


@dataclasses.dataclass
class _Partition:
    """A partition's model and where it stands in the partition's log."""

    pipeline: ScoringPipeline
    log: PartitionLog


class Daemon(ConsumerRebalanceListener):
    """Serve one configuration until SIGTERM / SIGINT (or :meth:`stop`).

    Parameters
    ----------
    config
        A validated configuration with ``kafka`` settings.
    metrics
        Instruments to update; a fresh private registry by default.
    new_consumer
        ``(config.kafka, daemon) -> source``: a :class:`~connectors.source.StreamSource` of
        the input topic that tells the daemon, its rebalance listener, which partitions it
        gets and loses; by default that of ``kafka.client``.
    new_sink
        ``config.kafka -> sink`` for results and dead letters; called again for a fresh sink
        after one fails; by default that of ``kafka.client``.
    backoff
        How long to wait before trying the broker again.

    """

    def __init__(
        self,
        config: Config,
        metrics: ServiceMetrics | None = None,
        *,
        new_consumer: SourceFactory | None = None,
        new_sink: SinkFactory | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or ServiceMetrics()
        consumer_factory, sink_factory = client_factories(config.kafka)
        self.new_consumer = new_consumer or consumer_factory
        self.new_sink = new_sink or sink_factory
        self.backoff = Backoff() if backoff is None else backoff
        self.store = self._checkpoint_store()
        kafka = config.kafka
        self.decoder = JsonDecoder(
            kafka.fields,
            kafka.key_field,
            kafka.timestamp_field,
            kafka.max_message_bytes,
            label_field=config.source.label,
        )
        self.partitions: dict[TopicPartition, _Partition] = {}
        self.total = BatchSummary()
        self._stopping = False
        self._last_checkpoint = time.monotonic()
        self._failures = 0  # consecutive failed flushes, for the backoff
        self._poll_failures = 0  # consecutive polls that raised, for the backoff
        self._last_probe = time.monotonic()
        # When the broker stopped answering (None: it answers), and the requests failed since.
        self._down_since: float | None = None
        self._failed_requests = 0
        self._revoked: set[TopicPartition] = set()  # in a rebalance, until assigned again
        self._source: StreamSource | None = None
        self._out: FlushingSink | None = None

    @property
    def _consumer(self) -> StreamSource:
        if self._source is None:
            raise RuntimeError("the daemon is not connected: run() connects it")
        return self._source

    @property
    def _sink(self) -> FlushingSink:
        if self._out is None:
            raise RuntimeError("the daemon is not connected: run() connects it")
        return self._out

    def _checkpoint_store(self) -> CheckpointStore | None:
        folder = self.config.checkpoint.dir
        if folder is None:
            return None
        return CheckpointStore(
            folder, self.config.checkpoint.keep, self.metrics.checkpoint_fallbacks.inc
        )

    # ------------------------------------------------------------------ lifecycle
    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch, checkpoint, commit and return."""
        self._stopping = True

    def run(self) -> int:
        """Consume until stopped; returns the process exit status (0 on a clean stop)."""
        server = self._serve_metrics()
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        # torch's optimisers import ~1.5 s of modules on first use: load them while the
        # consumer joins its group, not on the first partition's first batch
        threading.Thread(target=preload_optimizer, name="preload", daemon=True).start()
        try:
            self._connect()
            if self._source is not None:
                self._loop()
                self._shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if server is not None:
                server.shutdown()
                server.server_close()
        return 0

    def _serve_metrics(self) -> MetricsServer | None:
        metrics = self.config.metrics
        if metrics.port is None:
            return None
        try:
            return serve_metrics(self.metrics.registry, metrics)
        except OSError as err:  # most often another daemon on the same port
            raise ConfigError(
                f"metrics.port: cannot serve metrics on {metrics.address}:{metrics.port} ({err})"
            ) from err

    def _connect(self) -> None:
        kafka = self.config.kafka
        consumer = self._retry(lambda: self.new_consumer(kafka, self))
        sink = self._retry(lambda: self.new_sink(kafka))
        if consumer is None or sink is None:  # stopped while the broker was unreachable
            if consumer is not None:
                consumer.close(autocommit=False)
            return
        self._source, self._out = consumer, sink
        self._broker_answered()
        log.info("consuming %s as group %s (%s)", kafka.input_topic, kafka.group_id, kafka.library)

    def _retry(self, attempt: Callable[[], T]) -> T | None:
        """Call ``attempt`` until it succeeds, backing off; None if stopped."""
        failures = 0
        while not self._stopping:
            try:
                return attempt()
            except KafkaError as err:
                failures += 1
                self._broker_failed(f"broker unreachable ({err})", failures)
        return None

    def _broker_failed(self, what: str, failures: int) -> None:
        """Count a failed request to the broker, the ``failures``-th in a row, and back off."""
        self._broker_unreachable(what, f"retrying in {self.backoff.delay(failures):.1f} s")
        self.backoff.wait(failures, stopped=lambda: self._stopping)

    def _broker_unreachable(self, what: str, then: str) -> None:
        """A request to the broker failed: one warning when an outage starts, the retries of
        the same outage at debug level (an outage of 12 s logged ~100 lines)."""
        self.metrics.record_broker_failure()
        self._failed_requests += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "the broker at %s is unreachable: %s; %s, and again until it answers (each "
                "try at --log-level DEBUG)",
                self.config.kafka.bootstrap_servers,
                what,
                then,
            )
        else:
            log.debug("%s; %s", what, then)

    def _broker_answered(self, polled: bool = False) -> None:
        """The broker answered: one line when that ends an outage."""
        self.metrics.record_broker_answer(polled=polled)
        if self._down_since is not None:
            log.warning(
                "the broker answers again, after %.1f s unreachable (%d failed requests)",
                time.monotonic() - self._down_since,
                self._failed_requests,
            )
        self._down_since, self._failed_requests = None, 0

    # ------------------------------------------------------------------ main loop
    def _loop(self) -> None:
        while not self._stopping:
            polled = self._poll()
            if polled:
                self._handle(polled)
            elif self._checkpoint_due():
                self._checkpoint(list(self.partitions))
            self._check_log_ends()
            self._update_lag()

    def _poll(self) -> dict[TopicPartition, list]:
        """One poll's messages; none when the broker failed it (after backing off)."""
        kafka = self.config.kafka
        try:
            polled = self._consumer.poll(
                timeout_ms=kafka.poll_timeout_ms, max_records=kafka.max_poll_records
            )
        except KafkaError as err:  # kafka-python raises when the group coordinator is gone
            self._poll_failures += 1
            self._broker_failed(f"polling failed ({err})", self._poll_failures)
            return {}
        self._poll_failures = 0
        if polled:
            self._broker_answered(polled=True)
        else:
            self._probe()
        return polled

    def _probe(self) -> None:
        """Ask the broker for the assigned partitions' end offsets, every _PROBE_INTERVAL_S at
        most: a poll returns nothing both when the topic is idle and when the broker is gone
        (a 30 s outage left the lag frozen and the retry counter at 0)."""
        assigned = self._consumer.assignment() - self._revoked
        if not assigned or time.monotonic() - self._last_probe < _PROBE_INTERVAL_S:
            return
        self._last_probe = time.monotonic()
        try:
            self._consumer.end_offsets(list(assigned), timeout_ms=_PROBE_TIMEOUT_MS)
        except KafkaError as err:
            self._broker_unreachable(f"it does not answer ({err})", "asking again in 5 s")
            return
        self._broker_answered(polled=True)

    def _handle(self, polled: dict[TopicPartition, list]) -> None:
        starts = {tp: messages[0].offset for tp, messages in polled.items()}
        try:
            for tp, messages in polled.items():
                self._process(tp, messages)
            self._sink.flush()
        except KafkaError as err:
            self._replay(starts, err)
            return
        self._failures = 0
        if self._checkpoint_due():
            self._checkpoint(list(self.partitions))
        self._commit(list(polled))

    def _replay(self, starts: dict[TopicPartition, int], err: KafkaError) -> None:
        """Results of this poll may be missing from the output: rewind, back off, and start a
        new sink (a broker that lost its state leaves the old producer failing for good)."""
        for tp, offset in starts.items():
            self._consumer.seek(tp, offset)
            if tp in self.partitions:  # not if loading its model is what failed
                self.partitions[tp].log.rewind(offset)
        self._sink.close(timeout_s=0)
        self._failures += 1
        what = f"a request to the broker failed ({err}); replaying from {starts}"
        self._broker_failed(what, self._failures)
        sink = self._retry(lambda: self.new_sink(self.config.kafka))
        if sink is not None:
            self._out = sink

    def _process(self, tp: TopicPartition, messages: list) -> None:
        state = self._state(tp)
        step = state.log.step(messages, str(tp))
        self._carry_out(tp, step)
        if step.relearn:
            self._relearn(tp, state, step.relearn)
        if step.process:
            if step.reread is not None:
                self.metrics.offsets_reread.labels(tp.topic, str(tp.partition)).inc(step.reread)
            batch = self.decoder.decode(step.process)
            self.total += state.pipeline.process(batch, self._sink)
            state.log.reached(step.process[-1])

    def _carry_out(self, tp: TopicPartition, step: Step) -> None:
        """The seeks, counts and log lines a :class:`Step` asks for."""
        if step.reset is not None:
            self._reset(tp, step.reset)
        if step.skipped is not None:
            self._skipped(tp, *step.skipped)
        if step.seek is not None:
            self._consumer.seek(tp, step.seek)

    def _relearn(self, tp: TopicPartition, state: _Partition, old: list) -> None:
        """Run the messages the crashed daemon had already sent through the model, as it ran
        them (same results, same learning), sending nothing and counting them apart."""
        pipeline, metrics = state.pipeline, state.pipeline.metrics
        pipeline.metrics = ServiceMetrics()  # not this daemon's events, alerts or letters
        try:
            pipeline.process(self.decoder.decode(old), _Discard())
        finally:
            pipeline.metrics = metrics
        self.metrics.offsets_relearned.labels(tp.topic, str(tp.partition)).inc(len(old))
        state.log.reached(old[-1])

    def _check_log_ends(self) -> None:
        """Catch a consumer past its partition's high watermark (see
        :meth:`PartitionLog.beyond_end`)."""
        for tp in self._consumer.assignment() - self._revoked:
            end = self._consumer.highwater(tp)
            if end is None:  # no fetch answered yet
                continue
            try:
                position = self._consumer.position(tp, timeout_ms=COMMIT_TIMEOUT_MS)
            except KafkaError:  # revoked meanwhile, or the broker is gone: the next loop checks
                continue
            evidence = PartitionLog.beyond_end(position, end)
            if position is not None and evidence is not None:
                self._reset(tp, self._state(tp).log.reset(position, evidence))

    def _skipped(self, tp: TopicPartition, count: int, before: int) -> None:
        self.metrics.offsets_skipped.labels(tp.topic, str(tp.partition)).inc(count)
        log.warning(
            "%s: %d offsets before %d were not delivered by the broker (retention, compaction "
            "or transaction markers)",
            tp,
            count,
            before,
        )

    def _reset(self, tp: TopicPartition, evidence: str) -> None:
        """The broker's log moved backwards (the partition's log has forgotten the offsets it
        had reached): read the new log from its start, with the model kept."""
        self.metrics.offset_resets.labels(tp.topic, str(tp.partition)).inc()
        log.warning(
            "%s: the broker's log moved backwards (%s): it lost the log or the topic was "
            "recreated; reading the new log from its start, with the model kept",
            tp,
            evidence,
        )
        self._consumer.seek_to_beginning(tp)

    def _state(self, tp: TopicPartition) -> _Partition:
        if tp not in self.partitions:
            self.partitions[tp] = self._load(tp)
        return self.partitions[tp]

    def _update_lag(self) -> None:
        for tp, state in self.partitions.items():
            highwater = self._consumer.highwater(tp)
            position = state.log.position
            if highwater is not None and position is not None:
                lag = max(highwater - position, 0)
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)

    # ------------------------------------------------------------------ offsets, checkpoints
    def _commit(self, tps: list[TopicPartition]) -> None:
        offsets = {}
        for tp in tps:
            offset = self.partitions[tp].log.to_commit if tp in self.partitions else None
            if offset is not None:
                offsets[tp] = OffsetAndMetadata(offset, "", -1)
        if not offsets:
            return
        try:
            self._consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
        except KafkaError as err:
            # A rebalance took the partition away (its new owner replays these offsets), or
            # the broker is gone (the next commit covers them; a crash before it replays).
            log.warning("commit failed (%s); the offsets will be replayed", err)

    def _checkpoint_due(self) -> bool:
        interval = self.config.checkpoint.interval_s
        return self.store is not None and time.monotonic() - self._last_checkpoint >= interval

    def _checkpoint(self, tps: list[TopicPartition]) -> None:
        """Save the model of each partition that moved since its last checkpoint. Called only
        after the results up to its position are flushed, and before they are committed."""
        self._last_checkpoint = time.monotonic()
        if self.store is None:
            return
        saved = False
        for tp in tps:
            state = self.partitions.get(tp)
            if state is not None and state.log.moved:
                saved = self._save(self.store, tp, state) or saved
        logs = [state.log for state in self.partitions.values()]
        current = logs and all(p.position is not None and not p.moved for p in logs)
        if saved or current:  # the age says how old the state on disk is: never a made-up 0
            self.metrics.record_checkpoint()

    def _save(self, store: CheckpointStore, tp: TopicPartition, state: _Partition) -> bool:
        """Write the partition's checkpoint; False if the disk refused it.

        A checkpoint that cannot be written does not stop the commit after it: the results
        are flushed, so nothing is lost, and a restart resumes the model from its last
        checkpoint, having not learned what came after it. Exiting instead left the results
        uncommitted, for every restart to emit again. The next checkpoint tries again.
        """
        checkpoint = {
            **state.pipeline.state_dict(),
            "topic": tp.topic,
            "partition": tp.partition,
            **state.log.state(),
        }
        try:
            store.save(self._model_name(tp), checkpoint)
        except OSError as err:
            self.metrics.checkpoint_failures.labels("save").inc()
            before = state.log.checkpointed
            resumes = "a fresh model" if before is None else f"offset {before}"
            log.error(
                "%s: cannot write the checkpoint at offset %d (%s); scoring and committing go "
                "on, and a restart would resume from %s",
                tp,
                state.log.position,
                err,
                resumes,
            )
            return False
        state.log.saved()
        return True

    def _model_name(self, tp: TopicPartition) -> str:
        return f"{tp.topic}-{tp.partition}"

    def _load(self, tp: TopicPartition) -> _Partition:
        """The partition's model from its newest checkpoint that rebuilds and fits the
        broker's log, else a fresh one."""
        committed, end = log_bounds(self._consumer, tp, COMMIT_TIMEOUT_MS)
        resumed = None
        if self.store is not None:
            try:
                resumed = self.store.load_latest(
                    self._model_name(tp), lambda state: self._rebuild(tp, state, committed, end)
                )
            except OSError as err:
                self.metrics.checkpoint_failures.labels("load").inc()
                log.error("%s: cannot read its checkpoints (%s); starting a fresh model", tp, err)
        if resumed is None:
            pipeline = new_pipeline(self.config, self.metrics, (tp.topic, str(tp.partition)))
            return _Partition(pipeline, PartitionLog(committed, end))
        log.info("resumed %s from its checkpoint at offset %d", tp, resumed.log.checkpointed)
        return resumed

    def _rebuild(
        self, tp: TopicPartition, state: dict[str, Any], committed: int | None, end: int
    ) -> _Partition:
        """The partition as a checkpoint left it; ``CheckpointError`` if the checkpoint is not
        this partition's or does not fit its log (:meth:`PartitionLog.from_checkpoint`), or its
        model does not rebuild."""
        offsets = PartitionLog.from_checkpoint(state, tp.topic, tp.partition, committed, end)
        labels = (tp.topic, str(tp.partition))
        return _Partition(pipeline_from_state(state, self.config, self.metrics, labels), offsets)

    # ------------------------------------------------------------------ rebalancing
    # kafka-python runs these inside poll() on its IO thread, where blocking consumer calls
    # (commit, committed) are not allowed. None is needed: every poll is flushed and
    # committed before the next poll, so only the models have to be saved or loaded here.
    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._revoked |= set(revoked)
        owned = [tp for tp in revoked if tp in self.partitions]
        self._checkpoint(owned)
        for tp in owned:
            del self.partitions[tp]
            with contextlib.suppress(KeyError):  # set only once the partition had a message
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
            self.metrics.forget_model((tp.topic, str(tp.partition)))
        if owned:
            log.info("revoked %s", sorted(owned))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Models load on the main thread with each partition's first message: loading here
        # would hold up the heartbeats of the whole group.
        self._revoked -= set(assigned)
        self._broker_answered()  # the group's coordinator assigned them: the broker is up
        log.info("assigned %s", sorted(assigned))

    def _shutdown(self) -> None:
        log.info("stopping: flushing, checkpointing and committing")
        try:
            self._sink.flush(timeout_s=_SHUTDOWN_TIMEOUT_S)
            owned = list(self.partitions)
            self._checkpoint(owned)
            self._commit(owned)
        except KafkaError as err:
            log.error("could not flush before exit (%s); uncommitted offsets will replay", err)
        joining = not self._consumer.assignment() - self._revoked
        leave_ms = _LEAVE_WHILE_JOINING_MS if joining else int(_SHUTDOWN_TIMEOUT_S * 1000)
        self._consumer.close(autocommit=False, timeout_ms=leave_ms)
        self._sink.close(timeout_s=_SHUTDOWN_TIMEOUT_S)
        log.info(
            "stopped after %d events, %d alerts, %d dead letters",
            self.total.events,
            self.total.alerts,
            self.total.dead_letters,
        )
        labels = self.total.labels
        if labels.rows:
            log.info(
                "labels %r, on the %d labelled events judged after the warm-up: %s",
                self.config.source.label,
                labels.rows,
                labels.summary(),
            )
