"""Build detectors, calibrators and pipelines from a validated :class:`Config`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streammem
from streammem.alerts import AlertFilter
from streammem.calibration import (
    Calibrator,
)
from streammem.explain import TopFields
from streammem.metrics import ServiceMetrics
from streammem.persistence import CheckpointError
from streammem.service.config import CalibrationConfig, Config
from streammem.service.pipeline import ScoringPipeline
from streammem.windows import TimeWindow

__all__ = [
    "new_calibrator",
    "new_detector",
    "new_pipeline",
    "new_top_fields",
    "new_window",
    "pipeline_from_state",
]


def new_detector(config: Config) -> Any:
    """The configured detector; its encoder declares the fields ``schema`` names."""
    detector = config.model.build()
    schema = config.schema_
    declared = {"numeric": schema.numeric, "categorical": schema.categorical}
    declared = {part: fields for part, fields in declared.items() if fields is not None}
    if not declared:
        return detector
    return detector.clone({"encoder": detector.new_encoder().clone(declared)})


def new_calibrator(config: CalibrationConfig) -> Calibrator:
    return config.build()


def new_window(config: Config) -> TimeWindow | None:
    """The configured time window (``features.window``), or None."""
    window = config.features.window
    return window.build() if window is not None else None


def new_top_fields(config: Config) -> TopFields | None:
    """Which results carry top fields (``sink.top_fields``), or None when it is 0."""
    sink = config.sink
    if sink.top_fields == 0:
        return None
    return TopFields(sink.top_fields, every_record=sink.top_fields_for == "all")


def new_pipeline(
    config: Config, metrics: ServiceMetrics, labels: tuple[str, str] = ("", "")
) -> ScoringPipeline:
    """A fresh pipeline whose model metrics carry ``labels`` (topic, partition)."""
    alerts = AlertFilter(
        new_detector(config),
        new_calibrator(config.calibration),
        protect_anomaly_detector=not config.calibration.learn_on_alert,
    )
    return ScoringPipeline(
        alerts,
        metrics,
        schema_records=config.schema_.min_records,
        labels=labels,
        window=new_window(config),
        top_fields=new_top_fields(config),
    )


def pipeline_from_state(
    state: dict[str, Any],
    config: Config,
    metrics: ServiceMetrics,
    labels: tuple[str, str] = ("", ""),
) -> ScoringPipeline:
    """Resume a pipeline saved with :meth:`ScoringPipeline.state_dict`; ``CheckpointError``
    (or another error of the state's own making) if the state does not fit. A model reads
    the window it was trained on: a checkpoint resumes only under the same ``features.window``
    (its windows resume with it)."""
    for part in ("detector", "calibrator"):
        if not isinstance(state.get(part), Mapping):
            found = type(state.get(part)).__name__
            raise CheckpointError(f"the checkpoint's {part!r} is a {found}, not a mapping")
    alerts = AlertFilter(
        streammem.from_state(state["detector"]),
        streammem.from_state(state["calibrator"]),
        protect_anomaly_detector=not config.calibration.learn_on_alert,
    )
    return ScoringPipeline(
        alerts,
        metrics,
        schema_records=config.schema_.min_records,
        labels=labels,
        window=_window_from_state(state.get("window"), new_window(config)),
        top_fields=new_top_fields(config),
    )


def _window_from_state(state: Any, configured: TimeWindow | None) -> TimeWindow | None:
    """The checkpoint's window, if it was made under the configured one."""
    if state is None and configured is None:
        return None
    if state is None or configured is None:
        saved = "no window" if state is None else "a window"
        wanted = "features.window is set" if configured is not None else "no features.window"
        raise CheckpointError(f"the checkpoint has {saved}, and the config has {wanted}")
    window = TimeWindow.from_state(state)
    if window.params() != configured.params():
        raise CheckpointError(
            f"its window {window.params()} is not features.window {configured.params()}"
        )
    return window
