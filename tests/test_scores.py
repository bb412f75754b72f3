"""What a tabular score means: each column's error against the model's own typical error on it,
plus a quarter of its distance from the centre."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import streammem
from streammem.detectors.base import DISTANCE_WEIGHT

TABULAR = [streammem.AE, streammem.MemAE, streammem.Memorizer, streammem.RFTM]


def plane(n: int, scale: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Records on the plane c = a - 2b, which an autoencoder learns to rebuild."""
    a, b = np.random.default_rng(seed).normal(size=(2, n)) * scale
    return pd.DataFrame({"a": a, "b": b, "c": a - 2 * b})


@pytest.mark.parametrize("cls", TABULAR, ids=lambda c: c.__name__)
def test_a_record_beyond_the_learned_range_outscores_every_record_inside_it(cls):
    """Far out on the learned plane a model may rebuild a record well; its distance from the
    centre still ranks it above everything the model learned."""
    det = cls(seed=0, device="cpu")
    det.learn_many(plane(3000))
    inside = det.score_many(plane(500, seed=1))
    beyond = plane(50, seed=2)
    beyond[["a", "b"]] = np.sign(beyond[["a", "b"]]) * 12.0
    beyond["c"] = beyond["a"] - 2 * beyond["b"]
    assert det.score_many(beyond).min() > inside.max()


def test_a_score_is_the_normalised_error_plus_a_weighted_distance():
    det = streammem.AE(seed=0, device="cpu")
    det.learn_many(plane(3000))
    batch = plane(40, seed=3)
    scaled = det.encoder_.scale(det.encoder_.vectorize_many(batch))
    with torch.no_grad():
        rebuilt = det.model_(torch.from_numpy(scaled)).reconstruction.numpy()
    errors = np.square(scaled - rebuilt) / det.fit_.error_
    expected = (errors + DISTANCE_WEIGHT * np.square(scaled)).mean(axis=1) / (1 + DISTANCE_WEIGHT)
    np.testing.assert_allclose(det.score_many(batch), expected, rtol=1e-4)


def test_a_column_the_model_rebuilds_well_counts_a_small_miss_loudly():
    """c is a function of a and b, rebuilt far better than noise field n: the same miss (in
    each field's standard deviations) on c outscores it on n."""
    frame = plane(6000)
    frame["n"] = np.random.default_rng(1).normal(size=len(frame))
    det = streammem.AE(seed=0, device="cpu")
    det.learn_many(frame)
    record = frame.iloc[[10]].copy()
    off_c, off_n = record.copy(), record.copy()
    off_c["c"] += frame["c"].std()
    off_n["n"] += frame["n"].std()
    assert det.fit_.error_[2] < det.fit_.error_[3] / 10
    assert det.score_many(off_c)[0] > 3 * det.score_many(off_n)[0]


def test_only_records_the_encoder_centres_are_measured_against_the_fit():
    assert streammem.MemAE().measures_against_fit
    pixels = streammem.Network(backbone="conv28")
    assert not streammem.MemAE(network=pixels).measures_against_fit  # error alone
    minmax = streammem.FeatureEncoder(scaling="minmax")  # maps to [0, 1]: no centre
    assert not streammem.MemAE(encoder=minmax).measures_against_fit
