"""The Memorizer paper's baselines on the shared backbone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streammem.learning.training import make_trainer
from streammem.nn.baselines import (
    DenoisingAENet,
    MNADNet,
    SparseAENet,
    SSPCABBlock,
    SSPCABNet,
    VAENet,
)

SHAPE = (1, 28, 28)
SMALL = {"hidden_sizes": (32,), "latent_size": 16}


def batch(n: int = 16) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(n, *SHAPE)


@pytest.mark.parametrize(
    ("cls", "loss_names"),
    [
        (SparseAENet, {"sparsity"}),
        (DenoisingAENet, set()),
        (VAENet, {"kl"}),
        (MNADNet, {"compactness", "separateness"}),
        (SSPCABNet, {"sspcab"}),
    ],
)
def test_each_baseline_reconstructs_and_learns(cls, loss_names):
    torch.manual_seed(0)
    net = cls(SHAPE, **SMALL)
    out = net(batch())
    assert out.reconstruction.shape == (16, *SHAPE)
    assert set(out.losses) == loss_names
    trainer = make_trainer(net, learning_rate=3e-3)
    x = batch()
    first = trainer.step(x)["reconstruction"]
    for _ in range(40):
        last = trainer.step(x)["reconstruction"]
    assert last < first
    assert net.anomaly_score(x).shape == (16,)


def test_denoising_adds_noise_only_in_training():
    torch.manual_seed(0)
    net = DenoisingAENet(SHAPE, noise_std=0.5, **SMALL).eval()
    x = batch(4)
    torch.testing.assert_close(net(x).reconstruction, net(x).reconstruction)
    net.train()
    assert not torch.allclose(net(x).reconstruction, net(x).reconstruction)


def test_vae_scores_with_the_mean_and_penalises_kl():
    torch.manual_seed(0)
    net = VAENet(SHAPE, **SMALL).eval()
    x = batch(4)
    torch.testing.assert_close(net.anomaly_score(x), net.anomaly_score(x))
    assert float(net(x).losses["kl"].detach()) >= 0


def test_mnad_items_move_only_in_training_and_stay_unit_norm():
    torch.manual_seed(0)
    net = MNADNet(SHAPE, num_items=4, **SMALL)
    before = net.items.clone()
    net.eval()(batch())
    torch.testing.assert_close(net.items, before)
    net.train()(batch())
    assert not torch.allclose(net.items, before)
    torch.testing.assert_close(net.items.norm(dim=1), torch.ones(4))
    assert not net.items.requires_grad


class Ones(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x)


def test_sspcab_masks_the_centre_of_its_receptive_field():
    torch.manual_seed(0)
    block = SSPCABBlock(channels=8)
    block.excite = Ones()  # look at the masked convolution alone
    x = torch.zeros(1, 8, 5, 5)
    centre = x.clone()
    centre[0, :, 2, 2] = 5.0
    out_zero, out_centre = block(x), block(centre)
    # the centre pixel's own output ignores its value (only its corners are read)
    torch.testing.assert_close(out_zero[0, :, 2, 2], out_centre[0, :, 2, 2])
    assert out_centre[0, :, 0, 0].abs().sum() > 0  # a corner of the centre's window sees it
    assert block(torch.randn(2, 8, 4, 4)).shape == (2, 8, 4, 4)


def test_sspcab_needs_a_width_divisible_by_16():
    with pytest.raises(ValueError, match="divisible by 16"):
        SSPCABNet(SHAPE, hidden_sizes=(32,), latent_size=20)
