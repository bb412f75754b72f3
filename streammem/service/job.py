"""Run a finite job: a demo stream, a Parquet or a CSV file through the pipeline into a file
sink.

With ``checkpoint.dir`` set, a job checkpoints every ``checkpoint.interval_s`` (and when it
stops on an error or Ctrl-C): the sink first makes the results so far durable, then the model
and the row reached are saved. A run of the same config after a crash goes on from that row,
so no computed result is lost or written twice; a run after a finished job scores the file
again with the model it left.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from connectors import RecordBatch
from connectors.csv import CsvSource
from connectors.parquet import ParquetSink, ParquetSource
from connectors.source import FileSource, FiniteSource
from streammem.demo import SensorStream
from streammem.interface import ServedDetector
from streammem.learning.fit import TrainingStats
from streammem.metrics import ServiceMetrics
from streammem.persistence import CheckpointError
from streammem.service.agreement import LabelAgreement
from streammem.service.build import new_pipeline, pipeline_from_state
from streammem.service.checkpoint import CheckpointStore
from streammem.service.config import FILE_KINDS, Config, ConfigError
from streammem.service.pipeline import BatchSummary, ScoringPipeline

__all__ = ["JobReport", "open_source", "run_job"]

log = logging.getLogger(__name__)

_CHECKPOINT_NAME = "job"
_RESULT_FIELDS = [
    pa.field("score", pa.float64()),
    pa.field("p_value", pa.float64()),
    pa.field("alert", pa.bool_()),
    pa.field("limit", pa.float64()),  # null while the calibrator warms up
]
_LIKELIHOOD = pa.field("likelihood", pa.float64())  # with calibration.method: likelihood
_TOP_FIELDS = pa.field(
    "top_fields",
    pa.list_(pa.struct([pa.field("field", pa.string()), pa.field("contribution", pa.float64())])),
)


@dataclasses.dataclass
class JobReport:
    """What a finished job did; ``str()`` is the closing summary printed by the CLI.

    Every count is of the rows this run scored: after a resume, the rows from ``resumed_at``
    on (the output file holds the interrupted run's rows before them too). ``labels`` counts
    the rows labelled by the source's label after the calibrator's warm-up; None when the
    source has no label.

    Examples
    --------
    >>> from streammem.service.agreement import LabelAgreement
    >>> summary = BatchSummary(500, 3, 0, LabelAgreement(normal=480, false_alarms=3))
    >>> print(JobReport(summary, 1.0, resumed_at=1000, rows=1500, label="is_anomaly"))
    resumed at   row 1000: the counts below are of rows 1000-1499, scored by this run
    events       500
    alerts       3
    dead letters 0
    events/s     500  (1.0 s)
    labels       is_anomaly, on the 480 labelled rows judged after the warm-up
                 false alarms 3 of 480 normal rows (0.006)
                 no anomalous rows (no recall to measure)
    """

    summary: BatchSummary
    seconds: float
    output: Path | None = None
    plot: Path | None = None
    resumed_at: int = 0
    dead_letter_file: Path | None = None
    rows: int | None = None
    label: str | None = None
    training: TrainingStats | None = None

    @property
    def labels(self) -> LabelAgreement | None:
        """The alerts against the source's label (None without one)."""
        return self.summary.labels if self.label is not None else None

    @property
    def nothing_scored(self) -> bool:
        """Records were read and every one was dead-lettered."""
        return self.summary.events == 0 and self.summary.dead_letters > 0

    @property
    def events_per_second(self) -> float:
        handled = self.summary.events + self.summary.dead_letters
        return handled / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        lines = []
        if self.resumed_at:
            end = f"-{self.rows - 1}" if self.rows is not None else " on"
            lines.append(
                f"resumed at   row {self.resumed_at}: the counts below are of rows "
                f"{self.resumed_at}{end}, scored by this run"
            )
        lines += [
            f"events       {self.summary.events}",
            f"alerts       {self.summary.alerts}",
            f"dead letters {self.summary.dead_letters}",
            f"events/s     {self.events_per_second:,.0f}  ({self.seconds:.1f} s)",
        ]
        labels = self.labels
        if labels is not None and labels.rows == 0:
            lines.append(f"labels       {self.label}: no labelled row was judged after the warm-up")
        elif labels is not None:
            lines += [
                f"labels       {self.label}, on the {labels.rows} labelled rows judged after "
                "the warm-up",
                f"             {labels.false_alarm_text()}",
                f"             {labels.caught_text()}",
            ]
        resumed = " (with the interrupted run's rows)" if self.resumed_at else ""
        fit = self.training.fit_summary() if self.training else None
        lines += [f"fit R²       {fit}"] if fit else []
        lines += [f"output       {self.output}{resumed}"] if self.output else []
        lines += [f"plot         {self.plot}"] if self.plot else []
        return "\n".join(lines)


def open_source(config: Config) -> FiniteSource:
    """The configured finite source (the demo stream, a Parquet or CSV file)."""
    source = config.source
    if source.kind == "demo":
        demo = source.demo
        return SensorStream(
            demo.n_events,
            demo.n_sensors,
            demo.anomaly_rate,
            source.batch_size,
            demo.seed,
            demo.n_faults,
            demo.fault_length,
        )
    if source.kind in FILE_KINDS:
        assert source.path is not None  # the config requires one for a file
        kind = ParquetSource if source.kind == "parquet" else CsvSource
        return kind(
            source.path,
            source.features,
            source.passthrough,
            source.batch_size,
            label=source.label,
            label_required=source.label_required,
        )
    raise ConfigError(f"source.kind: {source.kind!r} is served by `streammem serve`, not `run`")


class _NullSink:
    def write(self, results: list) -> None:
        pass

    def dead_letter(self, letters: list) -> None:
        pass

    def commit(self) -> dict[str, int]:
        return {"parts": 0, "dead_letter_bytes": 0}

    def close(self) -> None:
        pass


@dataclasses.dataclass
class _Job:
    """Where a job stands: its source, sink, pipeline and the next row to score."""

    config: Config
    source: FiniteSource
    pipeline: ScoringPipeline
    store: CheckpointStore | None
    row: int = 0
    sink_position: dict[str, int] | None = None

    @property
    def identity(self) -> dict[str, Any] | None:
        """What a checkpoint must match to go on mid-file; None for the demo (not resumable)."""
        if not isinstance(self.source, FileSource):
            return None
        return {
            "source": str(self.source.path.resolve()),
            "rows": len(self.source),
            "output": str(Path(self.config.sink.path or "").resolve()),
        }

    def batches(self) -> Iterator[RecordBatch]:
        if self.row and isinstance(self.source, FileSource):  # only a file goes on at a row
            return iter(self.source.iter_from(self.row))
        return iter(self.source)

    def open_sink(self) -> ParquetSink | _NullSink:
        sink, output = self.config.sink, _output(self.config)
        if sink.kind == "none":
            return _NullSink()
        if output is None:
            raise ConfigError(f"sink.kind: {sink.kind!r} is served by `streammem serve`, not `run`")
        # Declared, not inferred: a first row group without alerts has no top_fields to type,
        # nor a warm-up's nulls a limit.
        results = [*_RESULT_FIELDS, *([_LIKELIHOOD] if self.pipeline.gives_likelihood else [])]
        results += [_TOP_FIELDS] if sink.top_fields else []
        schema = pa.schema([*self.source.origin_fields(), *results])
        return ParquetSink(output, sink.row_group_size, schema, self.sink_position)

    def save(self, sink: ParquetSink | _NullSink, finished: bool) -> None:
        """Checkpoint the model and the row reached, once the sink made its results durable."""
        if self.store is None:
            return
        position = sink.commit() if not finished else {"parts": 0, "dead_letter_bytes": 0}
        job = {"row": self.row, "finished": finished, "sink": position, **(self.identity or {})}
        self.store.save(_CHECKPOINT_NAME, {**self.pipeline.state_dict(), "job": job})
        self.pipeline.metrics.record_checkpoint()


def _output(config: Config) -> Path | None:
    """The results file: a Parquet sink's path (the config requires one), else none."""
    sink = config.sink
    return Path(sink.path) if sink.kind == "parquet" and sink.path else None


def _labels(config: Config) -> tuple[str, str]:
    """The model gauges' (topic, partition) for a file job: its file's name, or the demo."""
    return (Path(config.source.path).name if config.source.path else "demo", "0")


def _open_job(config: Config, metrics: ServiceMetrics) -> _Job:
    job = _resume(config, metrics)
    _check_width(job.pipeline.model, job.source)
    return job


def _check_width(detector: ServedDetector, source: FiniteSource) -> None:
    """An image model reads each feature column as one pixel: refuse a file that does not
    hold its images, before anything runs (it failed on the first full batch before)."""
    if detector.reads_fields or not isinstance(source, FileSource):
        return
    try:
        detector.model_input_shape(len(source.features))
    except ValueError as err:
        raise ConfigError(f"model: {err} ({len(source.features)} feature columns)") from err


def _resume(config: Config, metrics: ServiceMetrics) -> _Job:
    """The job, with the model of its newest usable checkpoint (and its row, after a crash)."""
    source, labels = open_source(config), _labels(config)
    store = None
    if config.checkpoint.dir is not None:
        store = CheckpointStore(
            config.checkpoint.dir, config.checkpoint.keep, metrics.checkpoint_fallbacks.inc
        )

    def rebuild(state: dict[str, Any]) -> tuple[ScoringPipeline, dict]:
        progress = state.get("job", {"finished": True})
        row = progress.get("row", 0)
        if type(row) is not int or not 0 <= row <= len(source):
            raise CheckpointError(f"its row is {row!r}, and the source has {len(source)} rows")
        sink = progress.get("sink", {})
        if not progress.get("finished", True) and not all(
            type(sink.get(key)) is int and sink[key] >= 0 for key in ("parts", "dead_letter_bytes")
        ):
            raise CheckpointError(f"its sink position is {sink!r}")
        return pipeline_from_state(state, config, metrics, labels), progress

    resumed = store.load_latest(_CHECKPOINT_NAME, rebuild) if store is not None else None
    if resumed is None:
        return _Job(config, source, new_pipeline(config, metrics, labels), store)
    job = _Job(config, source, resumed[0], store)
    _go_on(job, resumed[1])
    return job


def _go_on(job: _Job, progress: dict[str, Any]) -> None:
    """Start at the row a crashed run reached, when its output is still there."""
    if progress.get("finished", True) or job.identity is None:
        return
    if any(progress.get(key) != value for key, value in job.identity.items()):
        log.warning("the last checkpoint is of a run on another file: scoring from row 0")
        return
    output = _output(job.config)
    if output is not None and not ParquetSink.resumable(output, progress["sink"]):
        log.warning("the output of the interrupted run is gone: scoring from row 0")
        return
    job.row, job.sink_position = progress["row"], progress["sink"]
    log.info("going on from row %d, where the interrupted run checkpointed", job.row)


def run_job(
    config: Config, progress: bool = True, metrics: ServiceMetrics | None = None
) -> JobReport:
    """Score every record of the configured source; write results, checkpoints and a plot."""
    metrics = metrics or ServiceMetrics()
    job = _open_job(config, metrics)
    resumed_at = job.row
    sink = job.open_sink()
    total = BatchSummary()
    started = last_checkpoint = time.perf_counter()
    between_batches = True
    try:
        with tqdm(
            total=len(job.source), initial=job.row, unit="ev", disable=not progress, smoothing=0.1
        ) as bar:
            for batch in job.batches():
                between_batches = False
                total += job.pipeline.process(batch, sink)
                job.row += len(batch)
                between_batches = True
                bar.update(len(batch))
                if time.perf_counter() - last_checkpoint >= config.checkpoint.interval_s:
                    job.save(sink, finished=False)
                    last_checkpoint = time.perf_counter()
    except BaseException:
        _stop(job, sink, between_batches)
        raise
    sink.close()
    job.save(sink, finished=True)
    seconds = time.perf_counter() - started
    output = _output(config)
    letters = sink.dead_letter_path if isinstance(sink, ParquetSink) else None
    label = _label(job)
    report = JobReport(total, seconds, output, None, resumed_at, letters, len(job.source), label)
    report.training = job.pipeline.model.training_stats()
    if output and config.sink.plot and not report.nothing_scored:  # no scores, no plot
        by_field = job.pipeline.model.reads_fields  # a colour per pixel would mean nothing
        report.plot = _plot(output, config.sink.plot, label, by_field=by_field)
    return report


def _label(job: _Job) -> str | None:
    """The column of the results that holds the source's label, if it has one (the demo's
    readings carry ``is_anomaly``)."""
    if isinstance(job.source, FileSource):
        return job.source.label
    return job.config.source.label


def _stop(job: _Job, sink: ParquetSink | _NullSink, between_batches: bool) -> None:
    """An error or Ctrl-C: keep what was computed. Without checkpoints, the results so far
    are written out. With them, they are checkpointed for the next run to go on from; if a
    batch was cut halfway, the last checkpoint stands instead (the next run drops what came
    after it and scores those rows again)."""
    if job.store is None:
        sink.close()
        return
    if between_batches:
        job.save(sink, finished=False)
    log.error("stopped; run the same config again to go on from its last checkpoint")


def _plot(results: Path, target: str, label: str | None, by_field: bool) -> Path:
    from streammem.service.plot import plot_scores  # matplotlib is slow to import

    return plot_scores(results, target, label, by_field=by_field)
