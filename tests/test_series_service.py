"""The recipe for metric series in the service: features.series, calibration: likelihood."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streammem.cli import main
from streammem.metrics import ServiceMetrics
from streammem.persistence import CheckpointError
from streammem.series import SeriesFeatures
from streammem.service.build import new_pipeline, pipeline_from_state
from streammem.service.config import ConfigError, load_config, parse_config
from streammem.service.job import run_job

REPO = Path(__file__).resolve().parent.parent


def _metrics_file(path: Path, n: int = 2400) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(n)
    host = np.where(t % 2 == 0, "web-1", "web-2").astype(object)
    cpu = 40 + 15 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 1, n)
    cpu[2001] = 120.0  # a spike on web-2
    # as text: the Parquet source reads numbers and text (a timestamp column it refuses)
    stamps = (np.datetime64("2024-01-01T00:00") + (t // 2) * np.timedelta64(5, "m")).astype(str)
    labels = np.zeros(n, dtype=bool)
    labels[2001] = True
    pq.write_table(pa.table({"ts": stamps, "host": host, "cpu": cpu, "is_anomaly": labels}), path)
    return path


def _config(tmp_path: Path, **sections) -> dict:
    return {
        "source": {
            "kind": "parquet",
            "path": str(_metrics_file(tmp_path / "in.parquet")),
            "passthrough": ["is_anomaly"],
            "batch_size": 300,
        },
        "features": {"series": {"key": "host", "time_field": "ts"}},
        "calibration": {"method": "likelihood", "alpha": 0.001},
        "sink": {
            "kind": "parquet",
            "path": str(tmp_path / "out.parquet"),
            "plot": str(tmp_path / "out.png"),
        },
        "checkpoint": {"dir": str(tmp_path / "ckpt")},
        "metrics": {"port": None},
        **sections,
    }


def test_a_file_job_gives_each_result_its_likelihood_and_plots_it(tmp_path):
    config = parse_config(_config(tmp_path))
    report = run_job(config, progress=False)
    table = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert len(table) == 2400 and report.summary.dead_letters == 0
    likelihood = table["likelihood"].to_numpy()
    assert ((likelihood >= 0) & (likelihood <= 1)).all()
    np.testing.assert_allclose(likelihood, 1 - table["p_value"].to_numpy())
    assert table["alert"].iloc[2001] and table["alert"].sum() <= 12
    assert (table["alert"] == (1 - likelihood > 0) & (1 - likelihood < 0.001)).all()
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"


def test_the_checkpoint_holds_each_key_s_history_and_resumes_only_under_the_same_features(
    tmp_path,
):
    config = parse_config(_config(tmp_path))
    run_job(config, progress=False)
    from streammem.persistence import load_checkpoint

    saved = sorted((tmp_path / "ckpt" / "job").glob("ckpt-*.pt"))[-1]
    state = load_checkpoint(saved)
    pipeline = pipeline_from_state(state, config, ServiceMetrics())
    assert isinstance(pipeline.window, SeriesFeatures)
    assert sorted(pipeline.window.state_dict()["keys"]) == ["web-1", "web-2"]
    other = parse_config(_config(tmp_path, features={"series": {"key": "host", "scales": [8]}}))
    with pytest.raises(CheckpointError, match=r"is not features\.window"):
        pipeline_from_state(state, other, ServiceMetrics())
    windowed = parse_config(_config(tmp_path, features={"window": {"key": "host"}}))
    with pytest.raises(CheckpointError, match="SeriesFeatures"):
        pipeline_from_state(state, windowed, ServiceMetrics())


def test_results_without_the_likelihood_calibrator_have_no_likelihood(tmp_path):
    config = parse_config(_config(tmp_path, calibration={"method": "conformal"}))
    pipeline = new_pipeline(config, ServiceMetrics())
    assert not pipeline.gives_likelihood


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"series": {"scales": [8, 4]}, "window": None}, "series.scales"),
        ({"series": {}, "window": {}}, "either features.window or features.series"),
        ({"series": {"max_gap": 60}}, "series.max_gap needs a time_field"),
    ],
)
def test_series_settings_are_checked_on_load(tmp_path, features, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_config(tmp_path, features=features))


def test_likelihood_settings_are_checked_on_load(tmp_path):
    with pytest.raises(ConfigError, match="alpha must be below tail_share"):
        parse_config(_config(tmp_path, calibration={"method": "likelihood", "alpha": 0.2}))


@pytest.mark.parametrize("name", ["metric_series", "kafka_metrics"])
def test_shipped_series_configs_are_valid(name):
    config = load_config(REPO / "configs" / f"{name}.yaml")
    assert config.features.series is not None and config.calibration.method == "likelihood"


def test_streammem_run_with_the_series_config_shape(tmp_path, capsys):
    import yaml

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path)))
    assert main(["run", "--config", str(path), "--no-progress"]) == 0
    assert "events       2400" in capsys.readouterr().out
