"""Parquet source and sink: stream record batches in, write results out in row groups."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from connectors import DeadLetter, RecordBatch, SourceError

__all__ = ["ParquetSink", "ParquetSource"]


class ParquetSource:
    """Read a Parquet file one record batch at a time, so memory does not grow with the file.

    Parameters
    ----------
    path
        The file to read.
    features
        Columns the model sees; ``None`` means every column not in ``passthrough``.
    passthrough
        Columns copied unchanged into each result (ids, labels, timestamps), never features.
    batch_size
        Rows per batch.

    Raises
    ------
    SourceError
        When the file is missing, not Parquet, empty, lacks a column, or has a feature column
        that is neither numbers nor text.

    """

    def __init__(
        self,
        path: str | Path,
        features: Sequence[str] | None = None,
        passthrough: Sequence[str] = (),
        batch_size: int = 512,
    ) -> None:
        self.path = Path(path)
        self.passthrough = list(passthrough)
        self.batch_size = batch_size
        self._file = _open(self.path)
        schema = self._file.schema_arrow
        self.features = (
            list(features)
            if features is not None
            else [name for name in schema.names if name not in self.passthrough]
        )
        missing = [
            c for c in dict.fromkeys(self.features + self.passthrough) if c not in schema.names
        ]
        if missing:
            raise SourceError(f"{self.path}: no column(s) {missing}; the file has {schema.names}")
        self.kinds = {name: _kind(self.path, schema.field(name)) for name in self.features}
        if len(self) == 0:
            raise SourceError(f"{self.path} holds no rows")

    def __len__(self) -> int:
        return self._file.metadata.num_rows

    def __iter__(self) -> Iterator[RecordBatch]:
        columns = list(dict.fromkeys(self.features + self.passthrough))
        row = 0
        batches = self._file.iter_batches(batch_size=self.batch_size, columns=columns)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as err:
                raise SourceError(f"{self.path}: cannot read the rows after {row}: {err}") from err
            if batch is None:
                return
            yield self._to_records(batch, row)
            row += batch.num_rows

    def _to_records(self, batch: pa.RecordBatch, first_row: int) -> RecordBatch:
        rows = batch.to_pylist()
        records = [{name: row[name] for name in self.features} for row in rows]
        origins = [
            {"file": self.path.name, "row": first_row + i, **{k: row[k] for k in self.passthrough}}
            for i, row in enumerate(rows)
        ]
        kinds = {name: kind for name, kind in self.kinds.items() if kind is not None}
        return RecordBatch(records, origins, kinds=kinds)


def _open(path: Path) -> pq.ParquetFile:
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    try:
        # pre_buffer (pyarrow's default) reads every selected column of the whole file up
        # front: memory would grow with the file instead of the batch.
        return pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowException, OSError) as err:
        raise SourceError(f"{path} is not a readable Parquet file: {err}") from err


def _kind(path: Path, field: pa.Field) -> str | None:
    """``"number"`` or ``"text"`` for a feature column's type; None for an all-null column."""
    kind = field.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if pa.types.is_null(kind):
        return None
    raise SourceError(
        f"{path}: column {field.name!r} is {field.type}; features must be numbers or text "
        "(list it in source.passthrough to copy it to the output, or leave it out of "
        "source.features)"
    )


class ParquetSink:
    """Write results (origin columns, score, p_value, alert) to Parquet in row groups.

    Dead letters go to a JSON-lines file next to the output (``<name>.dead-letters.jsonl``):
    Parquet wants one schema, and a rejected record has none.
    """

    def __init__(self, path: str | Path, row_group_size: int = 65_536) -> None:
        self.path = Path(path)
        self.row_group_size = row_group_size
        self.dead_letter_path = self.path.with_suffix(".dead-letters.jsonl")
        self._pending: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._dead_letters = None
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, results: list[dict[str, Any]]) -> None:
        self._pending.extend(results)
        while len(self._pending) >= self.row_group_size:
            self._write_row_group(self._pending[: self.row_group_size])
            del self._pending[: self.row_group_size]

    def dead_letter(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        if self._dead_letters is None:
            self._dead_letters = self.dead_letter_path.open("w")
        for letter in letters:
            line = {
                **letter.origin,
                "reason": letter.reason,
                "detail": letter.detail,
                "payload": letter.payload.decode("utf-8", errors="backslashreplace"),
            }
            self._dead_letters.write(json.dumps(line, default=str) + "\n")

    def _write_row_group(self, rows: list[dict[str, Any]]) -> None:
        if self._writer is None:
            table = pa.Table.from_pylist(rows)
            self._writer = pq.ParquetWriter(self.path, table.schema)
        else:
            table = pa.Table.from_pylist(rows, schema=self._writer.schema)
        self._writer.write_table(table, row_group_size=self.row_group_size)

    def close(self) -> None:
        if self._pending:
            self._write_row_group(self._pending)
            self._pending = []
        if self._writer is not None:
            self._writer.close()
        if self._dead_letters is not None:
            self._dead_letters.close()
