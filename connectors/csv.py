"""CSV source: stream a CSV file's rows in record batches, as :class:`ParquetSource` does.

pandas reads the file a chunk at a time (memory follows the batch, not the file). A column's
type is read from each chunk's text, so a value that does not fit a feature column is the
record's problem (a dead letter naming the field), never the file's: the same rule as a JSON
event. Empty cells are missing values. Passthrough and label columns keep the type their first
chunk shows, so the results file has one schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from connectors import RecordBatch, SourceError

__all__ = ["CsvSource"]


class CsvSource:
    """Read a CSV file (a header row, then one record per row) in record batches.

    Parameters
    ----------
    path
        The file to read.
    features
        Columns the model sees; ``None`` means every column not in ``passthrough`` (nor the
        label).
    passthrough
        Columns copied unchanged into each result (ids, timestamps), never features.
    batch_size
        Rows per batch.
    label
        A column marking known anomalies: never a feature, copied into each result like
        ``passthrough``. ``None``: no label.
    label_required
        Whether a ``label`` the file lacks is an error; otherwise the source has no label.

    Raises
    ------
    SourceError
        When the file is missing, unreadable, has no header or no rows, or lacks a column.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "readings.csv"
    >>> _ = path.write_text("temp,rpm,is_anomaly\\n20.5,900,false\\n21.0,,true\\n")
    >>> source = CsvSource(path, label="is_anomaly")
    >>> source.features, len(source)
    (['temp', 'rpm'], 2)
    >>> batch = next(iter(source))
    >>> batch.records[1], batch.origins[1]
    ({'temp': 21.0, 'rpm': nan}, {'file': 'readings.csv', 'row': 1, 'is_anomaly': True})
    """

    def __init__(
        self,
        path: str | Path,
        features: Sequence[str] | None = None,
        passthrough: Sequence[str] = (),
        batch_size: int = 512,
        label: str | None = None,
        label_required: bool = True,
    ) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        head = self._read_head()
        columns = [str(c) for c in head.columns]
        if label is not None and label not in columns and not label_required:
            label = None
        self.label = label
        if features is not None and label in features:
            raise SourceError(f"{self.path}: the label column {label!r} cannot be a feature")
        self.passthrough = list(dict.fromkeys([*passthrough, *([label] if label else [])]))
        self.features = (
            list(features)
            if features is not None
            else [c for c in columns if c not in self.passthrough]
        )
        missing = [c for c in dict.fromkeys(self.features + self.passthrough) if c not in columns]
        if missing:
            raise SourceError(f"{self.path}: no column(s) {missing}; the file has {columns}")
        self.kinds = {name: _kind(head[name]) for name in self.features}
        self._passthrough_types = {
            name: pa.Array.from_pandas(head[name]).type for name in self.passthrough
        }
        self._rows = self._count_rows()
        if self._rows == 0:
            raise SourceError(f"{self.path} holds no rows")

    def _read_head(self) -> pd.DataFrame:
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such file")
        try:
            return next(self._chunks(0))
        except StopIteration:
            raise SourceError(f"{self.path} holds no rows") from None

    def _chunks(self, start: int) -> Iterator[pd.DataFrame]:
        """The rows from ``start`` on, ``batch_size`` at a time; SourceError if unreadable."""
        skip = range(1, start + 1) if start else None
        try:
            reader = pd.read_csv(
                self.path, chunksize=self.batch_size, skiprows=skip, skipinitialspace=True
            )
            yield from reader
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise SourceError(f"{self.path} is not a readable CSV file: {err}") from err
        except OSError as err:
            raise SourceError(f"{self.path}: cannot read it: {err}") from err

    def _count_rows(self) -> int:
        return sum(len(chunk) for chunk in self._chunks(0))

    def __len__(self) -> int:
        return self._rows

    def __iter__(self) -> Iterator[RecordBatch]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[RecordBatch]:
        """Batches of the rows from ``start`` on."""
        row = start
        for chunk in self._chunks(start):
            yield self._to_records(chunk, row)
            row += len(chunk)

    def origin_fields(self) -> list[pa.Field]:
        """The Arrow fields of the origin that each result carries: file, row, passthrough."""
        fields = [pa.field("file", pa.string()), pa.field("row", pa.int64())]
        return fields + [pa.field(n, t) for n, t in self._passthrough_types.items()]

    def _to_records(self, chunk: pd.DataFrame, first_row: int) -> RecordBatch:
        features = chunk[self.features]
        records = [
            {name: _plain(value) for name, value in zip(self.features, row, strict=True)}
            for row in features.itertuples(index=False, name=None)
        ]
        copied = {name: self._passthrough(chunk, name, first_row) for name in self.passthrough}
        origins = [
            {"file": self.path.name, "row": first_row + i, **{k: v[i] for k, v in copied.items()}}
            for i in range(len(chunk))
        ]
        kinds = {name: kind for name, kind in self.kinds.items() if kind is not None}
        return RecordBatch(records, origins, kinds=kinds)

    def _passthrough(self, chunk: pd.DataFrame, name: str, first_row: int) -> list[Any]:
        kind = self._passthrough_types[name]
        try:
            return pa.Array.from_pandas(chunk[name], type=kind).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise SourceError(
                f"{self.path}: column {name!r} changes type after row {first_row} (it was "
                f"{kind} above): {err}"
            ) from err


def _kind(column: pd.Series) -> str | None:
    """``"number"`` or ``"text"`` for a column as its first chunk shows it; None if all empty."""
    if column.isna().all():
        return None
    return "number" if pd.api.types.is_numeric_dtype(column) else "text"


def _plain(value: Any) -> Any:
    """A cell as a plain Python value (numpy scalars as floats, ints, bools or text)."""
    return value.item() if hasattr(value, "item") else value
