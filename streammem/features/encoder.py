"""FeatureEncoder: records (dicts or tables) to fixed-width float32 vectors.

The width is fixed by the first record, so the model behind it never changes shape:

* numeric fields (int, float, bool) are scaled online: by default robustly (median and
  interquartile range of a window of recent records, then a logarithmic soft clip of the tails,
  so one value of 1e9 neither wrecks the scale of the others nor scores 1e18), or by running
  mean / variance, or min / max;
* string fields are one-hot encoded over a declared vocabulary, or over one learned from the
  first ``vocabulary_warmup`` learned records (at most ``max_categories`` values), then frozen
  so that later traffic (an attack, say) does not get a slot of its own;
* every categorical field keeps one extra **unknown** bucket for values outside its vocabulary.

Bad input policy (every error is a ``ValueError`` naming the field):

========================  ===========================================================
missing field / ``None``  ``missing="error"`` (default) raises; ``"impute"`` uses the
/ NaN                     running mean (numeric) or the unknown bucket (categorical);
                          NaN is missing in records, tables and arrays alike
±inf                      ``nonfinite="error"`` (default) raises; ``"impute"`` as above
                          (a number too large for a float is infinite)
extra field               ``extra="ignore"`` (default) drops it; ``"error"`` raises
wrong type                always raises (text that is not a number in a numeric field,
                          a number in a categorical one); numbers written as text
                          (``"20.5"``) are numbers
boolean                   a number: ``True`` is 1, ``False`` 0, whether a Python or a
                          NumPy bool, in a record, a bool column or a bool array (a
                          field of booleans is numeric); text is never a boolean
                          (``"true"`` in a numeric field raises)
unnamed array columns     a 2-D array's columns are the fields ``0``, ``1``, ...; an
                          array given to an encoder that learned named fields raises
                          (its order cannot be checked), unless ``numeric`` declares
                          the order
========================  ===========================================================
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from river import base

from streammem.features.replay import ReplayWindow
from streammem.persistence import stateful
from streammem.reprs import describe

__all__ = [
    "EncodedBatch",
    "FeatureEncoder",
    "is_missing",
    "parse_number",
    "schema_example",
    "select_rows",
    "to_frame_or_array",
]

_SCALINGS = ("robust", "standard", "minmax", None)
_MISSING = ("error", "impute")
_EXTRA = ("ignore", "error")
_STD_FLOOR = 1e-6
_LARGEST_SCALED = 1e15
_LARGEST_INT = 2**1000  # ints below convert to float without overflow
_PLAIN_KINDS = frozenset({float, int})
_LARGEST_PLAIN = float(_LARGEST_INT)
_IQR_TO_STD = 1.349  # the interquartile range of a normal distribution, in standard deviations
_ROBUST_SAMPLE = 2048  # rows behind the robust statistics (a sample of the scaling window)


def _policy(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _is_number(value: Any) -> bool:
    kind = type(value)
    if kind is float or kind is int or kind is bool:
        return True
    # NumPy's bool is no numbers.Real; it is a number here as Python's bool is
    return isinstance(value, (numbers.Real, np.bool_))


def _text_number(text: str) -> float | None:
    """The number a string spells, parsed as pandas parses a column of them; None if none."""
    try:
        return _as_float(pd.to_numeric(text))
    except (ValueError, TypeError):
        return None


def _kind(values: Sequence[Any]) -> str | None:
    """``"number"`` or ``"text"``, whichever most non-null values are (numbers spelled as text
    count as numbers); None when there is none, or when lists or objects outnumber both."""
    present = [v for v in values if not is_missing(v)]
    is_number = [parse_number(v) is not None for v in present]
    numbers = sum(is_number)
    text = sum(isinstance(v, str) and not n for v, n in zip(present, is_number, strict=True))
    if not present or len(present) - numbers - text > max(numbers, text):
        return None
    return "number" if numbers >= text else "text"


def is_missing(value: Any) -> bool:
    """Whether a value counts as missing: ``None``, NaN or ``pd.NA``."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def schema_example(
    rows: pd.DataFrame | Sequence[Mapping[Any, Any]],
    kinds: Mapping[Any, str] | None = None,
) -> dict[Hashable, Any]:
    """One record that stands for a whole batch when a schema is fixed from it.

    A field is kept when more than half of the records hold it, as a number (``0.0``) or as
    text (``""``), whichever most of its non-null values are; :meth:`FeatureEncoder.fit_schema`
    then reads the schema from this record. So one odd record cannot set the schema, and a
    column of numbers written as strings is numeric. ``kinds`` (``"number"`` / ``"text"``)
    types the fields whose values are all null.

    Examples
    --------
    >>> rows = [{"t": "hot", "line": "a"}, {"t": 20.5, "line": "b"}, {"t": "21", "line": "a"}]
    >>> schema_example(rows)
    {'t': 0.0, 'line': ''}

    """
    if isinstance(rows, pd.DataFrame):
        columns = {name: rows[name] for name in rows.columns}
        n = len(rows)
    else:
        records = [r for r in rows if isinstance(r, Mapping)]
        fields = dict.fromkeys(k for r in records for k in r)
        columns = {f: [r[f] for r in records if f in r] for f in fields}
        n = len(records)
    example: dict[Hashable, Any] = {}
    for field, values in columns.items():
        if 2 * len(values) <= n:
            continue
        if isinstance(values, pd.Series) and pd.api.types.is_numeric_dtype(values.dtype):
            kind = "number"
        else:
            kind = _kind(list(values)) or (kinds or {}).get(field)
        if kind is not None:
            example[field] = 0.0 if kind == "number" else ""
    return example


def parse_number(value: Any) -> float | None:
    """The number a field value holds, as a float, or None if it holds none (or is missing).

    The one rule for every input path: ints, floats and bools (Python's or NumPy's; True is
    1) are numbers (an integer too large for a float is infinite, like ``1e400``), and so is
    text that spells one, read as ``pandas.to_numeric`` reads a column of them (``"20.5"``;
    ``"nan"`` is NaN; ``"true"`` is no number).

    Examples
    --------
    >>> parse_number("20.5"), parse_number(3), parse_number("lots"), parse_number(None)
    (20.5, 3.0, None, None)
    >>> parse_number(True), parse_number(np.False_), parse_number("true")
    (1.0, 0.0, None)
    """
    if is_missing(value):
        return None
    if isinstance(value, str):
        return _text_number(value)
    return _as_float(value) if _is_number(value) else None


def _as_float(value: Any) -> float:
    """``float(value)``; an integer too large for a float is infinite, like ``1e400``."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _as_float_if_int(value: Any) -> Any:
    return _as_float(value) if isinstance(value, int) else value


def to_frame_or_array(X: Any) -> pd.DataFrame | np.ndarray | list:
    """Normalise a batch: pyarrow → pandas, ndarray kept, list of dicts kept, else TypeError."""
    if isinstance(X, (pa.Table, pa.RecordBatch)):
        return X.to_pandas()
    if isinstance(X, (pd.DataFrame, np.ndarray, list)):
        return X
    raise TypeError(
        "expected a pandas DataFrame, a pyarrow Table / RecordBatch, a numpy array or a list of "
        f"dicts, got {type(X).__name__}"
    )


@dataclasses.dataclass(frozen=True)
class EncodedBatch:
    """A batch read once by a detector's encoder, for ``score_many`` and ``learn_many``.

    ``raw`` holds the unscaled vectors (``None`` when the detector had nothing to read them
    with yet); ``source`` the records as given; ``learnable`` whether learning from ``raw``
    equals learning from ``source`` (no category can be added any more).
    """

    raw: np.ndarray | None
    source: pd.DataFrame | np.ndarray | list
    learnable: bool

    def __len__(self) -> int:
        return len(self.source)

    def select(self, keep: np.ndarray) -> EncodedBatch:
        """The rows where ``keep`` is true."""
        keep = np.asarray(keep, dtype=bool)
        raw = self.raw[keep] if self.raw is not None else None
        return EncodedBatch(raw, select_rows(self.source, keep), self.learnable)


def select_rows(X: pd.DataFrame | np.ndarray | list, keep: np.ndarray) -> Any:
    """The rows of a batch (as :func:`to_frame_or_array` gives it) where ``keep`` is true."""
    keep = np.asarray(keep, dtype=bool)
    if isinstance(X, (pd.DataFrame, np.ndarray)):
        return X[keep]
    return [record for record, kept in zip(X, keep, strict=True) if kept]


def _soft_clip(values: np.ndarray, limit: float) -> np.ndarray:
    """Identity within ``±limit``, ``±(limit + log(1 + |x| - limit))`` beyond it."""
    magnitude = np.abs(values)
    if magnitude.max(initial=0.0) <= limit:
        return values
    excess = np.log1p(np.maximum(magnitude - limit, 0.0))
    return np.where(magnitude > limit, np.sign(values) * (limit + excess), values)


@stateful
class FeatureEncoder(base.Transformer):
    """Encode records into fixed-width float32 vectors with online scaling and one-hot categories.

    Parameters
    ----------
    numeric
        Names of the numeric fields. ``None``: inferred from the first record (every int, float
        or bool value).
    categorical
        Categorical fields, each with its vocabulary (a list) or ``None`` to learn it.
        ``None``: every string-valued field of the first record, vocabulary learned.
    scaling
        ``"robust"`` (median and interquartile range / 1.349 of the last ``scaling_window``
        learned records; the standard deviation where the quartiles coincide; a field that has
        not varied yet scales to 0), ``"standard"``
        (running mean / std of everything learned), ``"minmax"`` (running min / max) or
        ``None``.
    scaling_window
        Records behind the robust statistics: a sample of 2,048 of the last
        ``scaling_window`` learned records (they follow drift, slowly, so that the model's
        input scale holds still while it learns; older records drop out).
    soft_clip
        Scaled values beyond ``±soft_clip`` grow logarithmically, ``c + log(1 + |z| - c)``:
        still monotone, so extremes still rank highest, but a heavy-tailed field cannot
        dominate every score and gradient. ``None`` keeps values linear. Ignored by
        ``"minmax"`` (which clips to [-1, 2]) and ``None`` scaling.
    max_categories
        Slots reserved for a learned vocabulary (declared vocabularies take their own size).
    vocabulary_warmup
        Number of learned records during which new categories are added to learned vocabularies.
    missing
        ``"error"`` or ``"impute"``: what to do with a missing field or a ``None`` value.
    nonfinite
        ``"error"`` or ``"impute"``: what to do with NaN or infinite numbers.
    extra
        ``"ignore"`` or ``"error"``: what to do with fields outside the schema.

    Examples
    --------
    >>> enc = FeatureEncoder(categorical={"proto": ["tcp", "udp"]})
    >>> enc.learn_one({"bytes": 100.0, "proto": "tcp"})
    >>> enc.learn_one({"bytes": 300.0, "proto": "udp"})
    >>> enc.columns_
    ['bytes', 'proto=tcp', 'proto=udp', 'proto=<unknown>']
    >>> enc.encode_one({"bytes": 200.0, "proto": "icmp"}).tolist()
    [0.0, 0.0, 0.0, 1.0]
    >>> enc.encode_one({"bytes": "lots", "proto": "tcp"})
    Traceback (most recent call last):
    ...
    ValueError: field 'bytes': expected a number, got str 'lots'
    """

    def __init__(
        self,
        numeric: Sequence[Hashable] | None = None,
        categorical: Mapping[Any, Sequence[str] | None] | None = None,
        scaling: str | None = "robust",
        scaling_window: int = 16384,
        soft_clip: float | None = 5.0,
        max_categories: int = 32,
        vocabulary_warmup: int = 1000,
        missing: str = "error",
        nonfinite: str = "error",
        extra: str = "ignore",
    ) -> None:
        self.numeric = numeric
        self.categorical = categorical
        self.scaling = scaling
        self.scaling_window = scaling_window
        self.soft_clip = soft_clip
        self.max_categories = max_categories
        self.vocabulary_warmup = vocabulary_warmup
        self.missing = missing
        self.nonfinite = nonfinite
        self.extra = extra

    def __repr__(self) -> str:
        notes = {
            "numeric": "every number or bool field of the first record",
            "categorical": "every text field of the first record, vocabulary learned",
            "scaling": "raw values",
            "soft_clip": "linear tails",
        }
        return describe(self, notes)

    # ------------------------------------------------------------------ schema
    @property
    def is_fitted(self) -> bool:
        """Whether the schema (and so the width) is fixed."""
        return hasattr(self, "numeric_")

    @property
    def width_(self) -> int:
        return len(self.columns_)

    def column_fields(self) -> list[Hashable]:
        """The field each column of :attr:`columns_` encodes, as the records name it: a
        numeric field's own column, and every one-hot column of a categorical field
        (its values, spare slots and unknown bucket).

        Examples
        --------
        >>> enc = FeatureEncoder(categorical={"proto": ["tcp", "udp"]})
        >>> enc.fit_schema({"bytes": 0.0, "proto": "tcp"})
        >>> enc.column_fields()
        ['bytes', 'proto', 'proto', 'proto']
        """
        owners = list(self.numeric_)
        for field, (offset, _, unknown) in self._cat_layout.items():
            owners += [field] * (unknown + 1 - offset)
        return owners

    def check_params(self) -> None:
        _policy("scaling", self.scaling, _SCALINGS)
        _policy("missing", self.missing, _MISSING)
        _policy("nonfinite", self.nonfinite, _MISSING)
        _policy("extra", self.extra, _EXTRA)
        if self.max_categories < 1:
            raise ValueError(f"max_categories must be >= 1, got {self.max_categories}")
        if self.scaling_window < 2:
            raise ValueError(f"scaling_window must be >= 2, got {self.scaling_window}")
        if self.soft_clip is not None and not self.soft_clip > 0:
            raise ValueError(f"soft_clip must be > 0 or None, got {self.soft_clip}")

    def fit_schema(self, example: Mapping[Any, Any]) -> None:
        """Fix the schema from declared fields, else from one example record."""
        self.check_params()
        declared_cat = dict(self.categorical) if self.categorical is not None else None
        if self.numeric is not None:
            numeric = list(self.numeric)
        else:
            skip = set(declared_cat or ())
            numeric = [k for k, v in example.items() if k not in skip and _is_number(v)]
        if declared_cat is None:
            declared_cat = {k: None for k, v in example.items() if isinstance(v, str)}
        if not numeric and not declared_cat:
            raise ValueError(f"no numeric or string field in record with keys {list(example)}")
        self.numeric_ = numeric
        self.vocabulary_ = {k: list(v) if v is not None else [] for k, v in declared_cat.items()}
        self.learned_fields_ = [k for k, v in declared_cat.items() if v is None]
        self.capacity_ = {
            k: (len(v) if v is not None else self.max_categories) for k, v in declared_cat.items()
        }
        self.n_learned_ = 0
        self._init_layout()
        n = len(numeric)
        self.count_ = 0
        self.mean_ = np.zeros(n)
        self.m2_ = np.zeros(n)
        self.min_ = np.full(n, np.inf)
        self.max_ = np.full(n, -np.inf)
        self.center_ = np.zeros(n)
        self.spread_ = np.ones(n)
        self.robust_count_ = 0  # count_ when center_ and spread_ were last computed
        robust = self.scaling == "robust"
        self.window_ = ReplayWindow(min(self.scaling_window, _ROBUST_SAMPLE), n) if robust else None
        self.thinning_ = np.random.default_rng(0)

    def declared_from(
        self,
        records: Sequence[Mapping[Any, Any]],
        kinds: Mapping[Any, str] | None = None,
    ) -> FeatureEncoder | None:
        """An unfitted copy that declares the schema ``records`` agree on (fields declared
        here stay as declared; learned vocabularies stay learned); None if they agree on no
        field. See :func:`schema_example` for the rule."""
        probe = self.clone()
        try:
            probe.fit_schema(schema_example(records, kinds))
        except ValueError:
            return None
        learned = set(probe.learned_fields_)
        categorical = {k: None if k in learned else list(v) for k, v in probe.vocabulary_.items()}
        return self.clone({"numeric": list(probe.numeric_), "categorical": categorical})

    @property
    def is_declared(self) -> bool:
        """Whether the parameters name every field, so no record can change the schema."""
        return self.numeric is not None and self.categorical is not None

    def _init_layout(self) -> None:
        """Index maps used by the per-record path; derived state, rebuilt after loading."""
        self._numeric_index = {name: i for i, name in enumerate(self.numeric_)}
        pick = operator.itemgetter(*self.numeric_) if self.numeric_ else (lambda x: ())
        self._pick_numbers = pick if len(self.numeric_) != 1 else (lambda x: (pick(x),))
        self._fields = set(self.numeric_) | set(self.vocabulary_)
        offset = len(self.numeric_)
        self._cat_layout: dict[Hashable, tuple[int, dict[str, int], int]] = {}
        columns = [str(c) for c in self.numeric_]
        for field, vocab in self.vocabulary_.items():
            capacity = self.capacity_[field]
            slots = {cat: offset + i for i, cat in enumerate(vocab)}
            unknown = offset + capacity
            self._cat_layout[field] = (offset, slots, unknown)
            spare = [f"{field}=<slot{i}>" for i in range(len(vocab), capacity)]
            names = [f"{field}={c}" for c in vocab] + spare
            columns += [*names, f"{field}=<unknown>"]
            offset = unknown + 1
        self.columns_ = columns
        self._unknown_slots = [unknown for _, _, unknown in self._cat_layout.values()]
        self._last_read: tuple | None = None

    # ------------------------------------------------------------------ one record
    def _numeric_value(self, field: Hashable, value: Any) -> float:
        if is_missing(value):  # None and NaN alike, as in a table
            if self.missing == "error":
                raise ValueError(f"field {field!r}: value is missing (None/NaN)")
            return math.nan
        number = parse_number(value)
        if number is None:
            raise ValueError(
                f"field {field!r}: expected a number, got {type(value).__name__} {value!r}"
            )
        if math.isinf(number):
            if self.nonfinite == "error":
                raise ValueError(f"field {field!r}: non-finite value {number}")
            return math.nan  # imputed like a missing value
        return number

    def _category_slot(self, field: Hashable, value: Any, learn: bool) -> int:
        offset, slots, unknown = self._cat_layout[field]
        if is_missing(value):
            if self.missing == "error":
                raise ValueError(f"field {field!r}: value is missing (None/NaN)")
            return unknown
        if not isinstance(value, str):
            raise ValueError(
                f"field {field!r}: expected a string category, got {type(value).__name__} {value!r}"
            )
        slot = slots.get(value)
        if slot is not None:
            return slot
        if learn and self._may_learn(field):
            slot = offset + len(slots)
            slots[value] = slot
            self.vocabulary_[field].append(value)
            self.columns_[slot] = f"{field}={value}"
            return slot
        return unknown

    @property
    def vocabulary_frozen_(self) -> bool:
        """Whether learning can no longer add a category (so learning and reading a record
        give the same vector)."""
        return not any(self._may_learn(field) for field in self.learned_fields_)

    def _may_learn(self, field: Hashable) -> bool:
        return (
            field in self.learned_fields_
            and self.n_learned_ < self.vocabulary_warmup
            and len(self.vocabulary_[field]) < self.capacity_[field]
        )

    def _check_keys(self, x: Mapping[Any, Any]) -> None:
        if self.extra == "error" and len(x) != len(self._fields):
            extras = [k for k in x if k not in self._fields]
            if extras:
                known = sorted(map(str, self._fields))
                raise ValueError(f"unexpected field(s) {extras}; the schema has {known}")
        if self.missing == "error" and len(x) < len(self._fields):
            absent = [k for k in self._fields if k not in x]
            raise ValueError(f"missing field(s) {absent}")

    def vectorize_one(self, x: Mapping[Any, Any], learn: bool = False) -> np.ndarray:
        """Raw (unscaled) vector; ``learn`` lets learned vocabularies grow during warm-up."""
        if not isinstance(x, Mapping):
            raise ValueError(f"a record must be a dict, got {type(x).__name__}")
        if not self.is_fitted:
            self.fit_schema(schema_example([x]))
        if learn and (vec := self._take_last_read(x)) is not None:
            self.n_learned_ += 1
            return vec
        self._check_keys(x)
        get = x.get
        vec = np.zeros(len(self.columns_))
        numbers = self._plain_numbers(x)
        vec[: len(self.numeric_)] = numbers if numbers is not None else [
            self._numeric_value(field, get(field)) for field in self.numeric_
        ]  # fmt: skip
        for field in self._cat_layout:
            vec[self._category_slot(field, get(field), learn)] = 1.0
        if learn:
            self.n_learned_ += 1
        return vec

    def _take_last_read(self, x: Mapping[Any, Any]) -> np.ndarray | None:
        """The vector :meth:`encode_one` last made of this very record, if learning it would give
        the same: ``score_one(x)`` then ``learn_one(x)``, a stream's per-event path, reads once.

        Not if the record changed since (same object, same items), nor if one of its
        categories was unknown then (learning may add it now)."""
        last, self._last_read = self._last_read, None
        if last is None or last[0] is not x or last[1] != tuple(x.items()):
            return None
        vec = last[2]
        return None if self._unknown_slots and vec[self._unknown_slots].any() else vec

    def _plain_numbers(self, x: Mapping[Any, Any]) -> np.ndarray | None:
        """The numeric fields at C speed when all are present, finite floats or modest ints
        (the common case); None sends the record down the checking path."""
        try:
            values = self._pick_numbers(x)
        except KeyError:
            return None
        if not _PLAIN_KINDS.issuperset(map(type, values)):  # not bools, texts or None
            return None
        try:
            numbers = np.array(values, dtype=float)
        except OverflowError:  # an int beyond float's range: the checking path says why
            return None
        # NaN fails the comparison; inf and huge ints go to the checking path too
        return numbers if (np.abs(numbers) < _LARGEST_PLAIN).all() else None

    def check_one(self, x: Mapping[Any, Any]) -> None:
        """Raise ``ValueError`` naming the field if ``x`` cannot be encoded; changes nothing."""
        (self if self.is_fitted else self.clone()).vectorize_one(x)

    # ------------------------------------------------------------------ scaling
    def update_scaler(self, raw: np.ndarray) -> None:
        """Update the scaling statistics with a batch of raw vectors.

        Running moments merge by Chan et al.'s rule; robust statistics are recomputed from the
        window whenever it has taken in an eighth more records (at least every 256).
        """
        n = len(self.numeric_)
        if n == 0 or raw.shape[0] == 0:
            self.count_ += raw.shape[0]
            return
        values = raw[:, :n]
        if self.window_ is not None:
            self.window_.extend(self._thinned(values))
        finite = np.isfinite(values)
        batch_n = finite.sum(axis=0)
        safe = np.where(finite, values, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            batch_mean = np.where(batch_n > 0, safe.sum(axis=0) / np.maximum(batch_n, 1), 0.0)
            batch_m2 = (np.where(finite, values - batch_mean, 0.0) ** 2).sum(axis=0)
        old_n = self.count_
        total = old_n + batch_n
        delta = batch_mean - self.mean_
        weight = np.where(total > 0, batch_n / np.maximum(total, 1), 0.0)
        self.mean_ = self.mean_ + delta * weight
        self.m2_ = self.m2_ + batch_m2 + delta**2 * old_n * weight
        self.min_ = np.minimum(self.min_, np.where(finite, values, np.inf).min(axis=0))
        self.max_ = np.maximum(self.max_, np.where(finite, values, -np.inf).max(axis=0))
        self.count_ = old_n + raw.shape[0]
        if self.window_ is not None:
            due = min(
                max(1, self.robust_count_ // 8),
                256,
            )
            if self.count_ - self.robust_count_ >= due:
                self._fit_robust()

    def _thinned(self, values: np.ndarray) -> np.ndarray:
        """The rows that enter the robust sample: all until it is full, then each with the
        probability that keeps it a sample of the last ``scaling_window`` records (one draw
        per record, in order, so any chunking thins the same records)."""
        window = self.window_
        free = window.capacity - len(window)
        rest = values[free:]
        if len(rest) == 0:
            return values
        keep = self.thinning_.random(len(rest)) < window.capacity / self.scaling_window
        return np.concatenate([values[:free], rest[keep]])

    def _fit_robust(self) -> None:
        rows = self.window_.rows().astype(np.float64)
        quantile = np.nanquantile if np.isnan(rows).any() else np.quantile
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: no centre
            low, median, high = quantile(rows, [0.25, 0.5, 0.75], axis=0)
            std = np.nanstd(rows, axis=0)
        spread = (high - low) / _IQR_TO_STD
        # Quartiles coincide for sparse or near-constant fields: their spread is the std.
        spread = np.where(spread > _STD_FLOOR, spread, std)
        # A field that has not varied yet has no scale: it adds nothing until it does (else
        # the second record of every stream would be its loudest alarm).
        self.spread_ = np.where(spread > _STD_FLOOR, spread, np.inf)
        self.center_ = np.nan_to_num(median, nan=0.0)
        self.robust_count_ = self.count_

    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``scaled = raw * mul + add`` for the numeric columns, cached until the stats change."""
        cached = self.__dict__.get("_affine_cache")
        if cached is not None and cached[0] == self.count_:
            return cached[1], cached[2]
        n = len(self.numeric_)
        mul, add = np.ones(n), np.zeros(n)
        if self.scaling == "robust" and self.count_ > 0:
            mul = 1.0 / self.spread_
            add = np.where(mul > 0, -self.center_ * mul, 0.0)
        elif self.scaling == "standard" and self.count_ > 1:
            mul = 1.0 / np.maximum(np.sqrt(self.m2_ / self.count_), _STD_FLOOR)
            add = -self.mean_ * mul
        elif self.scaling == "minmax" and self.count_ > 0:
            mul = 1.0 / np.maximum(self.max_ - self.min_, _STD_FLOOR)
            add = -self.min_ * mul
        self._affine_cache = (self.count_, mul, add)
        return mul, add

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """Scale raw vectors (1-D or 2-D) with the current statistics; imputes NaN; float32."""
        out = np.array(raw, dtype=np.float32)
        n = len(self.numeric_)
        if n:
            num = raw[..., :n]
            missing = np.isnan(num)
            if missing.any():
                centre = self.center_ if self.scaling == "robust" else self.mean_
                num = np.where(missing, centre, num)
            mul, add = self._affine()
            with np.errstate(over="ignore", invalid="ignore"):
                scaled = num * mul
                scaled += add
            # finite near 1e308 overflows above; a cap keeps every square finite in float32
            np.clip(scaled, -_LARGEST_SCALED, _LARGEST_SCALED, out=scaled)
            if self.scaling == "minmax":
                scaled = np.clip(scaled, -1.0, 2.0)
            elif self.scaling is not None and self.soft_clip is not None:
                scaled = _soft_clip(scaled, self.soft_clip)
            out[..., :n] = scaled
        return out

    # ------------------------------------------------------------------ River API
    def learn_one(self, x: Mapping[Any, Any]) -> None:
        self.update_scaler(self.vectorize_one(x, learn=True)[None, :])

    def encode_one(self, x: Mapping[Any, Any]) -> np.ndarray:
        """Scaled float32 vector for one record (pure; the reading is kept for a ``learn_one``
        of the same record, see :meth:`_take_last_read`)."""
        encoder = self if self.is_fitted else self.clone()
        vec = encoder.vectorize_one(x)
        if encoder is self:  # a throw-away clone's reading is of no use to learn_one
            self._last_read = (x, tuple(x.items()), vec)
        return encoder.scale(vec)

    def transform_one(self, x: Mapping[Any, Any]) -> dict[str, float]:
        encoder = self if self.is_fitted else self.clone()
        values = encoder.encode_one(x)
        return dict(zip(encoder.columns_, values.tolist(), strict=True))

    # ------------------------------------------------------------------ batches
    def vectorize_many(self, X: Any, learn: bool = False) -> np.ndarray:
        """Raw matrix for a batch (list of dicts, DataFrame, pyarrow table or 2-D array)."""
        X = to_frame_or_array(X)
        if isinstance(X, list):
            if X and not self.is_fitted:
                self.fit_schema(schema_example(X))
            rows = [self.vectorize_one(x, learn) for x in X]
            return np.vstack(rows) if rows else np.zeros((0, self.width_ if self.is_fitted else 0))
        if isinstance(X, np.ndarray):
            return self._vectorize_array(X)
        return self._vectorize_frame(X, learn)

    def _vectorize_array(self, X: np.ndarray) -> np.ndarray:
        if X.ndim < 2:
            raise ValueError(f"expected a 2-D array (n_samples, n_features), got shape {X.shape}")
        X = X.reshape(X.shape[0], math.prod(X.shape[1:]))  # -1 fails on empty arrays
        if not np.issubdtype(X.dtype, np.number) and X.dtype != bool:
            raise ValueError(f"array input must be numeric, got dtype {X.dtype}")
        if not self.is_fitted:
            self.fit_schema({i: 0.0 for i in range(X.shape[1])})
        # Columns have no names: by position only where the fields are positions (learned
        # from arrays) or declared in order; else a swapped column would be read silently.
        positional = self.numeric_ == list(range(len(self.numeric_)))
        if not positional and self.numeric is None:
            raise ValueError(
                f"array input has no column names, and this model learned named fields "
                f"{self.numeric_ + list(self.vocabulary_)}: pass a DataFrame or dicts, or "
                "declare the column order with FeatureEncoder(numeric=[...])"
            )
        if self.vocabulary_ or X.shape[1] != len(self.numeric_):
            raise ValueError(
                f"array input has {X.shape[1]} columns, the schema expects {len(self.numeric_)} "
                f"numeric fields{' and categorical ones' if self.vocabulary_ else ''}; pass a "
                "DataFrame or dicts instead"
            )
        return self._checked_numbers(X.astype(np.float64), self.numeric_)

    def _checked_numbers(self, block: np.ndarray, names: Sequence[Hashable]) -> np.ndarray:
        """One policy on every path: NaN is a missing value, ±inf a non-finite one; an
        imputed one is NaN, which scaling replaces with the running mean."""
        nan = np.isnan(block)
        if self.missing == "error" and nan.any():
            col = int(np.argwhere(nan)[0][1])
            raise ValueError(f"field {names[col]!r}: value is missing (None/NaN)")
        inf = np.isinf(block)
        if inf.any():
            if self.nonfinite == "error":
                col = int(np.argwhere(inf)[0][1])
                raise ValueError(f"field {names[col]!r}: non-finite value {block[inf][0]}")
            block = np.where(inf, np.nan, block)
        return block

    def _vectorize_frame(self, frame: pd.DataFrame, learn: bool) -> np.ndarray:
        if not self.is_fitted:
            if frame.empty:
                raise ValueError("cannot infer a schema from an empty table")
            self.fit_schema(schema_example(frame))
        if self.missing == "error":
            absent = [f for f in [*self.numeric_, *self.vocabulary_] if f not in frame.columns]
            if absent:
                raise ValueError(f"missing field(s) {absent}")
        if self.extra == "error":
            extras = [c for c in frame.columns if c not in self._fields]
            if extras:
                raise ValueError(f"unexpected field(s) {extras}")
        out = np.zeros((len(frame), len(self.columns_)))
        n_numeric = len(self.numeric_)
        if n_numeric:
            out[:, :n_numeric] = self._numeric_block(frame)
        for field in self._cat_layout:
            self._one_hot_column(out, field, self._frame_column(frame, field), learn)
        if learn:
            self.n_learned_ += len(frame)
        return out

    def _frame_column(self, frame: pd.DataFrame, field: Hashable) -> pd.Series | None:
        if field in frame.columns:
            return frame[field]
        if self.missing == "error":
            raise ValueError(f"missing field(s) [{field!r}]")
        return None

    def _numeric_block(self, frame: pd.DataFrame) -> np.ndarray:
        dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
        if all(f in dtypes and pd.api.types.is_numeric_dtype(dtypes[f]) for f in self.numeric_):
            positions = frame.columns.get_indexer(self.numeric_)
            block = frame.iloc[:, positions].to_numpy(dtype=np.float64, na_value=np.nan)
        else:  # missing columns or non-numeric dtypes: column by column, naming the culprit
            columns = []
            for field in self.numeric_:
                column = self._frame_column(frame, field)
                absent = column is None
                columns.append(
                    np.full(len(frame), np.nan) if absent else self._numeric_column(field, column)
                )
            block = np.column_stack(columns)
        return self._checked_numbers(block, self.numeric_)

    def _numeric_column(self, field: Hashable, column: pd.Series) -> np.ndarray:
        if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
            # object columns (tables built from JSON) may hold numbers mixed with None
            try:
                converted = pd.to_numeric(column, errors="coerce")
            except OverflowError:  # an integer too large for a float
                converted = pd.to_numeric(column.map(_as_float_if_int), errors="coerce")
            wrong = converted.isna() & column.notna()
            if wrong.any():
                bad = column[wrong].iloc[0]
                raise ValueError(
                    f"field {field!r}: expected a number, got {type(bad).__name__} {bad!r}"
                )
            column = converted
        return column.to_numpy(dtype=np.float64, na_value=np.nan)

    def _one_hot_column(
        self, out: np.ndarray, field: Hashable, column: pd.Series | None, learn: bool
    ) -> None:
        _, slots, unknown = self._cat_layout[field]
        if column is None:
            out[:, unknown] = 1.0
            return
        values = column.to_numpy(dtype=object)
        present = pd.notna(values)
        if not present.all() and self.missing == "error":
            raise ValueError(f"field {field!r}: value is missing (None)")
        if not pd.api.types.is_string_dtype(column) or (
            column.dtype == object and pd.api.types.infer_dtype(values, skipna=True) != "string"
        ):
            bad = next(v for v in values[present] if not isinstance(v, str))
            raise ValueError(
                f"field {field!r}: expected a string category, got {type(bad).__name__} {bad!r}"
            )
        if learn and self._may_learn(field):
            for value in pd.unique(values[present]):
                self._category_slot(field, value, learn=True)
        # a dict lookup per value beats pandas' hash index on batches of a few hundred rows
        lookup = slots.get
        targets = np.fromiter(
            (lookup(v, unknown) for v in values), dtype=np.int64, count=len(values)
        )
        out[np.arange(len(out)), targets] = 1.0

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Parameters and fitted state as plain Python values (safe for
        ``torch.load(weights_only=True)``)."""
        head = {"class": type(self).__name__, "params": self._state_params()}
        if not self.is_fitted:
            return {**head, "fitted": False}
        return {
            **head,
            "fitted": True,
            "numeric": list(self.numeric_),
            "vocabulary": {k: list(v) for k, v in self.vocabulary_.items()},
            "learned_fields": list(self.learned_fields_),
            "capacity": dict(self.capacity_),
            "n_learned": self.n_learned_,
            "count": self.count_,
            "mean": self.mean_.tolist(),
            "m2": self.m2_.tolist(),
            "min": self.min_.tolist(),
            "max": self.max_.tolist(),
            "center": self.center_.tolist(),
            "spread": self.spread_.tolist(),
            "robust_count": self.robust_count_,
            "window": self.window_.state_dict() if self.window_ is not None else None,
            "thinning": self.thinning_.bit_generator.state,
        }

    def _state_params(self) -> dict[str, Any]:
        params = self._get_params()
        if params["numeric"] is not None:
            params["numeric"] = list(params["numeric"])
        if params["categorical"] is not None:
            params["categorical"] = {
                k: list(v) if v is not None else None for k, v in params["categorical"].items()
            }
        return params

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FeatureEncoder:
        """Rebuild an encoder from :meth:`state_dict`."""
        encoder = cls(**state["params"])
        encoder.check_params()
        encoder.load_fitted(state)
        return encoder

    def load_fitted(self, state: Mapping[str, Any]) -> None:
        """Take the fitted part of a :meth:`state_dict` (this encoder's parameters stay)."""
        if not state.get("fitted"):
            return
        self.numeric_ = list(state["numeric"])
        self.vocabulary_ = {k: list(v) for k, v in state["vocabulary"].items()}
        self.learned_fields_ = list(state["learned_fields"])
        self.capacity_ = dict(state["capacity"])
        self.n_learned_ = int(state["n_learned"])
        self.count_ = int(state["count"])
        for name in ("mean", "m2", "min", "max", "center", "spread"):
            setattr(self, f"{name}_", np.asarray(state[name], dtype=np.float64))
        self.robust_count_ = int(state["robust_count"])
        window = state["window"]
        self.window_ = ReplayWindow.from_state(window) if window is not None else None
        self.thinning_ = np.random.default_rng(0)
        if "thinning" in state:
            self.thinning_.bit_generator.state = state["thinning"]
        self.__dict__.pop("_affine_cache", None)
        self._init_layout()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.is_fitted:
            self._init_layout()
