"""bench.nab_score: NAB's scoring against hand-worked cases and the published scoreboard."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.datasets import data_root
from bench.nab_measure import RECOMPUTED
from bench.nab_score import (
    NAB,
    Profile,
    Series,
    corpus_score,
    normalised_scores,
    per_series_auroc,
    scaled_sigmoid,
    vus_pr,
)

STANDARD = Profile(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)


def _series(n: int, windows: list[tuple[int, int]], name: str = "s") -> Series:
    stamps = pd.Series(pd.date_range("2020-01-01", periods=n, freq="5min"))
    return Series(name, stamps, np.zeros(n), windows)


def _sig(x: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def test_scaled_sigmoid_is_nab_s_curve() -> None:
    assert scaled_sigmoid(np.array([-1.0]))[0] == pytest.approx(_sig(-1.0))
    assert scaled_sigmoid(np.array([3.5]))[0] == -1.0  # far past a window: a full FP
    assert scaled_sigmoid(np.array([0.0]))[0] == 0.0


def test_hand_worked_series() -> None:
    """20 rows (3 probationary), one window at rows 10-13: a detection at row 11 earns the
    sigmoid of -3/4 scaled to tp_weight, one at row 15 costs fp_weight times the sigmoid of
    its distance past the window (2 rows / (width - 1))."""
    series = _series(20, [(10, 13)])
    scores = np.zeros(20)
    scores[11] = scores[15] = 0.9
    scores[1] = 1.0  # probationary: never scored, so the best threshold is 0.9
    result = corpus_score([series], {"s": scores}, STANDARD)
    tp = _sig(-0.75) / _sig(-1.0)
    fp = 0.11 * _sig(2 / 3)
    assert result.threshold == 0.9
    assert result.raw == pytest.approx(tp + fp)
    # The null detector (every row alike) is optimised too: on so short a series detecting
    # everything (the window at its first scored row, 7 FPs before it, 6 after) beats
    # missing the window (-1). Perfect: +1.
    null = 1.0 - 7 * 0.11 + 0.11 * sum(_sig(k / 3) for k in range(1, 7))
    assert null > -1.0
    final = normalised_scores([series], {"s": scores}, {"standard": STANDARD})
    assert final["standard"] == pytest.approx(100 * (tp + fp - null) / (1.0 - null))


def test_only_the_earliest_detection_counts_and_no_detection_can_win() -> None:
    series = _series(40, [(20, 29)])
    early, late = np.zeros(40), np.zeros(40)
    early[[21, 25, 28]] = 1.0
    late[28] = 1.0
    got_early = corpus_score([series], {"s": early}, STANDARD).raw
    got_late = corpus_score([series], {"s": late}, STANDARD).raw
    assert got_early == pytest.approx(_sig(-9 / 10) / _sig(-1.0))
    assert got_late == pytest.approx(_sig(-2 / 10) / _sig(-1.0))
    # detections far from any window only: detecting nothing (-1) is the best threshold
    noisy = np.zeros(40)
    noisy[8:18] = 1.0
    result = corpus_score([series], {"s": noisy}, STANDARD)
    assert result.raw == -1.0 and math.isinf(result.threshold)


def test_one_threshold_for_the_corpus() -> None:
    """Each series alone would pick its own threshold; the corpus shares one."""
    a, b = _series(40, [(20, 29)], "a"), _series(40, [(20, 29)], "b")
    scores = {"a": np.zeros(40), "b": np.zeros(40)}
    scores["a"][20] = 0.8
    scores["b"][20], scores["b"][10] = 0.5, 0.9  # b's window is caught only below its FP
    result = corpus_score([a, b], scores, STANDARD)
    assert result.threshold == 0.5
    assert result.per_series["a"] == pytest.approx(1.0)
    assert result.per_series["b"] == pytest.approx(1.0 - 0.11)
    assert result.raw == pytest.approx(sum(result.per_series.values()))


def test_per_series_metrics_skip_probation_and_need_windows() -> None:
    series = _series(40, [(20, 29)])
    scores = np.zeros(40)
    scores[20:30] = 1.0
    scores[0] = 5.0  # probationary: ignored
    assert per_series_auroc(series, scores) == 1.0
    assert math.isnan(per_series_auroc(_series(40, []), scores))
    pytest.importorskip("TSB_AD")
    assert vus_pr(series, scores, sliding_window=4) > vus_pr(series, -scores, sliding_window=4)


needs_nab = pytest.mark.skipif(
    not (data_root() / "nab" / "labels" / "combined_windows.json").is_file(),
    reason="the shared NAB files are not here",
)


@needs_nab
@pytest.mark.parametrize("detector", list(RECOMPUTED))
def test_reproduces_the_published_scoreboard(detector: str) -> None:
    nab = NAB()
    series = nab.series()
    assert len(series) == 41 and sum(len(s.windows) for s in series) == 64
    got = normalised_scores(series, nab.published(detector), nab.profiles())
    assert [round(v, 2) for v in got.values()] == pytest.approx(RECOMPUTED[detector], abs=0.01)


@needs_nab
def test_bench_cells_cache_and_the_report_is_written(tmp_path):
    from bench.nab import run_cell
    from bench.nab_measure import check_scorer
    from bench.nab_report import write_report

    nab = NAB()
    corpus = nab.series(
        ["artificialWithAnomaly/art_daily_jumpsup.csv", "realTraffic/speed_6005.csv"]
    )
    cell = run_cell("floor", None, corpus, tmp_path / "cache")
    again = run_cell("floor", None, corpus, tmp_path / "cache")  # from the cache
    for s in corpus:
        np.testing.assert_array_equal(cell.likelihood[s.name], again.likelihood[s.name])
        assert ((cell.likelihood[s.name] >= 0) & (cell.likelihood[s.name] <= 1)).all()
    checks = check_scorer(nab, nab.series())
    assert all(check.passed for check in checks)
    paths = write_report([cell], corpus, nab, checks, tmp_path / "out", "cmd", 1.0, vus=False)
    text = (tmp_path / "out" / "nab.md").read_text()
    assert "| numenta | 75.52 / 70.68 / 78.99 |" in text
    assert all(p.is_file() for p in paths)
