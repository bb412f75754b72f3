"""The detectors inside River: pipelines, filters and progressive validation."""

from __future__ import annotations

import math
import random

from river import anomaly, evaluate, metrics, preprocessing

import streammem


def stream(n: int, seed: int = 0):
    rng = random.Random(seed)
    for i in range(n):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        is_anomaly = i % 50 == 49
        c = a + b + (rng.choice([-6, 6]) if is_anomaly else rng.gauss(0, 0.05))
        yield {"a": a, "b": b, "c": c}, is_anomaly


def test_in_a_pipeline_with_a_river_scaler():
    model = preprocessing.StandardScaler() | streammem.MemAE(device="cpu")
    scores = []
    for x, _ in stream(1500):
        scores.append(model.score_one(x))
        model.learn_one(x)
    assert all(math.isfinite(s) for s in scores)
    assert model["MemAE"].n_seen_ + len(model["MemAE"].pending_) == 1500
    assert model["MemAE"].n_updates_ > 0


def test_quantile_filter_flags_the_anomalies():
    # 2% anomalies, q=0.98: scores are meaningful from the first events, so River's running
    # quantile is no longer diluted by a block of untrained zeros (it needed q=0.95 then).
    det = anomaly.QuantileFilter(streammem.MemAE(device="cpu"), q=0.98)
    flagged = []
    for i, (x, is_anomaly) in enumerate(stream(3000)):
        score = det.score_one(x)
        if i > 1500:
            flagged.append((det.classify(score), is_anomaly))
        det.learn_one(x)
    hits = sum(1 for f, a in flagged if f and a)
    anomalies = sum(1 for _, a in flagged if a)
    alerts = sum(1 for f, _ in flagged if f)
    # recall 26 of 30 and precision 0.81 at the default seed
    assert hits >= 0.8 * anomalies
    assert hits >= 0.6 * alerts


def test_progressive_val_score():
    # The metric includes the cold start (the first score is 0.0).
    result = evaluate.progressive_val_score(
        dataset=stream(3000),
        model=streammem.Memorizer(device="cpu"),
        metric=metrics.ROCAUC(),
    )
    assert result.get() > 0.8
