"""Make the Parquet file ``configs/mnist_stream.yaml`` scores: ``python -m bench.mnist_parquet``.

An image stream with known anomalies: MNIST training images of one digit (``--normal-digit``,
default 1) as the normal traffic, with ``--anomaly-rate`` (default 2 %) of images of the other
digits mixed in at random places (seed 0), ``--events`` images in all. Each row holds the 784
pixels (``p0`` ... ``p783``, scaled to [0, 1]), the ``label`` digit and ``is_anomaly``;
``streammem run`` copies the last two to its output, so it prints the false-alarm rate on
normal images and the recall. The upstream files are used only after their MD5 matches (see
:mod:`bench.datasets`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.cli import bench_parser
from bench.datasets import MNIST
from bench.makers import run_maker, write_frame

__all__ = ["main", "make_mnist_parquet"]


def make_mnist_parquet(
    output: str | Path,
    root: str | Path | None = None,
    normal_digit: int = 1,
    anomaly_rate: float = 0.02,
    events: int = 6000,
) -> Path:
    """Write the image stream; returns its path. Raises :class:`DataMissing` or
    :class:`DataIntegrityError` when an upstream file is absent or not the expected one."""
    split = MNIST(root).load(train=True)
    rng = np.random.default_rng(0)
    normal = np.flatnonzero(split.y == normal_digit)
    other = np.flatnonzero(split.y != normal_digit)
    n_anomalies = round(events * anomaly_rate)
    rows = np.concatenate(
        [
            rng.choice(normal, events - n_anomalies, replace=False),
            rng.choice(other, n_anomalies, replace=False),
        ]
    )
    rows = rows[rng.permutation(len(rows))]
    pixels = split.x[rows].reshape(len(rows), -1).astype(np.float32) / 255.0
    frame = pd.DataFrame(pixels, columns=[f"p{i}" for i in range(pixels.shape[1])])
    frame["label"] = split.y[rows]
    frame["is_anomaly"] = split.y[rows] != normal_digit
    return write_frame(frame, output)


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__name__, __doc__, data="mnist/")
    parser.add_argument("--output", default="data/mnist.parquet", help="the file to write")
    parser.add_argument("--normal-digit", type=int, default=1, choices=range(10))
    parser.add_argument("--anomaly-rate", type=float, default=0.02)
    parser.add_argument("--events", type=int, default=6000)
    args = parser.parse_args(argv)
    if not 0 <= args.anomaly_rate < 1 or args.events < 1:
        parser.error("--anomaly-rate must be in [0, 1) and --events >= 1")
    return run_maker(
        "mnist_parquet",
        lambda: make_mnist_parquet(
            args.output, args.data_root, args.normal_digit, args.anomaly_rate, args.events
        ),
        "images",
    )


if __name__ == "__main__":
    sys.exit(main())
