"""Which fields a score comes from: folding per-column shares into fields, and top fields.

A score splits exactly over the model's input columns (a reconstruction error is a sum over
them; a tabular score, ``sqrt(error * distance)``, splits half by each term's column shares): a
column's share is its part of the score, and a field's contribution is the sum of its columns'
shares (a categorical field's one-hot columns; a reading's window features). The detectors
compute the shares (``explain_one`` / ``explain_many``); this module folds shares into fields
and picks each record's largest, for alerts (:class:`TopFields`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from streammem.checks import check_integer
from streammem.features.encoder import EncodedBatch, select_rows, to_frame_or_array

__all__ = ["TopFields", "fold", "fold_frame", "top_fields"]

#: A record's largest contributions, largest first: ``[(field, contribution), ...]``.
Ranked = list[tuple[Hashable, float]]


def fold(parts: np.ndarray, owners: Sequence[Hashable]) -> tuple[np.ndarray, list[Hashable]]:
    """Sum the columns of ``parts`` (n, width) that belong to the same owner.

    Returns the sums (n, owners) and the owners, in the order they first appear.

    Examples
    --------
    >>> sums, names = fold(np.array([[1.0, 2.0, 3.0, 4.0]]), ["a", "b", "a", "c"])
    >>> sums.tolist(), names
    ([[4.0, 2.0, 4.0]], ['a', 'b', 'c'])
    """
    names = list(dict.fromkeys(owners))
    if len(names) == len(owners):
        return parts, names
    position = {name: i for i, name in enumerate(names)}
    group = np.fromiter((position[o] for o in owners), dtype=np.int64, count=len(owners))
    order = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order], np.arange(len(names)))
    grouped = parts if (order == np.arange(len(order))).all() else parts[:, order]
    return np.add.reduceat(grouped, starts, axis=1), names


def fold_frame(frame: pd.DataFrame, fields: Mapping[Any, Hashable]) -> pd.DataFrame:
    """``frame``'s columns summed into the field ``fields`` maps each to (others keep their
    name): a window's columns back into the readings' fields.

    Examples
    --------
    >>> frame = pd.DataFrame({"t_mean": [1.0], "t_std": [0.5], "machine": [0.25]})
    >>> fold_frame(frame, {"t_mean": "t", "t_std": "t"})
         t  machine
    0  1.5     0.25
    """
    sums, names = fold(frame.to_numpy(dtype=np.float64), [fields.get(c, c) for c in frame.columns])
    return pd.DataFrame(sums, columns=names, index=frame.index)


def top_fields(contributions: pd.DataFrame, k: int) -> list[Ranked]:
    """The ``k`` largest contributions of each row, largest first; only positive, finite ones
    (a record that scores 0 has none, a diverged model's NaN names nothing).

    Examples
    --------
    >>> frame = pd.DataFrame({"a": [0.1, 0.0], "b": [0.7, 0.0], "c": [0.2, 0.3]})
    >>> top_fields(frame, 2)
    [[('b', 0.7), ('c', 0.2)], [('c', 0.3)]]
    """
    values = contributions.to_numpy(dtype=np.float64)
    names = list(contributions.columns)
    ranked = np.where(np.isfinite(values) & (values > 0), values, -np.inf)
    order = np.argsort(-ranked, axis=1, kind="stable")[:, : max(k, 0)]
    return [
        [(names[j], float(values[i, j])) for j in row if ranked[i, j] > 0]
        for i, row in enumerate(order)
    ]


@dataclasses.dataclass(frozen=True)
class TopFields:
    """Which records get their top fields, and how many.

    Parameters
    ----------
    k
        Fields per record (the ``k`` largest contributions); 0 turns it off.
    every_record
        Explain every record, not only the alerts.
    fold_into
        The field each of the detector's input fields is reported as; contributions mapped to
        one field add up (a window's columns to the readings' fields). ``None``: as they are.

    Examples
    --------
    >>> import streammem
    >>> det = streammem.MemAE(seed=0)
    >>> rows = [{"a": float(i % 5), "b": float(i % 3)} for i in range(50)]
    >>> det.learn_many(rows)
    >>> top = TopFields(k=1).of(det, [{"a": 2.0, "b": 40.0}, rows[0]], np.array([True, False]))
    >>> [[field for field, _ in record] for record in top]
    [['b'], []]
    """

    k: int = 3
    every_record: bool = False
    fold_into: Mapping[Any, Hashable] | None = None

    def __post_init__(self) -> None:
        check_integer("top_fields", self.k, 0)

    def of(self, explainer: Any, X: Any, alerts: np.ndarray) -> list[Ranked]:
        """Top fields of each record of ``X`` by ``explainer.explain_many`` (called only on the
        records to explain): the alerts, or every record; ``[]`` for the others, and for all
        when ``explainer`` cannot explain."""
        wanted = np.ones(len(alerts), bool) if self.every_record else np.asarray(alerts, bool)
        ranked: list[Ranked] = [[] for _ in range(len(wanted))]
        explain = getattr(explainer, "explain_many", None)
        if self.k == 0 or explain is None or not wanted.any():
            return ranked
        frame = explain(X if wanted.all() else _select(X, wanted))
        if self.fold_into:
            frame = fold_frame(frame, self.fold_into)
        for i, top in zip(np.flatnonzero(wanted), top_fields(frame, self.k), strict=True):
            ranked[i] = top
        return ranked


def _select(X: Any, keep: np.ndarray) -> Any:
    if isinstance(X, EncodedBatch):
        return X.select(keep)
    return select_rows(to_frame_or_array(X), keep)
