from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors import DeadLetter
from connectors.parquet import ParquetSink, ParquetSource


def write_wide_file(path, rows: int, row_group_size: int) -> int:
    rng = np.random.default_rng(0)
    table = pa.table({f"x{j}": rng.normal(size=rows) for j in range(8)} | {"id": np.arange(rows)})
    pq.write_table(table, path, row_group_size=row_group_size)
    return table.nbytes


def test_large_file_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "big.parquet"
    decoded_bytes = write_wide_file(path, rows=400_000, row_group_size=20_000)
    source = ParquetSource(path, features=["x0", "x1", "x2"], passthrough=["id"], batch_size=1000)
    baseline = pa.total_allocated_bytes()
    peak, rows, next_id = 0, 0, 0
    for batch in source:
        peak = max(peak, pa.total_allocated_bytes() - baseline)
        assert len(batch.records) <= 1000
        assert [o["id"] for o in batch.origins] == list(range(next_id, next_id + len(batch)))
        assert [o["row"] for o in batch.origins] == [o["id"] for o in batch.origins]
        next_id += len(batch)
        rows += len(batch)
    assert rows == len(source) == 400_000
    assert peak < decoded_bytes / 10, f"peak arrow memory {peak} B for a {decoded_bytes} B file"


def test_column_selection_and_missing_columns(tmp_path):
    path = tmp_path / "small.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": ["x", "y"], "label": [0, 1]}), path)
    batch = next(iter(ParquetSource(path, passthrough=["label"])))
    assert batch.records == [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}]
    assert batch.origins[1] == {"file": "small.parquet", "row": 1, "label": 1}
    with pytest.raises(ValueError, match=r"no column\(s\) \['zz'\]"):
        ParquetSource(path, features=["a", "zz"])


def test_sink_writes_row_groups_and_a_dead_letter_file(tmp_path):
    sink = ParquetSink(tmp_path / "out" / "scores.parquet", row_group_size=1000)
    results = [
        {"file": "in.parquet", "row": i, "score": i / 10, "p_value": 0.5, "alert": i % 7 == 0}
        for i in range(2500)
    ]
    for start in range(0, 2500, 300):
        sink.write(results[start : start + 300])
    sink.dead_letter([DeadLetter({"file": "in.parquet", "row": 9}, "invalid_record", "bad", b"x")])
    sink.close()
    written = pq.ParquetFile(sink.path)
    assert [written.metadata.row_group(i).num_rows for i in range(3)] == [1000, 1000, 500]
    assert written.read().to_pylist() == results
    (line,) = sink.dead_letter_path.read_text().splitlines()
    assert json.loads(line) == {
        "file": "in.parquet",
        "row": 9,
        "reason": "invalid_record",
        "detail": "bad",
        "payload": "x",
    }


def test_a_sink_resumed_after_a_crash_keeps_what_it_committed_and_nothing_after(tmp_path):
    def results(rows: range) -> list[dict]:
        return [{"row": i, "score": i / 10, "p_value": 0.5, "alert": False} for i in rows]

    def letter(row: int) -> DeadLetter:
        return DeadLetter({"row": row}, "invalid_record", "bad", b"x")

    sink = ParquetSink(tmp_path / "out.parquet", row_group_size=100)
    sink.write(results(range(0, 250)))
    sink.dead_letter([letter(250)])
    position = sink.commit()
    sink.write(results(range(251, 400)))  # lost in the crash: never committed
    sink.dead_letter([letter(400)])
    sink.commit()
    assert ParquetSink.resumable(tmp_path / "out.parquet", position)

    resumed = ParquetSink(tmp_path / "out.parquet", row_group_size=100, resume=position)
    resumed.write(results(range(251, 300)))
    resumed.close()
    rows = pq.read_table(tmp_path / "out.parquet").column("row").to_pylist()
    assert rows == [*range(250), *range(251, 300)]
    lines = resumed.dead_letter_path.read_text().splitlines()
    assert [json.loads(line)["row"] for line in lines] == [250]
    assert not resumed.parts_dir.exists()
