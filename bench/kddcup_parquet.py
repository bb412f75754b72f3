"""Make the Parquet file ``configs/kddcup.yaml`` scores: ``python -m bench.kddcup_parquet``.

Reads the KDD Cup 1999 10% set from its upstream files (``kddcup.data_10_percent.gz`` and
``kddcup.names``, each used only after its MD5 matches, see :mod:`bench.datasets`) and writes
one row per connection: the 41 features under their ``kddcup.names`` names (``protocol_type``,
``service`` and ``flag`` as text), the raw ``label``, and ``is_anomaly``.

Rows are written in ``bench.stream``'s protocol order (``numpy.random.default_rng(0)``'s
permutation), not in file order: the file holds each kind of traffic in long blocks (tens of
thousands of ``smurf.`` in a row, then ``normal.``), so a stream in file order learns each
block as the normal of its time and its alerts are chance (AUROC 0.585, precision 0.19 at
0.197 prevalence). ``--file-order`` keeps the upstream order.

As in the papers' protocol (DAGMM, MemAE), ``normal.`` traffic, about 20% of the set, is the
anomaly class: attacks are the majority the model learns as normal. ``streammem run`` copies
``label`` and ``is_anomaly`` to its output, so its plot's title reports precision and recall.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.cli import bench_parser
from bench.datasets import KDDCUP99
from bench.makers import run_maker, write_frame

__all__ = ["main", "make_kddcup_parquet"]


def make_kddcup_parquet(
    output: str | Path,
    root: str | Path | None = None,
    download: bool = False,
    file_order: bool = False,
) -> Path:
    """Write the Parquet file; returns its path. Raises :class:`DataMissing` or
    :class:`DataIntegrityError` when an upstream file is absent or not the expected one."""
    data = KDDCUP99(root, download)
    frame = pd.read_csv(data.path(data.data_file), header=None, names=[*data.schema(), "label"])
    frame["is_anomaly"] = frame["label"] == "normal."
    if not file_order:
        frame = frame.iloc[np.random.default_rng(0).permutation(len(frame))]
    return write_frame(frame, output)


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__name__, __doc__, data="kddcup99/", download=True)
    parser.add_argument("--output", default="data/kddcup.parquet", help="the file to write")
    parser.add_argument("--file-order", action="store_true", help="keep the upstream row order")
    args = parser.parse_args(argv)
    return run_maker(
        "kddcup_parquet",
        lambda: make_kddcup_parquet(args.output, args.data_root, args.download, args.file_order),
        "connections",
    )


if __name__ == "__main__":
    sys.exit(main())
