"""AlertFilter: a detector, a calibrator and learning that skips what it flags.

A raw score says how unusual a record is to one model at one moment; an alert needs a scale
that does not drift with the model. :class:`AlertFilter` puts a calibrator behind any River
anomaly detector: scores become conformal p-values and alert flags, every score feeds the
calibrator's reference window, and (by default) a flagged record is not learned, so an attack
or a fault that lasts minutes does not teach the model that it is normal.

It is River's ``AnomalyFilter`` (``classify``, ``protect_anomaly_detector``, usable in
``evaluate.progressive_val_score``) with two differences: ``protect_anomaly_detector=False``
learns every record (River's own filter then learns none), and it has batch methods and
p-values. The service runs every batch through this same object.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from river import base as river_base

from streammem.alerts.calibration import Calibrator, ConformalCalibrator, Judged
from streammem.explain import TopFields
from streammem.features.encoder import EncodedBatch, select_rows, to_frame_or_array
from streammem.interface import is_stream_detector, records_until_update
from streammem.persistence import from_state, stateful
from streammem.reprs import describe

__all__ = ["AlertFilter", "Judged"]


@stateful
class AlertFilter(river_base.AnomalyFilter, river_base.Classifier):
    """Calibrated alerts around an anomaly detector, learning only what it does not flag.

    Parameters
    ----------
    anomaly_detector
        Any River anomaly detector; its ``score_many`` / ``learn_many`` are used when it has
        them (every streammem detector does).
    calibrator
        Turns scores into p-values and alerts; ``None``: ``ConformalCalibrator()`` (alert when
        the conformal p-value is below 0.01, against a window of the last 300 scores, 3 /
        alpha, once it holds 100, 1 / alpha).
    protect_anomaly_detector
        ``True``: flagged records are not learned. ``False``: every record is learned.

    Notes
    -----
    As a River classifier, ``predict_one(x)`` is the alert decision (``classify`` of its
    score) and ``predict_proba_one(x)`` is ``{True: 1 - p, False: p}`` for the conformal
    p-value ``p``: a ranking for metrics such as ``ROCAUC``, not a calibrated probability (an
    alert is ``p < alpha``, not ``1 - p > 0.5``); both are pure.

    Examples
    --------
    >>> import random
    >>> import streammem
    >>> rng = random.Random(0)
    >>> alerts = streammem.AlertFilter(streammem.MemAE(seed=1))
    >>> for i in range(1500):
    ...     a = rng.gauss(0, 1)
    ...     alerts.learn_one({"a": a, "b": 2 * a + rng.gauss(0, 0.1)})
    >>> alerts.classify(alerts.score_one({"a": 0.3, "b": 0.6}))
    False
    >>> broken = {"a": 0.3, "b": -10.0}  # b should be about 0.6
    >>> alerts.classify(alerts.score_one(broken)), alerts.p_value_one(broken) < 0.01
    (True, True)
    """

    def __init__(
        self,
        anomaly_detector: river_base.AnomalyDetector,
        calibrator: Calibrator | None = None,
        protect_anomaly_detector: bool = True,
    ) -> None:
        super().__init__(anomaly_detector, protect_anomaly_detector)
        self.calibrator = calibrator
        self.check_params()  # type checks only: a wrong argument fails where it is written

    def check_params(self) -> None:
        """Raise ``ValueError`` naming the argument if one is not what the filter needs."""
        detector = self.anomaly_detector
        if not isinstance(detector, river_base.AnomalyDetector):
            raise ValueError(
                "anomaly_detector must be a River anomaly detector, such as streammem.MemAE(); "
                f"got {detector!r}"
            )
        if self.calibrator is not None and not isinstance(self.calibrator, Calibrator):
            raise ValueError(
                "calibrator must be a streammem calibrator (ConformalCalibrator, "
                f"QuantileThreshold, TailLikelihood) or None, got {self.calibrator!r}"
            )
        self.calibrator_.check_params()

    def __repr__(self) -> str:
        default = ConformalCalibrator()
        note = f"ConformalCalibrator(alpha={default.alpha}), a window of {default.window_size_}"
        return describe(self, {"calibrator": note})

    @property
    def calibrator_(self) -> Calibrator:
        """The calibrator in use (``calibrator``, else a default made on first use)."""
        if self.calibrator is not None:
            return self.calibrator
        default = self.__dict__.get("_default_calibrator")
        if default is None:
            default = self._default_calibrator = ConformalCalibrator()
        return default

    @property
    def is_ready(self) -> bool:
        """Whether anything can alert now: the calibrator's window holds ``min_reference``
        scores (``1 / alpha`` by default). Before, every p-value is 1 and every limit inf.
        The window holds ``3 / alpha`` scores, so the scores of a young model (the schedule's
        first records, when the model changes fastest) leave it within that many records."""
        return self.calibrator_.is_warm

    # ------------------------------------------------------------------ one record
    def classify(self, score: float) -> bool:
        """Whether ``score`` raises an alert now (never while the calibrator warms up)."""
        return bool(self.judge(np.array([score], dtype=np.float64)).alerts[0])

    def p_value_one(self, x: Mapping[Any, Any]) -> float:
        """Conformal p-value of ``x``'s score: small means unusual. Pure."""
        return float(self.calibrator_.p_values(np.array([self.score_one(x)]))[0])

    def predict_one(self, x: Mapping[Any, Any]) -> bool:
        """Whether ``x`` would raise an alert now (pure).

        Examples
        --------
        >>> import streammem
        >>> alerts = streammem.AlertFilter(streammem.MemAE())
        >>> alerts.predict_one({"a": 1.0}), alerts.predict_proba_one({"a": 1.0})
        (False, {False: 1.0, True: 0.0})
        """
        return self.classify(self.score_one(x))

    def predict_proba_one(self, x: Mapping[Any, Any]) -> dict[bool, float]:
        """``{True: 1 - p, False: p}`` for ``x``'s conformal p-value ``p`` (pure)."""
        return _probabilities(self.p_value_one(x))

    def predict_many(self, X: Any) -> pd.Series:
        """Whether each row would raise an alert against the window as it stands (pure; unlike
        :meth:`process_many`, the rows are not judged one after another)."""
        judged = self.judge(self.score_many(X))
        return pd.Series(judged.alerts, index=_index(X), name="alert")

    def predict_proba_many(self, X: Any) -> pd.DataFrame:
        """:meth:`predict_proba_one` of each row, as River's batch classifiers give it (pure)."""
        p_values = self.p_values_many(X)
        return pd.DataFrame({False: p_values, True: 1.0 - p_values}, index=_index(X))

    def learn_one(self, x: Mapping[Any, Any]) -> None:
        judged = self.judge(np.array([self.score_one(x)], dtype=np.float64))
        self.calibrator_.learn_many(judged.scores)
        if not (self.protect_anomaly_detector and judged.alerts[0]):
            self.anomaly_detector.learn_one(x)

    # ------------------------------------------------------------------ batches
    def score_many(self, X: Any) -> np.ndarray:
        """Raw scores of a batch (pure)."""
        detector = self.anomaly_detector
        if is_stream_detector(detector):
            return np.asarray(detector.score_many(X), dtype=np.float64)
        return np.array([detector.score_one(x) for x in _records(X)], dtype=np.float64)

    def p_values_many(self, X: Any) -> np.ndarray:
        """Conformal p-values of a batch (pure)."""
        return self.calibrator_.p_values(self.score_many(X))

    def judge(self, scores: np.ndarray) -> Judged:
        """p-values and alert flags of raw scores (pure)."""
        return self.calibrator_.judge(scores)

    def learn_many(self, X: Any) -> None:
        """Score, judge and learn a batch, as :meth:`process_many` does."""
        self.process_many(X)

    def explain_one(self, x: Mapping[Any, Any]) -> dict[Hashable, float]:
        """Each field's contribution to ``score_one(x)`` (the detector's ``explain_one``)."""
        return self._explainer("explain_one")(x)

    def explain_many(self, X: Any) -> pd.DataFrame:
        """Each field's contribution to each row's score (the detector's ``explain_many``).

        Examples
        --------
        >>> import streammem
        >>> alerts = AlertFilter(streammem.MemAE())
        >>> alerts.learn_many([{"a": float(i), "b": float(i % 3)} for i in range(40)])
        >>> alerts.explain_many([{"a": 3.0, "b": 9.0}]).columns.tolist()
        ['a', 'b']
        """
        return self._explainer("explain_many")(X)

    def _explainer(self, method: str) -> Any:
        explain = getattr(self.anomaly_detector, method, None)
        if explain is None:
            raise TypeError(
                f"{type(self.anomaly_detector).__name__} cannot explain its scores: only "
                "streammem detectors have explain_one / explain_many"
            )
        return explain

    def process_many(self, X: Any, top_fields: int | TopFields = 3) -> Judged:
        """Score, judge, then learn a batch in order: what feeding it one record at a time
        would give, alerts and learned model alike, whatever the batch's size or form.

        Records are scored in runs over which the detector does not change (its
        ``records_until_update``; one record at a time for a detector that does not say),
        and each score is judged against the calibrator's window as it stands when that
        record arrives, so a large batch is not scored by a stale model or judged against a
        stale reference. The batch is read once when the detector can keep its reading.

        Each alert gets its ``top_fields`` largest contributions (``Judged.top_fields``),
        explained by the model that scored it; a :class:`~streammem.explain.TopFields` asks
        for every record's, or 0 for none. Only the records explained cost anything.
        """
        explain = top_fields if isinstance(top_fields, TopFields) else TopFields(top_fields)
        batch = self.encode_many(X)
        judged = []
        start = 0
        while start < len(batch):
            capacity = records_until_update(self.anomaly_detector)
            # A few rows more than can be learned: flagged rows are not learned.
            run = _rows(batch, start, start + capacity + capacity // 8)
            if isinstance(run, EncodedBatch) and not run.learnable:
                run = self.encode_many(run.source)  # categories may have been added since
            part = self._judge_run(run, capacity, explain)
            judged.append(part)
            start += len(part)
        return Judged.concat(judged)

    def _judge_run(self, run: Any, capacity: int, explain: TopFields) -> Judged:
        """Judge and learn ``run`` up to the record whose learning changes the detector."""
        scores = self.score_many(run)
        judged = self.calibrator_.judge_sequence(scores)
        learned = ~judged.alerts if self.protect_anomaly_detector else np.ones(len(scores), bool)
        total = np.cumsum(learned)
        end = len(scores)
        if total[-1] >= capacity:
            end = int(np.searchsorted(total, capacity)) + 1
        part, judged_rows = judged[:end], _rows(run, 0, end)
        # before learning: an alert is explained by the model that scored it
        part.top_fields = explain.of(self.anomaly_detector, judged_rows, part.alerts)
        self.learn_judged(judged_rows, part)
        return part

    def encode_many(self, X: Any) -> Any:
        """The batch read once by the detector (its ``encode_many``), else as given."""
        detector = self.anomaly_detector
        if isinstance(X, EncodedBatch):
            return X
        if is_stream_detector(detector):
            return detector.encode_many(X)
        return to_frame_or_array(X)

    def learn_judged(self, X: Any, judged: Judged) -> None:
        """Learn a batch whose scores were judged before any of it was learned.

        Every score enters the calibrator's reference window, flagged or not (a window that
        drops its own top alpha shrinks at every turnover until it flags far more than alpha);
        the detector learns the records that were not flagged, or all of them when
        ``protect_anomaly_detector`` is off. No record may change the detector before the
        last one is learned (see :meth:`process_many`).
        """
        self.calibrator_.learn_many(judged.scores)
        keep = ~judged.alerts if self.protect_anomaly_detector else np.ones(len(judged), bool)
        if keep.any():
            self._learn_rows(X if isinstance(X, EncodedBatch) else to_frame_or_array(X), keep)

    def _learn_rows(self, X: Any, keep: np.ndarray) -> None:
        detector = self.anomaly_detector
        if not is_stream_detector(detector):
            for x, kept in zip(_records(X), keep, strict=True):
                if kept:
                    detector.learn_one(x)
            return
        if keep.all():
            detector.learn_many(X)
        elif isinstance(X, EncodedBatch):
            detector.learn_many(X.select(keep))
        else:
            detector.learn_many(select_rows(X, keep))

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Detector and calibrator state (``torch.load(weights_only=True)``-safe)."""
        detector = self.anomaly_detector
        if not is_stream_detector(detector):
            raise TypeError(
                f"{type(detector).__name__} has no safe state: only streammem detectors can be "
                "saved in an AlertFilter"
            )
        return {
            "class": type(self).__name__,
            "detector": detector.state_dict(),
            "calibrator": self.calibrator_.state_dict(),
            "calibrator_given": self.calibrator is not None,
            "protect_anomaly_detector": self.protect_anomaly_detector,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> AlertFilter:
        """Rebuild a filter from :meth:`state_dict`: same detector, window and settings."""
        calibrator = from_state(state["calibrator"])
        alerts = cls(
            from_state(state["detector"]),
            calibrator if state.get("calibrator_given", True) else None,
            bool(state["protect_anomaly_detector"]),
        )
        if alerts.calibrator is None:
            alerts._default_calibrator = calibrator
        return alerts


def _probabilities(p_value: float) -> dict[bool, float]:
    """River's class probabilities of a p-value: small p, likely an anomaly."""
    return {False: p_value, True: 1.0 - p_value}


def _index(X: Any) -> pd.Index | None:
    """A batch's row labels, where it has them (a DataFrame's)."""
    return X.index if isinstance(X, pd.DataFrame) else None


def _rows(X: Any, start: int, stop: int) -> Any:
    """Rows ``[start, stop)`` of a batch as :meth:`AlertFilter.encode_many` gives it."""
    if isinstance(X, EncodedBatch):
        raw = X.raw[start:stop] if X.raw is not None else None
        return EncodedBatch(raw, _rows(X.source, start, stop), X.learnable)
    if isinstance(X, pd.DataFrame):
        return X.iloc[start:stop]
    return X[start:stop]


def _records(X: Any) -> list[Mapping[Any, Any]]:
    if isinstance(X, pd.DataFrame):
        return X.to_dict("records")
    if isinstance(X, np.ndarray):
        return [dict(enumerate(row)) for row in X.reshape(len(X), -1).tolist()]
    return list(X)
