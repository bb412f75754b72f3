"""bench.throughput's explain cost: both calls timed on the same batches, and their ratio."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import streammem
from bench.throughput import explain_cost


def test_explain_cost_is_the_ratio_of_two_times_on_the_same_batches():
    detector = streammem.MemAE(hidden_sizes=(8,), latent_size=4)
    frames = [pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})] * 2
    detector.learn_many(frames[0])
    cost = explain_cost(detector, frames)
    assert set(cost) == {"score_s", "explain_s", "explain_over_score"}
    assert cost["explain_over_score"] == pytest.approx(cost["explain_s"] / cost["score_s"])
