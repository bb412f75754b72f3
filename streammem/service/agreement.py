"""How a run's alerts agree with labels passed through from the source (``is_anomaly``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

__all__ = ["LabelAgreement", "read_agreement"]


@dataclasses.dataclass(frozen=True)
class LabelAgreement:
    """Alerts against labels, counted on the rows judged after the warm-up (rows whose
    calibrator could flag anything): what an alpha promises is the false-alarm rate."""

    normal: int
    false_alarms: int
    anomalies: int
    caught: int

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
        return (
            f"false alarms {self.false_alarms} of {self.normal} normal rows "
            f"({self.false_alarm_rate:.3f}), caught {self.caught} of {self.anomalies} anomalous "
            f"rows (recall {self.recall:.3f})"
        )


def read_agreement(results: str | Path, label_column: str) -> LabelAgreement | None:
    """The agreement of a results file whose rows carry ``label_column``; None without it."""
    schema = pq.read_schema(results)
    if label_column not in schema.names:
        return None
    columns = ["alert", label_column, *(["limit"] if "limit" in schema.names else [])]
    table = pq.read_table(results, columns=columns)
    alerts = table.column("alert").to_numpy(zero_copy_only=False).astype(bool)
    labels = table.column(label_column).to_pylist()
    labelled = np.array([bool(v) for v in labels])
    judged = np.ones(len(alerts), bool)
    if "limit" in table.column_names:
        judged = np.array([v is not None for v in table.column("limit").to_pylist()])
    return LabelAgreement.of(alerts, labelled, judged)
