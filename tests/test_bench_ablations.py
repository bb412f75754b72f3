"""Ablation cells, traced training and reports that keep committed results."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from test_bench_reproduce import data_root  # noqa: F401  (fixture)

from bench import ablations
from bench.reproduce import main as reproduce
from bench.runner import fit, score
from bench.zoo import TrainConfig, build_model, model_specs


def _run(module, tmp_path, root, cache: str, *extra: str) -> int:
    return module(
        [
            "--quick",
            "--data-root",
            str(root),
            "--cache-dir",
            str(tmp_path / cache),
            "--out",
            str(tmp_path / "out"),
            *extra,
        ]
    )


def _summary(tmp_path) -> list[dict[str, str]]:
    with open(tmp_path / "out" / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_reports_keep_committed_cells_and_drop_stale_ones(tmp_path, data_root):  # noqa: F811
    args = ("--paper", "memae", "--dataset", "mnist", "--models", "AE", "--columns", "offline")
    _run(reproduce, tmp_path, data_root, "cache", *args)
    trained = _summary(tmp_path)
    assert [r["model"] for r in trained] == ["AE"]
    _run(reproduce, tmp_path, data_root, "empty", "--report-only")
    assert _summary(tmp_path) == trained  # nothing cached: the committed CSV serves the cells
    path = tmp_path / "out" / "memae_mnist.csv"
    rows = list(csv.DictReader(open(path, newline="")))
    for row in rows:
        row["key"] = "stale" if row["task"] == "0" else row["key"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _run(reproduce, tmp_path, data_root, "empty", "--report-only")
    assert [r["classes"] for r in _summary(tmp_path)] == ["1"]  # class 0 no longer matches


def test_ablation_sits_beside_the_paper_spec_and_survives_an_empty_cache(
    tmp_path,
    data_root,  # noqa: F811
):
    args = ("--paper", "memae", "--dataset", "mnist", "--models", "AE", "--columns", "offline")
    _run(reproduce, tmp_path, data_root, "cache", *args)
    _run(ablations.main, tmp_path, data_root, "cache", "--variants", "AE-val,AE-relative")
    report = (tmp_path / "out" / "ablations.md").read_text()
    rows = [line for line in report.splitlines() if "| AE-val |" in line]
    assert len(rows) == 1 and "| 0,1 | 0 |" in rows[0]
    assert rows[0].split(" | ")[6].startswith(("+", "-"))  # Δ against the paper spec's cells
    assert "Trace of AE-val" in report and "Epoch kept by the validation score" in report
    assert "| AE-signed | not run |" in report
    traced = list(csv.DictReader(open(tmp_path / "out" / "ablations_trace.csv", newline="")))
    assert {r["variant"] for r in traced} == {"AE-val"}
    assert {"val", "auroc"} <= {r["name"] for r in traced}
    _run(ablations.main, tmp_path, data_root, "empty", "--report-only")
    assert (tmp_path / "out" / "ablations.md").read_text() == report


def _tiny_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((96, 1, 28, 28), dtype=np.float32), rng.random((10, 1, 28, 28), np.float32)


def test_relative_score_divides_by_the_mean_square():
    _, test = _tiny_data()
    ae = next(s for s in model_specs("one_class", "mnist") if s.name == "AE")
    torch.manual_seed(0)
    model = build_model(ae, (1, 28, 28))
    plain, relative = score(model, test), score(model, test, kind="relative")
    np.testing.assert_allclose(relative, plain / np.square(test).reshape(10, -1).mean(1), rtol=1e-6)


def _trained(train: np.ndarray, test: np.ndarray, traced: bool) -> np.ndarray:
    ae = next(s for s in model_specs("one_class", "mnist") if s.name == "AE")
    torch.manual_seed(0)
    model = build_model(ae, (1, 28, 28))
    hook = (lambda _: score(model, test)) if traced else None
    fit(model, train, test[:4], TrainConfig(1e-3, 32, 2, patience=2), 0, on_epoch=hook)
    return score(model, test)


def test_a_trace_leaves_training_unchanged():
    train, test = _tiny_data()
    np.testing.assert_array_equal(_trained(train, test, False), _trained(train, test, True))


def test_seed_means_cover_the_tasks_every_seed_ran():
    from bench.cells import CellResult
    from bench.papers import TABLES
    from bench.tables import TableResults

    def cell(value: float) -> CellResult:
        return CellResult("ok", {"auroc": value})

    cells = {
        ("MemAE", "offline", 0, 0): cell(0.9),
        ("MemAE", "offline", 1, 0): cell(0.7),
        ("MemAE", "offline", 0, 1): cell(0.8),
    }
    results = TableResults(TABLES[0], {}, cells, "")
    assert results.seed_means("MemAE", "offline", "auroc") == [0.9, 0.8]  # task 0 only
    assert results.values("MemAE", "offline", "auroc") == pytest.approx({0: 0.85, 1: 0.7})


@pytest.mark.parametrize(("name", "shape"), [("mlp", (118,)), ("conv28", (1, 28, 28))])
def test_backbones_without_batch_norm_keep_every_other_layer(name, shape):
    from streammem.nn.backbones import build_backbone

    def layers(batch_norm: bool) -> list[str]:
        bb = build_backbone(name, shape, batch_norm=batch_norm)
        return [type(m).__name__ for m in [*bb.encoder, *bb.decoder]]

    with_bn, without = layers(True), layers(False)
    assert "BatchNorm1d" not in without and "BatchNorm2d" not in without
    assert [k for k in with_bn if not k.startswith("BatchNorm")] == without
