"""How long a retry waits: one policy for every retry of the service."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

__all__ = ["Backoff"]

# Longest single sleep of a wait, so a wait that is asked to stop returns within it.
_STEP_S = 0.1


def _never() -> bool:
    return False


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential waits between retries: ``initial``, ``initial * factor``, ... up to
    ``maximum`` seconds.

    Parameters
    ----------
    initial
        Seconds to wait after the first failure.
    maximum
        Longest wait, however many failures came before.
    factor
        How much longer each wait is than the one before.
    sleep
        Spends the waits (:func:`time.sleep`; tests pass one that only records them).

    Examples
    --------
    >>> waits = []
    >>> backoff = Backoff(initial=0.5, maximum=3.0, sleep=waits.append)
    >>> [backoff.delay(failures) for failures in range(1, 6)]
    [0.5, 1.0, 2.0, 3.0, 3.0]
    >>> backoff.wait(2)
    >>> waits
    [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]

    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    sleep: Callable[[float], object] = dataclasses.field(
        default=time.sleep, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.initial <= self.maximum or self.factor < 1.0:
            raise ValueError(f"need 0 <= initial <= maximum and factor >= 1, got {self}")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures in a row (1 for the first)."""
        delay = self.initial
        for _ in range(failures - 1):  # a loop, not a power: no overflow after many failures
            if delay == 0.0 or delay >= self.maximum or self.factor == 1.0:
                break
            delay *= self.factor
        return min(delay, self.maximum)

    def wait(self, failures: int, stopped: Callable[[], bool] = _never) -> None:
        """Sleep :meth:`delay` seconds, in steps of at most 0.1 s, returning early once
        ``stopped()`` is true (a service asked to stop does not wait out a long backoff)."""
        delay = self.delay(failures)
        steps = math.ceil(delay / _STEP_S)
        for _ in range(steps):
            if stopped():
                return
            self.sleep(delay / steps)
