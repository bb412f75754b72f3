"""Run a finite job: a demo stream or a Parquet file through the pipeline into a file sink."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from connectors import RecordBatch, Sink
from connectors.parquet import ParquetSink, ParquetSource
from streammem.demo import SensorStream
from streammem.metrics import ServiceMetrics
from streammem.service.build import new_pipeline, pipeline_from_state
from streammem.service.checkpoint import CheckpointStore
from streammem.service.config import Config, ConfigError
from streammem.service.pipeline import BatchSummary, ScoringPipeline

__all__ = ["JobReport", "open_source", "run_job"]

_CHECKPOINT_NAME = "job"


@dataclasses.dataclass
class JobReport:
    """What a finished job did; ``str()`` is the closing summary printed by the CLI."""

    summary: BatchSummary
    seconds: float
    output: Path | None = None
    plot: Path | None = None

    @property
    def events_per_second(self) -> float:
        handled = self.summary.events + self.summary.dead_letters
        return handled / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        lines = [
            f"events       {self.summary.events}",
            f"alerts       {self.summary.alerts}",
            f"dead letters {self.summary.dead_letters}",
            f"events/s     {self.events_per_second:,.0f}  ({self.seconds:.1f} s)",
        ]
        lines += [f"output       {self.output}"] if self.output else []
        lines += [f"plot         {self.plot}"] if self.plot else []
        return "\n".join(lines)


def open_source(config: Config) -> Iterable[RecordBatch]:
    source = config.source
    if source.kind == "demo":
        demo = source.demo
        return SensorStream(
            demo.n_events, demo.n_sensors, demo.anomaly_rate, source.batch_size, demo.seed
        )
    if source.kind == "parquet":
        return ParquetSource(source.path, source.features, source.passthrough, source.batch_size)
    raise ConfigError(f"source.kind: {source.kind!r} is served by `streammem serve`, not `run`")


def _open_sink(config: Config) -> Sink | None:
    if config.sink.kind == "parquet":
        return ParquetSink(config.sink.path, config.sink.row_group_size)
    if config.sink.kind == "none":
        return None
    raise ConfigError(f"sink.kind: {config.sink.kind!r} is served by `streammem serve`, not `run`")


class _NullSink:
    def write(self, results: list) -> None:
        pass

    def dead_letter(self, letters: list) -> None:
        pass

    def close(self) -> None:
        pass


def _resume(
    config: Config, metrics: ServiceMetrics
) -> tuple[ScoringPipeline, CheckpointStore | None]:
    if config.checkpoint.dir is None:
        return new_pipeline(config, metrics), None
    store = CheckpointStore(
        config.checkpoint.dir, config.checkpoint.keep, metrics.checkpoint_fallbacks.inc
    )
    state = store.load_latest(_CHECKPOINT_NAME)
    pipeline = (
        new_pipeline(config, metrics)
        if state is None
        else pipeline_from_state(state, config, metrics)
    )
    return pipeline, store


def run_job(
    config: Config, progress: bool = True, metrics: ServiceMetrics | None = None
) -> JobReport:
    """Score every record of the configured source; write results, a checkpoint and a plot."""
    metrics = metrics or ServiceMetrics()
    pipeline, store = _resume(config, metrics)
    source = open_source(config)
    sink = _open_sink(config) or _NullSink()
    total = BatchSummary()
    started = time.perf_counter()
    try:
        with tqdm(total=len(source), unit="ev", disable=not progress, smoothing=0.1) as bar:
            for batch in source:
                total += pipeline.process(batch, sink)
                bar.update(len(batch))
    finally:  # an interrupted job still writes the results it has computed
        sink.close()
    seconds = time.perf_counter() - started
    if store is not None:
        store.save(_CHECKPOINT_NAME, pipeline.state_dict())
        metrics.record_checkpoint()
    output = Path(config.sink.path) if config.sink.kind == "parquet" else None
    plot = _plot(output, config.sink.plot) if output and config.sink.plot else None
    return JobReport(total, seconds, output, plot)


def _plot(results: Path, target: str) -> Path:
    from streammem.service.plot import plot_scores  # matplotlib is slow to import

    return plot_scores(results, target)
