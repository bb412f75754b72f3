"""Build detectors, calibrators and pipelines from a validated :class:`Config`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streammem
from streammem.alerts.calibration import Calibrator
from streammem.alerts.filter import AlertFilter
from streammem.detectors.base import MemoryDetector
from streammem.explain import TopFields
from streammem.interface import ServedDetector
from streammem.metrics import ServiceMetrics
from streammem.persistence import CheckpointError
from streammem.series import series_settings
from streammem.service.config import CalibrationConfig, Config, SchemaConfig
from streammem.service.pipeline import ScoringPipeline
from streammem.service.served import Served
from streammem.windows import TimeWindow

__all__ = [
    "new_calibrator",
    "new_detector",
    "new_pipeline",
    "new_top_fields",
    "new_window",
    "pipeline_from_state",
]


def new_detector(config: Config) -> MemoryDetector:
    """The configured detector (under ``features.series``, with the recipe's settings, which
    ``model.params`` override); its encoder declares the fields ``schema`` names, and applies
    its ``missing`` / ``nonfinite`` policies."""
    recipe = config.features.series is not None  # the metric-series recipe's detector
    detector_class = getattr(streammem, config.model.name)
    detector = config.model.build(series_settings(detector_class) if recipe else None)
    schema = config.schema_
    declared = {"numeric": schema.numeric, "categorical": schema.categorical}
    declared = {part: fields for part, fields in declared.items() if fields is not None}
    encoder = detector.new_encoder()
    settings = {**declared, **schema.policies()}
    if all(getattr(encoder, key) == value for key, value in settings.items()):
        return detector
    return detector.clone({"encoder": encoder.clone(settings)})


def new_calibrator(config: CalibrationConfig) -> Calibrator:
    return config.build()


def new_window(config: Config) -> TimeWindow | None:
    """The configured time window (``features.window``) or series features
    (``features.series``, a kind of window), or None."""
    history = config.features.history
    return history.build() if history is not None else None


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
        confirm_records=config.schema_.confirm_records,
        label=config.source.label,
    )


def pipeline_from_state(
    state: dict[str, Any],
    config: Config,
    metrics: ServiceMetrics,
    labels: tuple[str, str] = ("", ""),
) -> ScoringPipeline:
    """Resume a pipeline saved with :meth:`ScoringPipeline.state_dict`; ``CheckpointError``
    (or another error of the state's own making) if the state does not fit. A model reads
    the window it was trained on, and the fields of its schema: a checkpoint resumes only
    under the same ``features.window`` (its windows resume with it), and with the fields the
    config's ``schema`` declares. An inferred schema still provisional stays so. Its
    calibrator resumes only under the same ``calibration`` (method, ``alpha`` or ``quantile``,
    ``window_size``, ``min_reference``): its reference scores were judged against those
    settings, so a changed one is refused, like a changed window, never overridden silently
    in either direction."""
    for part in ("detector", "calibrator"):
        if not isinstance(state.get(part), Mapping):
            found = type(state.get(part)).__name__
            raise CheckpointError(f"the checkpoint's {part!r} is a {found}, not a mapping")
    _check_calibration(state["calibrator"], config.calibration)
    detector = streammem.from_state(state["detector"])
    if not isinstance(detector, MemoryDetector):
        raise CheckpointError(f"its detector is a {type(detector).__name__}, not a detector")
    _check_schema(Served(detector), config.schema_)
    alerts = AlertFilter(
        detector,
        streammem.from_state(state["calibrator"]),
        protect_anomaly_detector=not config.calibration.learn_on_alert,
    )
    configured = Served(new_detector(config))
    pipeline = ScoringPipeline(
        alerts,
        metrics,
        schema_records=config.schema_.min_records,
        labels=labels,
        window=_window_from_state(state.get("window"), new_window(config)),
        top_fields=new_top_fields(config),
        confirm_records=config.schema_.confirm_records,
        configured=configured,
        label=config.source.label,
    )
    try:
        pipeline.schema_stage.load_state(state, declared=configured.schema is not None)
    except ValueError as err:
        raise CheckpointError(str(err)) from err
    return pipeline


def _check_calibration(state: Mapping[str, Any], config: CalibrationConfig) -> None:
    """``CheckpointError`` naming each setting whose saved value differs from the config's."""
    wanted = config.build().state_dict()
    kind = state.get("class", state.get("kind"))  # "kind": older checkpoints
    if kind != wanted["class"]:
        raise CheckpointError(
            f"its calibrator is a {kind}, and calibration.method {config.method!r} makes a "
            f"{wanted['class']}: refused"
        )
    saved = state.get("params")
    saved = saved if isinstance(saved, Mapping) else {}
    changed = [
        f"calibration.{key} is {value!r} here and {saved.get(key)!r} in the checkpoint"
        for key, value in wanted["params"].items()
        if saved.get(key) != value
    ]
    if changed:
        raise CheckpointError(
            f"its calibration is not the configured one: {'; '.join(changed)}; refused (a "
            "checkpoint resumes only under the calibration it was made with)"
        )


def _check_schema(detector: ServedDetector, schema: SchemaConfig) -> None:
    """``CheckpointError`` if the detector's schema is not the one ``schema`` declares (where
    it declares one): a checkpoint whose first records were wrong-typed was adopted as is."""
    found = detector.schema
    if found is None:  # no schema yet
        return
    numeric, categorical = list(found.numeric), found.vocabularies()
    declared = schema.categorical
    if (schema.numeric is None or set(numeric) == set(schema.numeric)) and (
        declared is None
        or categorical == {k: None if v is None else list(v) for k, v in declared.items()}
    ):
        return
    raise CheckpointError(
        f"its schema (numeric {numeric}, categorical {categorical}) is not the configured one "
        f"(schema.numeric {schema.numeric}, schema.categorical {declared}): refused"
    )


def _window_from_state(state: Any, configured: TimeWindow | None) -> TimeWindow | None:
    """The checkpoint's window, if it was made under the configured one."""
    if state is None and configured is None:
        return None
    if state is None or configured is None:
        saved = "no window" if state is None else "a window"
        wanted = "features.window is set" if configured is not None else "no features.window"
        raise CheckpointError(f"the checkpoint has {saved}, and the config has {wanted}")
    window = streammem.from_state(state) if isinstance(state, Mapping) else None
    if window is None or type(window) is not type(configured):
        raise CheckpointError(
            f"its history is a {type(window).__name__}, and the config asks for a "
            f"{type(configured).__name__} (features.window or features.series)"
        )
    if window.params() != configured.params():
        raise CheckpointError(
            f"its window {window.params()} is not features.window {configured.params()}"
        )
    return window
