"""The learning schedule: how a detector spends its compute on a stream.

A stream is seen once, so a detector that takes one gradient step per batch of records barely
trains (measured: on 35 real data sets the networks then score no better than no model at all).
A :class:`Schedule` instead keeps a **replay window** of recent records and, as records arrive,
takes gradient steps on mini-batches drawn from that window. How many steps is set by how often
each record should take part in a step (its *visits*):

* ``budget`` visits per record once the model is mature (the one knob for compute);
* more while it is young: ``young_records / n`` visits for the n-th record (at most
  ``young_boost``) while that is more than ``budget``, so the first records are revisited many
  times and a short stream trains its model whatever the budget, while a long one settles at
  ``budget``;
* and on smaller mini-batches while it is young (``batch_size * n / young_records`` records,
  at least 16): many small steps early, when the data is scarce and the model far off, few
  large ones later, when a step's fixed cost dominates (a small model's step costs about the
  same on 16 records as on 256);
* training starts once ``min_records`` records have arrived; before that, and until the first
  step, a detector's reconstruction is the centre of the data (its decoder starts at zero).

The defaults were chosen on :mod:`bench.generators`' correlated-sensor streams (time-ordered,
with regimes that come back) and the 35 ADBench dev sets: a replay window of 16,384 records (2,048
let the model forget a regime before it came back: worst field's R² 0.93 against 0.97), four
visits per record once mature (one: 0.89; eight: 0.98 at twice the cost), Adam at 3e-3, and no
trimming (trimming the worst-rebuilt quarter of a batch kept a model from learning new regions
of normal data: 0.92); see ``bench/results/sensors/ablations``.

Like River's ``optimizer=``, the knobs travel as one value, so a detector takes
``schedule=Schedule(budget=4)`` and a new knob is added here once.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Schedule"]

_SMALLEST_BATCH = 16


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How a streaming detector learns: replay window, step counts, batch size, step size.

    Parameters
    ----------
    budget
        Gradient visits per record in the steady state: each record takes part in about this
        many training mini-batches. Steady-state compute grows linearly with it; the young
        model's extra visits do not depend on it. 0 disables learning.
    batch_size
        Records per gradient step in the steady state (fewer while young, see above).
    learning_rate
        Adam's step size.
    replay_size
        Recent records kept for replay (the model's view of "now"; older ones drop out, so the
        model follows drift).
    young_records
        Scale of the young phase: the n-th record gets ``young_records / n`` visits while that
        is more than ``budget`` (and smaller batches until then). 1 turns every young-model
        rule off: fixed
        visits, full batches, records taken in whole batches (the classic "k steps per
        mini-batch" of a one-pass learner, with ``replay_size=batch_size``).
    young_boost
        Cap on that ratio (visits of the very first records).
    min_records
        Records to collect before the first gradient step.
    trim
        At most this fraction of each mini-batch, the records rebuilt worst and only if their
        error is an outlier in the batch (above Tukey's fence), is left out of the loss: likely
        anomalies are not learned as normal (0 learns everything). The price: a normal mode
        that starts far from the rest is learned more slowly.

    Examples
    --------
    >>> schedule = Schedule()
    >>> [round(schedule.visits(n), 2) for n in (1, 500, 1_024, 16_384, 100_000)]
    [32.0, 8.19, 4.0, 4.0, 4.0]
    >>> Schedule(budget=2).visits(100_000)
    2
    >>> Schedule(batch_size=1)
    Traceback (most recent call last):
    ...
    ValueError: schedule.batch_size must be an integer >= 2 (batch norm needs two records), got 1
    """

    budget: float = 4.0
    batch_size: int = 256
    learning_rate: float = 3e-3
    replay_size: int = 16384
    young_records: int = 4096
    young_boost: float = 32.0
    min_records: int = 16
    trim: float = 0.0

    def __post_init__(self) -> None:
        # A value object checks itself when made, so a bad setting fails where it is written.
        if isinstance(self.budget, bool) or not (
            isinstance(self.budget, (int, float)) and self.budget >= 0
        ):
            raise ValueError(f"schedule.budget must be a number >= 0, got {self.budget!r}")
        for name in ("batch_size", "min_records"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(
                    f"schedule.{name} must be an integer >= 2 (batch norm needs two records), "
                    f"got {value!r}"
                )
        if (
            isinstance(self.replay_size, bool)
            or not isinstance(self.replay_size, int)
            or self.replay_size < self.batch_size
        ):
            raise ValueError(
                f"schedule.replay_size must be >= batch_size ({self.batch_size}), "
                f"got {self.replay_size!r}"
            )
        for name in ("learning_rate", "young_records", "young_boost"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"schedule.{name} must be a number > 0, got {value!r}")
        if isinstance(self.trim, bool) or not 0.0 <= self.trim < 1.0:
            raise ValueError(f"schedule.trim must be in [0, 1), got {self.trim!r}")
        if self.young_boost < 1:
            raise ValueError(f"schedule.young_boost must be >= 1, got {self.young_boost!r}")

    def visits(self, n_seen: int) -> float:
        """Visits owed to the ``n_seen``-th record."""
        if self.budget == 0 or self.young_records <= 1:
            return self.budget
        return max(self.budget, min(self.young_records / max(n_seen, 1), self.young_boost))

    def step_batch(self, n_seen: int) -> int:
        """Records per gradient step after ``n_seen`` records."""
        young = round(self.batch_size * n_seen / self.young_records)
        return min(self.batch_size, max(young, _SMALLEST_BATCH, 2), self.replay_size)

    def chunk_size(self, n_seen: int) -> int:
        """Records taken in at once after ``n_seen``: one at a time at first, so that scaling
        and the first steps follow the earliest records closely, growing to ``batch_size``."""
        if self.young_records <= 1:
            return self.batch_size
        return min(self.batch_size, max(1, n_seen // 8))

    def steps_owed(self, n_before: int, n_new: int) -> float:
        """Gradient steps earned by ``n_new`` records arriving after ``n_before``."""
        if n_new <= 0:
            return 0.0
        middle = n_before + (n_new + 1) / 2
        batch = min(self.step_batch(n_before + n_new), max(n_before + n_new, 2))
        return n_new * self.visits(int(middle)) / batch
