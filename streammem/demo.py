"""A generated multivariate sensor stream with injected anomalies, for the bundled demo.

Every machine has sensors driven by two shared slow signals (a daily-like cycle and a drifting
load), so normal readings are strongly correlated. Anomalies come in four kinds, named in each
reading's ``fault`` origin field:

* ``spike`` — one sensor jumps several standard deviations, for one reading;
* ``decoupling`` — one sensor reads a plausible value that no longer follows the others, for
  one reading (invisible to any per-sensor threshold);
* ``stuck`` — one sensor of one machine repeats its last value for ``fault_length`` readings
  of that machine: every reading is plausible, only the history shows it;
* ``noise`` — one sensor of one machine gets noisy (its noise grows from 0.2 to half the
  sensor's spread) for as long.

Readings of the three machines are interleaved in one stream, so a window per machine
(``features.window.key: machine``) is what sees the last two kinds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from connectors import RecordBatch

__all__ = ["FAULT_KINDS", "SensorStream"]

#: The kinds of injected anomaly, as the ``fault`` origin field names them ("" for none).
FAULT_KINDS = ("spike", "decoupling", "stuck", "noise")


class SensorStream:
    """Iterate record batches of a synthetic sensor stream; ``is_anomaly`` marks injections.

    Parameters
    ----------
    n_events
        Number of readings.
    n_sensors
        Numeric sensors per reading (``s0`` ... ``s{n-1}``); one categorical ``machine`` field.
    anomaly_rate
        Fraction of readings that are single-reading anomalies (spikes and decouplings).
    batch_size
        Readings per batch.
    seed
        Seed of the generator: the same seed gives the same stream.
    n_faults
        Stuck-sensor and noise-burst faults (alternately), spread over the stream after its
        first tenth.
    fault_length
        Readings of its machine that a fault lasts.

    Examples
    --------
    >>> stream = SensorStream(n_events=1000, anomaly_rate=0.02, batch_size=400, seed=1,
    ...                       n_faults=2, fault_length=30)
    >>> batches = list(stream)
    >>> [len(b.records) for b in batches]
    [400, 400, 200]
    >>> sorted(batches[0].records[0])
    ['machine', 's0', 's1', 's2', 's3', 's4', 's5']
    >>> frame = stream.frame()
    >>> frame.groupby("fault").size().to_dict()
    {'': 920, 'decoupling': 10, 'noise': 30, 'spike': 10, 'stuck': 30}
    >>> int(frame["is_anomaly"].sum())
    80
    """

    machines = ("press-a", "press-b", "lathe")
    period = 4000.0  # events per cycle of the shared signal
    noise = 0.2  # each sensor's own noise (the shared signals have unit scale)

    def __init__(
        self,
        n_events: int = 20_000,
        n_sensors: int = 6,
        anomaly_rate: float = 0.0,
        batch_size: int = 512,
        seed: int = 0,
        n_faults: int = 8,
        fault_length: int = 80,
    ) -> None:
        self.n_events = n_events
        self.n_sensors = n_sensors
        self.anomaly_rate = anomaly_rate
        self.batch_size = batch_size
        self.seed = seed
        self.n_faults = n_faults
        self.fault_length = fault_length

    def __len__(self) -> int:
        return self.n_events

    def __iter__(self) -> Iterator[RecordBatch]:
        frame = self.frame()
        records = frame.drop(columns=["is_anomaly", "fault"]).to_dict("records")
        flags, kinds = frame["is_anomaly"].tolist(), frame["fault"].tolist()
        for start in range(0, self.n_events, self.batch_size):
            stop = min(start + self.batch_size, self.n_events)
            origins = [
                {"file": "<demo>", "row": i, "is_anomaly": flags[i], "fault": kinds[i]}
                for i in range(start, stop)
            ]
            yield RecordBatch(records[start:stop], origins)

    @staticmethod
    def origin_fields() -> list[pa.Field]:
        """The Arrow fields of each reading's origin (``file``, ``row``, ``is_anomaly``,
        ``fault``), as the Parquet sink writes them."""
        return [
            pa.field("file", pa.string()),
            pa.field("row", pa.int64()),
            pa.field("is_anomaly", pa.bool_()),
            pa.field("fault", pa.string()),
        ]

    def frame(self) -> pd.DataFrame:
        """The whole stream as one DataFrame: ``machine``, the sensors, ``is_anomaly`` and
        ``fault`` (the kind of injected anomaly, "" for none), in time order."""
        readings, machine, fault = self._generate()
        frame = pd.DataFrame(readings, columns=[f"s{j}" for j in range(self.n_sensors)])
        frame.insert(0, "machine", np.asarray(self.machines, dtype=object)[machine])
        frame["is_anomaly"] = fault != ""
        frame["fault"] = fault
        return frame

    def _generate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        n, d = self.n_events, self.n_sensors
        t = np.arange(n)
        cycle = np.sin(2 * np.pi * t / self.period)
        load = np.cumsum(rng.normal(0, 0.05, n))
        load = (load - load.mean()) / (load.std() + 1e-9)
        mixing = rng.normal(size=(2, d))
        machine = rng.integers(0, len(self.machines), n)
        offsets = rng.normal(0, 0.5, (len(self.machines), d))
        readings = np.column_stack([cycle, load]) @ mixing + offsets[machine]
        readings += rng.normal(0, self.noise, (n, d))
        fault = np.full(n, "", dtype=object)
        self._inject_faults(rng, readings, machine, fault)
        self._inject_points(rng, readings, fault)
        return readings, machine, fault

    def _inject_faults(
        self, rng: np.random.Generator, readings: np.ndarray, machine: np.ndarray, fault: np.ndarray
    ) -> None:
        """Stuck sensors and noise bursts, one per slice of the stream after its first tenth."""
        n = self.n_events
        spread = readings.std(axis=0)
        bounds = np.linspace(n // 10, n, self.n_faults + 1).astype(int)
        for k, (low, high) in enumerate(itertools.pairwise(bounds)):
            start = int(rng.integers(low, max(low + 1, (low + high) // 2)))
            m, sensor = int(rng.integers(len(self.machines))), int(rng.integers(self.n_sensors))
            rows = np.flatnonzero(machine == m)
            before, during = rows[rows < start], rows[rows >= start][: self.fault_length]
            if k % 2 == 0 and len(before):
                readings[during, sensor] = readings[before[-1], sensor]
                fault[during] = "stuck"
            else:
                readings[during, sensor] += rng.normal(0, spread[sensor] / 2, len(during))
                fault[during] = "noise"

    def _inject_points(self, rng: np.random.Generator, readings: np.ndarray, fault: np.ndarray):
        """Spikes and decouplings on single readings, never inside a fault and never in the
        first tenth (a detector needs some normal data before it can judge)."""
        n, d = readings.shape
        free = np.flatnonzero(fault == "")
        free = free[free >= n // 10]
        rows = rng.choice(free, size=min(round(self.anomaly_rate * n), len(free)), replace=False)
        for k, row in enumerate(rows):
            sensor = rng.integers(d)
            if k % 2 == 0:
                readings[row, sensor] += rng.choice([-1, 1]) * rng.uniform(4, 8)
                fault[row] = "spike"
            else:
                readings[row, sensor] = rng.uniform(-1.5, 1.5) * readings[:, sensor].std()
                fault[row] = "decoupling"
