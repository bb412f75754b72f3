"""File jobs as a user runs them: the declared label, bad-value policies, CSV beside Parquet,
``--input`` / ``--output``, the bundled configs, and summaries that say what they count."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from connectors import SourceError
from connectors.csv import CsvSource
from connectors.kafka import JsonDecoder
from streammem.cli import main
from streammem.service.config import bundled_config, bundled_names, parse_config
from streammem.service.job import run_job

REPO = Path(__file__).resolve().parent.parent


def readings(n: int = 1500, anomalies: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    temp = rng.normal(20, 1, n)
    rpm = 900 + 5 * temp + rng.normal(0, 1, n)
    flag = np.zeros(n, bool)
    if anomalies:
        flag[300::97] = True
        rpm[flag] += 40
    return pd.DataFrame({"temp": temp, "rpm": rpm, "is_anomaly": flag})


def job(tmp_path: Path, source: dict, **sections) -> dict:
    return {
        "source": {"batch_size": 200, **source},
        "sink": {"kind": "parquet", "path": str(tmp_path / "out.parquet")},
        "calibration": {"window_size": 300, "min_reference": 100},
        "metrics": {"port": None},
        **sections,
    }


def test_the_label_is_never_a_feature(tmp_path, caplog):
    """Without passthrough, a file job trained on `is_anomaly` (3 numeric fields)."""
    path = tmp_path / "in.parquet"
    readings().to_parquet(path)
    with caplog.at_level(logging.INFO, "streammem"):
        report = run_job(parse_config(job(tmp_path, {"kind": "parquet", "path": str(path)})), False)
    assert "2 numeric ['temp', 'rpm']" in caplog.text
    assert "is_anomaly" in pq.read_schema(tmp_path / "out.parquet").names  # copied through
    assert report.labels.anomalies > 5 and report.labels.caught > 0
    # null: no label, and an is_anomaly column is then a feature like any other
    with caplog.at_level(logging.INFO, "streammem"):
        config = job(tmp_path, {"kind": "parquet", "path": str(path), "label": None})
        assert run_job(parse_config(config), False).labels is None
    assert "3 numeric ['temp', 'rpm', 'is_anomaly']" in caplog.text


def test_a_declared_label_must_be_there_and_cannot_be_a_feature(tmp_path):
    path = tmp_path / "in.parquet"
    readings().to_parquet(path)
    with pytest.raises(SourceError, match=r"no column\(s\) \['fault'\]"):
        run_job(
            parse_config(job(tmp_path, {"kind": "parquet", "path": str(path), "label": "fault"}))
        )
    with pytest.raises(ValueError, match=r"source\.features: the label 'rpm' cannot be a feature"):
        parse_config(
            job(tmp_path, {"kind": "csv", "path": "x.csv", "features": ["rpm"], "label": "rpm"})
        )


def test_the_daemons_label_field_is_left_out_of_the_record_and_kept_in_the_origin():
    class Message:
        topic, partition, offset, key, timestamp = "t", 0, 3, None, 0
        value = b'{"temp": 20.5, "is_anomaly": true}'

    batch = JsonDecoder(label_field="is_anomaly").decode([Message()])
    assert batch.records == [{"temp": 20.5}] and batch.origins[0]["is_anomaly"] is True
    with pytest.raises(ValueError, match=r"is source\.label, which is never a feature"):
        parse_config({"source": {"kind": "kafka"}, "kafka": {"fields": {"is_anomaly": "a.b"}}})


def test_a_csv_file_scores_as_its_parquet_twin(tmp_path):
    frame = readings()
    frame.to_parquet(tmp_path / "in.parquet")
    frame.to_csv(tmp_path / "in.csv", index=False)
    outputs = []
    for kind in ("parquet", "csv"):
        config = job(tmp_path / kind, {"kind": kind, "path": str(tmp_path / f"in.{kind}")})
        run_job(parse_config(config), progress=False)
        outputs.append(pq.read_table(tmp_path / kind / "out.parquet").to_pandas())
    parquet, csv = outputs
    np.testing.assert_array_equal(csv["alert"], parquet["alert"])
    np.testing.assert_allclose(csv["score"], parquet["score"], rtol=1e-12)  # CSV prints 17 digits
    assert csv["is_anomaly"].dtype == bool and csv["file"].iloc[0] == "in.csv"


def test_a_csv_files_bad_cells_are_dead_letters_and_a_missing_file_one_line(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("temp,rpm\n" + "".join(f"{20 + i % 3},{900 + i}\n" for i in range(300)))
    with path.open("a") as handle:
        handle.write("hot,901\n,902\n")
    report = run_job(parse_config(job(tmp_path, {"kind": "csv", "path": str(path)})), False)
    assert report.summary.events == 300 and report.summary.dead_letters == 2
    with pytest.raises(SourceError, match="no such file"):
        CsvSource(tmp_path / "absent.csv")


def test_missing_and_nonfinite_policies_come_from_the_config(tmp_path):
    """One all-NaN column dead-lettered every record: `schema.missing: impute` scores them."""
    frame = readings().assign(spare=np.nan)
    frame.loc[::50, "temp"] = np.inf
    path = tmp_path / "in.parquet"
    frame.to_parquet(path)
    source = {"kind": "parquet", "path": str(path)}
    strict = run_job(parse_config(job(tmp_path / "a", source)), False)
    assert strict.summary.events == 0 and strict.summary.dead_letters == len(frame)
    schema = {"missing": "impute", "nonfinite": "impute"}
    lenient = run_job(parse_config(job(tmp_path / "b", source, schema=schema)), False)
    assert lenient.summary.events == len(frame) and lenient.summary.dead_letters == 0
    with pytest.raises(ValueError, match=r"schema.missing: 'skip' is not allowed"):
        parse_config({"schema": {"missing": "skip"}})


def test_input_and_output_flags_score_a_file_without_a_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    readings().to_csv(tmp_path / "plant.csv", index=False)
    assert main(["run", "--input", "plant.csv", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "output       output/plant-scores.parquet" in out and "events       1500" in out
    assert (tmp_path / "output" / "plant-scores.png").is_file()
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(job(tmp_path, {"kind": "parquet", "path": "absent.parquet"})))
    flags = ["--input", "plant.csv", "--output", "elsewhere/s.parquet", "--no-progress"]
    assert main(["run", "--config", str(config), *flags]) == 0
    assert len(pq.read_table(tmp_path / "elsewhere" / "s.parquet")) == 1500
    assert main(["run", "--input", "plant.xlsx"]) == 2
    assert "--input: 'plant.xlsx' must end in .parquet, .pq, .csv" in capsys.readouterr().err


def test_every_shipped_config_is_in_the_package_and_named_by_name(monkeypatch):
    """configs/kafka_daemon.yaml was not in the installed package."""
    shipped = sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))
    assert bundled_names() == shipped
    for name in shipped:
        assert bundled_config(name).read_text() == (REPO / "configs" / f"{name}.yaml").read_text()
    package_data = (REPO / "pyproject.toml").read_text()
    assert 'streammem = ["configs/*.yaml"]' in package_data
    served = []
    monkeypatch.setattr("streammem.service.daemon.Daemon", lambda config: served.append(config))
    with pytest.raises(AttributeError):  # the fake has no run(): the config was loaded
        main(["serve", "--config", "kafka_daemon"])
    assert served[0].kafka.input_topic == "events"


def test_a_file_without_anomalies_says_so_instead_of_recall_nan(tmp_path, capsys):
    path = tmp_path / "in.parquet"
    readings(anomalies=False).to_parquet(path)
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(job(tmp_path, {"kind": "parquet", "path": str(path)})))
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out and "no anomalous rows (no recall to measure)" in out
