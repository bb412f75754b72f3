"""bench.sensors: SKAB's leaderboard protocol (the rules, the pooled metric, two published rows
reproduced on the real files when they are present) and a smoke run of the CLI."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from bench import sensors, sensors_cells, sensors_report, skab
from bench.datasets import data_root
from bench.sensors import FirstEvents, RunningZ, check_protocol, run_cell
from bench.sensors_cells import parse_contender
from bench.skab import SKAB, Counts, conv_rule, vanilla_rule

HAVE_SKAB = all((data_root() / "skab" / f).is_file() for f, _ in SKAB.resources)
needs_skab = pytest.mark.skipif(not HAVE_SKAB, reason="SKAB files absent from the data root")


@pytest.mark.parametrize("module", [skab, sensors, sensors_report])
def test_doctests(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


def upstream_conv_rule(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """``Conv_AE.ipynb``'s loop, transcribed (``create_sequences`` of 60 rows, each window's
    residual the mean over its rows)."""
    train_windows = pd.Series([train[i : i + 60].mean() for i in range(len(train) - 59)])
    test_windows = pd.Series([test[i : i + 60].mean() for i in range(len(test) - 59)])
    anomalous = test_windows > train_windows.quantile(0.999) * 4 / 3
    rows = [d for d in range(59, len(test_windows) - 59) if np.all(anomalous[d - 59 : d])]
    prediction = pd.Series(0, index=range(len(test)))
    prediction.iloc[rows] = 1
    return prediction.to_numpy() == 1


@pytest.mark.parametrize("seed", range(4))
def test_conv_rule_matches_upstreams_loop(seed):
    rng = np.random.default_rng(seed)
    train = rng.gamma(2.0, size=400)
    test = rng.gamma(2.0, size=700)
    start = rng.integers(100, 400)
    test[start : start + rng.integers(50, 250)] *= rng.uniform(1.5, 4.0)
    np.testing.assert_array_equal(conv_rule(train, test), upstream_conv_rule(train, test))


def test_vanilla_rule_and_the_pooled_metric():
    train = np.linspace(0.0, 1.0, 400)
    limit = np.quantile(train, 0.99) * 2.5
    flags = vanilla_rule(train, np.array([limit - 1e-9, limit + 1e-9, np.inf, np.nan]))
    assert flags.tolist() == [False, True, True, True]  # a score that blew up is flagged
    pooled = Counts.of(np.array([1, 1, 0]), np.array([1, 0, 0])) + Counts(tp=1, fn=1)
    assert pooled.astuple() == (2, 1, 0, 2)
    assert pooled.scores() == pytest.approx((2 / (2 + 1), 0.0, 50.0))


def test_the_streaming_limit_uses_the_first_events_only():
    calibrator = FirstEvents()
    scores = np.r_[np.full(60, 1e6), np.linspace(0.0, 1.0, 340), np.full(500, 1e6)]
    for chunk in np.array_split(scores, 7):
        calibrator.learn_many(chunk)
    assert calibrator.threshold() == pytest.approx(np.quantile(scores[60:400], 0.99) * 2.5)
    assert list(calibrator.reference_) == scores[60:400].tolist()


def test_the_no_model_reference_learns_nothing_it_is_not_given():
    reference = RunningZ()
    assert reference.score_one({"a": 5.0}) == 0.0
    for value in (1.0, 2.0, 3.0):
        reference.learn_one({"a": value, "b": 7.0})  # b never varies: it adds nothing
    assert reference.score_one({"a": 2.0, "b": 100.0}) == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GPT", "unknown contender"),
        ("T2Q@60", "take no parameters or window"),
        ("MemAE@0", "window.size must be"),
        ("MemAE@60:median", "window.features must be distinct"),
        ("MemAE[", "cannot read contender"),
    ],
)
def test_contender_mistakes_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_contender(text)


@needs_skab
def test_the_two_leaderboard_rows_are_reproduced(tmp_path):
    results = [
        run_cell(parse_contender(name), "offline", SKAB.file_names(), SKAB(), tmp_path)
        for name in ("T2Q", "IForest")
    ]
    checks = check_protocol(results)
    assert [c.name for c in checks] == ["T-squared+Q (PCA)", "Isolation forest"]
    for check in checks:
        assert check.passed, check
        assert check.ours[1:] == pytest.approx(check.published[1:], abs=0.005)
    test_rows = sum(sum(f["counts"]["own"]) for f in results[0].files.values())
    anomalous = sum(
        f["counts"]["own"][0] + f["counts"]["own"][3] for f in results[0].files.values()
    )
    assert (test_rows, anomalous) == (23_801, 12_771)  # the split upstream's notebooks use


@needs_skab
def test_a_small_run_writes_every_report(tmp_path):
    out = tmp_path / "report"
    argv = [
        "--contenders", "nomodel,MemAE@60",
        "--files", "valve1/0",
        "--cache-dir", str(tmp_path / "cache"),
        "--out", str(out),
    ]  # fmt: skip
    assert sensors.main(argv) == 0
    assert {p.name for p in out.iterdir()} >= {"cells.csv", "files.csv", "sensors.md", "runs.jsonl"}
    page = (out / "sensors.md").read_text()
    assert "| no model, raw rows |" in page and "| MemAE, window 60 |" in page
    assert "## Streaming" in page and "python -m bench.sensors --contenders" in page
    cells = pd.read_csv(out / "cells.csv")
    assert set(zip(cells.contender, cells.column, strict=True)) == {
        (name, column) for name in ("nomodel", "MemAE@60") for column in sensors_cells.COLUMNS
    }
    assert cells["mean_auroc"].between(0, 1).all()
    cached = {p: p.read_text() for p in (tmp_path / "cache").glob("*.json")}
    assert len(cached) == 2 * len(sensors_cells.COLUMNS)
    assert sensors.main(argv) == 0  # the second run reads every cell from the cache
    assert {p: p.read_text() for p in (tmp_path / "cache").glob("*.json")} == cached
    assert len((out / "runs.jsonl").read_text().splitlines()) == 2
