"""The file configs/mnist_stream.yaml scores: one digit with a few others mixed in."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from bench.datasets import MNIST, DataMissing
from bench.mnist_parquet import main as make_parquet


def test_the_image_stream_holds_one_digit_and_the_asked_share_of_others(tmp_path):
    try:
        MNIST().path(MNIST.resources[0][0])
    except DataMissing:
        pytest.skip("MNIST is not in the data root")
    target = tmp_path / "mnist.parquet"
    args = ["--output", str(target), "--events", "500", "--anomaly-rate", "0.04"]
    assert make_parquet([*args, "--normal-digit", "7"]) == 0
    table = pq.read_table(target).to_pandas()
    assert table.shape == (500, 786)
    assert table["is_anomaly"].sum() == 20
    assert set(table.loc[~table["is_anomaly"], "label"]) == {7}
    assert 7 not in set(table.loc[table["is_anomaly"], "label"])
    assert 0.0 <= table["p300"].min() and table["p300"].max() <= 1.0


def test_an_impossible_share_is_refused(tmp_path):
    with pytest.raises(SystemExit) as stop:
        make_parquet(["--output", str(tmp_path / "x.parquet"), "--anomaly-rate", "1.5"])
    assert stop.value.code == 2
