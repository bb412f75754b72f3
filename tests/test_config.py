"""Every setting is checked where it is written: the YAML file, the model's parameters, the
schema against the file it reads, and the command-line overrides, with one line per problem."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import streammem
from streammem.cli import main
from streammem.service.config import ConfigError, ModelConfig, load_config, parse_config

REPO = Path(__file__).resolve().parent.parent


def problems(data: object, **overrides: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_config(data, overrides=overrides)
    return str(error.value).splitlines()


SHIPPED = [*REPO.glob("configs/*.yaml"), *REPO.glob("streammem/configs/*.yaml")]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: str(path.relative_to(REPO)))
def test_every_shipped_config_loads(path):
    load_config(path)


def test_each_problem_is_one_line_naming_its_key_and_what_is_allowed():
    data = {
        "calibration": {"alpha": 0, "method": "best"},
        "source": {"batch_size": 2.5, "passthrough": "id"},
        "kafka": {"max_poll_records": True, "fields": {"t": 1}},
        "schema": {"categorical": {"line": [1]}},
        "metrics": {"port": 70_000, "adress": "x"},
    }
    assert problems(data) == [
        "calibration.method: 'best' is not allowed; choose one of 'conformal', 'quantile' or "
        "'likelihood'",
        "calibration.alpha: must be > 0.0, got 0",
        "source.passthrough: expected a list, got str 'id'",
        "source.batch_size: expected int, got float 2.5",
        "kafka.fields.t: expected str, got int 1",
        "kafka.max_poll_records: expected int, got bool True",
        "metrics.port: must be <= 65535, got 70000",
        "metrics.adress: unknown key; allowed keys are ['address', 'port', 'max_connections', "
        "'timeout_s', 'tls_cert_file', 'tls_key_file', 'tls_client_ca_file', "
        "'basic_auth_username', 'basic_auth_password_file']",
        "schema.categorical.line[0]: expected str, got int 1",
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"network": {"latent_size": 0}},
            "model.params.network.latent_size must be an integer >= 1 or None, got 0",
        ),
        (
            {"network": {"backbone": "conv28", "activation": "tanh"}},
            "model.params.network.activation='tanh' applies to the 'mlp' backbone only",
        ),
        ({"network": {"width": 3}}, "model.params.network.width: unknown key; allowed keys"),
        ({"network": [64]}, "model.params.network: expected a mapping of Network fields, got list"),
        ({"schedule": {"budget": -1}}, "model.params.schedule.budget must be a number >= 0"),
        ({"schedule": {"epochs": 3}}, "model.params.schedule.epochs: unknown key; allowed keys"),
        ({"encoder": {}}, "model.params.encoder: not a parameter of MemAE; allowed keys are"),
    ],
)
def test_model_params_are_checked_by_building_the_detector(params, message):
    (line,) = problems({"model": {"name": "MemAE", "params": params}})
    assert line.startswith(message)


def test_a_bad_model_param_stops_the_run_before_it_reads_a_row(tmp_path, capsys):
    params = {"network": {"latent_size": -3}}
    path = parquet_job(tmp_path, model={"name": "MemAE", "params": params})
    assert main(["run", "--config", str(path), "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "streammem: configuration error: model.params.network.latent_size must be an integer "
        ">= 1 or None, got -3"
    )
    assert not (tmp_path / "out.parquet").exists()


def test_network_settings_written_the_old_way_still_build_with_a_warning():
    params = {"num_slots": 10, "hidden_sizes": [8], "latent_size": 4}
    with pytest.warns(DeprecationWarning, match=r"\['hidden_sizes', 'latent_size'\] belong under"):
        config = ModelConfig(name="MemAE", params=params)
    detector = config.build()
    assert detector.network == streammem.Network(hidden_sizes=(8,), latent_size=4)
    assert detector.num_slots == 10


def test_old_network_settings_go_over_a_network_mapping_given_beside_them():
    params = {"network": {"latent_size": 4}, "hidden_sizes": [8]}
    with pytest.warns(DeprecationWarning, match="belong under model.params.network"):
        config = ModelConfig(name="MemAE", params=params)
    assert config.build().network == streammem.Network(hidden_sizes=(8,), latent_size=4)


def parquet_job(tmp_path: Path, **sections: dict) -> Path:
    """A job on a Parquet file of ``temp``, ``load``, ``site`` and an ``id`` passed through."""
    table = pa.table({"temp": [20.0, 21.0], "load": [1.0, 2.0], "site": ["a", "b"], "id": [0, 1]})
    pq.write_table(table, tmp_path / "in.parquet")
    config = {
        "source": {"kind": "parquet", "path": str(tmp_path / "in.parquet"), "passthrough": ["id"]},
        "sink": {"kind": "parquet", "path": str(tmp_path / "out.parquet")},
        **sections,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_schema_fields_that_the_file_does_not_hold_stop_the_run_before_it_starts(tmp_path, capsys):
    schema = {"numeric": ["temp", "tmp"], "categorical": {"id": None, "site": None}}
    path = parquet_job(tmp_path, schema=schema)
    assert main(["run", "--config", str(path), "--no-progress"]) == 2
    where = tmp_path / "in.parquet"
    reads = "it reads ['load', 'site', 'temp']"
    assert capsys.readouterr().err.splitlines() == [
        "streammem: configuration error: schema.numeric: ['tmp'] not among the fields the "
        f"model reads from {where}; {reads}",
        # A passthrough column is copied to the output, never read by the model.
        "streammem: configuration error: schema.categorical: ['id'] not among the fields the "
        f"model reads from {where}; {reads}",
    ]
    assert not (tmp_path / "out.parquet").exists()
    assert not (tmp_path / "out.dead-letters.jsonl").exists()


def test_schema_fields_may_name_the_windows_columns(tmp_path):
    window = {"size": 3, "features": ["std", "last"], "key": "site"}
    schema = {"numeric": ["temp_std", "load"], "categorical": {"site": None}}
    load_config(parquet_job(tmp_path, features={"window": window}, schema=schema))
    with pytest.raises(ConfigError, match=r"schema\.numeric: \['temp_mean'\] not among"):
        load_config(
            parquet_job(tmp_path, features={"window": window}, schema={"numeric": ["temp_mean"]})
        )


def test_a_missing_file_is_still_reported_by_the_source(tmp_path, capsys):
    path = parquet_job(tmp_path, schema={"numeric": ["temp"]})
    (tmp_path / "in.parquet").unlink()
    assert main(["run", "--config", str(path), "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("streammem: input error: ") and "in.parquet: no such file" in line


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_an_empty_config_file_is_an_error_not_the_demo(tmp_path, monkeypatch, capsys, text):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    assert main(["run", "--config", str(path), "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"streammem: configuration error: {path} is empty (or only comments)")
    assert not Path("demo-output").exists()


def test_overrides_are_laid_over_the_file_and_checked_alike():
    data = yaml.safe_load((REPO / "configs" / "kafka_daemon.yaml").read_text())
    config = parse_config(data, overrides={"kafka": {"group_id": "g"}, "metrics": {"port": 1}})
    assert (config.kafka.group_id, config.metrics.port) == ("g", 1)
    assert config.kafka.input_topic == data["kafka"]["input_topic"]
    assert problems(data, kafka={"input_topic": "bad topic!"}, metrics={"port": -1}) == [
        "kafka.input_topic: 'bad topic!' is not a Kafka topic name (1 to 249 letters, digits, "
        "'.', '_' or '-', and not '.' or '..')",
        "metrics.port: must be >= 0, got -1",
    ]


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"tls_key_file": "k.pem"}, "metrics.tls_cert_file: required with tls_key_file"),
        ({"tls_cert_file": "c.pem"}, "metrics.tls_key_file: required with tls_cert_file"),
        ({"tls_client_ca_file": "ca.pem"}, "metrics.tls_cert_file: required with tls_client_ca"),
        ({"basic_auth_username": "u"}, "metrics.basic_auth_password_file: required with basic"),
        ({"max_connections": 0}, "metrics.max_connections: must be > 0, got 0"),
    ],
)
def test_metrics_endpoint_settings_come_in_pairs(metrics, message):
    (problem,) = problems({"metrics": metrics})
    assert problem.startswith(message)


def test_the_kafka_client_is_one_of_three_and_confluent_needs_its_library(monkeypatch):
    assert parse_config({"kafka": {"client": "kafka-python"}}).kafka.library == "kafka-python"
    with pytest.raises(ConfigError, match=r"kafka.client: 'rdkafka' is not allowed"):
        parse_config({"kafka": {"client": "rdkafka"}})
    find_spec = importlib.util.find_spec  # as if confluent-kafka were not installed
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name: None if name == "confluent_kafka" else find_spec(name),
    )
    with pytest.raises(ConfigError, match=r"kafka.client: 'confluent' needs confluent-kafka"):
        parse_config({"kafka": {"client": "confluent"}})
    auto = parse_config({}).kafka
    assert auto.client == "auto" and auto.library == "kafka-python"
    monkeypatch.undo()
    if find_spec("confluent_kafka") is not None:
        assert auto.library == "confluent"
