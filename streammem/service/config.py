"""YAML configuration of a scoring job or daemon, validated on load.

Every section is a strict pydantic model that refuses unknown keys; the model's parameters are
checked by building the detector, and a Parquet source's file is checked to hold the fields
``schema`` declares. A mistake fails at start-up with one line per problem, each naming the
dotted key and what is allowed, not halfway through a stream.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import re
import reprlib
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

import streammem
from streammem.nn.network import fold_network_params

__all__ = [
    "FILE_KINDS",
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
    "SeriesConfig",
    "SinkConfig",
    "SourceConfig",
    "WindowConfig",
    "bundled_config",
    "bundled_names",
    "detector_names",
    "load_config",
    "parse_config",
]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or not allowed; the message names the key,
    one line per problem."""


class _Located(ValueError):
    """A problem whose message starts with its key below the section that raised it
    (``params.slots: ...``), so the path reads on from the section's."""


_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _topic(name: str) -> str:
    """Kafka's own rule for topic names (kafka-python raises it late, as a traceback)."""
    if not _TOPIC.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"{reprlib.repr(name)} is not a Kafka topic name (1 to 249 letters, digits, '.', "
            "'_' or '-', and not '.' or '..')"
        )
    return name


_Topic = Annotated[str, AfterValidator(_topic)]
_UnitInterval = Annotated[float, Field(gt=0, lt=1)]


class _Section(BaseModel):
    # Strict: a YAML `true` or "5" where a number belongs is a mistake, not a value to coerce.
    model_config = ConfigDict(strict=True, extra="forbid")


class ModelConfig(_Section):
    """The detector: a class of :mod:`streammem` and its constructor arguments."""

    name: str = "MemAE"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in (names := detector_names()):
            raise ValueError(f"{name!r} is not allowed; choose one of {names}")
        return name

    @model_validator(mode="after")
    def _buildable(self) -> ModelConfig:
        """The params are the detector's arguments, and it accepts their values."""
        for key, value_class in _VALUE_PARAMS.items():
            _check_value(key, value_class, self.params.get(key))
        try:
            params = self._params()
        except ValueError as err:
            raise _Located(f"params.{err}") from err
        if legacy := sorted(set(self.params) - set(params)):
            warnings.warn(
                f"model.params: {legacy} belong under model.params.network now (read as such)",
                DeprecationWarning,
                stacklevel=2,
            )
        accepted = self._accepted()
        for key in params:
            if key not in accepted:
                raise _Located(
                    f"params.{key}: not a parameter of {self.name}; allowed keys are {accepted}"
                )
        try:
            self.build().check_params()
        except (TypeError, ValueError) as err:
            raise _Located(f"params: {err}") from err
        return self

    def _accepted(self) -> list[str]:
        # The encoder is made from `schema`, never given here.
        signature = inspect.signature(getattr(streammem, self.name))
        return [name for name in signature.parameters if name != "encoder"]

    def _params(self, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The detector's arguments: value objects made from their mappings, then the network's
        settings written the old way (beside the others) read into ``network``."""
        params = {**(defaults or {}), **self.params}
        for key, value_class in _VALUE_PARAMS.items():
            if isinstance(params.get(key), Mapping):
                params[key] = value_class(**params[key])
        return fold_network_params(params, self._accepted())

    def build(self, defaults: Mapping[str, Any] | None = None) -> Any:
        """The configured detector, unfitted (``params.schedule`` as a :class:`Schedule`,
        ``params.network`` as a :class:`Network`); ``defaults``: settings the params override
        (the series recipe's)."""
        return getattr(streammem, self.name)(**self._params(defaults))


#: Detector arguments that are value objects, written in YAML as a mapping of their fields.
_VALUE_PARAMS: dict[str, type] = {"schedule": streammem.Schedule, "network": streammem.Network}


def _check_value(key: str, value_class: type, value: Any) -> None:
    """``model.params.<key>`` is a mapping of ``value_class``'s fields."""
    if value is None:
        return
    name = value_class.__name__
    if not isinstance(value, Mapping):
        raise _Located(
            f"params.{key}: expected a mapping of {name} fields, got {type(value).__name__}"
        )
    fields = [f.name for f in dataclasses.fields(value_class)]
    for field in value:
        if field not in fields:
            raise _Located(f"params.{key}.{field}: unknown key; allowed keys are {fields}")
    try:
        value_class(**value)
    except (TypeError, ValueError) as err:
        raise _Located(f"params.{err}") from err


class SchemaConfig(_Section):
    """The fields the model reads: declared here, or inferred from the first records."""

    numeric: list[str] | None = None
    # {field: [its values], or None to learn them}
    categorical: dict[str, list[str] | None] | None = None
    min_records: PositiveInt = 32
    # Records an inferred schema must keep holding for before it is fixed (0: at once).
    confirm_records: NonNegativeInt = 1_000
    # A missing field, None or NaN / an infinite number: "error" dead-letters the record,
    # "impute" reads it as the field's centre (a categorical field's unknown bucket).
    missing: Literal["error", "impute"] = "error"
    nonfinite: Literal["error", "impute"] = "error"

    def policies(self) -> dict[str, str]:
        """The encoder's bad-value policies (:class:`streammem.FeatureEncoder`)."""
        return {"missing": self.missing, "nonfinite": self.nonfinite}


class WindowConfig(_Section):
    """A :class:`streammem.TimeWindow` in front of the model (same parameters)."""

    size: int = 60
    features: list[str] = ["mean", "std", "slope", "last_minus_mean"]
    key: str | None = None
    fields: list[str] | None = None
    time_field: str | None = None
    max_gap: float | None = None
    max_keys: int = 10_000
    ttl: float | None = None

    def build(self) -> streammem.TimeWindow:
        """The configured window, empty."""
        return streammem.TimeWindow(**self.model_dump())


class SeriesConfig(_Section):
    """A :class:`streammem.SeriesFeatures` in front of the model (same parameters): the
    recipe for metric series."""

    scales: list[int] = [24, 96]
    calendar: bool = True
    key: str | None = None
    fields: list[str] | None = None
    time_field: str | None = None
    max_gap: float | None = None
    max_keys: int = 10_000
    ttl: float | None = None

    def build(self) -> streammem.SeriesFeatures:
        """The configured features, empty."""
        return streammem.SeriesFeatures(**self.model_dump())


class FeaturesConfig(_Section):
    """What the model reads besides the record's own fields: a ``window`` or the ``series``
    features (null: neither)."""

    window: WindowConfig | None = None
    series: SeriesConfig | None = None

    @model_validator(mode="after")
    def _window_accepts_its_params(self) -> FeaturesConfig:
        if self.window is not None and self.series is not None:
            raise _Located("series: give either features.window or features.series, not both")
        for part in (self.window, self.series):
            if part is not None:
                try:
                    part.build().check_params()
                except ValueError as err:  # "window.size must be ..."
                    raise _Located(str(err)) from err
        return self

    @property
    def history(self) -> WindowConfig | SeriesConfig | None:
        """The configured window or series features, whichever is set."""
        return self.window if self.window is not None else self.series


class CalibrationConfig(_Section):
    """How scores become p-values and alerts: :mod:`streammem.alerts.calibration`."""

    method: Literal["conformal", "quantile", "likelihood"] = "conformal"
    alpha: _UnitInterval = 0.01  # likelihood: alert when 1 - likelihood < alpha
    quantile: _UnitInterval = 0.99
    window_size: PositiveInt | None = None  # None: 3 / alpha (see streammem.alerts.calibration)
    min_reference: PositiveInt | None = None  # None: 1 / alpha (likelihood: 200)
    tail_share: Annotated[float, Field(gt=0, le=0.5)] = 0.1  # likelihood: the peaks' share
    learn_on_alert: bool = False

    @model_validator(mode="after")
    def _calibrator_accepts_its_params(self) -> CalibrationConfig:
        try:
            self.build().check_params()
        except ValueError as err:  # "min_reference must be <= window_size (10), got 20"
            raise _Located(str(err)) from err
        return self

    def build(self) -> streammem.Calibrator:
        """The configured calibrator, with an empty reference window."""
        if self.method == "quantile":
            return streammem.QuantileThreshold(self.quantile, self.window_size, self.min_reference)
        if self.method == "likelihood":
            return streammem.TailLikelihood(
                self.alpha, self.window_size, self.min_reference, self.tail_share
            )
        return streammem.ConformalCalibrator(self.alpha, self.window_size, self.min_reference)


class DemoConfig(_Section):
    """The generated sensor stream (:class:`streammem.demo.SensorStream`)."""

    n_events: PositiveInt = 20_000
    n_sensors: PositiveInt = 6
    anomaly_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    seed: int = 0
    n_faults: NonNegativeInt = 8
    fault_length: PositiveInt = 80


#: Source kinds that read a file (``source.path``).
FILE_KINDS = ("parquet", "csv")


def _path_for_files(section: str, kinds: tuple[str, ...]) -> Any:
    """A validator: the section's ``path`` is required when its ``kind`` reads a file."""

    def check(path: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if kind in kinds and not path:
            raise ValueError(f"required when {section}.kind is {kind!r}")
        return path

    return field_validator("path")(check)


class SourceConfig(_Section):
    """Where records come from: the demo stream, a Parquet or CSV file, or Kafka."""

    kind: Literal["demo", "parquet", "csv", "kafka"] = "demo"
    path: str | None = Field(None, validate_default=True)
    features: list[str] | None = None
    passthrough: list[str] = []
    # The column (a file's) or top-level event field (Kafka's) marking known anomalies: never
    # a feature, copied into every result, and counted in the printed false-alarm rate and
    # recall (and the plot). The default is taken where the source has that field; a label
    # set here must be there. null: none (an `is_anomaly` column is then a feature).
    label: str | None = "is_anomaly"
    batch_size: PositiveInt = 512
    demo: DemoConfig = Field(default_factory=DemoConfig)

    _path_given = _path_for_files("source", FILE_KINDS)

    @property
    def label_required(self) -> bool:
        """Whether the label was set in the config (so the source must have it)."""
        return "label" in self.model_fields_set and self.label is not None

    @model_validator(mode="after")
    def _label_is_not_a_feature(self) -> SourceConfig:
        if self.label is not None and self.label in (self.features or []):
            raise _Located(f"features: the label {self.label!r} cannot be a feature too")
        return self


class SinkConfig(_Section):
    """Where results go: a Parquet file, Kafka or nowhere."""

    kind: Literal["parquet", "kafka", "none"] = "parquet"
    path: str | None = Field("output/scores.parquet", validate_default=True)
    row_group_size: PositiveInt = 65_536
    plot: str | None = None
    # The k largest contributions by field in each alert's result (0: no top_fields key), or
    # in every result's with top_fields_for: all.
    top_fields: NonNegativeInt = 3
    top_fields_for: Literal["alerts", "all"] = "alerts"

    _path_given = _path_for_files("sink", ("parquet",))


class KafkaConfig(_Section):
    """The daemon's broker, topics, consumer group and how events are read."""

    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: _Topic = "streammem-events"
    output_topic: _Topic = "streammem-scores"
    dead_letter_topic: _Topic = "streammem-dead-letters"
    group_id: str = "streammem"
    fields: dict[str, str] | None = None  # {feature: dotted.path.in.event}
    key_field: str | None = None
    timestamp_field: str | None = None
    max_message_bytes: PositiveInt = 1_048_576
    max_poll_records: PositiveInt = 500
    poll_timeout_ms: NonNegativeInt = 500
    # How long the group waits for a member that stopped heartbeating (kill -9, a frozen VM)
    # before giving its partitions to others; kafka-python's 45 s default, 76 s to recover.
    session_timeout_ms: PositiveInt = 10_000
    # The client library; auto: confluent-kafka where it is installed, else kafka-python.
    client: Literal["auto", "kafka-python", "confluent"] = "auto"

    @property
    def library(self) -> Literal["kafka-python", "confluent"]:
        """The client library ``client`` chooses."""
        if self.client == "auto":
            return "confluent" if _confluent_installed() else "kafka-python"
        return self.client

    @field_validator("client")
    @classmethod
    def _installed(cls, client: str) -> str:
        if client == "confluent" and not _confluent_installed():
            raise ValueError(
                "'confluent' needs confluent-kafka: pip install 'streammem[fast]', or choose "
                "'kafka-python'"
            )
        return client


def _confluent_installed() -> bool:
    return importlib.util.find_spec("confluent_kafka") is not None


class MetricsConfig(_Section):
    """Where Prometheus metrics are served (``port: null``: not served), and to whom: see
    :mod:`streammem.service.exposition`."""

    address: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65_535)] | None = 9108
    # Connections served at once (more are closed at once), and seconds each may take in all.
    max_connections: PositiveInt = 8
    timeout_s: PositiveFloat = 10.0
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None  # set: clients need a certificate it signed
    basic_auth_username: str | None = None
    basic_auth_password_file: str | None = None  # the password, in a file of its own

    @model_validator(mode="after")
    def _complete(self) -> MetricsConfig:
        """A key file needs its certificate, and a user a password (and the other way)."""
        needs = [
            ("tls_cert_file", "tls_key_file"),
            ("tls_key_file", "tls_cert_file"),
            ("tls_client_ca_file", "tls_cert_file"),
            ("basic_auth_username", "basic_auth_password_file"),
            ("basic_auth_password_file", "basic_auth_username"),
        ]
        for given, needed in needs:
            if getattr(self, given) is not None and getattr(self, needed) is None:
                raise _Located(f"{needed}: required with {given}")
        return self


class CheckpointConfig(_Section):
    """Where and how often the models are saved (``dir: null``: never)."""

    dir: str | None = None
    interval_s: NonNegativeFloat = 30.0
    keep: PositiveInt = 3


class Config(_Section):
    """A whole job or daemon: every section, each with its defaults."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    sink: SinkConfig = Field(default_factory=SinkConfig)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    # `schema` would shadow BaseModel.schema(); the YAML key is still `schema`.
    schema_: SchemaConfig = Field(default_factory=SchemaConfig, alias="schema")
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)

    @model_validator(mode="after")
    def _sections_agree(self) -> Config:
        if self.model.name == "MemGAN" and self.source.kind not in FILE_KINDS:
            others = [n for n in detector_names() if n != "MemGAN"]
            raise _Located(
                f"model.name: MemGAN scores images only (files of pixel columns), not "
                f"the records of a {self.source.kind!r} source; use one of {others}"
            )
        _check_schema_columns(self)
        fields = self.kafka.fields or {}
        if self.source.kind == "kafka" and self.source.label in fields:
            raise _Located(
                f"kafka.fields: {self.source.label!r} is source.label, which is never a feature"
            )
        return self


def _check_schema_columns(config: Config) -> None:
    """The fields ``schema`` declares are among those a file source gives the model (its
    feature columns, or the window's columns of them), read from the file's schema alone."""
    source, schema, window = config.source, config.schema_, config.features.history
    declared = {"numeric": schema.numeric or [], "categorical": list(schema.categorical or {})}
    if source.kind not in FILE_KINDS or source.path is None or not any(declared.values()):
        return
    try:
        if source.kind == "parquet":
            columns = pq.read_schema(source.path).names
        else:
            columns = [str(c) for c in pd.read_csv(source.path, nrows=0).columns]
    except (OSError, ValueError, pa.ArrowException):
        return  # a missing or unreadable file is the source's to report when it opens
    # As the source reads it: the features named, else every column not passed through.
    features = source.features
    if features is None:
        features = [c for c in columns if c not in [*source.passthrough, source.label]]
    readable = set(features)
    if window is not None:
        readable = (readable | set(window.build().columns(features))) - {window.time_field}
    problems = [
        f"schema.{part}: {missing} not among the fields the model reads from {source.path}; "
        f"it reads {reprlib.repr(sorted(readable))}"
        for part, fields in declared.items()
        if (missing := [f for f in fields if f not in readable])
    ]
    if problems:
        raise _Located("\n".join(problems))


def detector_names() -> list[str]:
    """Detector classes exported by :mod:`streammem` (what ``model.name`` may be)."""
    return sorted(
        name
        for name in streammem.__all__
        if inspect.isclass(cls := getattr(streammem, name))
        and issubclass(cls, streammem.MemoryDetector)
        and cls is not streammem.MemoryDetector
    )


def load_config(
    path: str | Path, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> Config:
    """Read and validate a YAML configuration file; see :func:`parse_config`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if data is None:
        raise ConfigError(
            f"{path} is empty (or only comments); a config needs at least one section, such "
            "as source (configs/*.yaml are examples)"
        )
    return parse_config(data, origin=str(path), overrides=overrides)


_BUNDLED = Path(__file__).resolve().parent.parent / "configs"


def bundled_names() -> list[str]:
    """Names of the configs shipped inside the package (``streammem/configs`` is a link to
    the repository's ``configs/``, so a wheel carries them), for ``--config NAME``."""
    return sorted(path.stem for path in _BUNDLED.glob("*.yaml"))


def bundled_config(name: str) -> Path:
    """Path of a config shipped inside the package (``streammem/configs/NAME.yaml``)."""
    path = _BUNDLED / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no bundled config named {name!r}; bundled: {bundled_names()}")
    return path


def parse_config(
    data: Any,
    origin: str = "config",
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Validate a parsed YAML mapping and fill in defaults.

    Parameters
    ----------
    data
        The parsed YAML document.
    origin
        What ``data`` came from, named when it is not a mapping at all.
    overrides
        ``{section: {key: value}}`` laid over ``data`` before it is validated (command-line
        flags, environment variables), so they are checked exactly as the file's values.

    Raises
    ------
    ConfigError
        One line per problem: its dotted key and what is allowed.

    """
    try:
        return Config.model_validate(_overlay(data, overrides or {}))
    except ValidationError as err:
        # The pydantic report is replaced by one line per problem, not chained to it.
        raise ConfigError("\n".join(_problem(e, origin) for e in err.errors())) from None


def _overlay(data: Any, overrides: Mapping[str, Mapping[str, Any]]) -> Any:
    if not overrides or not isinstance(data, Mapping):
        return data  # nothing to lay over, or not a mapping: reported as such
    merged = dict(data)
    for section, values in overrides.items():
        given = merged.get(section)
        if given is None or isinstance(given, Mapping):
            merged[section] = {**(given or {}), **values}
    return merged


# pydantic error types -> what the value should have been, and comparison operators.
_EXPECTED = {
    "int_type": "int",
    "float_type": "float",
    "string_type": "str",
    "bool_type": "bool",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _problem(error: Mapping[str, Any], origin: str) -> str:
    """One line: the dotted key, then what is wrong and what is allowed."""
    loc = error["loc"]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _Located):
        return f"{path}.{cause}" if path else str(cause)
    return f"{path or origin}: {_describe(error)}"


def _describe(error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    value = reprlib.repr(error["input"])
    if kind == "extra_forbidden":
        return f"unknown key; allowed keys are {_keys_at(error['loc'][:-1])}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {type(error['input']).__name__} {value}"
    if kind == "literal_error":
        return f"{value} is not allowed; choose one of {ctx['expected']}"
    if kind in _BOUNDS:
        (bound,) = ctx.values()
        return f"must be {_BOUNDS[kind]} {bound}, got {value}"
    if kind == "value_error":
        return str(ctx["error"])
    return f"{error['msg']}, got {value}"


def _keys_at(loc: Sequence[str | int]) -> list[str]:
    """The keys the section at ``loc`` allows."""
    section: type[BaseModel] = Config
    for key in loc:
        field = next(f for name, f in section.model_fields.items() if (f.alias or name) == key)
        section = next(
            kind
            for kind in (field.annotation, *typing.get_args(field.annotation))
            if isinstance(kind, type) and issubclass(kind, BaseModel)
        )
    return [field.alias or name for name, field in section.model_fields.items()]
