"""Parquet source and sink: stream record batches in, write results out in row groups."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
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
    label
        A column marking known anomalies: never a feature, copied into each result like
        ``passthrough``. ``None``: no label.
    label_required
        Whether a ``label`` the file lacks is an error; otherwise the source has no label.

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
        label: str | None = None,
        label_required: bool = True,
    ) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        self._file = _open(self.path)
        schema = self._file.schema_arrow
        if label is not None and label not in schema.names and not label_required:
            label = None
        self.label = label
        if features is not None and label in features:
            raise SourceError(f"{self.path}: the label column {label!r} cannot be a feature")
        self.passthrough = list(dict.fromkeys([*passthrough, *([label] if label else [])]))
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
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[RecordBatch]:
        """Batches of the rows from ``start`` on (the row groups before it are not read)."""
        columns = list(dict.fromkeys(self.features + self.passthrough))
        metadata, first_group, row = self._file.metadata, 0, 0
        while first_group < metadata.num_row_groups:
            size = metadata.row_group(first_group).num_rows
            if row + size > start:
                break
            row, first_group = row + size, first_group + 1
        groups = range(first_group, metadata.num_row_groups)
        batches = self._file.iter_batches(self.batch_size, groups, columns)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as err:
                raise SourceError(f"{self.path}: cannot read the rows after {row}: {err}") from err
            if batch is None:
                return
            skip = min(max(start - row, 0), batch.num_rows)
            if skip < batch.num_rows:
                yield self._to_records(batch.slice(skip), row + skip)
            row += batch.num_rows

    def origin_fields(self) -> list[pa.Field]:
        """The Arrow fields of the origin that each result carries: file, row, passthrough."""
        schema = self._file.schema_arrow
        fields = {"file": pa.field("file", pa.string()), "row": pa.field("row", pa.int64())}
        fields.update((name, schema.field(name)) for name in self.passthrough)
        return list(fields.values())

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

    Results go to numbered part files in ``<name>.parts/`` beside the output, which
    :meth:`close` merges into ``path``. :meth:`commit` makes everything written so far durable
    and returns where the sink stands; a sink opened with that (``resume=``) keeps the
    committed parts and dead letters, drops anything after them, and goes on: a job that
    crashed resumes from its checkpoint without losing or repeating a result.

    Dead letters go to a JSON-lines file next to the output (``<name>.dead-letters.jsonl``):
    Parquet wants one schema, and a rejected record has none.

    Parameters
    ----------
    path
        The output file.
    row_group_size
        Rows per row group.
    schema
        The results' Arrow schema; by default inferred from the first row group.
    resume
        What :meth:`commit` returned before a crash.

    """

    def __init__(
        self,
        path: str | Path,
        row_group_size: int = 65_536,
        schema: pa.Schema | None = None,
        resume: Mapping[str, int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.row_group_size = row_group_size
        self.dead_letter_path, self.parts_dir = _beside(self.path)
        self._schema = schema
        self._pending: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._parts = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume is None:
            shutil.rmtree(self.parts_dir, ignore_errors=True)
            self.dead_letter_path.unlink(missing_ok=True)
        else:
            self._reopen(int(resume["parts"]), int(resume["dead_letter_bytes"]))
        self.parts_dir.mkdir(exist_ok=True)
        self._dead_letters = self.dead_letter_path.open("a")

    @staticmethod
    def resumable(path: str | Path, resume: Mapping[str, int]) -> bool:
        """Whether what a sink on ``path`` committed (``resume``) is still on disk."""
        dead_letters, parts = _beside(Path(path))
        return (
            len(_parts(parts)) >= resume["parts"]
            and _size(dead_letters) >= resume["dead_letter_bytes"]
        )

    def _reopen(self, parts: int, dead_letter_bytes: int) -> None:
        committed = _parts(self.parts_dir)[:parts]
        for stale in _parts(self.parts_dir)[parts:]:
            stale.unlink()
        with self.dead_letter_path.open("a") as letters:
            letters.truncate(dead_letter_bytes)
        self._parts = parts
        if committed and self._schema is None:
            self._schema = pq.read_schema(committed[0])

    def write(self, results: list[dict[str, Any]]) -> None:
        self._pending.extend(results)
        while len(self._pending) >= self.row_group_size:
            self._write_row_group(self._pending[: self.row_group_size])
            del self._pending[: self.row_group_size]

    def dead_letter(self, letters: list[DeadLetter]) -> None:
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
            schema = self._schema or pa.Table.from_pylist(rows).schema
            self._writer = pq.ParquetWriter(self._part_path(), schema)
            self._schema = schema
        table = pa.Table.from_pylist(rows, schema=self._schema)
        self._writer.write_table(table, row_group_size=self.row_group_size)

    def commit(self) -> dict[str, int]:
        """Make every result and dead letter so far durable; returns where the sink stands."""
        if self._pending:
            self._write_row_group(self._pending)
            self._pending = []
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            _fsync(self._part_path())
            self._parts += 1
        self._dead_letters.flush()
        os.fsync(self._dead_letters.fileno())
        return {"parts": self._parts, "dead_letter_bytes": _size(self.dead_letter_path)}

    def _part_path(self) -> Path:
        return self.parts_dir / f"part-{self._parts:06d}.parquet"

    def close(self) -> None:
        """Merge the parts into the output file (written whole, then renamed into place)."""
        self.commit()
        self._dead_letters.close()
        parts = _parts(self.parts_dir)
        if len(parts) == 1:
            os.replace(parts[0], self.path)
        elif parts or self._schema is not None:
            partial = self.path.with_name(f".{self.path.name}.tmp")
            with pq.ParquetWriter(partial, self._schema) as writer:
                for part in parts:
                    data = pq.ParquetFile(part)
                    for group in range(data.num_row_groups):
                        writer.write_table(data.read_row_group(group))
            os.replace(partial, self.path)
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        if _size(self.dead_letter_path) == 0:
            self.dead_letter_path.unlink(missing_ok=True)


def _beside(path: Path) -> tuple[Path, Path]:
    """The dead-letter file and the parts folder of an output file."""
    return path.with_suffix(".dead-letters.jsonl"), path.with_name(path.name + ".parts")


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
