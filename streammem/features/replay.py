"""A bounded window of the most recent rows: the replay memory of the learning schedule and
the sample behind the encoder's robust scaling."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["ReplayWindow"]


class ReplayWindow:
    """The last ``capacity`` records (raw vectors, float32) in a ring, sampled uniformly.

    Examples
    --------
    >>> window = ReplayWindow(capacity=3, width=2)
    >>> window.extend(np.arange(8.0).reshape(4, 2))
    >>> len(window), window.rows().tolist()
    (3, [[2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    """

    def __init__(self, capacity: int, width: int) -> None:
        self.capacity = capacity
        self._rows = np.zeros((capacity, width), dtype=np.float32)
        self._size = 0
        self._next = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, rows: np.ndarray) -> None:
        rows = rows[-self.capacity :]
        end = self._next + len(rows)
        if end <= self.capacity:
            self._rows[self._next : end] = rows
        else:
            split = self.capacity - self._next
            self._rows[self._next :] = rows[:split]
            self._rows[: end - self.capacity] = rows[split:]
        self._next = end % self.capacity
        self._size = min(self._size + len(rows), self.capacity)

    def rows(self) -> np.ndarray:
        """The records, oldest first."""
        if self._size < self.capacity:
            return self._rows[: self._size]
        return np.roll(self._rows, -self._next, axis=0)

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` distinct records (all of them, oldest first, if the window holds fewer)."""
        if size >= self._size:
            return self.rows()
        return self._rows[rng.choice(self._size, size, replace=False)]

    def state_dict(self) -> dict[str, Any]:
        """Capacity, rows and ring position (tensors and ints: ``torch.load(weights_only=True)``
        reads it).

        The rows are kept where they sit in the ring, not oldest first: :meth:`sample` draws
        by position, so a window reloaded in another order draws other mini-batches.
        """
        return {
            "capacity": self.capacity,
            "rows": torch.from_numpy(self._rows[: self._size].copy()),
            "next": self._next,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ReplayWindow:
        rows = np.asarray(state["rows"], dtype=np.float32)
        window = cls(int(state["capacity"]), rows.shape[1])
        if "next" not in state:  # older checkpoints held the rows oldest first
            window.extend(rows)
            return window
        window._rows[: len(rows)] = rows
        window._size, window._next = len(rows), int(state["next"])
        return window
