"""What the commands that make a config's Parquet file share: writing it and reporting."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.datasets import DataIntegrityError, DataMissing

__all__ = ["run_maker", "write_frame"]


def write_frame(frame: pd.DataFrame, output: str | Path) -> Path:
    """Write ``frame`` (no index) to ``output``, making its folder; returns the path."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), output)
    return output


def run_maker(prog: str, make: Callable[[], Path], rows: str) -> int:
    """Run ``make``; print what it wrote, or the missing or damaged upstream file (exit 2)."""
    try:
        path = make()
    except (DataMissing, DataIntegrityError) as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    print(f"wrote {pq.ParquetFile(path).metadata.num_rows} {rows} to {path}")
    return 0
