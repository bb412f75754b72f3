"""YAML configuration of a scoring job or daemon, validated on load.

Every section is a dataclass; loading walks the YAML mapping against the dataclass fields, so a
typo or a wrong value fails at start-up with the dotted key and what is allowed, not halfway
through a stream.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

import streammem

__all__ = [
    "CalibrationConfig",
    "CheckpointConfig",
    "Config",
    "ConfigError",
    "DemoConfig",
    "FeaturesConfig",
    "KafkaConfig",
    "MetricsConfig",
    "ModelConfig",
    "SchemaConfig",
    "SinkConfig",
    "SourceConfig",
    "WindowConfig",
    "bundled_config",
    "detector_names",
    "load_config",
    "parse_config",
]


_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or not allowed; the message names the key."""


@dataclasses.dataclass
class ModelConfig:
    name: str = "MemAE"
    params: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SchemaConfig:
    """The fields the model reads: declared here, or inferred from the first records."""

    numeric: list[str] | None = None
    categorical: dict | None = None  # {field: [values] or None to learn them}
    min_records: int = 32


@dataclasses.dataclass
class WindowConfig:
    """A :class:`streammem.TimeWindow` in front of the model (same parameters)."""

    size: int = 60
    features: list[str] = dataclasses.field(
        default_factory=lambda: ["mean", "std", "slope", "last_minus_mean"]
    )
    key: str | None = None
    fields: list[str] | None = None
    time_field: str | None = None
    max_gap: float | None = None
    max_keys: int = 10_000
    ttl: float | None = None


@dataclasses.dataclass
class FeaturesConfig:
    """What the model reads besides the record's own fields: ``window`` (null: no window)."""

    window: WindowConfig | None = None


@dataclasses.dataclass
class CalibrationConfig:
    method: Literal["conformal", "quantile"] = "conformal"
    alpha: float = 0.01
    quantile: float = 0.99
    window_size: int = 1000
    min_reference: int = 100
    learn_on_alert: bool = False


@dataclasses.dataclass
class DemoConfig:
    n_events: int = 20_000
    n_sensors: int = 6
    anomaly_rate: float = 0.0
    seed: int = 0
    n_faults: int = 8
    fault_length: int = 80


@dataclasses.dataclass
class SourceConfig:
    kind: Literal["demo", "parquet", "kafka"] = "demo"
    path: str | None = None
    features: list[str] | None = None
    passthrough: list[str] = dataclasses.field(default_factory=list)
    batch_size: int = 512
    demo: DemoConfig = dataclasses.field(default_factory=DemoConfig)


@dataclasses.dataclass
class SinkConfig:
    kind: Literal["parquet", "kafka", "none"] = "parquet"
    path: str | None = "output/scores.parquet"
    row_group_size: int = 65_536
    plot: str | None = None


@dataclasses.dataclass
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = "streammem-events"
    output_topic: str = "streammem-scores"
    dead_letter_topic: str = "streammem-dead-letters"
    group_id: str = "streammem"
    fields: dict | None = None
    key_field: str | None = None
    timestamp_field: str | None = None
    max_message_bytes: int = 1_048_576
    max_poll_records: int = 500
    poll_timeout_ms: int = 500
    # How long the group waits for a member that stopped heartbeating (kill -9, a frozen VM)
    # before giving its partitions to others; kafka-python's 45 s default, 76 s to recover.
    session_timeout_ms: int = 10_000


@dataclasses.dataclass
class MetricsConfig:
    address: str = "127.0.0.1"
    port: int | None = 9108


@dataclasses.dataclass
class CheckpointConfig:
    dir: str | None = None
    interval_s: float = 30.0
    keep: int = 3


@dataclasses.dataclass
class Config:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    calibration: CalibrationConfig = dataclasses.field(default_factory=CalibrationConfig)
    source: SourceConfig = dataclasses.field(default_factory=SourceConfig)
    sink: SinkConfig = dataclasses.field(default_factory=SinkConfig)
    kafka: KafkaConfig = dataclasses.field(default_factory=KafkaConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    schema: SchemaConfig = dataclasses.field(default_factory=SchemaConfig)
    features: FeaturesConfig = dataclasses.field(default_factory=FeaturesConfig)


def detector_names() -> list[str]:
    """Detector classes exported by :mod:`streammem` (what ``model.name`` may be)."""
    return sorted(
        name
        for name in streammem.__all__
        if inspect.isclass(cls := getattr(streammem, name))
        and issubclass(cls, streammem.MemoryDetector)
        and cls is not streammem.MemoryDetector
    )


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML configuration file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    return parse_config(data, origin=str(path))


def bundled_config(name: str) -> Path:
    """Path of a config shipped inside the package (``streammem/configs/NAME.yaml``)."""
    path = Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no bundled config named {name!r}")
    return path


def parse_config(data: Any, origin: str = "config") -> Config:
    """Validate a parsed YAML mapping and fill in defaults."""
    config = _build(Config, data, origin)
    _check_semantics(config)
    return config


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in data.items():
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown key; allowed keys are {allowed}")
        values[key] = _convert(hints[key], value, f"{where}.{key}")
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not allowed; choose one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    return _scalar(hint, value, where)


def _scalar(hint: type, value: Any, where: str) -> Any:
    # bool is an int in Python; a YAML `true` where a number belongs is a mistake.
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if (
        hint is not float
        and isinstance(value, hint)
        and not (hint is int and isinstance(value, bool))
    ):
        return value
    raise ConfigError(f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}")


def _check_semantics(config: Config) -> None:
    names = detector_names()
    if config.model.name not in names:
        raise ConfigError(
            f"model.name: {config.model.name!r} is not allowed; choose one of {names}"
        )
    accepted = list(inspect.signature(getattr(streammem, config.model.name)).parameters)
    for key in config.model.params:
        if key not in accepted:
            raise ConfigError(
                f"model.params.{key}: not a parameter of {config.model.name}; "
                f"allowed keys are {accepted}"
            )
    _check_schedule(config.model.params.get("schedule"))
    _check_window(config.features.window)
    _check_schema(config.schema)
    _check_topics(config.kafka)
    if config.model.name == "MemGAN" and config.source.kind != "parquet":
        raise ConfigError(
            f"model.name: MemGAN scores images only (Parquet files of pixel columns), not the "
            f"records of a {config.source.kind!r} source; use one of "
            f"{[n for n in names if n != 'MemGAN']}"
        )
    if config.source.kind == "parquet" and not config.source.path:
        raise ConfigError("source.path: required when source.kind is 'parquet'")
    if config.sink.kind == "parquet" and not config.sink.path:
        raise ConfigError("sink.path: required when sink.kind is 'parquet'")
    _check_positive(config)


def _check_schedule(schedule: Any) -> None:
    """``model.params.schedule`` is a mapping of :class:`streammem.Schedule` fields."""
    if schedule is None:
        return
    if not isinstance(schedule, Mapping):
        raise ConfigError(
            f"model.params.schedule: expected a mapping of Schedule fields, got "
            f"{type(schedule).__name__}"
        )
    fields = [f.name for f in dataclasses.fields(streammem.Schedule)]
    for key in schedule:
        if key not in fields:
            raise ConfigError(
                f"model.params.schedule.{key}: unknown key; allowed keys are {fields}"
            )
    try:
        streammem.Schedule(**schedule)
    except ValueError as err:
        raise ConfigError(f"model.params.{err}") from err


def _check_window(window: WindowConfig | None) -> None:
    """``features.window`` holds :class:`streammem.TimeWindow` parameters it accepts."""
    if window is None:
        return
    try:
        streammem.TimeWindow(**dataclasses.asdict(window)).check_params()
    except ValueError as err:
        raise ConfigError(f"features.{err}") from err


def _check_topics(kafka: KafkaConfig) -> None:
    """Kafka's own rule for topic names (kafka-python raises it late, as a traceback)."""
    for key in ("input_topic", "output_topic", "dead_letter_topic"):
        topic = getattr(kafka, key)
        if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
            raise ConfigError(
                f"kafka.{key}: {topic!r} is not a Kafka topic name (1 to 249 letters, digits, "
                "'.', '_' or '-', and not '.' or '..')"
            )


def _check_schema(schema: SchemaConfig) -> None:
    for field, values in (schema.categorical or {}).items():
        if values is not None and not (
            isinstance(values, list) and all(isinstance(v, str) for v in values)
        ):
            raise ConfigError(
                f"schema.categorical.{field}: expected a list of strings (its values) or null "
                f"(learn them), got {values!r}"
            )


def _check_positive(config: Config) -> None:
    checks = {
        "source.batch_size": config.source.batch_size,
        "sink.row_group_size": config.sink.row_group_size,
        "calibration.window_size": config.calibration.window_size,
        "calibration.min_reference": config.calibration.min_reference,
        "kafka.max_message_bytes": config.kafka.max_message_bytes,
        "kafka.max_poll_records": config.kafka.max_poll_records,
        "kafka.session_timeout_ms": config.kafka.session_timeout_ms,
        "checkpoint.keep": config.checkpoint.keep,
        "schema.min_records": config.schema.min_records,
        "source.demo.n_events": config.source.demo.n_events,
        "source.demo.fault_length": config.source.demo.fault_length,
    }
    for key, value in checks.items():
        if value < 1:
            raise ConfigError(f"{key}: must be >= 1, got {value}")
    if config.source.demo.n_faults < 0:
        raise ConfigError(f"source.demo.n_faults: must be >= 0, got {config.source.demo.n_faults}")
    unit_interval = {
        "calibration.alpha": config.calibration.alpha,
        "calibration.quantile": config.calibration.quantile,
    }
    for key, value in unit_interval.items():
        if not 0 < value < 1:
            raise ConfigError(f"{key}: must be in (0, 1), got {value}")
    if config.calibration.min_reference > config.calibration.window_size:
        raise ConfigError(
            f"calibration.min_reference: must be <= calibration.window_size "
            f"({config.calibration.window_size}), got {config.calibration.min_reference}"
        )
