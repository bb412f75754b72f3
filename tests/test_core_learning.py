"""Learning: one pass over a normal stream is enough to separate off-manifold anomalies."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import streammem


def manifold_stream(n: int, rng: np.random.Generator, anomalous: bool = False) -> np.ndarray:
    """Four clusters, each a 2-D plane in 12-D; anomalies are pushed off their plane."""
    dims, clusters = 12, 4
    layout = np.random.default_rng(7)  # same clusters for every call
    centers = layout.normal(0, 3, size=(clusters, dims))
    planes = np.stack([np.linalg.qr(layout.normal(size=(dims, 2)))[0] for _ in range(clusters)])
    k = rng.integers(clusters, size=n)
    points = centers[k] + np.einsum("nij,nj->ni", planes[k], rng.normal(size=(n, 2)))
    points += rng.normal(0, 0.05, size=points.shape)
    if anomalous:
        push = rng.normal(size=points.shape)
        points += 3.0 * push / np.linalg.norm(push, axis=1, keepdims=True)
    return points


@pytest.mark.parametrize("name", ["AE", "MemAE", "Memorizer", "RFTM"])
def test_one_pass_separates_off_manifold_anomalies(name):
    rng = np.random.default_rng(0)
    det = getattr(streammem, name)(device="cpu")
    det.learn_many(manifold_stream(6000, rng))  # a single pass with the default schedule
    normal, anomalies = manifold_stream(400, rng), manifold_stream(400, rng, anomalous=True)
    scores = det.score_many(np.vstack([normal, anomalies]))
    labels = np.r_[np.zeros(400), np.ones(400)]
    # 0.90 to 0.92 over the four models (0.95 to 0.98 on the reconstruction error alone): the
    # defaults (robust scaling, a trimmed loss, a score that blends in the distance from the
    # centre, which these anomalies do not change) give up a little on clean, purely
    # off-manifold data for what they gain on real streams (bench.stream)
    assert roc_auc_score(labels, scores) >= 0.88
