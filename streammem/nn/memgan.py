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
cycle + projection + MI. One :class:`MemGANTrainer` step updates D, then E, G and M from one shared
forward pass (Algorithm 1 recomputes between the E, G and M updates; we do not).

The network layouts are our choice (the paper's supplement with them was not found): DCGAN-style
convolutions for 1x28x28 and 3x32x32 inputs, width ``width``, inputs in [-1, 1] (G ends in tanh).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from streammem.nn.models import ModelOutput, ReconstructionModel

__all__ = ["MemGANNet", "MemGANTrainer"]


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

    @torch.no_grad()
    def decode_memory(self) -> torch.Tensor:
        """``G(m_i)`` for every memory unit: what the memory holds, (n, *input_shape)."""
        return self.generator(self.memory)

    def make_trainer(
        self, learning_rate: float, weight_decay: float = 0.0, trim: float = 0.0
    ) -> MemGANTrainer:
        """Four Adam optimisers (D, E, G, M) as in Algorithm 1 (no trimming: an adversarial
        loss has no per-record error to trim)."""
        if trim:
            raise ValueError("MEMGAN's adversarial training cannot trim records (use trim=0)")
        return MemGANTrainer(self, learning_rate, weight_decay)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class MemGANTrainer:
    """Algorithm 1 of MEMGAN: one D update, then E, G and M updates, per mini-batch.

    Implements the :class:`streammem.training.Trainer` protocol; ``step`` returns every loss as
    a float, ``"loss"`` being the E/G/M objective (adversarial + cycle + projection + MI).

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = MemGANNet((1, 28, 28), num_units=5, unit_dim=8, width=4)
    >>> trainer = net.make_trainer(learning_rate=1e-3)
    >>> sorted(trainer.step(torch.rand(8, 1, 28, 28) * 2 - 1))
    ['adversarial', 'cycle', 'discriminator', 'loss', 'mutual_information', 'projection']
    """

    def __init__(self, model: MemGANNet, learning_rate: float, weight_decay: float = 0.0) -> None:
        self.model = model

        def adam(params: Any) -> torch.optim.Adam:
            return torch.optim.Adam(
                params, lr=learning_rate, betas=(0.5, 0.999), weight_decay=weight_decay
            )

        self.optimizers = {
            "discriminator": adam(model.discriminator.parameters()),
            "encoder": adam(model.encoder.parameters()),
            "generator": adam(model.generator.parameters()),
            "memory": adam([model.memory]),
        }

    def _discriminator_step(self, x: torch.Tensor) -> float:
        model = self.model
        with torch.no_grad():
            z_real = model.encoder(x)
            _, z_fake = model.sample_prior(len(x))
            x_fake = model.generator(z_fake)
        loss = _bce(model.discriminator(x, z_real), 1.0) + _bce(
            model.discriminator(x_fake, z_fake), 0.0
        )
        optimizer = self.optimizers["discriminator"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def _losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        model = self.model
        z = model.encoder(x)
        projected = model.project(z)
        alpha, z_fake = model.sample_prior(len(x))
        x_fake = model.generator(z_fake)
        alpha_back = model.address(model.encoder(x_fake))
        return {
            # non-saturating: E wants (x, E(x)) judged fake, G wants (G(z), z) judged real
            "adversarial": _bce(model.discriminator(x, z), 0.0)
            + _bce(model.discriminator(x_fake, z_fake), 1.0),
            "cycle": (x - model.generator(projected)).flatten(1).norm(dim=1).mean(),
            "projection": (z - projected).norm(dim=1).mean(),
            "mutual_information": -(alpha * torch.log(alpha_back + 1e-12)).sum(1).mean(),
        }

    def step(self, batch: torch.Tensor) -> dict[str, float]:
        """One Algorithm-1 iteration on ``batch`` (inputs in [-1, 1])."""
        model = self.model
        model.train()
        d_loss = self._discriminator_step(batch)
        losses = self._losses(batch)
        memory_loss = losses["cycle"] + losses["projection"] + losses["mutual_information"]
        (memory_grad,) = torch.autograd.grad(memory_loss, [model.memory], retain_graph=True)
        total = memory_loss + losses["adversarial"]
        for name in ("encoder", "generator", "memory"):
            self.optimizers[name].zero_grad(set_to_none=True)
        # E's and G's own objectives are the total restricted to their parameters: the terms
        # they do not appear in contribute no gradient. M takes only cycle + projection + MI.
        total.backward()
        model.memory.grad = memory_grad
        for name in ("encoder", "generator", "memory"):
            self.optimizers[name].step()
        model.eval()
        out = {name: float(value.detach()) for name, value in losses.items()}
        out["discriminator"] = d_loss
        out["loss"] = float(total.detach())
        return out

    def state_dict(self) -> dict[str, Any]:
        """A copy of the four optimisers' states (tensors and plain values)."""
        return {name: copy.deepcopy(opt.state_dict()) for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])
