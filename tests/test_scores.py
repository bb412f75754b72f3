"""What a tabular score means: reconstruction error blended with distance from the centre."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import streammem
from streammem.detectors.base import blend_parts, blend_scores

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


def test_blended_parts_are_non_negative_and_add_up_to_the_blended_score():
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(20, 6))
    batch[3] = 0.0  # at the centre: distance 0, score 0, no share anywhere
    error_parts = rng.uniform(0, 1, size=(20, 6)) / 6
    parts = blend_parts(error_parts, batch)
    scores = blend_scores(error_parts.sum(axis=1), batch)
    assert (parts >= 0).all()
    np.testing.assert_allclose(parts.sum(axis=1), scores, rtol=1e-12)
    assert scores[3] == 0.0 and not parts[3].any()
    np.testing.assert_allclose(scores, np.sqrt(error_parts.sum(1) * (batch**2).mean(1)))


def test_only_records_the_encoder_centres_blend_in_their_distance():
    assert streammem.MemAE().blends_distance
    assert not streammem.MemAE(backbone="conv28").blends_distance  # pixels: error alone
    minmax = streammem.FeatureEncoder(scaling="minmax")  # maps to [0, 1]: no centre
    assert not streammem.MemAE(encoder=minmax).blends_distance
