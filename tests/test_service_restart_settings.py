"""What a restart from a checkpoint takes from the YAML and what from the checkpoint.

The rule (docs/service.md): settings the saved state was made under (the window, the schema,
the calibration) must be the config's, or the checkpoint is refused; settings that only steer
what happens next (``learn_on_alert``, sinks, top fields) follow the config. Before, a changed
``calibration.alpha`` was silently overridden by the checkpoint's, while ``learn_on_alert``
followed the YAML and a changed window was refused.
"""

from __future__ import annotations

import random

import pytest
from sinks import ListSink

from connectors import RecordBatch
from streammem.metrics import ServiceMetrics
from streammem.persistence import CheckpointError
from streammem.service.build import new_pipeline, pipeline_from_state
from streammem.service.config import parse_config
from streammem.service.job import run_job

MODEL = {"name": "MemAE", "params": {"num_slots": 10, "network": {"hidden_sizes": [8]}}}


def trained_state(calibration: dict) -> dict:
    config = parse_config({"model": MODEL, "calibration": calibration})
    pipeline = new_pipeline(config, ServiceMetrics())
    rng = random.Random(0)
    records = [{"temp": rng.gauss(20, 1), "rpm": rng.gauss(900, 5)} for _ in range(400)]
    pipeline.process(RecordBatch(records, [{"row": i} for i in range(400)]), ListSink())
    return pipeline.state_dict()


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"alpha": 0.05}, r"calibration\.alpha is 0\.05 here and 0\.01 in the checkpoint"),
        ({"window_size": 500}, r"calibration\.window_size is 500 here and None in the checkpoint"),
        ({"method": "quantile"}, r"calibration\.method 'quantile' makes a QuantileThreshold"),
    ],
    ids=["alpha", "window_size", "method"],
)
def test_a_checkpoint_made_under_another_calibration_is_refused_naming_both_values(
    changed, message
):
    state = trained_state({"alpha": 0.01})
    config = parse_config({"model": MODEL, "calibration": {"alpha": 0.01, **changed}})
    with pytest.raises(CheckpointError, match=message):
        pipeline_from_state(state, config, ServiceMetrics())


def test_the_same_calibration_resumes_and_learn_on_alert_follows_the_config():
    state = trained_state({"alpha": 0.02})
    config = parse_config({"model": MODEL, "calibration": {"alpha": 0.02, "learn_on_alert": True}})
    pipeline = pipeline_from_state(state, config, ServiceMetrics())
    assert pipeline.calibrator.alpha == 0.02
    assert len(pipeline.calibrator.reference_) == len(state["calibrator"]["reference"]) > 0
    assert pipeline.alerts.protect_anomaly_detector is False  # the YAML's, not the checkpoint's


def test_a_file_job_restarted_with_another_alpha_starts_a_fresh_model(tmp_path, caplog):
    """End to end: the job's checkpoint is refused (logged), and the run scores with the new
    alpha instead of silently keeping the old one."""
    base = {
        "model": MODEL,
        "source": {"kind": "demo", "demo": {"n_events": 600, "n_faults": 0}},
        "sink": {"kind": "none"},
        "checkpoint": {"dir": str(tmp_path / "ckpt")},
    }
    run_job(parse_config({**base, "calibration": {"alpha": 0.01}}), progress=False)
    with caplog.at_level("ERROR"):
        run_job(parse_config({**base, "calibration": {"alpha": 0.05}}), progress=False)
    assert "calibration.alpha is 0.05 here and 0.01 in the checkpoint" in caplog.text
