"""Correlated sensor streams with a known answer for every fault.

:class:`CorrelatedSensors` is the class of data the learning issue is about: a few slow latent
processes drive many sensors through a mixing that depends on a categorical machine state, with
small observation noise, so normal readings lie near a low-rank, regime-dependent manifold that a
linear model per state describes exactly. Faults go on one known sensor each, of five kinds:

* ``spike`` — one reading jumps ``spike_size`` standard deviations of the sensor;
* ``break`` (correlation break) — one reading takes a value that is ordinary for the sensor on its
  own (within 1.5 standard deviations of its mean in that state) but at least one standard
  deviation from what the latent processes say: only the other sensors can show that it is wrong;
* ``stuck`` — the sensor repeats its last value for ``fault_length`` readings;
* ``level`` — the sensor reads ``level_size`` standard deviations off for as long;
* ``noise`` — the sensor gets Gaussian noise of half its standard deviation for as long.

Every fault is recorded in :attr:`CorrelatedSensors.faults` (kind, sensor, first and last row), and
each reading's ``fault`` / ``fault_field`` columns name it, so a benchmark can check both
detection and explanation. Faults start after the first ``clean_fraction`` of the stream.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import pandas as pd

__all__ = ["FAULT_KINDS", "CorrelatedSensors", "Fault"]

#: Kinds of injected fault, as the ``fault`` column names them ("" for a normal reading).
FAULT_KINDS = ("spike", "break", "stuck", "level", "noise")
POINT_KINDS = ("spike", "break")
STATES = ("idle", "run", "boost")


@dataclasses.dataclass(frozen=True)
class Fault:
    """One injected fault: its kind, the sensor it is on, and its rows (``first`` to ``last``,
    inclusive)."""

    kind: str
    field: str
    first: int
    last: int


@dataclasses.dataclass(frozen=True)
class CorrelatedSensors:
    """A stream of ``n_sensors`` readings driven by ``n_latent`` slow processes.

    Parameters
    ----------
    n_events
        Readings in the stream.
    n_sensors
        Numeric sensors, ``s00`` ... (one categorical ``state`` field besides).
    n_latent
        Slow latent processes (AR(1), unit variance, correlation time ``latent_memory`` readings).
    noise
        Each sensor's observation noise, as a fraction of the latent signal's scale.
    state_dwell
        Mean readings between two switches of the machine state (a Markov chain over
        ``idle``, ``run``, ``boost``); each state mixes the latents with its own matrix.
    point_rate
        Fraction of readings that are point faults (spikes and correlation breaks, half each).
    n_faults
        Faults that last ``fault_length`` readings (stuck, level, noise in turn).
    seed
        The same seed gives the same stream.

    Examples
    --------
    >>> stream = CorrelatedSensors(n_events=2000, seed=1, n_faults=3)
    >>> frame = stream.frame
    >>> list(frame.columns[:3]), frame.shape
    (['state', 's00', 's01'], (2000, 15))
    >>> sorted({f.kind for f in stream.faults})
    ['break', 'level', 'noise', 'spike', 'stuck']
    >>> int(frame["is_anomaly"].sum()) == sum(f.last - f.first + 1 for f in stream.faults)
    True
    """

    n_events: int = 60_000
    n_sensors: int = 12
    n_latent: int = 3
    noise: float = 0.05
    latent_memory: float = 500.0
    state_dwell: float = 3_000.0
    point_rate: float = 0.01
    n_faults: int = 24
    fault_length: int = 50
    spike_size: float = 5.0
    level_size: float = 2.0
    clean_fraction: float = 0.1
    seed: int = 0

    @property
    def fields(self) -> list[str]:
        """The sensors' names."""
        return [f"s{j:02d}" for j in range(self.n_sensors)]

    @cached_property
    def _generated(self) -> tuple[pd.DataFrame, tuple[Fault, ...], np.ndarray]:
        rng = np.random.default_rng(self.seed)
        latent = self._latent(rng)
        state = self._states(rng)
        base = rng.normal(size=(self.n_latent, self.n_sensors))
        mixing = base + 0.7 * rng.normal(size=(len(STATES), self.n_latent, self.n_sensors))
        offsets = rng.normal(0, 1.0, (len(STATES), self.n_sensors))
        clean = np.einsum("nk,nkd->nd", latent, mixing[state]) + offsets[state]
        clean += rng.normal(0, self.noise, clean.shape) * np.sqrt(self.n_latent)
        readings = clean.copy()
        fault = np.full(self.n_events, "", dtype=object)
        field = np.full(self.n_events, "", dtype=object)
        faults = self._segments(rng, readings, fault, field)
        faults += self._points(rng, readings, clean, state, fault, field)
        frame = pd.DataFrame(readings, columns=self.fields)
        frame.insert(0, "state", np.asarray(STATES, dtype=object)[state])
        frame["is_anomaly"] = fault != ""
        frame["fault"] = fault
        frame["fault_field"] = field
        return frame, tuple(sorted(faults, key=lambda f: f.first)), clean

    @property
    def frame(self) -> pd.DataFrame:
        """The stream in time order: ``state``, the sensors, ``is_anomaly``, ``fault`` (the
        kind, "" for none) and ``fault_field`` (the faulty sensor)."""
        return self._generated[0].copy()

    @property
    def faults(self) -> tuple[Fault, ...]:
        """Every injected fault, in time order."""
        return self._generated[1]

    @property
    def clean(self) -> np.ndarray:
        """The sensors' readings without the faults (what a perfect model would expect)."""
        return self._generated[2].copy()

    def records(self) -> pd.DataFrame:
        """What a detector reads: ``state`` and the sensors (no label, no fault columns)."""
        return self.frame[["state", *self.fields]]

    # ------------------------------------------------------------------ generation
    def _latent(self, rng: np.random.Generator) -> np.ndarray:
        phi = float(np.exp(-1.0 / self.latent_memory))
        shocks = rng.normal(0, np.sqrt(1 - phi**2), (self.n_events, self.n_latent))
        latent = np.empty_like(shocks)
        latent[0] = rng.normal(size=self.n_latent)
        for t in range(1, self.n_events):
            latent[t] = phi * latent[t - 1] + shocks[t]
        return latent

    def _states(self, rng: np.random.Generator) -> np.ndarray:
        switches = rng.random(self.n_events) < 1.0 / self.state_dwell
        steps = rng.integers(1, len(STATES), self.n_events) * switches
        return np.cumsum(steps) % len(STATES)

    def _segments(
        self, rng: np.random.Generator, readings: np.ndarray, fault: np.ndarray, field: np.ndarray
    ) -> list[Fault]:
        """Stuck, level and noise faults, one per slice of the stream after its clean part."""
        n, length = self.n_events, self.fault_length
        spread = readings.std(axis=0)
        bounds = np.linspace(int(n * self.clean_fraction), n - length, self.n_faults + 1)
        kinds = ("stuck", "level", "noise")
        out = []
        for k in range(self.n_faults):
            low = int(bounds[k])
            start = int(rng.integers(low, max(low + 1, int(bounds[k + 1]) - length)))
            rows = slice(start, start + length)
            sensor = int(rng.integers(self.n_sensors))
            kind = kinds[k % len(kinds)]
            if kind == "stuck":
                readings[rows, sensor] = readings[start - 1, sensor]
            elif kind == "level":
                readings[rows, sensor] += rng.choice([-1, 1]) * self.level_size * spread[sensor]
            else:
                readings[rows, sensor] += rng.normal(0, spread[sensor] / 2, length)
            fault[rows], field[rows] = kind, self.fields[sensor]
            out.append(Fault(kind, self.fields[sensor], start, start + length - 1))
        return out

    def _points(
        self,
        rng: np.random.Generator,
        readings: np.ndarray,
        clean: np.ndarray,
        state: np.ndarray,
        fault: np.ndarray,
        field: np.ndarray,
    ) -> list[Fault]:
        """Spikes and correlation breaks on single readings outside every other fault."""
        n = self.n_events
        free = np.flatnonzero(fault == "")
        free = free[free >= int(n * self.clean_fraction)]
        rows = rng.choice(free, size=min(round(self.point_rate * n), len(free)), replace=False)
        spread = clean.std(axis=0)
        out = []
        for k, row in enumerate(sorted(rows)):
            sensor = int(rng.integers(self.n_sensors))
            kind = POINT_KINDS[k % 2]
            if kind == "spike":
                readings[row, sensor] += rng.choice([-1, 1]) * self.spike_size * spread[sensor]
            else:
                readings[row, sensor] = self._break_value(rng, clean, state, row, sensor)
            fault[row], field[row] = kind, self.fields[sensor]
            out.append(Fault(kind, self.fields[sensor], int(row), int(row)))
        return out

    @staticmethod
    def _break_value(
        rng: np.random.Generator, clean: np.ndarray, state: np.ndarray, row: int, sensor: int
    ) -> float:
        """A value ordinary for the sensor in its state, at least one of its standard
        deviations (in that state) away from the true reading."""
        in_state = clean[state == state[row], sensor]
        mean, std = in_state.mean(), in_state.std()
        true = clean[row, sensor]
        for _ in range(100):
            value = mean + rng.uniform(-1.5, 1.5) * std
            if abs(value - true) >= std:
                return float(value)
        return float(mean - np.sign(true - mean) * std)  # the true value is far out: mirror it
