"""TimeWindow: each reading with its recent history, per key, as one vector.

A stuck sensor, a noise burst or a slow leak rarely shows in one reading; it shows in the last
few. :class:`TimeWindow` turns a time-ordered stream of readings into window vectors: for every
reading, features of the last ``size`` readings of its **key** (a machine, a sensor group), the
reading itself the newest of them. It composes like any River transformer; in front of an alert
filter, ``TimeWindow(...) | streammem.AlertFilter(streammem.MemAE())`` is a
:class:`WindowedFilter`, which protects the model but never the window: a flagged reading is not
learned by the detector, yet it enters its key's window (the window is the sensor's recent
history, faults included). The service runs the same two steps (``features.window`` in the YAML
config).

The rules
---------
* **Order.** Readings are taken in arrival order; they are assumed time-ordered. A reading whose
  time is older than its key's newest one is still appended (nothing is re-sorted).
* **The first ``size - 1`` readings of a key** have shorter windows: the summaries are over the
  readings the key has so far (one reading: its mean is itself, its std and slope are 0), and
  ``values`` repeats the oldest reading in the slots not yet filled.
* **Gaps.** With ``time_field`` and ``max_gap``, a reading that comes more than ``max_gap``
  after its key's previous one starts the key's window afresh (the rule above applies again),
  so readings from before an outage do not mix with those after it. Without ``time_field``
  only the order is known, and there are no gaps.
* **Bounded memory.** At most ``max_keys`` keys are kept: a new key beyond that evicts the one
  seen least recently (LRU). With ``ttl``, a key not seen for ``ttl`` (seconds of event time, or
  learned records when there is no ``time_field``) is evicted as well. An evicted key that comes
  back starts afresh. :meth:`evictions` counts both (the service exports them as
  ``streammem_window_evictions_total``).
* **Pure transforms.** ``transform_one`` / ``transform_many`` change nothing: in a batch, each
  reading's window holds the readings before it in the batch, as if each had been learned
  after being transformed. ``learn_one`` / ``learn_many`` append the readings. River's pipelines
  call ``learn_one(x)`` and then ``transform_one(x)`` with the same record: that call returns the
  window ``x`` closed when it was learned (likewise for ``learn_many`` / ``transform_many``).

Bad readings raise ``ValueError`` naming the field (a missing or non-numeric value in a windowed
field, a missing key or time) and do not enter any window.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view
from river import base as river_base

from streammem.alerts.filter import Judged
from streammem.checks import check_integer, is_real
from streammem.explain import TopFields, fold_frame
from streammem.features.encoder import is_missing, parse_number, schema_example
from streammem.persistence import from_state, stateful
from streammem.reprs import describe

__all__ = ["EVICTION_REASONS", "FEATURES", "TimeWindow", "WindowedFilter"]

#: Window features: the readings themselves (``values``, oldest first), the newest reading
#: (``last``), and summaries over the window.
FEATURES = ("values", "last", "mean", "std", "slope", "last_minus_mean")

#: Why a key's window was dropped: too many keys (least recently seen first), or idle too long.
EVICTION_REASONS = ("lru", "ttl")


@dataclasses.dataclass
class _History:
    """A key's last readings (oldest first), its newest reading's time and when it was seen."""

    rows: np.ndarray
    time: float | None
    tick: float


@dataclasses.dataclass
class _Readings:
    """A batch read for windowing: one key, time and vector of windowed values per reading."""

    keys: list[Hashable]
    times: np.ndarray | None
    values: np.ndarray


@stateful
class TimeWindow(river_base.MiniBatchTransformer):
    """Features of each key's last ``size`` readings, one vector per reading.

    Parameters
    ----------
    size
        Readings per window, the newest included.
    features
        Any of :data:`FEATURES`: ``values`` (the ``size`` readings of each field, columns
        ``<field>_lag<k>``, k = 0 the newest), ``last`` (the reading, under its own name),
        ``mean``, ``std``, ``slope`` (least squares, per reading) and ``last_minus_mean``
        (columns ``<field>_<feature>``).
    key
        Field holding the key whose readings form a window (a string or an integer); ``None``:
        one window for the whole stream.
    fields
        The numeric fields to window; ``None``: the fields most records of the first batch
        learned (or given to :meth:`fit_fields`) hold as numbers, except ``key`` and
        ``time_field``. Every other field passes through unchanged, except ``time_field``,
        which is dropped.
    time_field
        Field holding each reading's time (seconds, or a date pandas can read); needed for
        ``max_gap`` and to measure ``ttl`` in seconds.
    max_gap
        Seconds of silence after which a key's window starts afresh.
    max_keys
        Keys kept at most; the least recently seen is evicted first.
    ttl
        Evict a key not seen for this long: seconds of event time with ``time_field``, else
        learned records.

    Examples
    --------
    >>> window = TimeWindow(size=3, features=("mean", "std"), key="machine")
    >>> for t in (1.0, 2.0, 3.0, 4.0):
    ...     window.learn_one({"machine": "a", "temp": t})
    >>> window.transform_one({"machine": "a", "temp": 8.0})  # doctest: +ELLIPSIS
    {'temp_mean': 5.0, 'temp_std': 2.160..., 'machine': 'a'}
    >>> window.transform_one({"machine": "b", "temp": 8.0})  # a new key: a window of one
    {'temp_mean': 8.0, 'temp_std': 0.0, 'machine': 'b'}

    In front of a detector, with alerts:

    >>> import streammem
    >>> model = TimeWindow(size=30) | streammem.AlertFilter(streammem.MemAE())
    """

    def __init__(
        self,
        size: int = 60,
        features: Sequence[str] = ("mean", "std", "slope", "last_minus_mean"),
        key: str | None = None,
        fields: Sequence[str] | None = None,
        time_field: str | None = None,
        max_gap: float | None = None,
        max_keys: int = 10_000,
        ttl: float | None = None,
    ) -> None:
        self.size = size
        self.features = tuple(features)
        self.key = key
        self.fields = fields
        self.time_field = time_field
        self.max_gap = max_gap
        self.max_keys = max_keys
        self.ttl = ttl

    # ------------------------------------------------------------------ parameters, state
    def __repr__(self) -> str:
        notes = {
            "key": "one window for the whole stream",
            "fields": "the numeric fields of the first batch learned",
            "time_field": "arrival order only",
            "max_gap": "no gaps",
            "ttl": "keys are evicted by max_keys only",
        }
        return describe(self, notes)

    def check_params(self) -> None:
        """Raise ``ValueError`` naming the parameter (``window.<name> ...``) if one is wrong."""
        check_integer("window.size", self.size, 1)
        check_integer("window.max_keys", self.max_keys, 1)
        unknown = [f for f in self.features if f not in FEATURES]
        if not self.features or unknown or len(set(self.features)) != len(self.features):
            raise ValueError(
                f"window.features must be distinct names among {list(FEATURES)}, got "
                f"{list(self.features)}"
            )
        for name in ("max_gap", "ttl"):
            value = getattr(self, name)
            if value is not None and not (is_real(value) and value > 0):
                raise ValueError(f"window.{name} must be a number > 0 or null, got {value!r}")
        if self.max_gap is not None and self.time_field is None:
            raise ValueError("window.max_gap needs a time_field: gaps are measured in time")
        if self.fields is not None:
            clash = [f for f in self.fields if f in (self.key, self.time_field)]
            if not self.fields or clash:
                raise ValueError(
                    f"window.fields must name at least one field, and not the key or time "
                    f"field, got {list(self.fields)}"
                )

    @property
    def _histories(self) -> collections.OrderedDict[Hashable, _History]:
        """Each key's history, least recently seen first; created on first use."""
        histories = self.__dict__.get("histories_")
        if histories is None:
            self.check_params()
            histories = self.histories_ = collections.OrderedDict()
            self.clock_: float | None = None
            self.evicted_ = dict.fromkeys(EVICTION_REASONS, 0)
            self.gaps_ = 0
        return histories

    @property
    def n_keys(self) -> int:
        """Keys whose windows are held now."""
        return len(self._histories)

    def evictions(self) -> dict[str, int]:
        """Keys evicted so far, by reason (``lru``, ``ttl``)."""
        self._histories  # noqa: B018 - creates the counters
        return dict(self.evicted_)

    @property
    def gaps(self) -> int:
        """Windows started afresh after a gap longer than ``max_gap``."""
        self._histories  # noqa: B018 - creates the counters
        return self.gaps_

    def columns(self, fields: Sequence[Hashable]) -> list[str]:
        """Names of the window columns for ``fields``, in output order."""
        names = []
        for feature in self.features:
            for field in fields:
                if feature == "values":
                    names += [f"{field}_lag{lag}" for lag in range(self.size - 1, -1, -1)]
                elif feature == "last":
                    names.append(str(field))
                else:
                    names.append(f"{field}_{feature}")
        return names

    def column_fields(self, X: Any) -> dict[Hashable, Hashable]:
        """The reading field each window column of batch ``X`` summarises, ``{column: field}``
        (the windowed fields as :meth:`transform_many` picks them; pure).

        Examples
        --------
        >>> window = TimeWindow(size=3, features=("mean", "std"), key="machine")
        >>> window.column_fields([{"machine": "a", "temp": 1.0}])
        {'temp_mean': 'temp', 'temp_std': 'temp'}
        """
        return {column: field for field in self._fields(X) for column in self.columns([field])}

    # ------------------------------------------------------------------ River API
    def __or__(self, other: Any) -> Any:
        """``window | anomaly_filter`` is a :class:`WindowedFilter`; anything else a River
        pipeline."""
        if isinstance(other, river_base.AnomalyFilter):
            return WindowedFilter(self, other)
        return super().__or__(other)

    def learn_one(self, x: Mapping[Any, Any]) -> None:
        fields = self._fields([x])
        readings = self._read_records([x], fields)
        output = self._windows(readings)
        self._learn(readings, fields)
        self._last_learned = (x, output)

    def transform_one(self, x: Mapping[Any, Any]) -> dict[Hashable, Any]:
        fields = self._fields([x])
        last = self.__dict__.get("_last_learned")
        if last is not None and last[0] is x:
            output = last[1]
        else:
            output = self._windows(self._read_records([x], fields))
        return {**dict(zip(self.columns(fields), output[0].tolist(), strict=True)), **self._rest(x)}

    def learn_many(self, X: pd.DataFrame | Sequence[Mapping[Any, Any]]) -> None:
        """Append a batch of readings (a DataFrame or a list of records), in order."""
        if len(X) == 0:
            return
        fields = self._fields(X)
        readings = self._read(X, fields)
        output = self._windows(readings)
        self._learn(readings, fields)
        self._last_learned = (X, output)

    def transform_many(self, X: pd.DataFrame | Sequence[Mapping[Any, Any]]) -> Any:
        """Windows of a batch (pure): a DataFrame (same index) for a DataFrame, a list of
        records for a list of records. Other columns pass through, the time field is dropped."""
        if len(X) == 0 and self.fields is None and "fields_" not in self.__dict__:
            return X.copy() if isinstance(X, pd.DataFrame) else []
        fields = self._fields(X)
        last = self.__dict__.get("_last_learned")
        if last is not None and last[0] is X:
            output = last[1]
        else:
            output = self._windows(self._read(X, fields))
        columns = self.columns(fields)
        if isinstance(X, pd.DataFrame):
            rest = X.drop(columns=[*fields, *self._dropped()], errors="ignore")
            frame = pd.DataFrame(output, columns=columns, index=X.index)
            return pd.concat([frame, rest], axis=1) if len(rest.columns) else frame
        return [
            {**dict(zip(columns, row, strict=True)), **self._rest(x)}
            for row, x in zip(output.tolist(), X, strict=True)
        ]

    def fit_fields(self, X: pd.DataFrame | Sequence[Mapping[Any, Any]]) -> list[Hashable]:
        """Fix the windowed fields from a batch, unless declared or fixed already; returns them.

        ``ValueError`` if the batch holds no numeric field to window.
        """
        fields = self._fields(X)
        if self.fields is None:
            self.fields_ = fields
        return fields

    def check_one(self, x: Any) -> None:
        """Raise ``ValueError`` naming the field if ``x`` cannot be windowed; changes nothing."""
        if not isinstance(x, Mapping):
            raise ValueError(f"a record must be a dict, got {type(x).__name__}")
        self._read_records([x], self._fields([x]))

    # ------------------------------------------------------------------ reading input
    def _dropped(self) -> list[Hashable]:
        return [self.time_field] if self.time_field is not None else []

    def _rest(self, x: Mapping[Any, Any]) -> dict[Hashable, Any]:
        skip = {*self._fields([x]), *self._dropped()}
        return {k: v for k, v in x.items() if k not in skip}

    def _fields(self, X: Any) -> list[Hashable]:
        """The windowed fields: declared, fixed by the first learned batch, else inferred."""
        self._histories  # noqa: B018 - checks the parameters on first use
        if self.fields is not None:
            return list(self.fields)
        fixed = self.__dict__.get("fields_")
        if fixed is not None:
            return fixed
        if isinstance(X, pd.DataFrame):
            example = schema_example(X) if len(X) else {}
        else:
            example = schema_example([x for x in X if isinstance(x, Mapping)])
        fields = [
            k for k, v in example.items() if v == 0.0 and k not in (self.key, self.time_field)
        ]
        if not fields:
            raise ValueError(f"window: no numeric field to window among {list(example)}")
        return fields

    def _read(self, X: Any, fields: list[Hashable]) -> _Readings:
        if isinstance(X, pd.DataFrame):
            return self._read_frame(X, fields)
        if isinstance(X, Sequence) and not isinstance(X, (str, bytes)):
            return self._read_records(X, fields)
        raise TypeError(f"expected a DataFrame or a list of records, got {type(X).__name__}")

    def _read_records(self, records: Sequence[Any], fields: list[Hashable]) -> _Readings:
        values = np.empty((len(records), len(fields)))
        keys, times = [], []
        for i, x in enumerate(records):
            if not isinstance(x, Mapping):
                raise ValueError(f"a record must be a dict, got {type(x).__name__}")
            for j, field in enumerate(fields):
                values[i, j] = _reading(field, x.get(field))
            keys.append(self._key_of(x))
            if self.time_field is not None:
                times.append(_time(self.time_field, x.get(self.time_field)))
        return _Readings(keys, np.array(times) if self.time_field is not None else None, values)

    def _key_of(self, x: Mapping[Any, Any]) -> Hashable:
        if self.key is None:
            return None
        value = x.get(self.key)
        if isinstance(value, np.generic):
            value = value.item()
        if value is None:
            raise ValueError(f"field {self.key!r}: the window's key is missing")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(
                f"field {self.key!r}: the window's key must be a string or an integer, got "
                f"{type(value).__name__} {value!r}"
            )
        return value

    def _read_frame(self, frame: pd.DataFrame, fields: list[Hashable]) -> _Readings:
        absent = [f for f in [*fields, self.key, self.time_field] if f is not None]
        absent = [f for f in absent if f not in frame.columns]
        if absent:
            raise ValueError(f"missing field(s) {absent}")
        values = np.column_stack([_column(f, frame[f]) for f in fields]) if len(frame) else None
        if values is None:
            values = np.empty((0, len(fields)))
        if self.key is None:
            keys: list[Hashable] = [None] * len(frame)
        else:
            keys = [self._key_of({self.key: v}) for v in frame[self.key].tolist()]
        times = None if self.time_field is None else _times(self.time_field, frame[self.time_field])
        return _Readings(keys, times, values)

    # ------------------------------------------------------------------ windows
    def _windows(self, readings: _Readings) -> np.ndarray:
        """The window vector of every reading (pure)."""
        out = np.empty((len(readings.keys), self._width(readings.values.shape[1])))
        for key, rows in _groups(readings.keys).items():
            history = self._histories.get(key)
            stack, starts, _ = self._segments(history, readings, rows)
            ends = np.arange(len(stack) - len(rows), len(stack))
            out[rows] = self._describe_rows(stack, starts, ends)
        return out

    def _width(self, d: int) -> int:
        """Columns that :meth:`_describe_rows` gives for ``d`` fields."""
        return len(self.columns(range(d)))

    def _segments(
        self, history: _History | None, readings: _Readings, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The key's history followed by its new readings, where each new reading's window
        may start (after the last gap before it), and how many gaps there are."""
        kept = history.rows if history is not None else np.empty((0, readings.values.shape[1]))
        stack = np.vstack([kept, readings.values[rows]])
        if self.max_gap is None:
            return stack, np.zeros(len(rows), dtype=np.int64), 0
        times = readings.times[rows]
        previous = np.concatenate([[history.time if history else np.nan], times[:-1]])
        gap = times - previous > self.max_gap  # NaN (no history) compares False
        positions = np.arange(len(kept), len(stack))
        starts = np.maximum.accumulate(np.where(gap, positions, 0))
        return stack, starts, int(gap.sum())

    def _describe_rows(self, stack: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        size = self.size
        lengths = ends - starts + 1
        full = lengths >= size
        d = stack.shape[1]
        out = np.empty((len(ends), self._width(d)))
        if full.any():
            views = sliding_window_view(stack, size, axis=0)  # (n - size + 1, d, size)
            windows = views[ends[full] - size + 1].transpose(0, 2, 1)
            out[full] = _describe(windows, size, self.features)
        for i in np.flatnonzero(~full):
            out[i] = _describe(stack[None, starts[i] : ends[i] + 1], size, self.features)[0]
        return out

    def _learn(self, readings: _Readings, fields: list[Hashable]) -> None:
        histories = self._histories
        if self.fields is None:
            self.fields_ = list(fields)
        clock = self.clock_
        for key, rows in _groups(readings.keys).items():
            history = histories.get(key)
            stack, starts, gaps = self._segments(history, readings, rows)
            self.gaps_ += gaps
            begin = max(int(starts[-1]), len(stack) - self.size + 1)
            time = float(readings.times[rows[-1]]) if readings.times is not None else None
            tick = time if time is not None else (clock or 0.0) + float(rows[-1] + 1)
            histories[key] = _History(stack[begin:].copy(), time, tick)
            histories.move_to_end(key)
        if readings.times is not None and len(readings.times):
            latest = float(readings.times.max())
            self.clock_ = latest if clock is None else max(clock, latest)
        elif readings.times is None:
            self.clock_ = (clock or 0.0) + len(readings.keys)
        self._evict()

    def _evict(self) -> None:
        histories = self._histories
        if self.ttl is not None and self.clock_ is not None:
            while histories and self.clock_ - next(iter(histories.values())).tick > self.ttl:
                histories.popitem(last=False)
                self.evicted_["ttl"] += 1
        while len(histories) > self.max_keys:
            histories.popitem(last=False)
            self.evicted_["lru"] += 1

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Parameters, fields and every key's history as tensors and plain values
        (``torch.load(weights_only=True)``-safe)."""
        histories = self._histories
        fields = self.__dict__.get("fields_")
        width = len(fields if fields is not None else self.fields or ())
        rows = [h.rows for h in histories.values()]
        return {
            "class": type(self).__name__,
            "params": self.params(),
            "fields": list(fields) if fields is not None else None,
            "clock": self.clock_,
            "keys": list(histories),
            "counts": [len(r) for r in rows],
            "times": [h.time for h in histories.values()],
            "ticks": [h.tick for h in histories.values()],
            "rows": torch.from_numpy(np.vstack(rows) if rows else np.empty((0, width))),
            "evicted": dict(self.evicted_),
            "gaps": self.gaps_,
        }

    def params(self) -> dict[str, Any]:
        """The parameters as plain values (what a checkpoint holds)."""
        params = self._get_params()
        params["features"] = list(self.features)
        params["fields"] = list(self.fields) if self.fields is not None else None
        return params

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TimeWindow:
        """Rebuild a window saved with :meth:`state_dict`; ``ValueError`` if it does not fit.

        Examples
        --------
        >>> window = TimeWindow(size=2, features=("last_minus_mean",), key="m")
        >>> window.learn_one({"m": "a", "t": 1.0})
        >>> restored = TimeWindow.from_state(window.state_dict())
        >>> restored.transform_one({"m": "a", "t": 3.0})
        {'t_last_minus_mean': 1.0, 'm': 'a'}
        """
        if not isinstance(state, Mapping) or not isinstance(state.get("params"), Mapping):
            raise ValueError("a window state needs its 'params' mapping")
        window = cls(**state["params"])
        window.check_params()
        rows = np.asarray(state["rows"], dtype=np.float64)
        counts = [int(c) for c in state["counts"]]
        keys, times, ticks = state["keys"], state["times"], state["ticks"]
        if sum(counts) != len(rows) or not len(keys) == len(counts) == len(times) == len(ticks):
            raise ValueError("the window state's keys, counts, times and rows disagree")
        bounds = np.cumsum([0, *counts])
        histories = window._histories
        for key, time, tick, lo, hi in zip(
            keys, times, ticks, bounds[:-1], bounds[1:], strict=True
        ):
            histories[key] = _History(rows[lo:hi].copy(), time, float(tick))
        if state["fields"] is not None:
            window.fields_ = list(state["fields"])
        window.clock_ = state["clock"]
        window.evicted_ = {reason: int(state["evicted"][reason]) for reason in EVICTION_REASONS}
        window.gaps_ = int(state["gaps"])
        return window

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_last_learned"}


@stateful
class WindowedFilter(river_base.AnomalyFilter, river_base.Classifier):
    """A time window in front of an anomaly filter: ``TimeWindow(...) | AlertFilter(...)``.

    Every reading becomes its window vector, which the filter scores, judges and (unless it
    flags it) learns; the window takes in every reading, flagged or not. Unlike River's own
    pipelines it has ``classify``, so it works in ``evaluate.progressive_val_score``, and the
    batch methods of :class:`~streammem.AlertFilter`.

    Parameters
    ----------
    window
        Turns readings into window vectors.
    anomaly_filter
        Scores and judges the windows and protects its detector
        (:class:`~streammem.AlertFilter` for the batch methods).

    Examples
    --------
    >>> import pandas as pd
    >>> import streammem
    >>> model = streammem.TimeWindow(size=3, key="m") | streammem.AlertFilter(streammem.MemAE())
    >>> batch = pd.DataFrame({"m": ["a", "b", "a", "b"], "x": [1.0, 5.0, 2.0, 6.0]})
    >>> judged = model.process_many(batch)
    >>> judged.alerts.tolist()  # nothing is flagged while the calibrator warms up
    [False, False, False, False]
    >>> model.window.transform_one({"m": "a", "x": 3.0})["x_mean"]
    2.0
    """

    def __init__(self, window: TimeWindow, anomaly_filter: river_base.AnomalyFilter) -> None:
        self.window = window
        self.anomaly_filter = anomaly_filter

    def __repr__(self) -> str:
        return describe(self)

    @property
    def anomaly_detector(self) -> river_base.AnomalyDetector:
        return self.anomaly_filter.anomaly_detector

    @property
    def protect_anomaly_detector(self) -> bool:
        return self.anomaly_filter.protect_anomaly_detector

    @property
    def _wrapped_model(self) -> river_base.AnomalyFilter:
        return self.anomaly_filter

    def classify(self, score: float) -> bool:
        return self.anomaly_filter.classify(score)

    def score_one(self, x: Mapping[Any, Any]) -> float:
        return self.anomaly_filter.score_one(self.window.transform_one(x))

    def p_value_one(self, x: Mapping[Any, Any]) -> float:
        """The filter's p-value of ``x``'s window (pure)."""
        return self.anomaly_filter.p_value_one(self.window.transform_one(x))

    def predict_one(self, x: Mapping[Any, Any]) -> bool:
        """Whether ``x``'s window would raise an alert now (pure)."""
        return self.classify(self.score_one(x))

    def predict_proba_one(self, x: Mapping[Any, Any]) -> dict[bool, float]:
        """``{True: 1 - p, False: p}`` for the p-value of ``x``'s window (pure); see
        :class:`~streammem.AlertFilter`."""
        p_value = self.p_value_one(x)
        return {False: p_value, True: 1.0 - p_value}

    def learn_one(self, x: Mapping[Any, Any]) -> None:
        self.anomaly_filter.learn_one(self.window.transform_one(x))
        self.window.learn_one(x)

    def score_many(self, X: Any) -> np.ndarray:
        """Raw scores of a batch's windows (pure)."""
        return self.anomaly_filter.score_many(self.window.transform_many(X))

    def p_values_many(self, X: Any) -> np.ndarray:
        """p-values of a batch's windows (pure)."""
        return self.anomaly_filter.p_values_many(self.window.transform_many(X))

    def explain_one(self, x: Mapping[Any, Any]) -> dict[Hashable, float]:
        """Each reading field's contribution to ``score_one(x)`` (pure): its window features'
        contributions summed, fields passed through as they are; they add up to the score."""
        window = self.window.transform_one(x)
        parts = self.anomaly_filter.explain_one(window)
        folded = fold_frame(pd.DataFrame([parts]), self.window.column_fields([x]))
        return {field: float(value) for field, value in folded.iloc[0].items()}

    def explain_many(self, X: Any) -> pd.DataFrame:
        """Each reading field's contribution to each reading's score (pure), rows aligned with
        ``X``; see :meth:`explain_one`.

        Examples
        --------
        >>> import streammem
        >>> model = streammem.TimeWindow(size=3, key="m") | streammem.AlertFilter(streammem.MemAE())
        >>> batch = pd.DataFrame({"m": ["a", "b", "a", "b"], "x": [1.0, 5.0, 2.0, 6.0]})
        >>> judged = model.process_many(batch)
        >>> list(model.explain_many(batch).columns)  # x_mean, x_std, ... fold back into x
        ['x', 'm']
        """
        parts = self.anomaly_filter.explain_many(self.window.transform_many(X))
        return fold_frame(parts, self.window.column_fields(X))

    def process_many(self, X: Any, top_fields: int | TopFields = 3) -> Judged:
        """Score, judge and learn a batch of readings in time order; returns the judgement,
        each alert with its ``top_fields`` largest contributions by reading field (see
        :meth:`AlertFilter.process_many`)."""
        explain = top_fields if isinstance(top_fields, TopFields) else TopFields(top_fields)
        if len(X):  # an empty batch may come before the windowed fields are known
            explain = dataclasses.replace(explain, fold_into=self.window.column_fields(X))
        judged = self.anomaly_filter.process_many(self.window.transform_many(X), explain)
        self.window.learn_many(X)
        return judged

    def learn_many(self, X: Any) -> None:
        self.process_many(X)

    def state_dict(self) -> dict[str, Any]:
        """The window's and the filter's state (``torch.load(weights_only=True)``-safe)."""
        return {
            "class": type(self).__name__,
            "window": self.window.state_dict(),
            "filter": self.anomaly_filter.state_dict(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> WindowedFilter:
        """Rebuild a windowed filter from :meth:`state_dict`."""
        return cls(from_state(state["window"]), from_state(state["filter"]))


# ---------------------------------------------------------------------- helpers
def _describe(windows: np.ndarray, size: int, features: Sequence[str]) -> np.ndarray:
    """Features of equal-length windows ``(m, n, d)``, ``n <= size``, oldest reading first."""
    m, n, _ = windows.shape
    mean = windows.mean(axis=1)
    parts = []
    for name in features:
        if name == "values":
            pad = np.repeat(windows[:, :1], size - n, axis=1)
            parts.append(np.concatenate([pad, windows], axis=1).transpose(0, 2, 1).reshape(m, -1))
        elif name == "last":
            parts.append(windows[:, -1])
        elif name == "mean":
            parts.append(mean)
        elif name == "std":
            parts.append(windows.std(axis=1))
        elif name == "slope":
            t = np.arange(n) - (n - 1) / 2
            denominator = float(t @ t)
            slope = np.einsum("j,mjd->md", t, windows) / denominator if n > 1 else mean * 0.0
            parts.append(slope)
        else:  # last_minus_mean
            parts.append(windows[:, -1] - mean)
    return np.concatenate(parts, axis=1)


def _groups(keys: list[Hashable]) -> dict[Hashable, np.ndarray]:
    """Positions of each key's readings, in order of first appearance."""
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return {key: np.array(rows) for key, rows in groups.items()}


def _reading(field: Hashable, value: Any) -> float:
    """A windowed value as a float; ``ValueError`` naming the field if it cannot be one.

    Text is read as the encoder and the frame path (``pd.to_numeric``) read it, so a reading
    is accepted or refused alike in a record and in a DataFrame."""
    if is_missing(value):
        raise ValueError(f"field {field!r}: value is missing (None/NaN)")
    number = parse_number(value)
    if number is None or math.isnan(number):
        raise ValueError(
            f"field {field!r}: expected a number, got {type(value).__name__} {value!r}"
        )
    if math.isinf(number):
        raise ValueError(f"field {field!r}: non-finite value {value!r}")
    return number


def _column(field: Hashable, column: pd.Series) -> np.ndarray:
    """A frame's windowed column as floats, with the record path's errors."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        _reading(field, column.iloc[int(np.argmax(bad))])  # raises, naming the value
    return values


def _time(field: str, value: Any) -> float:
    """A reading's time in seconds: a number, or a date pandas can read."""
    if is_real(value) and math.isfinite(float(value)):
        return float(value)
    if isinstance(value, (str, pd.Timestamp, np.datetime64)) or hasattr(value, "isoformat"):
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError):
            stamp = pd.NaT
        if stamp is not pd.NaT:
            return stamp.timestamp()
    raise ValueError(
        f"field {field!r}: expected a time (seconds or a date), got {type(value).__name__} "
        f"{value!r}"
    )


def _times(field: str, column: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        times = column.to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isfinite(times).all():
            _time(field, column.iloc[int(np.argmax(~np.isfinite(times)))])
        return times
    return np.array([_time(field, value) for value in column.tolist()])
