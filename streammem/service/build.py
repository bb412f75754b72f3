"""Build detectors, calibrators and pipelines from a validated :class:`Config`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streammem
from streammem.alerts import AlertFilter
from streammem.calibration import (
    Calibrator,
    ConformalCalibrator,
    QuantileThreshold,
    calibrator_from_state,
)
from streammem.metrics import ServiceMetrics
from streammem.persistence import CheckpointError
from streammem.service.config import CalibrationConfig, Config
from streammem.service.pipeline import ScoringPipeline

__all__ = ["new_calibrator", "new_detector", "new_pipeline", "pipeline_from_state"]


def new_detector(config: Config) -> Any:
    """The configured detector; its encoder declares the fields ``schema`` names."""
    params = dict(config.model.params)
    if isinstance(params.get("schedule"), dict):
        params["schedule"] = streammem.Schedule(**params["schedule"])
    detector = getattr(streammem, config.model.name)(**params)
    schema = config.schema
    declared = {"numeric": schema.numeric, "categorical": schema.categorical}
    declared = {part: fields for part, fields in declared.items() if fields is not None}
    if not declared:
        return detector
    return detector.clone({"encoder": detector._new_encoder().clone(declared)})


def new_calibrator(config: CalibrationConfig) -> Calibrator:
    if config.method == "quantile":
        return QuantileThreshold(config.quantile, config.window_size, config.min_reference)
    return ConformalCalibrator(config.alpha, config.window_size, config.min_reference)


def new_pipeline(
    config: Config, metrics: ServiceMetrics, labels: tuple[str, str] = ("", "")
) -> ScoringPipeline:
    """A fresh pipeline whose model metrics carry ``labels`` (topic, partition)."""
    alerts = AlertFilter(
        new_detector(config),
        new_calibrator(config.calibration),
        protect_anomaly_detector=not config.calibration.learn_on_alert,
    )
    return ScoringPipeline(alerts, metrics, schema_records=config.schema.min_records, labels=labels)


def pipeline_from_state(
    state: dict[str, Any],
    config: Config,
    metrics: ServiceMetrics,
    labels: tuple[str, str] = ("", ""),
) -> ScoringPipeline:
    """Resume a pipeline saved with :meth:`ScoringPipeline.state_dict`; ``CheckpointError``
    (or another error of the state's own making) if the state does not fit."""
    for part in ("detector", "calibrator"):
        if not isinstance(state.get(part), Mapping):
            found = type(state.get(part)).__name__
            raise CheckpointError(f"the checkpoint's {part!r} is a {found}, not a mapping")
    alerts = AlertFilter(
        streammem.detector_from_state(state["detector"]),
        calibrator_from_state(state["calibrator"]),
        protect_anomaly_detector=not config.calibration.learn_on_alert,
    )
    return ScoringPipeline(alerts, metrics, schema_records=config.schema.min_records, labels=labels)
