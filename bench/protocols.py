"""Evaluation protocols of the papers and their metrics.

* **one-class** (MemAE, MEMGAN): class ``c`` is normal; train on its training images; test on
  the whole test split, every other class an anomaly.
* **ROCO** (Memorizer, RFTM): class ``c`` is removed from training and is the anomaly class; the
  other nine (labels discarded) are normal; 10% of the training rows (split seed 2022) validate.
* **KDDCUP** (DAGMM, used by MemAE): random 50/50 split, train on the non-anomalous rows of the
  first half (10% of them validate), flag the top 20% of the test scores.

Labels returned for a test set are 1 for an anomaly (the positive class), 0 for normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "PROTOCOLS",
    "TaskSplit",
    "best_f1",
    "hold_out",
    "kdd_split",
    "one_class_split",
    "ranking_metrics",
    "roco_split",
    "threshold_metrics",
]

PROTOCOLS = ("one_class", "roco", "kdd")
ROCO_SPLIT_SEED = 2022


@dataclass
class TaskSplit:
    """Row indices of one task: train, validation (maybe empty), test, and the test labels."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray


def one_class_split(y_train: np.ndarray, y_test: np.ndarray, normal_class: int) -> TaskSplit:
    """One-class task: train on ``normal_class``; every other test class is an anomaly.

    Examples
    --------
    >>> s = one_class_split(np.array([0, 1, 0]), np.array([1, 0]), normal_class=0)
    >>> s.train.tolist(), s.test_labels.tolist()
    ([0, 2], [1, 0])
    """
    train = np.flatnonzero(y_train == normal_class)
    test = np.arange(len(y_test))
    return TaskSplit(train, np.array([], np.int64), test, (y_test != normal_class).astype(np.int64))


def roco_split(
    y_train: np.ndarray,
    y_test: np.ndarray,
    anomaly_class: int,
    val_fraction: float = 0.1,
    seed: int = ROCO_SPLIT_SEED,
) -> TaskSplit:
    """ROCO task: drop ``anomaly_class`` from training, hold out ``val_fraction`` for validation.

    The validation rows are drawn from the remaining (normal) training rows with ``seed``; the
    test set is the full test split with ``anomaly_class`` positive.
    """
    kept = np.flatnonzero(y_train != anomaly_class)
    shuffled = np.random.default_rng(seed).permutation(kept)
    n_val = round(val_fraction * len(kept))
    return TaskSplit(
        np.sort(shuffled[n_val:]),
        np.sort(shuffled[:n_val]),
        np.arange(len(y_test)),
        (y_test == anomaly_class).astype(np.int64),
    )


def hold_out(split: TaskSplit, fraction: float = 0.1, seed: int = ROCO_SPLIT_SEED) -> TaskSplit:
    """Move a seeded ``fraction`` of the training rows to validation (model selection only).

    Examples
    --------
    >>> s = hold_out(one_class_split(np.zeros(20, int), np.zeros(2, int), 0), 0.1)
    >>> len(s.train), len(s.val)
    (18, 2)
    """
    shuffled = np.random.default_rng(seed).permutation(split.train)
    n_val = round(fraction * len(shuffled))
    return TaskSplit(
        np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val]), split.test, split.test_labels
    )


def kdd_split(labels: np.ndarray, seed: int, val_fraction: float = 0.1) -> TaskSplit:
    """DAGMM split: a seeded random half trains (its non-anomalous rows only), the rest tests.

    ``val_fraction`` of those training rows (drawn with the same seed) validate: early stopping
    and model selection see only the training class, never the test labels.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    half = len(labels) // 2
    first, second = order[:half], order[half:]
    normal = rng.permutation(first[labels[first] == 0])
    n_val = round(val_fraction * len(normal))
    test = np.sort(second)
    return TaskSplit(
        np.sort(normal[n_val:]), np.sort(normal[:n_val]), test, labels[test].astype(np.int64)
    )


def best_f1(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best F1 over every threshold, "everything positive" included.

    Examples
    --------
    >>> round(best_f1(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])), 4)
    0.8
    """
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(labels, scores)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(f1.max())


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC (average precision) and best F1, anomaly = positive."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "auprc": float(average_precision_score(labels, scores)),
        "best_f1": best_f1(labels, scores),
    }


def threshold_metrics(
    labels: np.ndarray, scores: np.ndarray, flagged_fraction: float = 0.2
) -> dict[str, float]:
    """Precision, recall and F1 when the top ``flagged_fraction`` of the scores are flagged.

    Examples
    --------
    >>> m = threshold_metrics(np.array([0, 0, 0, 1, 1]), np.array([0, 1, 2, 3, 4.0]), 0.4)
    >>> m["precision"], m["recall"], m["f1"]
    (1.0, 1.0, 1.0)
    """
    from sklearn.metrics import precision_recall_fscore_support

    threshold = np.percentile(scores, 100 * (1 - flagged_fraction))
    predicted = (scores > threshold).astype(np.int64)
    if not predicted.any():
        predicted = (scores >= threshold).astype(np.int64)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, average="binary", zero_division=0
    )
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
