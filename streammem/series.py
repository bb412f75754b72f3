"""SeriesFeatures and for_series: the default recipe for metric series.

A CPU metric, a latency, a request count or a traffic speed is one number per reading: alone
it gives an autoencoder nothing to learn, since its structure is the series' own history.
:class:`SeriesFeatures` shows the model that history, per key (a host, a sensor): for every
reading its level, its step from the previous reading, and at several scales how far it lies
from the recent mean and how volatile the recent readings were; with a ``time_field``, the
time of day and the day of the week (as points on circles, so 23:55 lies next to 00:00).
:func:`for_series` puts it in front of a memory autoencoder and a :class:`~streammem.
TailLikelihood`, whose likelihood in [0, 1] means the same on every series.

It is a :class:`~streammem.TimeWindow` (whose rules it keeps: arrival order, per-key state
with LRU and ``ttl`` eviction, gaps that restart a key's history, pure transforms, the same
errors for bad readings, the same checkpoints) that describes a key's last readings at
several scales instead of one.
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from streammem.alerts.calibration import Calibrator, TailLikelihood
from streammem.alerts.filter import AlertFilter
from streammem.checks import check_integer
from streammem.detectors import MemAE, MemoryDetector
from streammem.learning.schedule import Schedule
from streammem.persistence import stateful
from streammem.windows import TimeWindow, WindowedFilter, _Readings

__all__ = [
    "CALENDAR",
    "SERIES_SCHEDULE",
    "SeriesFeatures",
    "for_series",
    "series_detector",
    "series_settings",
]

#: The calendar columns added with a ``time_field``: time of day and day of the week, each as
#: the sine and cosine of its phase (UTC for aware times; naive times as they read).
CALENDAR = ("time_day_sin", "time_day_cos", "time_week_sin", "time_week_cos")

_DAY = 86_400.0
_MONDAY = 3.0  # 1970-01-01 was a Thursday: days since the epoch + 3 count from a Monday


@stateful
class SeriesFeatures(TimeWindow):
    """Each reading with its series' history at several scales, per key.

    For every windowed field ``f`` and reading ``x``: ``f`` (the reading), ``f_diff`` (minus
    the key's previous reading), and for each scale ``w`` in ``scales``, ``f_dev<w>`` (the
    reading minus the mean of the key's last ``w`` readings, itself included) and ``f_std<w>``
    (their standard deviation); with ``time_field`` and ``calendar``, the :data:`CALENDAR`
    columns. A key's first readings use what it has (one reading: diff, deviations and
    standard deviations 0).

    Parameters
    ----------
    scales
        Readings per scale, increasing; the key's history holds the largest.
    calendar
        Add the time of day and day of the week (needs ``time_field``).
    key, fields, time_field, max_gap, max_keys, ttl
        As for :class:`~streammem.TimeWindow`.

    Examples
    --------
    >>> features = SeriesFeatures(scales=(2, 4), key="host")
    >>> for v in (1.0, 2.0, 3.0, 4.0):
    ...     features.learn_one({"host": "a", "cpu": v})
    >>> features.transform_one({"host": "a", "cpu": 9.0})  # doctest: +ELLIPSIS
    {'cpu': 9.0, 'cpu_diff': 5.0, 'cpu_dev2': 2.5, 'cpu_std2': 2.5, 'cpu_dev4': 4.5, ...}
    >>> features = SeriesFeatures(scales=(2,), time_field="ts")
    >>> row = features.transform_one({"ts": "2024-01-01 06:00", "cpu": 1.0})  # a Monday
    >>> [round(row[c], 3) for c in ("time_day_sin", "time_day_cos", "time_week_sin")]
    [1.0, 0.0, 0.223]
    """

    def __init__(
        self,
        scales: Sequence[int] = (24, 96),
        calendar: bool = True,
        key: str | None = None,
        fields: Sequence[str] | None = None,
        time_field: str | None = None,
        max_gap: float | None = None,
        max_keys: int = 10_000,
        ttl: float | None = None,
    ) -> None:
        self.scales = tuple(scales)
        self.calendar = calendar
        self.key = key
        self.fields = fields
        self.time_field = time_field
        self.max_gap = max_gap
        self.max_keys = max_keys
        self.ttl = ttl

    @property
    def size(self) -> int:  # the history a key keeps: the largest scale
        return max(self.scales) if self.scales else 2

    @property
    def features(self) -> tuple[str, ...]:
        return ("series",)

    @property
    def has_calendar(self) -> bool:
        """Whether calendar columns are added (``calendar`` and a ``time_field``)."""
        return self.calendar and self.time_field is not None

    def check_params(self) -> None:
        """Raise ``ValueError`` naming the parameter (``series.<name> ...``) if one is wrong."""
        scales = list(self.scales)
        for scale in scales:
            check_integer("series.scales[]", scale, 2)
        if not scales or scales != sorted(set(scales)):
            raise ValueError(
                f"series.scales must be distinct integers >= 2, increasing, got {scales}"
            )
        if not isinstance(self.calendar, bool):
            raise ValueError(f"series.calendar must be true or false, got {self.calendar!r}")
        check_integer("series.max_keys", self.max_keys, 1)
        probe = TimeWindow(
            size=2,
            key=self.key,
            fields=self.fields,
            time_field=self.time_field,
            max_gap=self.max_gap,
            max_keys=self.max_keys,
            ttl=self.ttl,
        )
        try:
            probe.check_params()
        except ValueError as err:
            raise ValueError(str(err).replace("window.", "series.", 1)) from None

    def params(self) -> dict[str, Any]:
        params = self._get_params()
        params["scales"] = list(self.scales)
        params["fields"] = list(self.fields) if self.fields is not None else None
        return params

    def columns(self, fields: Sequence[Hashable]) -> list[str]:
        return [*self._field_columns(fields), *(CALENDAR if self.has_calendar else ())]

    def _field_columns(self, fields: Sequence[Hashable]) -> list[str]:
        names = [str(f) for f in fields] + [f"{f}_diff" for f in fields]
        for scale in self.scales:
            names += [f"{f}_dev{scale}" for f in fields] + [f"{f}_std{scale}" for f in fields]
        return names

    def column_fields(self, X: Any) -> dict[str, Hashable]:
        """The reading field each column summarises (the calendar columns: ``time_field``)."""
        fields = self._fields(X)
        mapping = {c: f for f in fields for c in self._field_columns([f])}
        if self.has_calendar:
            mapping.update(dict.fromkeys(CALENDAR, self.time_field))
        return mapping

    def _width(self, d: int) -> int:
        return len(self._field_columns(range(d)))

    def _windows(self, readings: _Readings) -> np.ndarray:
        out = super()._windows(readings)
        if not self.has_calendar:
            return out
        return np.concatenate([out, _calendar(readings.times)], axis=1)

    def _describe_rows(self, stack: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        size = self.size
        full = ends - starts + 1 >= size
        out = np.empty((len(ends), self._width(stack.shape[1])))
        if full.any():
            views = sliding_window_view(stack, size, axis=0)  # (n - size + 1, d, size)
            out[full] = self._summarise(views[ends[full] - size + 1])
        for i in np.flatnonzero(~full):
            out[i] = self._summarise(stack[starts[i] : ends[i] + 1].T[None])[0]
        return out

    def _summarise(self, windows: np.ndarray) -> np.ndarray:
        """The columns of windows ``(m, d, n)``, oldest reading first, ``n <= size``."""
        last = windows[..., -1]
        previous = windows[..., -2] if windows.shape[-1] > 1 else last
        parts = [last, last - previous]
        for scale in self.scales:
            recent = windows[..., -scale:]
            parts += [last - recent.mean(axis=-1), recent.std(axis=-1)]
        return np.concatenate(parts, axis=1)


def _calendar(times: np.ndarray) -> np.ndarray:
    """Time of day and day of week of times in seconds, as sines and cosines of their phase."""
    days = np.asarray(times, dtype=np.float64) / _DAY
    day = 2 * np.pi * np.mod(days, 1.0)
    week = 2 * np.pi * np.mod(days + _MONDAY, 7.0) / 7.0
    return np.column_stack([np.sin(day), np.cos(day), np.sin(week), np.cos(week)])


#: How the recipe's detector learns: half a visit per record once mature, Adam at 1e-3, a
#: 2,048-record replay window, a young phase over the first 8,192 records, and the worst-rebuilt
#: quarter of a batch left out where it is beyond Tukey's fence. A series' readings are a few
#: dozen columns of one metric's own history, unlabelled and never cleaned: the library's
#: defaults, chosen to fit wide sensor streams, learn their spikes too. See
#: :func:`series_settings` for what was measured.
SERIES_SCHEDULE = Schedule(
    budget=0.5, learning_rate=1e-3, replay_size=2048, young_records=8192, trim=0.25
)


def series_settings(detector_class: type) -> dict[str, Any]:
    """The recipe's settings for a detector class: :data:`SERIES_SCHEDULE` and, for the memory
    detectors, no trust region (``radius_quantile=None``: every code is read from memory).

    Chosen on the 41 shared NAB files (``bench/results/nab/notes.md``): MemAE's standard NAB
    score is 26.4 with the library's defaults (seeds 42, 1, 2), 37.7 without the trust region
    (seed 42; it lets a spike's code pass to the decoder), and 46.6 / 39.4 / 39.6 with this
    schedule as well.

    Examples
    --------
    >>> import streammem
    >>> sorted(series_settings(streammem.MemAE)), sorted(series_settings(streammem.AE))
    (['radius_quantile', 'schedule'], ['schedule'])
    """
    settings: dict[str, Any] = {"schedule": SERIES_SCHEDULE}
    if "radius_quantile" in inspect.signature(detector_class).parameters:
        settings["radius_quantile"] = None
    return settings


def series_detector(detector_class: type = MemAE, **params: Any) -> MemoryDetector:
    """The recipe's detector: ``detector_class`` with :func:`series_settings`, ``params``
    over them (``series_detector(streammem.AE, seed=1)``)."""
    return detector_class(**{**series_settings(detector_class), **params})


def for_series(
    time_field: str | None = None,
    key: str | None = None,
    fields: Sequence[str] | None = None,
    detector: Any = None,
    calibrator: Calibrator | None = None,
    **features: Any,
) -> WindowedFilter:
    """The default recipe for metric series, in one call: :class:`SeriesFeatures` (per
    ``key``, calendar columns from ``time_field``) in front of an
    :class:`~streammem.AlertFilter` of ``detector`` (:func:`series_detector`) and ``calibrator``
    (``TailLikelihood()``: alert when the likelihood exceeds 0.999).

    Parameters
    ----------
    time_field
        Field of each reading's time (seconds or a date); ``None``: no calendar columns.
    key
        Field naming the series a reading belongs to; ``None``: one series.
    fields
        The metric fields; ``None``: the numeric fields of the first readings.
    detector
        The memory detector; ``None``: :func:`series_detector` (MemAE with the recipe's
        settings).
    calibrator
        Turns scores into likelihoods and alerts; ``None``: ``TailLikelihood()``.
    **features
        Other :class:`SeriesFeatures` parameters (``scales``, ``max_gap``, ``ttl``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import streammem
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(2000)  # a daily cycle of 288 readings, one every 5 minutes, and noise
    >>> frame = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=2000, freq="5min"),
    ...                       "host": "a", "cpu": 50 + 10 * np.sin(2 * np.pi * t / 288)
    ...                       + rng.normal(0, 1, 2000)})
    >>> frame.loc[1500, "cpu"] = 90.0
    >>> model = streammem.for_series(time_field="ts", key="host")
    >>> judged = model.process_many(frame)  # or one reading at a time: the same alerts
    >>> np.flatnonzero(judged.alerts)  # the spike, and nothing else
    array([1500])
    >>> likelihood = 1 - judged.p_values  # in [0, 1]; an alert above 0.999
    >>> (likelihood[1498:1503] > 0.99).tolist()  # in the tail from the spike on
    [False, False, True, True, True]
    """
    window = SeriesFeatures(key=key, fields=fields, time_field=time_field, **features)
    detector = series_detector() if detector is None else detector
    return WindowedFilter(window, AlertFilter(detector, calibrator or TailLikelihood()))
