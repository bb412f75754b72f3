from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from connectors.tansu import free_port
from streammem.cli import _parser, main
from streammem.metrics import ServiceMetrics
from streammem.persistence import load_checkpoint
from streammem.service.checkpoint import CheckpointStore
from streammem.service.config import ConfigError, bundled_config, load_config, parse_config
from streammem.service.job import run_job

REPO = Path(__file__).resolve().parent.parent


def test_plain_run_scores_the_bundled_demo_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--no-progress"]) == 0
    summary = capsys.readouterr().out
    assert "events       20000" in summary and "dead letters 0" in summary
    table = pq.read_table(tmp_path / "demo-output" / "scores.parquet").to_pandas()
    assert len(table) == 20_000
    assert list(table["row"]) == list(range(20_000))
    alerts = table[table["alert"]]
    assert f"alerts       {len(alerts)}" in summary
    # The injected faults are 3% of the stream; most alerts should land on them, and the
    # windows should catch both kinds, which no single reading shows.
    assert len(alerts) > 20 and alerts["is_anomaly"].mean() > 0.5
    assert set(alerts["fault"]) >= {"stuck", "noise"}
    assert (tmp_path / "demo-output" / "scores.png").read_bytes()[:4] == b"\x89PNG"


def test_a_second_run_resumes_the_first_runs_checkpoint(tmp_path):
    config = {
        "source": {"kind": "demo", "batch_size": 256, "demo": {"n_events": 2000}},
        "sink": {"kind": "parquet", "path": str(tmp_path / "out.parquet")},
        "checkpoint": {"dir": str(tmp_path / "ckpt")},
        "metrics": {"port": None},
        "calibration": {"min_reference": 50, "window_size": 500},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(path), "--no-progress"]) == 0
    assert main(["run", "--config", str(path), "--no-progress"]) == 0
    saved = sorted((tmp_path / "ckpt" / "job").glob("ckpt-*.pt"))
    assert len(saved) == 2
    first, second = (load_checkpoint(p)["detector"]["n_updates"] for p in saved)
    assert second > first


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sorce": {}}, "sorce: unknown key; allowed keys are ['model', 'calibration'"),
        ({"source": {"kind": "xlsx"}}, "source.kind: 'xlsx' is not allowed; choose one of 'demo'"),
        ({"model": {"name": "GPT"}}, "model.name: 'GPT' is not allowed; choose one of ['AE'"),
        ({"model": {"params": {"slots": 5}}}, "model.params.slots: not a parameter of MemAE"),
        ({"calibration": {"alpha": 2}}, "calibration.alpha: must be < 1.0, got 2"),
        (
            {"calibration": {"window_size": 10, "min_reference": 20}},
            "calibration.min_reference must be <= window_size (10), got 20",
        ),
        ({"calibration": {"window_size": "big"}}, "expected int, got str 'big'"),
        ({"kafka": {"max_poll_records": True}}, "expected int, got bool True"),
        ({"source": {"kind": "parquet"}}, "source.path: required when source.kind is 'parquet'"),
        ({"sink": {"path": None}}, "sink.path: required when sink.kind is 'parquet'"),
        ([1, 2], "config: expected a mapping, got list"),
    ],
)
def test_config_errors_name_the_key_and_the_allowed_values(data, message):
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert message in str(error.value)


def test_cli_reports_config_errors_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("source: {kind: xlsx}\n")
    assert main(["run", "--config", str(path)]) == 2
    assert "configuration error: " in capsys.readouterr().err
    path.write_text("source: [unclosed\n")
    assert main(["run", "--config", str(path)]) == 2


@pytest.mark.parametrize("name", ["sensor_demo", "kddcup", "kafka_daemon", "mnist_stream"])
def test_shipped_configs_are_valid(name):
    load_config(REPO / "configs" / f"{name}.yaml")


def test_bundled_demo_config_matches_the_repository_copy():
    assert (
        bundled_config("sensor_demo").read_text()
        == (REPO / "configs" / "sensor_demo.yaml").read_text()
    )


@pytest.fixture
def served(monkeypatch) -> list:
    """The configs `streammem serve` hands its daemon, which returns at once."""
    configs = []

    class Daemon:
        def __init__(self, config) -> None:
            configs.append(config)

        def run(self) -> int:
            return 0

    monkeypatch.setattr("streammem.service.daemon.Daemon", Daemon)
    return configs


def test_serve_overrides_come_from_flags_then_environment_then_file(monkeypatch, served):
    monkeypatch.setenv("STREAMMEM_BOOTSTRAP_SERVERS", "env-host:9092")
    monkeypatch.setenv("STREAMMEM_METRICS_PORT", "9300")
    monkeypatch.setenv("STREAMMEM_GROUP_ID", "from-env")
    path = REPO / "configs" / "kafka_daemon.yaml"
    flags = ["--group-id", "from-flag", "--checkpoint-dir", "/ck"]
    assert main(["serve", "--config", str(path), *flags]) == 0
    (resolved,) = served
    assert resolved.kafka.bootstrap_servers == "env-host:9092"
    assert resolved.kafka.group_id == "from-flag"
    assert resolved.metrics.port == 9300
    assert resolved.checkpoint.dir == "/ck"
    assert resolved.kafka.input_topic == load_config(path).kafka.input_topic


@pytest.mark.parametrize(
    ("flags", "env", "key"),
    [
        (["--input-topic", "bad topic!"], {}, "input_topic"),
        (["--output-topic", "a/b"], {}, "output_topic"),
        ([], {"STREAMMEM_INPUT_TOPIC": ".."}, "input_topic"),
        ([], {"STREAMMEM_DEAD_LETTER_TOPIC": "x" * 250}, "dead_letter_topic"),
    ],
)
def test_topics_from_flags_and_environment_are_checked_like_the_files(
    monkeypatch, capsys, served, flags, env, key
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = REPO / "configs" / "kafka_daemon.yaml"
    assert main(["serve", "--config", str(path), *flags]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"streammem: configuration error: kafka.{key}: ")
    assert line.endswith(
        "is not a Kafka topic name (1 to 249 letters, digits, '.', '_' or '-', and not '.' or '..')"
    )
    assert not served


def test_serve_refuses_a_config_that_does_not_read_from_kafka(capsys):
    assert main(["serve", "--config", str(REPO / "configs" / "sensor_demo.yaml")]) == 2
    assert "source.kind: `streammem serve` needs 'kafka'" in capsys.readouterr().err


def test_run_on_a_parquet_file_accounts_for_every_row(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 3000
    temp = rng.normal(20, 1, n)
    temp[[100, 2000]] = np.nan  # not encodable: dead letters
    site = rng.choice(["north", "south"], n).astype(object)
    site[2500] = None  # missing category: a dead letter too
    site[2600] = "west"  # unseen category: scored, in the unknown bucket
    pq.write_table(
        pa.table({"temp": temp, "load": rng.normal(size=n), "site": site, "id": np.arange(n)}),
        tmp_path / "in.parquet",
        row_group_size=700,
    )
    config = {
        "source": {
            "kind": "parquet",
            "path": str(tmp_path / "in.parquet"),
            "passthrough": ["id"],
            "batch_size": 256,
        },
        "sink": {"kind": "parquet", "path": str(tmp_path / "out.parquet"), "row_group_size": 1000},
        "calibration": {"min_reference": 50, "window_size": 500},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(path), "--no-progress"]) == 0
    assert "events       2997" in capsys.readouterr().out
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.num_rows == 2997
    assert set(out.column("id").to_pylist()) == set(range(n)) - {100, 2000, 2500}
    letters = (tmp_path / "out.dead-letters.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["row"] for line in letters) == [100, 2000, 2500]


def test_run_survives_batches_that_are_all_invalid(tmp_path, capsys):
    # Rows 1000-1599 hold NaN: rows 1024-1535 are a whole batch of bad records (IndexError).
    n = 3000
    temp = np.random.default_rng(1).normal(20, 1, n)
    temp[1000:1600] = np.nan
    pq.write_table(pa.table({"temp": temp, "id": np.arange(n)}), tmp_path / "in.parquet")
    config = {
        "source": {"kind": "parquet", "path": str(tmp_path / "in.parquet"), "passthrough": ["id"]},
        "sink": {"kind": "parquet", "path": str(tmp_path / "out.parquet")},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(path), "--no-progress"]) == 0
    assert "dead letters 600" in capsys.readouterr().out
    out = pq.read_table(tmp_path / "out.parquet").column("id").to_pylist()
    assert out == [*range(1000), *range(1600, n)]


def test_a_run_that_scores_no_record_exits_1_with_one_line(tmp_path, capsys):
    texts = pa.table({"temp": ["hot"] * 300, "id": np.arange(300)})
    path = parquet_job(tmp_path, texts, passthrough=["id"])
    config = yaml.safe_load(path.read_text())
    config["schema"] = {"numeric": ["temp"]}  # text where a number belongs: every row
    path.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(path), "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert "events       0" in out and "dead letters 300" in out
    (line,) = err.splitlines()
    letters = tmp_path / "out.dead-letters.jsonl"
    assert line == (
        "streammem: error: none of the 300 records was scored: every one was dead-lettered "
        f"(see {letters})"
    )
    assert len(letters.read_text().splitlines()) == 300


def test_python_m_streammem_is_the_streammem_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")  # the help is wrapped alike, terminal or pipe
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    command = [sys.executable, "-m", "streammem"]
    shown = subprocess.run([*command, "--help"], capture_output=True, text=True, check=True)
    assert shown.stdout == capsys.readouterr().out
    (tmp_path / "empty.yaml").write_text("")
    run = [*command, "run", "--config", str(tmp_path / "empty.yaml")]
    failed = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path)
    assert failed.returncode == 2
    assert failed.stderr.startswith("streammem: configuration error: ")


def test_a_job_killed_mid_file_goes_on_from_its_checkpoint(tmp_path, capsys):
    n = 40_000
    temp = np.random.default_rng(2).normal(20, 1, n)
    temp[[5000, 30_000]] = np.nan  # dead letters, before and after the kill
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"temp": temp, "id": np.arange(n)}), source, row_group_size=4096)
    output = tmp_path / "out.parquet"
    config = {
        "source": {
            "kind": "parquet",
            "path": str(source),
            "passthrough": ["id"],
            "batch_size": 256,
        },
        "sink": {"kind": "parquet", "path": str(output), "row_group_size": 1000},
        "checkpoint": {"dir": str(tmp_path / "ckpt"), "interval_s": 0},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "streammem.cli", "run", "--config", str(path), "--no-progress"]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = output.with_name("out.parquet.parts")
    deadline = time.monotonic() + 120
    while len(list(parts.glob("part-*.parquet"))) < 30 and job.poll() is None:
        assert time.monotonic() < deadline, "the job wrote no checkpoints"
        time.sleep(0.05)
    job.kill()  # kill -9: no chance to write anything out
    job.wait()
    assert not output.exists(), "the job finished before it was killed"

    assert main(["run", "--config", str(path), "--no-progress"]) == 0
    summary = capsys.readouterr().out
    resumed_at = int(re.search(r"resumed at   row (\d+): the counts below are of rows", summary)[1])
    assert f"of rows {resumed_at}-{n - 1}, scored by this run" in summary
    letters_after = sum(resumed_at <= row for row in (5000, 30_000))
    assert f"events       {n - resumed_at - letters_after}" in summary  # this run's, not all
    ids = pq.read_table(output).column("id").to_pylist()
    assert len(ids) == len(set(ids)) and set(ids) == set(range(n)) - {5000, 30_000}
    letters = (tmp_path / "out.dead-letters.jsonl").read_text().splitlines()
    assert [json.loads(line)["row"] for line in letters] == [5000, 30_000]
    assert not parts.exists()


def test_version_and_help_read_as_plain_text(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == "streammem 0.1.0"
    assert "``" not in _parser().format_help()


def parquet_job(tmp_path: Path, table: pa.Table | None, **source) -> Path:
    data = tmp_path / "in.parquet"
    if table is not None:
        pq.write_table(table, data)
    config = {
        "source": {"kind": "parquet", "path": str(data), **source},
        "sink": {"kind": "parquet", "path": str(tmp_path / "out.parquet"), "plot": "p.png"},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("missing", "in.parquet: no such file"),
        ("corrupt", "in.parquet is not a readable Parquet file"),
        ("empty", "in.parquet holds no rows"),
        ("columns", "no column(s) ['a', 'b']; the file has ['x']"),
        ("list", "column 'x' is list<"),
    ],
)
def test_bad_input_files_end_with_one_line_and_status_2(tmp_path, capsys, case, error):
    table = {"empty": pa.table({"x": pa.array([], pa.float64())}), "list": pa.table({"x": [[1]]})}
    path = parquet_job(
        tmp_path,
        table.get(case, pa.table({"x": [1.0]})) if case != "missing" else None,
        **({"features": ["a", "x", "b"]} if case == "columns" else {}),
    )
    if case == "corrupt":
        (tmp_path / "in.parquet").write_bytes(b"PAR1 not really")
    assert main(["run", "--config", str(path), "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("streammem: input error: ") and error in line


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": {"name": "MemGAN"}, "source": {"kind": "kafka"}}, "MemGAN scores images only"),
        ({"kafka": {"input_topic": "x" * 260}}, "kafka.input_topic: 'xxx"),
        ({"kafka": {"output_topic": "a/b"}}, "is not a Kafka topic name"),
        ({"kafka": {"session_timeout_ms": 0}}, "kafka.session_timeout_ms: must be > 0"),
    ],
)
def test_service_mistakes_are_config_errors(data, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(data)


def test_an_image_model_on_a_file_of_records_is_refused_before_it_runs(tmp_path, capsys):
    path = parquet_job(tmp_path, pa.table({"x": [1.0] * 10, "y": [2.0] * 10}))
    config = yaml.safe_load(path.read_text())
    config["model"] = {"name": "MemGAN"}
    path.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "configuration error: model: input_shape (1, 28, 28) holds 784 values" in err


def test_serve_on_a_metrics_port_in_use_ends_with_one_line(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        path = tmp_path / "serve.yaml"
        data = yaml.safe_load((REPO / "configs" / "kafka_daemon.yaml").read_text())
        data["metrics"]["port"] = taken.getsockname()[1]
        path.write_text(yaml.safe_dump(data))
        assert main(["serve", "--config", str(path)]) == 2
    assert "metrics.port: cannot serve metrics on 127.0.0.1:" in capsys.readouterr().err


def test_serve_counts_attempts_while_the_broker_is_down_and_stops_at_once(tmp_path, client):
    metrics_port = free_port()
    data = yaml.safe_load((REPO / "configs" / "kafka_daemon.yaml").read_text())
    data["kafka"]["bootstrap_servers"] = f"127.0.0.1:{free_port()}"  # nothing listens
    data["kafka"]["client"] = client
    data["metrics"]["port"] = metrics_port
    data["checkpoint"]["dir"] = str(tmp_path / "ckpt")
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(data))
    command = [sys.executable, "-m", "streammem.cli", "serve", "--config", str(path)]
    daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while retries(metrics_port) < 2:
            assert daemon.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        daemon.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert daemon.wait(timeout=30) == 0
        assert time.monotonic() - stopped < 5  # generous: the target is 2 s (it took 14-30 s)
    finally:
        daemon.kill()
        daemon.wait()


def retries(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    match = re.search(r"^streammem_broker_retries_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_job_checkpoint_with_an_absurd_row_falls_back_to_the_older_one(tmp_path):
    path = parquet_job(tmp_path, pa.table({"x": np.arange(600.0)}))
    data = yaml.safe_load(path.read_text())
    data["sink"]["plot"] = None
    data["checkpoint"] = {"dir": str(tmp_path / "ckpt")}
    config = parse_config(data)
    run_job(config, progress=False)
    store = CheckpointStore(tmp_path / "ckpt")
    good = store.load_latest("job")
    store.save("job", {**good, "job": {**good["job"], "row": 10**12, "finished": False}})
    metrics = ServiceMetrics()
    report = run_job(config, progress=False, metrics=metrics)
    assert report.resumed_at == 0 and report.summary.events == 600
    assert metrics.registry.get_sample_value("streammem_checkpoint_fallbacks_total") == 1
