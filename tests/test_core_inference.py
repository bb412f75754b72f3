"""The NumPy mirror used by score_one must equal torch's eval-mode forward for every model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streammem.learning.inference import numpy_reconstructor
from streammem.learning.training import make_trainer
from streammem.nn.models import AENet, MemAENet, MemorizerNet, RFTMNet

SMALL = {"hidden_sizes": (12, 10), "latent_size": 6}
CASES = {
    "ae": lambda: AENet((9,), **SMALL),
    "ae-tanh-sigmoid": lambda: AENet((9,), activation="tanh", output_activation="sigmoid", **SMALL),
    "ae-block": lambda: AENet((9,), output_activation="block", **SMALL),
    "memae-cosine": lambda: MemAENet((9,), num_slots=7, **SMALL),
    "memae-dot": lambda: MemAENet((9,), num_slots=7, similarity="dot", **SMALL),
    "memae-nonspar": lambda: MemAENet((9,), num_slots=7, shrink_threshold=0, **SMALL),
    "memorizer": lambda: MemorizerNet((9,), num_slots=5, rounds=3, **SMALL),
    **{
        f"rftm-{d}-{r}": (
            lambda d=d, r=r: RFTMNet(
                (9,), num_slots=5, rounds=2, decomposition=d, reintegration=r, **SMALL
            )
        )
        for d in ("split", "projection")
        for r in ("concat", "sum", "gate", "cascade")
    },
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_mirror_matches_torch(name):
    torch.manual_seed(0)
    model = CASES[name]()
    trainer = make_trainer(model, learning_rate=1e-2)
    data = torch.randn(64, 9) * 2 + 1
    for _ in range(5):  # non-trivial batch-norm statistics and slots
        trainer.step(data)
    model.eval()
    reconstruct = numpy_reconstructor(model)
    assert reconstruct is not None
    probe = torch.randn(7, 9)
    with torch.no_grad():
        expected = model(probe).reconstruction.numpy()
    np.testing.assert_allclose(reconstruct(probe.numpy()), expected, rtol=1e-4, atol=1e-5)


def test_conv_models_are_not_mirrored():
    assert numpy_reconstructor(MemAENet((1, 28, 28), backbone="conv28")) is None


def test_detector_scores_with_numpy_equal_torch_across_chunks(monkeypatch):
    from streammem import MemAE, Network
    from streammem.detectors import base

    det = MemAE(network=Network(hidden_sizes=(12,), latent_size=6), num_slots=7, device="cpu")
    rows = np.random.default_rng(0).normal(size=(80, 5)).astype(np.float32)
    det.learn_many(rows)
    monkeypatch.setattr(base, "_SCORE_CHUNK", 7)  # several chunks and a ragged last one
    many = det.score_many(rows)
    with torch.no_grad():
        scaled = torch.from_numpy(det.encoder_.scale(rows))
        errors = (det.model_(scaled).reconstruction - scaled).double().pow(2).numpy()
    distance = scaled.double().pow(2).numpy()
    weight = base.DISTANCE_WEIGHT
    expected = (errors / det.fit_.error_ + weight * distance).mean(axis=1) / (1 + weight)
    np.testing.assert_allclose(many, expected, rtol=1e-4, atol=1e-7)
    assert many.shape == (80,) and many.dtype == np.float64
