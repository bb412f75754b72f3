"""Build detectors, calibrators and pipelines from a validated :class:`Config`."""

from __future__ import annotations

from typing import Any

import streammem
from streammem.calibration import (
    Calibrator,
    ConformalCalibrator,
    QuantileThreshold,
    calibrator_from_state,
)
from streammem.metrics import ServiceMetrics
from streammem.service.config import CalibrationConfig, Config
from streammem.service.pipeline import ScoringPipeline

__all__ = ["new_calibrator", "new_detector", "new_pipeline", "pipeline_from_state"]


def new_detector(config: Config) -> Any:
    params = dict(config.model.params)
    if isinstance(params.get("schedule"), dict):
        params["schedule"] = streammem.Schedule(**params["schedule"])
    return getattr(streammem, config.model.name)(**params)


def new_calibrator(config: CalibrationConfig) -> Calibrator:
    if config.method == "quantile":
        return QuantileThreshold(config.quantile, config.window_size, config.min_reference)
    return ConformalCalibrator(config.alpha, config.window_size, config.min_reference)


def new_pipeline(config: Config, metrics: ServiceMetrics) -> ScoringPipeline:
    return ScoringPipeline(
        new_detector(config),
        new_calibrator(config.calibration),
        metrics,
        learn_on_alert=config.calibration.learn_on_alert,
    )


def pipeline_from_state(
    state: dict[str, Any], config: Config, metrics: ServiceMetrics
) -> ScoringPipeline:
    """Resume a pipeline saved with :meth:`ScoringPipeline.state_dict` (``ValueError`` or
    ``CheckpointError`` if the state does not fit)."""
    return ScoringPipeline(
        streammem.detector_from_state(state["detector"]),
        calibrator_from_state(state["calibrator"]),
        metrics,
        learn_on_alert=config.calibration.learn_on_alert,
    )
