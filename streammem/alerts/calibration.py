"""Turn raw anomaly scores into p-values and alerts.

A score of 0.37 means nothing on its own: its meaning depends on the model, the
features and how far training has come. The calibrators here compare each new score with a
rolling *reference window* of recent scores, so the output is on a fixed
scale whatever the detector:

* :class:`ConformalCalibrator` gives conformal p-values, ``p = (1 + #{r >= s}) / (1 + n)``, and
  alerts when ``p < alpha``.
* :class:`QuantileThreshold` alerts when a score exceeds a rolling quantile of the window; it
  reports the same empirical p-value so outputs stay comparable.
* :class:`TailLikelihood` fits the window's peaks with a generalised Pareto tail (SPOT's
  peaks-over-threshold) and gives an anomaly likelihood ``1 - p`` in [0, 1] whose resolution
  in the tail is not bounded by ``1 / (n + 1)``: one threshold works across series.

What enters the window is the caller's choice. The service feeds it every score, flagged or
not: a window that drops its own top ``alpha`` cuts its tail at every turnover until it flags far
more than ``alpha`` (measured: ~6% at alpha = 0.01). A burst of attacks can then raise the
threshold for a while; the model itself still does not learn the records it flags.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from river import base as river_base

from streammem.checks import check_integer, check_number
from streammem.persistence import CheckpointError, stateful
from streammem.reprs import describe

_BLOCK = 256  # scores judged together: bounds the (block x window) comparison matrix

__all__ = [
    "Calibrator",
    "ConformalCalibrator",
    "Judged",
    "QuantileThreshold",
    "TailLikelihood",
]


@dataclasses.dataclass
class Judged:
    """Scores of a run of records with their p-values, alert flags and the limit each was
    judged against (the score above which it would have alerted; inf while warming up).

    ``top_fields`` holds each record's largest contributions to its score, ``[(field,
    contribution), ...]`` largest first (see :class:`~streammem.explain.TopFields`): filled
    for the alerts by :meth:`~streammem.AlertFilter.process_many`, ``[]`` for records not
    explained.
    """

    scores: np.ndarray
    p_values: np.ndarray
    alerts: np.ndarray
    limits: np.ndarray
    top_fields: list[list[tuple[Hashable, float]]] | None = None

    def __post_init__(self) -> None:
        if self.top_fields is None:
            self.top_fields = [[] for _ in range(len(self.scores))]

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, rows: slice) -> Judged:
        return Judged(
            self.scores[rows],
            self.p_values[rows],
            self.alerts[rows],
            self.limits[rows],
            self.top_fields[rows],
        )

    @classmethod
    def concat(cls, parts: Sequence[Judged]) -> Judged:
        """One judgement of consecutive runs."""
        if not parts:
            empty = np.zeros(0)
            return cls(empty, empty, np.zeros(0, dtype=bool), empty)
        arrays = ("scores", "p_values", "alerts", "limits")
        return cls(
            *(np.concatenate([getattr(part, name) for part in parts]) for name in arrays),
            [ranked for part in parts for ranked in part.top_fields],
        )


class Calibrator(river_base.Base):
    """Base class: a rolling window of reference scores and the empirical p-values it implies.

    A River estimator: its parameters are its ``__init__`` arguments, read from the signature
    (``_get_params``, ``clone``), so a new one is declared once; ``learn_one`` and
    ``p_value_one`` are the one-score forms of ``learn_many`` and ``p_values``.

    Parameters
    ----------
    window_size
        How many recent scores form the reference distribution; ``None``: ``3 / tail``
        scores (300 at a 1 % tail), so the limit rests on about three scores above it while
        the window stays short enough to follow a drifting score.
    min_reference
        Below this many reference scores, every p-value is 1 and nothing is flagged: a handful
        of scores cannot support a small p-value. ``None``: ``1 / tail`` (the fewest that can
        give a p-value below the tail), at most ``window_size``.

    """

    def __init__(self, window_size: int | None = None, min_reference: int | None = None) -> None:
        self.window_size = window_size
        self.min_reference = min_reference

    @property
    def tail(self) -> float:
        """The share of normal scores that should be flagged (alpha, or 1 - q)."""
        raise NotImplementedError

    @property
    def window_size_(self) -> int:
        if self.window_size is not None:
            return self.window_size
        return math.ceil(3 / self.tail - 1e-9)

    @property
    def min_reference_(self) -> int:
        if self.min_reference is not None:
            return self.min_reference
        return min(math.ceil(1 / self.tail - 1e-9), self.window_size_)

    @property
    def reference_(self) -> collections.deque[float]:
        """The reference window, created (after checking the parameters) on first use."""
        window = self.__dict__.get("_reference")
        if window is None:
            self.check_params()
            window = self._reference = collections.deque(maxlen=self.window_size_)
        return window

    def check_params(self) -> None:
        """Raise ``ValueError`` naming the parameter if a setting is not allowed."""
        check_integer("window_size", self.window_size, 1, optional=True)
        check_integer("min_reference", self.min_reference, 1, optional=True)
        if self.min_reference_ > self.window_size_:
            raise ValueError(
                f"min_reference must be <= window_size ({self.window_size_}), "
                f"got {self.min_reference_}"
            )

    @property
    def is_warm(self) -> bool:
        """Whether the reference window holds enough scores to flag anything."""
        return len(self.reference_) >= self.min_reference_

    def learn_one(self, score: float) -> None:
        """Add one score to the reference window (a non-finite one is skipped)."""
        self.learn_many([score])

    def p_value_one(self, score: float) -> float:
        """The p-value of one score against the reference window (pure)."""
        return float(self.p_values(np.array([score], dtype=np.float64))[0])

    def learn_many(self, scores: Iterable[float]) -> None:
        """Add scores to the reference window (non-finite ones are skipped)."""
        scores = np.asarray(scores, dtype=np.float64)
        self.reference_.extend(scores[np.isfinite(scores)].tolist())

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        """Conformal p-values of ``scores`` against the reference window; never changes state."""
        scores = np.asarray(scores, dtype=np.float64)
        if not self.is_warm:
            return np.ones_like(scores)
        reference = np.sort(np.fromiter(self.reference_, dtype=np.float64))
        at_least = len(reference) - np.searchsorted(reference, scores, side="left")
        # NaN scores compare as larger than everything: give them the smallest p-value.
        at_least = np.where(np.isnan(scores), 0, at_least)
        return (1.0 + at_least) / (1.0 + len(reference))

    def judge_sequence(self, scores: np.ndarray) -> Judged:
        """p-values, alerts and alert limits of scores that arrive one after another (pure).

        Each score is judged against the window as it stands when that score arrives: the
        reference window, then the scores before it in ``scores`` (as :meth:`learn_many` would
        add them). Judging a stream in one call or one score at a time gives the same answer.
        """
        scores = np.asarray(scores, dtype=np.float64)
        sequence, start, stop = self._sequence(scores)
        at_least = _counts_at_least(scores, sequence, start, stop)
        n_reference = stop - start
        warm = n_reference >= self.min_reference_
        p_values = np.where(warm, (1.0 + at_least) / (1.0 + n_reference), 1.0)
        limits = self._limits(sequence, start, stop, warm)
        alerts = self._sequential_alerts(scores, p_values, limits) & warm
        return Judged(scores, p_values, alerts, limits)

    def judge(self, scores: np.ndarray) -> Judged:
        """p-values, alerts and the limit of scores against the window as it stands (pure)."""
        scores = np.asarray(scores, dtype=np.float64)
        p_values = self.p_values(scores)
        alerts = np.asarray(self.alerts(scores, p_values), dtype=bool)
        return Judged(scores, p_values, alerts, np.full(len(scores), self.threshold()))

    def _sequential_alerts(
        self, scores: np.ndarray, p_values: np.ndarray, limits: np.ndarray
    ) -> np.ndarray:
        """Alert flags of a sequence: by default a score above the limit it was judged by."""
        return scores > limits

    def _limit_at(self, ordered: np.ndarray) -> float:
        """The limit of one window, given sorted."""
        raise NotImplementedError

    def _limits(
        self, sequence: np.ndarray, start: np.ndarray, stop: np.ndarray, warm: np.ndarray
    ) -> np.ndarray:
        """Each score's limit under its own window (inf while warming up): full windows a
        block at a time."""
        limits = np.full(len(start), np.inf)
        full = np.flatnonzero(warm & (stop - start == self.window_size_))
        if len(full):
            views = sliding_window_view(sequence, self.window_size_)
            for first in range(0, len(full), _BLOCK):
                rows = full[first : first + _BLOCK]
                limits[rows] = self._limits_of_full(views[start[rows]])
        for i in np.flatnonzero(warm & (stop - start != self.window_size_)):
            limits[i] = self._limit_at(np.sort(sequence[start[i] : stop[i]]))
        return limits

    def _limits_of_full(self, windows: np.ndarray) -> np.ndarray:
        return np.array([self._limit_at(np.sort(row)) for row in windows])

    def _sequence(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The reference then the finite ``scores``, and for each score the slice
        ``[start, stop)`` of that sequence which is its window."""
        reference = np.fromiter(self.reference_, dtype=np.float64)
        finite = np.isfinite(scores)
        sequence = np.concatenate([reference, scores[finite]])
        stop = len(reference) + np.cumsum(finite) - finite
        start = np.maximum(stop - self.window_size_, 0)
        return sequence, start, stop

    def alerts(self, scores: np.ndarray, p_values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def threshold(self) -> float:
        """The score above which a record is currently flagged (inf while warming up)."""
        if not self.is_warm:
            return math.inf
        return self._limit_at(np.sort(np.fromiter(self.reference_, dtype=np.float64)))

    def state_dict(self) -> dict:
        """Parameters and window as plain types, loadable with ``torch.load(weights_only=True)``."""
        return {
            "class": type(self).__name__,
            "params": self._get_params(),
            "reference": list(self.reference_),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Calibrator:
        """Rebuild a calibrator of this class from :meth:`state_dict`."""
        kind = state.get("class", state.get("kind"))  # "kind": older checkpoints
        if kind != cls.__name__:
            raise CheckpointError(f"the state is of {kind!r}, not {cls.__name__!r}")
        calibrator = cls(**state["params"])
        calibrator.check_params()
        calibrator._reference = collections.deque(
            state["reference"], maxlen=calibrator.window_size_
        )
        return calibrator

    def __repr__(self) -> str:
        tail = self._tail_name
        notes = {
            "window_size": f"3 / {tail} = {self.window_size_}",
            "min_reference": f"1 / {tail} = {self.min_reference_}",
        }
        return describe(self, notes)

    _tail_name = "tail"  # how the docs write the tail share (alpha, 1 - q)


@stateful
class ConformalCalibrator(Calibrator):
    """Conformal p-values against recent scores; alert when ``p < alpha``.

    Parameters
    ----------
    alpha
        Significance level: on exchangeable normal data, about ``alpha`` of records are flagged.
    window_size
        How many recent scores form the reference distribution; ``None``: ``3 / alpha``.
        Settings with which no score could ever alert (``window_size < 1 / alpha``) are
        refused.
    min_reference
        Nothing is flagged until the window holds this many scores; ``None``: ``1 / alpha``.

    Examples
    --------
    >>> import numpy as np
    >>> calibrator = ConformalCalibrator(alpha=0.05, window_size=100, min_reference=20)
    >>> calibrator.learn_many(np.linspace(0.0, 1.0, 99))
    >>> p = calibrator.p_values(np.array([0.5, 2.0]))
    >>> p.round(2).tolist()
    [0.5, 0.01]
    >>> calibrator.alerts(np.array([0.5, 2.0]), p).tolist()
    [False, True]
    >>> ConformalCalibrator(alpha=0.001, window_size=500).check_params()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: alpha=0.001 can never alert with window_size=500: ...

    """

    def __init__(
        self,
        alpha: float = 0.01,
        window_size: int | None = None,
        min_reference: int | None = None,
    ) -> None:
        super().__init__(window_size=window_size, min_reference=min_reference)
        self.alpha = alpha

    @property
    def tail(self) -> float:
        return self.alpha

    def check_params(self) -> None:
        check_number("alpha", self.alpha, 0.0, 1.0, low_open=True, high_open=True)
        super().check_params()
        # The smallest p-value against n reference scores is 1 / (n + 1).
        if 1.0 / (self.window_size_ + 1) >= self.alpha:
            raise ValueError(
                f"alpha={self.alpha} can never alert with window_size={self.window_size_}: the "
                f"smallest p-value is 1/(window_size + 1); use window_size >= "
                f"{math.ceil(1 / self.alpha - 1e-9)} or leave it None"
            )

    def alerts(self, scores: np.ndarray, p_values: np.ndarray) -> np.ndarray:
        return np.asarray(p_values) < self.alpha

    def _sequential_alerts(
        self, scores: np.ndarray, p_values: np.ndarray, limits: np.ndarray
    ) -> np.ndarray:
        return self.alerts(scores, p_values)  # by p-value, which also flags a NaN score

    def _needed(self, n: int) -> int:
        """A score is flagged when fewer than this many of ``n`` reference scores are >= it."""
        return math.ceil(self.alpha * (n + 1) - 1 - 1e-9)

    def _limit_at(self, ordered: np.ndarray) -> float:
        needed = self._needed(len(ordered))
        if needed <= 0:
            return math.inf
        if needed > len(ordered):
            return -math.inf
        return float(ordered[len(ordered) - needed])

    def _limits_of_full(self, windows: np.ndarray) -> np.ndarray:
        width = windows.shape[1]
        needed = self._needed(width)
        if not 0 < needed <= width:
            return np.full(len(windows), math.inf if needed <= 0 else -math.inf)
        kth = width - needed
        return np.partition(windows, kth, axis=1)[:, kth]

    _tail_name = "alpha"


@stateful
class QuantileThreshold(Calibrator):
    """Alert when a score exceeds the rolling ``q`` quantile of recent scores.

    Parameters
    ----------
    q
        Quantile of the reference window used as the threshold.
    window_size
        How many recent scores form the reference distribution.
    min_reference
        Nothing is flagged until the window holds this many scores.

    Examples
    --------
    >>> import numpy as np
    >>> calibrator = QuantileThreshold(q=0.9, window_size=100, min_reference=10)
    >>> calibrator.learn_many(np.arange(100.0))
    >>> round(calibrator.threshold(), 1)
    89.1
    >>> scores = np.array([50.0, 95.0])
    >>> calibrator.alerts(scores, calibrator.p_values(scores)).tolist()
    [False, True]

    """

    def __init__(
        self, q: float = 0.99, window_size: int | None = None, min_reference: int | None = None
    ) -> None:
        super().__init__(window_size=window_size, min_reference=min_reference)
        self.q = q

    @property
    def tail(self) -> float:
        return 1.0 - self.q

    def check_params(self) -> None:
        check_number("q", self.q, 0.0, 1.0, low_open=True, high_open=True)
        super().check_params()

    def alerts(self, scores: np.ndarray, p_values: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float64) > self.threshold()

    def _limit_at(self, ordered: np.ndarray) -> float:
        return float(np.quantile(ordered, self.q))

    def _limits_of_full(self, windows: np.ndarray) -> np.ndarray:
        return np.quantile(windows, self.q, axis=1)

    _tail_name = "(1 - q)"


@stateful
class TailLikelihood(Calibrator):
    """An anomaly likelihood in [0, 1] from a peaks-over-threshold fit of recent scores.

    The reference window's top ``tail_share`` of scores (its *peaks*) are fitted with a
    generalised Pareto distribution, as SPOT does (Siffer et al., KDD 2017: "Anomaly detection
    in streams with extreme value theory"), by probability-weighted moments (Hosking & Wallis,
    1987: closed form, no iterations), its shape kept in [0, 0.5] so that the tail never ends
    (an upper end point would give every score beyond it the same likelihood). A score's
    p-value is the tail's probability of a score at least as high,
    ``p = (k / n) (1 + shape (s - u) / scale) ** (-1 / shape)`` above the threshold ``u`` of
    the ``k`` peaks, and the conformal p-value ``(1 + #{r >= s}) / (1 + n)`` below it. The
    **likelihood** is ``1 - p``: monotone in the score, and fine in the tail, where a
    conformal p-value cannot go below ``1 / (n + 1)``, so one threshold means the same on
    every series; a score is flagged when ``p < alpha``.

    Parameters
    ----------
    alpha
        Flag a score whose tail probability is below this (likelihood above ``1 - alpha``).
    window_size
        How many recent scores the tail is fitted to; ``None``: 2,000.
    min_reference
        Nothing is flagged (the likelihood is 0) until the window holds this many scores;
        ``None``: 200 (20 peaks at the default ``tail_share``).
    tail_share
        The share of the window's scores that are peaks.

    Examples
    --------
    >>> import numpy as np
    >>> calibrator = TailLikelihood(alpha=1e-4)
    >>> calibrator.learn_many(np.random.default_rng(0).exponential(size=2000))
    >>> calibrator.likelihoods(np.array([0.5, 4.0, 9.0, 12.0])).round(6).tolist()
    [0.390805, 0.978382, 0.99977, 0.999985]
    >>> calibrator.alerts(np.array([9.0, 12.0]), calibrator.p_values(np.array([9.0, 12.0])))
    array([False,  True])
    """

    def __init__(
        self,
        alpha: float = 1e-3,
        window_size: int | None = None,
        min_reference: int | None = None,
        tail_share: float = 0.1,
    ) -> None:
        super().__init__(window_size=window_size, min_reference=min_reference)
        self.alpha = alpha
        self.tail_share = tail_share

    @property
    def tail(self) -> float:
        return self.alpha

    @property
    def window_size_(self) -> int:
        return self.window_size if self.window_size is not None else 2000

    @property
    def min_reference_(self) -> int:
        if self.min_reference is not None:
            return self.min_reference
        return min(200, self.window_size_)

    def check_params(self) -> None:
        check_number("alpha", self.alpha, 0.0, 1.0, low_open=True, high_open=True)
        check_number("tail_share", self.tail_share, 0.0, 0.5, low_open=True)
        super().check_params()
        if self.alpha >= self.tail_share:
            raise ValueError(
                f"alpha must be below tail_share ({self.tail_share}): the limit lies in the "
                f"fitted tail, got alpha={self.alpha}"
            )
        if self.tail_share * self.min_reference_ < 5:
            raise ValueError(
                f"tail_share * min_reference must be >= 5 (peaks to fit the tail to), got "
                f"{self.tail_share} * {self.min_reference_}"
            )

    def likelihoods(self, scores: np.ndarray) -> np.ndarray:
        """``1 - p`` of ``scores`` against the window as it stands (pure); 0 while warming up."""
        return 1.0 - self.p_values(scores)

    def alerts(self, scores: np.ndarray, p_values: np.ndarray) -> np.ndarray:
        return np.asarray(p_values) < self.alpha

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if not self.is_warm:
            return np.ones_like(scores)
        reference = np.fromiter(self.reference_, dtype=np.float64)
        return self._judge_block(scores, reference[None])[0]

    def judge_sequence(self, scores: np.ndarray) -> Judged:
        scores = np.asarray(scores, dtype=np.float64)
        sequence, start, stop = self._sequence(scores)
        n_reference = stop - start
        warm = n_reference >= self.min_reference_
        p_values, limits = np.ones(len(scores)), np.full(len(scores), np.inf)
        full = np.flatnonzero(warm & (n_reference == self.window_size_))
        if len(full):
            views = sliding_window_view(sequence, self.window_size_)
            for first in range(0, len(full), _BLOCK):
                rows = full[first : first + _BLOCK]
                p_values[rows], limits[rows] = self._judge_block(scores[rows], views[start[rows]])
        for i in np.flatnonzero(warm & (n_reference != self.window_size_)):
            window = sequence[start[i] : stop[i]][None]
            p_values[i], limits[i] = (
                part[0] for part in self._judge_block(scores[i : i + 1], window)
            )
        return Judged(scores, p_values, (p_values < self.alpha) & warm, limits)

    def _judge_block(self, scores: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, ...]:
        """p-values and limits of ``scores``, each against its row of ``windows`` (or all
        against a single row)."""
        n = windows.shape[1]
        at_least = (windows >= scores[:, None]).sum(axis=1)  # False for NaN
        conformal = (1.0 + at_least) / (1.0 + n)
        u, share, scale, shape = _fit_tail(windows, self.tail_share)
        p_values = np.where(scores > u, _tail_p(scores, u, share, scale, shape), conformal)
        p_values = np.where(np.isnan(scores), 0.0, p_values)  # NaN: the most unusual
        return p_values, np.broadcast_to(self._limit(u, share, scale, shape), scores.shape)

    def _limit(
        self, u: np.ndarray, share: np.ndarray, scale: np.ndarray, shape: np.ndarray
    ) -> np.ndarray:
        """The score whose tail probability is alpha (alpha < tail_share: in the tail)."""
        ratio = self.alpha / share
        with np.errstate(divide="ignore", invalid="ignore"):
            pareto = u + scale / np.where(shape > 0, shape, 1.0) * (ratio ** (-shape) - 1.0)
        return np.where(shape > 0, pareto, u - scale * np.log(ratio))

    def _limit_at(self, ordered: np.ndarray) -> float:
        return float(self._limit(*_fit_tail(ordered[None], self.tail_share))[0])


def _fit_tail(windows: np.ndarray, tail_share: float) -> tuple[np.ndarray, ...]:
    """Generalised Pareto fits of the peaks of windows ``(m, n)``: the threshold ``u`` (the
    highest score that is not a peak), the peaks' share ``k / n``, scale and shape, by
    probability-weighted moments (shape clipped to [0, 0.5])."""
    n = windows.shape[1]
    k = max(1, min(n - 1, math.ceil(tail_share * n - 1e-9)))
    top = np.partition(windows, n - k - 1, axis=1)[:, n - k - 1 :]
    top.sort(axis=1)
    u = top[:, 0]
    excess = top[:, 1:] - u[:, None]  # ascending, >= 0
    plotting = (np.arange(1, k + 1) - 0.35) / k
    a0 = excess.mean(axis=1)
    a1 = (excess * (1.0 - plotting)).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = a0 - 2.0 * a1
        shape = np.where(denominator > 0, 2.0 - a0 / denominator, 0.0)
    shape = np.clip(np.nan_to_num(shape), 0.0, 0.5)
    scale = a0 * (1.0 - shape)  # the mean excess of a Pareto tail is scale / (1 - shape)
    # peaks that all equal u: a score above them is beyond everything seen, at a tiny scale
    scale = np.maximum(scale, 1e-9 * np.maximum(np.abs(u), 1.0))
    return u, np.full(len(u), k / n), scale, shape


def _tail_p(
    scores: np.ndarray, u: np.ndarray, share: np.ndarray, scale: np.ndarray, shape: np.ndarray
) -> np.ndarray:
    """The fitted tail's probability of a score at least as high as each score above ``u``."""
    z = np.maximum(scores - u, 0.0) / scale
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pareto = share * np.exp(-np.log1p(shape * z) / np.where(shape > 0, shape, 1.0))
    return np.where(shape > 0, pareto, share * np.exp(-z))


def _counts_at_least(
    scores: np.ndarray, sequence: np.ndarray, start: np.ndarray, stop: np.ndarray
) -> np.ndarray:
    """For each score, how many values of ``sequence[start:stop]`` are >= it."""
    at_least = np.zeros(len(scores), dtype=np.int64)
    for first in range(0, len(scores), _BLOCK):
        block = slice(first, first + _BLOCK)
        low, high = int(start[block].min(initial=0)), int(stop[block].max(initial=0))
        # Count with prefix sums over the block's span: row i's count is C[stop] - C[start].
        ge = sequence[None, low:high] >= scores[block, None]  # False for NaN: p is smallest
        prefix = np.zeros((ge.shape[0], ge.shape[1] + 1), dtype=np.int64)
        np.cumsum(ge, axis=1, out=prefix[:, 1:])
        rows = np.arange(ge.shape[0])
        at_least[block] = prefix[rows, stop[block] - low] - prefix[rows, start[block] - low]
    return at_least
