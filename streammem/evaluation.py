"""An exact, streaming ROC AUC for River's ``evaluate.progressive_val_score``.

River's ``metrics.ROCAUC`` approximates the ROC curve with ``n_thresholds`` cut-offs in
``[0, 1]``: it is meant for probabilities, and its own documentation warns that it degenerates
on scores of another scale. A streammem score is a distance (0 to unbounded), so
River's metric printed 0.473 where the AUROC of the same scores was 0.825. :class:`ExactROCAUC`
ranks the scores themselves: it keeps them sorted, counts each new score's correctly ordered
pairs as it arrives, and so reports exactly what ``sklearn.metrics.roc_auc_score`` reports on
the scores seen so far (ties count one half), at O(log n) per update and O(n) memory.
"""

from __future__ import annotations

from typing import Any

from river import base, metrics
from sortedcontainers import SortedList

__all__ = ["ExactROCAUC"]


class ExactROCAUC(metrics.base.BinaryMetric):
    """Area under the ROC curve of every score seen, exactly, on any score scale.

    Parameters
    ----------
    pos_val
        The label of the positive (anomalous) class.

    Examples
    --------
    >>> from streammem.evaluation import ExactROCAUC
    >>> metric = ExactROCAUC()
    >>> for y, score in [(0, 0.1), (0, 0.4), (1, 0.35), (1, 0.8), (0, 12.0)]:
    ...     metric.update(y, score)
    >>> round(metric.get(), 4)
    0.5
    """

    def __init__(self, pos_val: Any = True) -> None:
        self.pos_val = pos_val
        self._positives = SortedList()
        self._negatives = SortedList()
        self._ordered = 0.0  # correctly ordered (positive, negative) pairs, ties as one half

    @property
    def requires_labels(self) -> bool:
        return False

    @property
    def bigger_is_better(self) -> bool:
        return True

    def works_with(self, model: base.Estimator) -> bool:
        return isinstance(model, (base.Classifier, base.AnomalyDetector, base.AnomalyFilter))

    def update(self, y_true: Any, y_pred: Any, w: float = 1.0) -> None:
        self._count(y_true, _score(y_pred), +1)

    def revert(self, y_true: Any, y_pred: Any, w: float = 1.0) -> None:
        self._count(y_true, _score(y_pred), -1)

    def _count(self, y_true: Any, score: float, sign: int) -> None:
        positive = y_true == self.pos_val
        mine, others = (
            (self._positives, self._negatives) if positive else (self._negatives, self._positives)
        )
        below = others.bisect_left(score)
        ties = others.bisect_right(score) - below
        beaten = below if positive else len(others) - below - ties
        if sign > 0:
            mine.add(score)
        else:
            mine.remove(score)
        self._ordered += sign * (beaten + 0.5 * ties)

    def get(self) -> float:
        pairs = len(self._positives) * len(self._negatives)
        return self._ordered / pairs if pairs else 0.0


def _score(y_pred: Any) -> float:
    score = y_pred.get(True, 0.0) if isinstance(y_pred, dict) else y_pred
    return float(score)
