"""Make the Parquet file ``configs/metric_series.yaml`` scores: ``python -m bench.nab_parquet``.

NAB series from the shared folder (MD5-checked, see :class:`bench.nab_score.NAB`), one row per
reading: ``timestamp`` (as text: the Parquet source reads numbers and text), ``series`` (the
file: the key), ``value``, and ``is_anomaly`` (inside one of NAB's labelled windows), in time
order within each series and, with several series, interleaved in proportion to their lengths
(as readings of several hosts arrive). ``streammem run`` copies ``is_anomaly`` to its output,
so its plot marks the windows caught and missed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.cli import bench_parser
from bench.makers import run_maker, write_frame
from bench.nab_score import NAB

__all__ = ["DEFAULT_SERIES", "main", "make_nab_parquet"]

DEFAULT_SERIES = ("realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",)


def make_nab_parquet(
    output: str | Path, series: Sequence[str] = DEFAULT_SERIES, root: str | Path | None = None
) -> Path:
    """Write the Parquet file; returns its path."""
    parts = []
    for s in NAB(root).series(list(series)):
        rank = np.arange(len(s)) / len(s)
        labels = s.labels.astype(bool)
        parts.append(
            pd.DataFrame(
                {"timestamp": _text(s.timestamps), "series": s.name, "value": s.values}
            ).assign(is_anomaly=labels, _rank=rank)
        )
    frame = pd.concat(parts, ignore_index=True).sort_values("_rank", kind="stable")
    return write_frame(frame.drop(columns="_rank"), output)


def _text(stamps: pd.Series) -> pd.Series:
    return stamps.dt.strftime("%Y-%m-%d %H:%M:%S")


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__name__, __doc__, data="nab/")
    parser.add_argument("--output", default="data/nab.parquet", help="the file to write")
    parser.add_argument(
        "--series", help=f"comma-separated NAB files (default: {','.join(DEFAULT_SERIES)})"
    )
    args = parser.parse_args(argv)
    series = args.series.split(",") if args.series else DEFAULT_SERIES
    return run_maker(
        "nab_parquet", lambda: make_nab_parquet(args.output, series, args.data_root), "readings"
    )


if __name__ == "__main__":
    sys.exit(main())
