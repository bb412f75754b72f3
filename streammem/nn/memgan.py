"""MEMGAN (Yang, Zhang, Bozchalooi & Darve, arXiv 2002.02669): a bidirectional GAN with a memory.

An encoder E: x → z, a generator G: z → x and a joint discriminator D(x, z) are trained as in
ALI/BiGAN, except that the prior is the convex hull of a learned memory M (n units x d): a prior
sample is ``z = Mᵀ softmax(r)`` with random logits ``r ~ N(0, I)``. Encodings are projected onto
the memory, ``P(z) = Mᵀ softmax(M z)`` (Eq. 5), and the anomaly score is the cycle error
``A(x) = ‖x − G(P(E(x)))‖₂`` (Eq. 8).

Losses (Algorithm 1, unweighted): adversarial (Eq. 3, non-saturating for E and G), cycle
``‖x − G(P(E(x)))‖₂`` (Eq. 4), projection ``‖E(x) − P(E(x))‖₂`` (Eq. 6) and mutual information
``−Σ α log α'`` with ``α' = softmax(M E(G(Mᵀα)))`` (Eq. 7). D minimises the adversarial loss; E
minimises its adversarial term + cycle + projection + MI; G its adversarial term + cycle + MI; M
cycle + projection + MI. One :class:`~streammem.learning.training.MemGANTrainer` step updates D,
then E, G and M from one shared forward pass (Algorithm 1 recomputes between the E, G and M
updates; we do not).

The network layouts are our choice (the paper's supplement with them was not found): DCGAN-style
convolutions for 1x28x28 and 3x32x32 inputs, width ``width``, inputs in [-1, 1] (G ends in tanh).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from streammem.nn.models import ModelOutput, ReconstructionModel

__all__ = ["MemGANNet"]


def _encoder_convs(channels: int, size: int, width: int) -> nn.Sequential:
    """size → size/2 → size/4 → 4 (28: 14, 7, 4; 32: 16, 8, 4)."""
    last_kernel = 3 if size == 28 else 4
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1),
        nn.BatchNorm2d(2 * width),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, last_kernel, 2, 1),
        nn.BatchNorm2d(4 * width),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
    )


def _generator_convs(channels: int, size: int, width: int) -> nn.Sequential:
    """4 → 7 → 14 → 28 (or 4 → 8 → 16 → 32), tanh output."""
    first_kernel = 3 if size == 28 else 4
    return nn.Sequential(
        nn.ConvTranspose2d(4 * width, 2 * width, first_kernel, 2, 1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.ConvTranspose2d(width, channels, 4, 2, 1),
        nn.Tanh(),
    )


class _Discriminator(nn.Module):
    """D(x, z): an x branch (convs) and a z branch (linear) joined by a small MLP → logit."""

    def __init__(self, channels: int, size: int, dim: int, width: int) -> None:
        super().__init__()
        features = 4 * width * 16
        self.x_branch = nn.Sequential(
            _encoder_convs(channels, size, width), nn.Dropout(0.2), nn.Linear(features, 256)
        )
        self.z_branch = nn.Sequential(nn.Linear(dim, 256), nn.LeakyReLU(0.2), nn.Dropout(0.2))
        self.joint = nn.Sequential(
            nn.LeakyReLU(0.2),
            nn.Linear(512, 256),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.5),
            nn.Linear(256, 1),
        )

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([self.x_branch(x), self.z_branch(z)], dim=1)
        return self.joint(joined).squeeze(1)


class MemGANNet(ReconstructionModel):
    """MEMGAN's encoder, generator, discriminator and memory (see the module docstring).

    Parameters
    ----------
    input_shape
        (C, 28, 28) or (C, 32, 32); inputs are expected in [-1, 1].
    num_units
        n, the memory units (50 for MNIST, 100 for CIFAR-10 in the paper).
    unit_dim
        d, the latent width (64 for MNIST, 256 for CIFAR-10 in the paper).
    width
        Channels of the first conv layer (doubled twice).

    Examples
    --------
    >>> import torch
    >>> net = MemGANNet((1, 28, 28), num_units=5, unit_dim=8, width=4)
    >>> x = torch.rand(3, 1, 28, 28) * 2 - 1
    >>> net(x).reconstruction.shape, net.anomaly_score(x).shape
    (torch.Size([3, 1, 28, 28]), torch.Size([3]))
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_units: int = 50,
        unit_dim: int = 64,
        width: int = 32,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        if len(self.input_shape) != 3 or self.input_shape[1:] not in ((28, 28), (32, 32)):
            raise ValueError(f"MemGANNet needs (C, 28, 28) or (C, 32, 32), got {input_shape}")
        channels, size = self.input_shape[0], self.input_shape[1]
        features = 4 * width * 16
        self.encoder = nn.Sequential(
            _encoder_convs(channels, size, width), nn.Linear(features, unit_dim)
        )
        self.generator = nn.Sequential(
            nn.Linear(unit_dim, features),
            nn.Unflatten(1, (4 * width, 4, 4)),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(),
            _generator_convs(channels, size, width),
        )
        self.discriminator = _Discriminator(channels, size, unit_dim, width)
        self.memory = nn.Parameter(torch.randn(num_units, unit_dim) / math.sqrt(unit_dim))

    def address(self, z: torch.Tensor) -> torch.Tensor:
        """Projection weights ``softmax(M z)``, shape (B, n)."""
        return torch.softmax(z @ self.memory.T, dim=1)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """``P(z) = Mᵀ softmax(M z)`` (Eq. 5)."""
        return self.address(z) @ self.memory

    def sample_prior(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(α, z = Mᵀα)`` with ``α = softmax(r)``, ``r ~ N(0, I)``."""
        alpha = torch.softmax(torch.randn(n, self.memory.shape[0], device=self.memory.device), 1)
        return alpha, alpha @ self.memory

    def forward(self, x: torch.Tensor) -> ModelOutput:
        weights = self.address(self.encoder(x))
        return ModelOutput(self.generator(weights @ self.memory), memory_weights=weights)

    @torch.no_grad()
    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """``‖x − G(P(E(x)))‖₂`` per sample (Eq. 8), shape (B,)."""
        return (x - self(x).reconstruction).flatten(1).norm(dim=1)

    @staticmethod
    def score_parts(x: torch.Tensor, output: ModelOutput) -> torch.Tensor:
        """Each pixel's share of ``‖x − G(P(E(x)))‖₂``, shape of ``x``: its squared error over
        the sample's norm (0 where the norm is 0), so a sample's shares add up to its score."""
        squared = (x - output.reconstruction).pow(2)
        norm = squared.flatten(1).sum(dim=1).sqrt().clamp_min(torch.finfo(x.dtype).tiny)
        return squared / norm.view(-1, *[1] * (x.dim() - 1))

    @torch.no_grad()
    def decode_memory(self) -> torch.Tensor:
        """``G(m_i)`` for every memory unit: what the memory holds, (n, *input_shape)."""
        return self.generator(self.memory)
