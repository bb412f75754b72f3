"""A generated multivariate sensor stream with injected anomalies, for the bundled demo.

Every machine has sensors driven by two shared slow signals (a daily-like cycle and a drifting
load), so normal readings are strongly correlated. Anomalies break that structure in two ways:
a *spike* (one sensor jumps several standard deviations) and a *decoupling* (one sensor reads a
plausible value that no longer follows the others, invisible to any per-sensor threshold).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from connectors import RecordBatch

__all__ = ["SensorStream"]


class SensorStream:
    """Iterate record batches of a synthetic sensor stream; ``is_anomaly`` marks injections.

    Parameters
    ----------
    n_events
        Number of readings.
    n_sensors
        Numeric sensors per reading (``s0`` ... ``s{n-1}``); one categorical ``machine`` field.
    anomaly_rate
        Fraction of readings that are injected anomalies.
    batch_size
        Readings per batch.
    seed
        Seed of the generator: the same seed gives the same stream.

    Examples
    --------
    >>> stream = SensorStream(n_events=1000, anomaly_rate=0.02, batch_size=400, seed=1)
    >>> batches = list(stream)
    >>> [len(b.records) for b in batches]
    [400, 400, 200]
    >>> sorted(batches[0].records[0])
    ['machine', 's0', 's1', 's2', 's3', 's4', 's5']
    >>> sum(o["is_anomaly"] for b in batches for o in b.origins)
    20

    """

    machines = ("press-a", "press-b", "lathe")

    def __init__(
        self,
        n_events: int = 20_000,
        n_sensors: int = 6,
        anomaly_rate: float = 0.01,
        batch_size: int = 512,
        seed: int = 0,
    ) -> None:
        self.n_events = n_events
        self.n_sensors = n_sensors
        self.anomaly_rate = anomaly_rate
        self.batch_size = batch_size
        self.seed = seed

    def __len__(self) -> int:
        return self.n_events

    def __iter__(self) -> Iterator[RecordBatch]:
        readings, machine, is_anomaly = self._generate()
        names = [f"s{j}" for j in range(self.n_sensors)]
        for start in range(0, self.n_events, self.batch_size):
            stop = min(start + self.batch_size, self.n_events)
            records = [
                {
                    "machine": self.machines[machine[i]],
                    **dict(zip(names, readings[i].tolist(), strict=True)),
                }
                for i in range(start, stop)
            ]
            origins = [
                {"file": "<demo>", "row": i, "is_anomaly": bool(is_anomaly[i])}
                for i in range(start, stop)
            ]
            yield RecordBatch(records, origins)

    def _generate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        n, d = self.n_events, self.n_sensors
        t = np.arange(n)
        cycle = np.sin(2 * np.pi * t / 500.0)
        load = np.cumsum(rng.normal(0, 0.05, n))
        load = (load - load.mean()) / (load.std() + 1e-9)
        mixing = rng.normal(size=(2, d))
        machine = rng.integers(0, len(self.machines), n)
        offsets = rng.normal(0, 0.5, (len(self.machines), d))
        readings = np.column_stack([cycle, load]) @ mixing + offsets[machine]
        readings += rng.normal(0, 0.05, (n, d))
        is_anomaly = np.zeros(n, dtype=bool)
        n_anomalies = round(self.anomaly_rate * n)
        # Keep the first 10% clean: a detector needs some normal data before it can judge.
        rows = rng.choice(np.arange(n // 10, n), size=n_anomalies, replace=False)
        for k, row in enumerate(rows):
            sensor = rng.integers(d)
            if k % 2 == 0:
                readings[row, sensor] += rng.choice([-1, 1]) * rng.uniform(4, 8)
            else:
                readings[row, sensor] = rng.uniform(-1.5, 1.5) * readings[:, sensor].std()
            is_anomaly[row] = True
        return readings, machine, is_anomaly
