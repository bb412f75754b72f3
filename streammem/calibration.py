"""Turn raw anomaly scores into p-values and alerts.

A reconstruction error of 0.37 means nothing on its own: its meaning depends on the model, the
features and how far training has come. Both calibrators here compare each new score with a
rolling *reference window* of recent scores, so the output is on a fixed
scale whatever the detector:

* :class:`ConformalCalibrator` gives conformal p-values, ``p = (1 + #{r >= s}) / (1 + n)``, and
  alerts when ``p < alpha``.
* :class:`QuantileThreshold` alerts when a score exceeds a rolling quantile of the window; it
  reports the same empirical p-value so outputs stay comparable.

What enters the window is the caller's choice. The service feeds it every score, flagged or
not: a window that drops its own top ``alpha`` cuts its tail at every turnover until it flags far
more than ``alpha`` (measured: ~6% at alpha = 0.01). A burst of attacks can then raise the
threshold for a while; the model itself still does not learn the records it flags.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

import numpy as np

__all__ = ["Calibrator", "ConformalCalibrator", "QuantileThreshold", "calibrator_from_state"]


class Calibrator:
    """Base class: a rolling window of reference scores and the empirical p-values it implies.

    Parameters
    ----------
    window_size
        How many recent scores form the reference distribution.
    min_reference
        Below this many reference scores, every p-value is 1 and nothing is flagged: a handful
        of scores cannot support a small p-value.

    """

    def __init__(self, window_size: int = 1000, min_reference: int = 100) -> None:
        self.window_size = window_size
        self.min_reference = min_reference

    @property
    def reference_(self) -> collections.deque[float]:
        """The reference window, created (after checking the parameters) on first use."""
        window = self.__dict__.get("_reference")
        if window is None:
            self.check_params()
            window = self._reference = collections.deque(maxlen=self.window_size)
        return window

    def check_params(self) -> None:
        if self.window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {self.window_size}")
        if not 1 <= self.min_reference <= self.window_size:
            raise ValueError(
                f"min_reference must be in [1, window_size={self.window_size}], "
                f"got {self.min_reference}"
            )

    @property
    def is_warm(self) -> bool:
        """Whether the reference window holds enough scores to flag anything."""
        return len(self.reference_) >= self.min_reference

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

    def alerts(self, scores: np.ndarray, p_values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def threshold(self) -> float:
        """The score above which a record is currently flagged (inf while warming up)."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Parameters and window as plain types, loadable with ``torch.load(weights_only=True)``."""
        return {
            "kind": type(self).__name__,
            "params": self._params(),
            "reference": list(self.reference_),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the reference window saved by :meth:`state_dict` (parameters must match)."""
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"state is for {state.get('kind')!r}, not {type(self).__name__!r}")
        self.check_params()
        self._reference = collections.deque(state["reference"], maxlen=self.window_size)

    def _params(self) -> dict:
        return {"window_size": self.window_size, "min_reference": self.min_reference}


class ConformalCalibrator(Calibrator):
    """Conformal p-values against recent scores; alert when ``p < alpha``.

    Parameters
    ----------
    alpha
        Significance level: on exchangeable normal data, about ``alpha`` of records are flagged.
    window_size
        How many recent scores form the reference distribution.
    min_reference
        Nothing is flagged until the window holds this many scores. Must be at least
        ``1 / alpha - 1`` for any alert to be possible at all.

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

    """

    def __init__(self, alpha: float = 0.01, window_size: int = 1000, min_reference: int = 100):
        super().__init__(window_size=window_size, min_reference=min_reference)
        self.alpha = alpha

    def check_params(self) -> None:
        super().check_params()
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")

    def alerts(self, scores: np.ndarray, p_values: np.ndarray) -> np.ndarray:
        return np.asarray(p_values) < self.alpha

    def threshold(self) -> float:
        if not self.is_warm:
            return float("inf")
        # A score is flagged when fewer than `needed` reference scores are >= it.
        reference = np.sort(np.fromiter(self.reference_, dtype=np.float64))
        needed = int(np.ceil(self.alpha * (len(reference) + 1) - 1 - 1e-9))
        if needed <= 0:
            return float("inf")
        if needed > len(reference):
            return float("-inf")
        return float(reference[len(reference) - needed])

    def _params(self) -> dict:
        return {**super()._params(), "alpha": self.alpha}


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

    def __init__(self, q: float = 0.99, window_size: int = 1000, min_reference: int = 100):
        super().__init__(window_size=window_size, min_reference=min_reference)
        self.q = q

    def check_params(self) -> None:
        super().check_params()
        if not 0.0 < self.q < 1.0:
            raise ValueError(f"q must be in (0, 1), got {self.q}")

    def alerts(self, scores: np.ndarray, p_values: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float64) > self.threshold()

    def threshold(self) -> float:
        if not self.is_warm:
            return float("inf")
        return float(np.quantile(np.fromiter(self.reference_, dtype=np.float64), self.q))

    def _params(self) -> dict:
        return {**super()._params(), "q": self.q}


_KINDS: dict[str, type[Calibrator]] = {
    "ConformalCalibrator": ConformalCalibrator,
    "QuantileThreshold": QuantileThreshold,
}


def calibrator_from_state(state: dict) -> Calibrator:
    """Rebuild a calibrator saved with :meth:`Calibrator.state_dict`.

    Examples
    --------
    >>> calibrator = ConformalCalibrator(alpha=0.1, window_size=10, min_reference=5)
    >>> calibrator.learn_many([1.0, 2.0, 3.0])
    >>> restored = calibrator_from_state(calibrator.state_dict())
    >>> list(restored.reference_), restored.alpha
    ([1.0, 2.0, 3.0], 0.1)

    """
    kind = state.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown calibrator kind {kind!r}; expected one of {sorted(_KINDS)}")
    calibrator = _KINDS[kind](**state["params"])
    calibrator.load_state_dict(state)
    return calibrator
