"""How a run's alerts agree with the labels its source declares (``source.label``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["LabelAgreement", "label_values"]

_TRUE_TEXT = frozenset({"true", "1", "yes"})
_FALSE_TEXT = frozenset({"false", "0", "no", ""})


def label_values(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(anomalous, labelled)`` of a label column: booleans, numbers (0 is normal) or the
    texts true/false, 1/0, yes/no; a missing or other value leaves its row unlabelled.

    Examples
    --------
    >>> anomalous, labelled = label_values([True, 0, "no", None, "maybe", 2.0])
    >>> anomalous.tolist(), labelled.tolist()
    ([True, False, False, False, False, True], [True, True, True, False, False, True])
    """
    anomalous = np.zeros(len(values), bool)
    labelled = np.zeros(len(values), bool)
    for i, value in enumerate(values):
        if isinstance(value, str):
            text = value.strip().lower()
            labelled[i] = text in _TRUE_TEXT or text in _FALSE_TEXT
            anomalous[i] = text in _TRUE_TEXT
        elif isinstance(value, (bool, int, float, np.bool_, np.number)) and value == value:
            labelled[i], anomalous[i] = True, bool(value)
    return anomalous, labelled


@dataclasses.dataclass(frozen=True)
class LabelAgreement:
    """Alerts against labels, counted on the labelled rows judged after the warm-up (rows
    whose calibrator could flag anything): what an alpha promises is the false-alarm rate."""

    normal: int = 0
    false_alarms: int = 0
    anomalies: int = 0
    caught: int = 0

    def __add__(self, other: LabelAgreement) -> LabelAgreement:
        return LabelAgreement(*(a + b for a, b in zip(self.counts(), other.counts(), strict=True)))

    def counts(self) -> tuple[int, int, int, int]:
        return (self.normal, self.false_alarms, self.anomalies, self.caught)

    @property
    def rows(self) -> int:
        """Labelled rows counted."""
        return self.normal + self.anomalies

    @classmethod
    def of(cls, alerts: np.ndarray, labelled: np.ndarray, judged: np.ndarray) -> LabelAgreement:
        """Counts over the rows where ``judged`` is true.

        Examples
        --------
        >>> LabelAgreement.of(
        ...     np.array([1, 0, 1, 0, 0], bool), np.array([1, 1, 0, 0, 0], bool), np.ones(5, bool)
        ... ).summary()
        'false alarms 1 of 3 normal rows (0.333), caught 1 of 2 anomalous rows (recall 0.500)'
        """
        alerts, labelled = alerts[judged], labelled[judged]
        return cls(
            normal=int((~labelled).sum()),
            false_alarms=int((alerts & ~labelled).sum()),
            anomalies=int(labelled.sum()),
            caught=int((alerts & labelled).sum()),
        )

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.normal if self.normal else float("nan")

    @property
    def recall(self) -> float:
        return self.caught / self.anomalies if self.anomalies else float("nan")

    @property
    def precision(self) -> float:
        flagged = self.false_alarms + self.caught
        return self.caught / flagged if flagged else float("nan")

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (0 when either is 0 or undefined)."""
        precision, recall = self.precision, self.recall
        return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0

    def summary(self) -> str:
        """One line; a rate with nothing to count says so instead of printing nan.

        Examples
        --------
        >>> LabelAgreement(normal=500, false_alarms=4).summary()
        'false alarms 4 of 500 normal rows (0.008), no anomalous rows (no recall to measure)'
        """
        return f"{self.false_alarm_text()}, {self.caught_text()}"

    def false_alarm_text(self) -> str:
        """``false alarms F of N normal rows (rate)``, or why there is no rate."""
        if not self.normal:
            return "no normal rows (no false-alarm rate to measure)"
        return (
            f"false alarms {self.false_alarms} of {self.normal} normal rows "
            f"({self.false_alarm_rate:.3f})"
        )

    def caught_text(self) -> str:
        """``caught C of A anomalous rows (recall r)``, or why there is no recall."""
        if not self.anomalies:
            return "no anomalous rows (no recall to measure)"
        return f"caught {self.caught} of {self.anomalies} anomalous rows (recall {self.recall:.3f})"
