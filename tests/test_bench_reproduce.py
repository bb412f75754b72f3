"""``python -m bench.reproduce --quick`` end to end on a synthetic data root (no ../shared)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from test_datasets import fake_kdd, fake_mnist, trust_files

from bench import datasets as ds
from bench.cli import parse_ints
from bench.figures import slot_grid
from bench.report import SUMMARY_COLUMNS
from bench.reproduce import main


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    fake_mnist(root, n_train=60, n_test=40)
    fake_kdd(root, n=80)
    trust_files(monkeypatch, ds.MNIST, root)
    trust_files(monkeypatch, ds.KDDCUP99, root)
    return root


def run(tmp_path, root, *extra: str) -> int:
    return main(
        [
            "--quick",
            "--data-root",
            str(root),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(tmp_path / "out"),
            *extra,
        ]
    )


def test_quick_run_writes_every_report(tmp_path, data_root):
    assert (
        run(
            tmp_path,
            data_root,
            "--paper",
            "memae",
            "--dataset",
            "mnist,kddcup",
            "--models",
            "AE,MemAE",
        )
        == 0
    )
    out = tmp_path / "out"
    with open(out / "summary.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == SUMMARY_COLUMNS
        rows = list(reader)
    assert {r["column"] for r in rows} == {"offline", "streaming"}
    assert {(r["dataset"], r["model"]) for r in rows} >= {("mnist", "MemAE"), ("kddcup", "AE")}
    for row in rows:
        assert 0.0 <= float(row["ours"]) <= 1.0
    mnist = [r for r in rows if r["dataset"] == "mnist" and r["column"] == "offline"]
    assert {r["classes"] for r in mnist} == {"2"}
    memae = {(r["paper"], r["reported"]) for r in mnist if r["model"] == "MemAE"}
    # MemAE paper: printed mean only; MEMGAN paper: per class, so the mean over classes 0 and 1
    assert memae == {("memae", "0.9751"), ("memgan", "0.9955")}
    markdown = (out / "memae_mnist.md").read_text()
    assert "| MemAE | auroc | 97.51 |" in markdown
    assert "python -m bench.reproduce --quick" in markdown
    cells = list(csv.DictReader(open(out / "memae_mnist.csv", newline="")))
    assert {c["task"] for c in cells} == {"0", "1"} and all(float(c["seconds"]) >= 0 for c in cells)
    for picture in (
        "memae_mnist_bars.png",
        "memae_mnist_MemAE_slots.png",
        "memae_mnist_scores.png",
    ):
        assert (out / picture).stat().st_size > 0


def test_second_run_is_served_from_the_cache(tmp_path, data_root):
    args = ("--paper", "memae", "--dataset", "mnist", "--models", "AE", "--columns", "offline")
    run(tmp_path, data_root, *args)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*.json")}
    assert len(stamps) == 2  # classes 0 and 1
    run(tmp_path, data_root, *args)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*.json")} == stamps
    runs = (tmp_path / "out" / "runs.jsonl").read_text().splitlines()
    assert len(runs) == 2 and json.loads(runs[-1])["counts"] == {"ok": 2}


def test_missing_training_images_are_reported_not_substituted(tmp_path, data_root, capsys):
    assert (
        run(tmp_path, data_root, "--paper", "memorizer", "--dataset", "kmnist", "--models", "AE")
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    assert len([line for line in printed if "train-images-idx3-ubyte.gz" in line]) == 1
    assert printed[-1] == f"reports in {tmp_path / 'out'}"
    markdown = (tmp_path / "out" / "memorizer_kmnist.md").read_text()
    assert "**Data missing**" in markdown and "train-images-idx3-ubyte.gz" in markdown
    assert not list((tmp_path / "cache").glob("kmnist-*"))


def test_parse_ints():
    assert parse_ints("0-2,5") == [0, 1, 2, 5]
    assert parse_ints(None) is None


def test_slot_grid_tiles_slots_row_major():
    slots = np.arange(3, dtype=np.float32).reshape(3, 1, 1, 1) * np.ones((3, 1, 2, 2), np.float32)
    grid = slot_grid(slots, columns=2)
    assert grid.shape == (4, 4)
    np.testing.assert_allclose(grid[:2, :2], 0.0)
    np.testing.assert_allclose(grid[:2, 2:], 0.5)
    np.testing.assert_allclose(grid[2:, :2], 1.0)
