"""The streaming benchmark: protocol, floor, metrics, cells and reports (bench.stream)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import stream
from bench.cli import split_list
from bench.datasets import ADBench, DataMissing
from bench.stream_report import StreamResult, critical_difference, mean_ranks, merge_seeds


def shared_adbench_available() -> bool:
    try:
        ADBench().path(ADBench.resources[0][0])
    except DataMissing:
        return False
    return True


needs_adbench = pytest.mark.skipif(
    not shared_adbench_available(), reason="the ADBench files are not under the data root"
)


def test_floor_is_the_running_z_score_of_earlier_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)) * [1.0, 10.0, 0.1]
    X[:, 2] = np.where(np.arange(50) < 20, 5.0, X[:, 2])  # constant at first: no scale yet
    scores = stream.floor_scores(X)
    for i in (1, 7, 25, 49):
        before = X[:i]
        std = before.std(axis=0)
        z = np.where(std > 1e-12, (X[i] - before.mean(axis=0)) / np.where(std > 0, std, 1), 0)
        assert scores[i] == pytest.approx(np.mean(z**2), rel=1e-9), i
    assert scores[0] == 0.0


def test_metrics_skip_the_warm_up_and_rank_non_finite_scores_highest():
    y = np.r_[np.ones(10), np.zeros(90), np.zeros(50), np.ones(50)].astype(int)  # n = 200
    scores = np.r_[np.zeros(20), np.linspace(0, 1, 130), np.full(50, np.inf)]
    metrics = stream.stream_metrics(y, scores)
    assert metrics["warmup"] == 20 and metrics["nonfinite"] == 50
    assert metrics["auroc"] == 1.0  # the warm-up's anomalies (scored 0) do not count
    assert metrics["auroc_2k"] is None  # the stream is shorter than 2,000 events


def test_contender_variants_parse_and_carry_their_parameters():
    variant = stream.parse_contender("MemAE[schedule=Schedule(budget=2);num_slots=20]")
    kwargs = variant.kwargs()
    assert kwargs["schedule"].budget == 2 and kwargs["num_slots"] == 20
    assert variant.group == "streammem"
    with pytest.raises(ValueError, match="only streammem"):
        stream.parse_contender("floor[x=1]")
    with pytest.raises(ValueError, match="unknown contender"):
        stream.parse_contender("IsolationForest")
    assert split_list("floor,MemAE[a=1;b=(1,2)],AE", []) == ["floor", "MemAE[a=1;b=(1,2)]", "AE"]


def test_nemenyi_and_ranks():
    grid = {"s1": {"a": 0.9, "b": 0.8}, "s2": {"a": 0.7, "b": 0.7}, "s3": {"a": 0.6}}
    assert mean_ranks(grid, ["a", "b"]) == {"a": 1.25, "b": 1.75}  # s3 lacks b: left out
    assert critical_difference(2, 35) == pytest.approx(1.960 * np.sqrt(6 / 210))


@needs_adbench
def test_seeds_of_one_detector_merge_into_their_mean():
    def cell(dataset, contender, auroc, group="streammem"):
        return StreamResult(dataset, contender, group, "ok", {"auroc": auroc, "auprc": auroc / 2})

    results = [
        cell("adbench:a", "MemAE", 0.9),
        cell("adbench:a", "MemAE[seed=1]", 0.7),
        cell("adbench:a", "MemAE[seed=2]", 0.8),
        cell("adbench:a", "AE", 0.6),  # one seed: passes through under its own name
        cell("adbench:a", "floor", 0.75, group="floor"),
    ]
    merged, runs = merge_seeds(results)
    by_name = {r.contender: r for r in merged}
    assert sorted(by_name) == ["AE", "MemAE", "floor"]
    assert by_name["MemAE"].metrics["auroc"] == pytest.approx(0.8)
    assert by_name["MemAE"].metrics["auprc"] == pytest.approx(0.4)
    assert by_name["AE"].metrics["auroc"] == 0.6
    assert runs == {"MemAE": {42: {"adbench:a": 0.9}, 1: {"adbench:a": 0.7}, 2: {"adbench:a": 0.8}}}


def test_streams_follow_the_protocol_order():
    data = stream.load_stream("adbench:wine")
    raw = ADBench().load_set("wine")
    order = np.random.default_rng(0).permutation(len(raw.y))
    np.testing.assert_array_equal(data.X, raw.x[order])
    assert len(stream.load_stream("adbench:skin", max_events=1000)) == 1000


@needs_adbench
def test_cells_are_cached_and_reports_written(tmp_path):
    floor = stream.CONTENDERS["floor"]
    first = stream.run_cell("adbench:wine", floor, tmp_path)
    assert first.status == "ok" and first.metrics["auroc"] == pytest.approx(0.7981, abs=1e-4)
    cached = list(tmp_path.glob("*.json"))
    assert len(cached) == 1
    record = json.loads(cached[0].read_text())
    record["metrics"]["auroc"] = 0.123  # a cached cell is read back, not recomputed
    cached[0].write_text(json.dumps(record))
    assert stream.run_cell("adbench:wine", floor, tmp_path).metrics["auroc"] == 0.123
    assert stream.main(["--quick", "--cache-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 0
    report = (tmp_path / "r" / "stream.md").read_text()
    assert "floor" in report and "mean over the 4 ADBench sets" in report
    assert (tmp_path / "r" / "stream_auroc.png").stat().st_size > 0


@needs_adbench
def test_no_nan_or_inf_score_on_any_adbench_set():
    """MemAE with its defaults on the first 300 events of every set (a scored batch after a
    learned one; the full streams are checked by the committed bench table)."""
    memae = stream.CONTENDERS["MemAE"]
    for name in ADBench.set_names():
        data = stream.load_stream(f"adbench:{name}", max_events=300)
        scores, fit = memae.run(data, {})
        assert np.isfinite(scores).all(), name
        assert fit["fit_r2"] is None or fit["fit_r2"] <= 1.0, name
