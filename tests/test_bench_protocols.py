"""Bench protocols (splits) and metrics."""

from __future__ import annotations

import numpy as np
import pytest

from bench.protocols import (
    best_f1,
    kdd_split,
    one_class_split,
    ranking_metrics,
    roco_split,
    threshold_metrics,
)

Y_TRAIN = np.repeat(np.arange(10), 20)
Y_TEST = np.repeat(np.arange(10), 5)


def test_one_class_trains_on_the_normal_class_only():
    split = one_class_split(Y_TRAIN, Y_TEST, normal_class=3)
    assert set(Y_TRAIN[split.train]) == {3}
    assert len(split.test) == len(Y_TEST)
    np.testing.assert_array_equal(split.test_labels, (Y_TEST != 3).astype(int))


def test_roco_removes_the_anomaly_class_and_holds_out_a_seeded_tenth():
    split = roco_split(Y_TRAIN, Y_TEST, anomaly_class=7)
    used = np.concatenate([split.train, split.val])
    assert 7 not in set(Y_TRAIN[used])
    assert len(used) == 180 and len(np.unique(used)) == 180
    assert len(split.val) == 18
    again = roco_split(Y_TRAIN, Y_TEST, anomaly_class=7)
    np.testing.assert_array_equal(split.val, again.val)
    np.testing.assert_array_equal(split.test_labels, (Y_TEST == 7).astype(int))


def test_kdd_split_trains_on_non_anomalies_of_one_half():
    labels = (np.arange(1000) % 5 == 0).astype(int)
    split = kdd_split(labels, seed=4)
    assert labels[split.train].sum() == 0 and labels[split.val].sum() == 0
    assert len(np.intersect1d(split.train, split.test)) == 0
    assert len(np.intersect1d(split.train, split.val)) == 0
    assert len(split.val) == round(0.1 * (len(split.train) + len(split.val)))
    assert len(split.test) == 500
    assert not np.array_equal(split.test, kdd_split(labels, seed=5).test)


def test_best_f1_includes_the_all_positive_threshold():
    labels = np.array([1] + [0] * 9)
    scores = np.linspace(1, 0, 10)[::-1]  # the anomaly scores lowest
    assert best_f1(labels, scores) == pytest.approx(2 * 0.1 / 1.1)


def test_ranking_metrics_of_a_perfect_detector():
    labels = np.array([0, 0, 1, 1])
    metrics = ranking_metrics(labels, np.array([0.1, 0.2, 0.8, 0.9]))
    assert metrics == {"auroc": 1.0, "auprc": 1.0, "best_f1": 1.0}


def test_threshold_metrics_flag_the_top_fraction():
    labels = np.array([0] * 8 + [1] * 2)
    scores = np.array([0, 1, 2, 3, 4, 5, 6, 9, 7, 8.0])
    metrics = threshold_metrics(labels, scores, flagged_fraction=0.2)
    assert metrics["precision"] == 0.5 and metrics["recall"] == 0.5


def test_docstring_examples_of_the_bench_modules():
    import doctest

    import bench.protocols
    import bench.reproduce
    import bench.zoo

    for module in (bench.protocols, bench.reproduce, bench.zoo):
        assert doctest.testmod(module).failed == 0
