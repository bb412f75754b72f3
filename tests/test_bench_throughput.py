"""bench.throughput: the explain cost (both calls on the same batches) and River's baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import streammem
from bench.nab_score import NAB
from bench.throughput import SERIES_PATHS, explain_cost, river_baseline, series_cost


def test_explain_cost_is_the_ratio_of_two_times_on_the_same_batches():
    detector = streammem.MemAE(network=streammem.Network(hidden_sizes=(8,), latent_size=4))
    frames = [pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})] * 2
    detector.learn_many(frames[0])
    cost = explain_cost(detector, frames)
    assert set(cost) == {"score_s", "explain_s", "explain_over_score"}
    assert cost["explain_over_score"] == pytest.approx(cost["explain_s"] / cost["score_s"])


def test_rivers_baseline_selects_the_fields_by_name():
    model = river_baseline(["duration", "src_bytes", "protocol_type", "service", "flag"])
    record = {"duration": 1.0, "src_bytes": 10.0, "protocol_type": "tcp", "service": "http"}
    record |= {"flag": "SF", "extra": 5.0}
    for _ in range(3):
        model.learn_one(record)
    assert 0.0 <= model.score_one(record) <= 1.0
    text = str(model)
    assert "['duration', 'src_bytes'] | MinMaxScaler" in text
    assert "['flag', 'protocol_type', 'service'] | OneHotEncoder" in text
    assert "extra" not in text and "SelectType" not in text


@pytest.mark.skipif(
    not (NAB().root / "nab" / "labels" / "combined_windows.json").is_file(),
    reason="the shared NAB files are not here",
)
def test_the_series_cost_runs_the_raw_path_and_the_recipe_on_the_same_readings():
    names = ["realAdExchange/exchange-2_cpc_results.csv"]
    raw, recipe = (series_cost(path, 256, names=names) for path in SERIES_PATHS)
    assert raw["events"] == recipe["events"] == len(NAB().series(names)[0].values)
    assert (raw["contender"], recipe["contender"]) == (
        "AlertFilter(MemAE()) on the value",
        "for_series()",
    )
