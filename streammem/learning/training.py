"""Optimisation strategies: how a model's parameters are updated from one mini-batch.

Kept apart from the pure modules (:mod:`streammem.nn`), which know nothing of how they are
trained, and from the streaming estimators, which only call ``trainer.step(batch)``.
:func:`make_trainer` picks a model's strategy: one Adam on its summed losses, or, for an
adversarial model, a trainer holding several optimisers (:class:`MemGANTrainer`).
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from streammem.nn.memgan import MemGANNet
from streammem.nn.models import ReconstructionModel

__all__ = [
    "MemGANTrainer",
    "ReconstructionTrainer",
    "Trainer",
    "adam",
    "make_trainer",
    "preload_optimizer",
]

_TUKEY = 1.5


def preload_optimizer() -> None:
    """Import what torch's optimisers load on their first use.

    ``torch.optim.Optimizer`` wraps its methods in ``torch._disable_dynamo``, which imports
    ``torch._dynamo`` (and sympy with it) the first time one is called: about 1.5 s here, paid
    by the first detector of a process when it builds its optimiser. A service calls this while
    it waits for its broker instead.
    """
    import torch._dynamo  # noqa: F401


def adam(params, learning_rate: float, weight_decay: float = 0.0, **kwargs) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for the parameters' device, else foreach.

    Small models are dominated by per-tensor overhead: fused took a step from 3.9 to 1.5 ms
    (batch 64, 1 thread) here.
    """
    params = list(params)
    try:
        return torch.optim.Adam(
            params, lr=learning_rate, weight_decay=weight_decay, fused=True, **kwargs
        )
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(
            params, lr=learning_rate, weight_decay=weight_decay, foreach=True, **kwargs
        )


class Trainer(Protocol):
    """One gradient update per ``step``; returns the losses as floats (``"loss"`` = the total)."""

    def step(self, batch: torch.Tensor) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@functools.singledispatch
def make_trainer(
    model: ReconstructionModel, learning_rate: float, weight_decay: float = 0.0, trim: float = 0.0
) -> Trainer:
    """The optimisation strategy for ``model``: one Adam on its summed losses (``trim``: see
    :class:`ReconstructionTrainer`), unless its class registers its own."""
    return ReconstructionTrainer(model, learning_rate, weight_decay, trim)


@make_trainer.register(MemGANNet)
def _adversarial(
    model: MemGANNet, learning_rate: float, weight_decay: float = 0.0, trim: float = 0.0
) -> Trainer:
    """Four Adam optimisers (D, E, G, M) as in Algorithm 1 (no trimming: an adversarial loss
    has no per-record error to trim)."""
    if trim:
        raise ValueError("MEMGAN's adversarial training cannot trim records (use trim=0)")
    return MemGANTrainer(model, learning_rate, weight_decay)


class ReconstructionTrainer:
    """Adam on ``reconstruction loss + Σ auxiliary losses``.

    ``trim`` drops up to that fraction of each mini-batch from the reconstruction loss: the
    records rebuilt worst, if their error is an outlier in the batch (above Tukey's fence,
    q3 + 1.5 IQR). On a stream nobody has cleaned those are the likeliest anomalies, and a
    model that trains on them learns to rebuild them; on clean data few pass the fence, so the
    tails of normal data are still learned.

    Examples
    --------
    >>> import torch
    >>> from streammem.nn.models import MemAENet
    >>> _ = torch.manual_seed(0)
    >>> net = MemAENet((8,), hidden_sizes=(16,), latent_size=4, num_slots=10)
    >>> trainer = make_trainer(net, learning_rate=1e-2)
    >>> x = torch.randn(32, 8)
    >>> first = trainer.step(x)["loss"]
    >>> for _ in range(50):
    ...     last = trainer.step(x)["loss"]
    >>> last < first
    True
    """

    def __init__(
        self,
        model: ReconstructionModel,
        learning_rate: float,
        weight_decay: float = 0.0,
        trim: float = 0.0,
    ) -> None:
        if not 0.0 <= trim < 1.0:
            raise ValueError(f"trim must be in [0, 1), got {trim}")
        self.model = model
        self.trim = trim
        self.optimizer = adam(model.parameters(), learning_rate, weight_decay)

    def step(self, batch: torch.Tensor) -> dict[str, float]:
        self.model.train()
        output = self.model(batch)
        reconstruction = self._reconstruction(batch, output)
        total = reconstruction + sum(output.losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.model.eval()
        losses = {name: float(value.detach()) for name, value in output.losses.items()}
        losses["reconstruction"] = float(reconstruction.detach())
        losses["loss"] = float(total.detach())
        return losses

    def _reconstruction(self, batch: torch.Tensor, output: Any) -> torch.Tensor:
        if self.trim == 0.0:
            return self.model.reconstruction_loss(batch, output)
        errors = self.model.sample_errors(batch, output)
        return errors[self._kept(errors.detach())].mean()

    def _kept(self, errors: torch.Tensor) -> torch.Tensor:
        """Records to learn from: all but the worst ``trim`` of the batch, and of those only
        the ones beyond Tukey's fence (q3 + 1.5 IQR), so clean data loses no tail."""
        dropped = int(len(errors) * self.trim)
        keep = torch.ones_like(errors, dtype=torch.bool)
        if dropped == 0:
            return keep
        q1, q3 = torch.quantile(errors, torch.tensor([0.25, 0.75], dtype=errors.dtype))
        worst = errors.topk(dropped).indices
        keep[worst] = errors[worst] <= q3 + _TUKEY * (q3 - q1)
        return keep

    def state_dict(self) -> dict[str, Any]:
        # a copy: torch's optimiser state_dict holds the live moment tensors
        return {"optimizer": copy.deepcopy(self.optimizer.state_dict())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class MemGANTrainer:
    """Algorithm 1 of MEMGAN: one D update, then E, G and M updates, per mini-batch.

    Implements the :class:`Trainer` protocol; ``step`` returns every loss as a float, ``"loss"``
    being the E/G/M objective (adversarial + cycle + projection + MI).

    Examples
    --------
    >>> import torch
    >>> from streammem.nn.memgan import MemGANNet
    >>> _ = torch.manual_seed(0)
    >>> net = MemGANNet((1, 28, 28), num_units=5, unit_dim=8, width=4)
    >>> trainer = make_trainer(net, learning_rate=1e-3)
    >>> sorted(trainer.step(torch.rand(8, 1, 28, 28) * 2 - 1))
    ['adversarial', 'cycle', 'discriminator', 'loss', 'mutual_information', 'projection']
    """

    def __init__(self, model: MemGANNet, learning_rate: float, weight_decay: float = 0.0) -> None:
        self.model = model

        def optimizer(params: Any) -> torch.optim.Adam:
            return torch.optim.Adam(
                params, lr=learning_rate, betas=(0.5, 0.999), weight_decay=weight_decay
            )

        self.optimizers = {
            "discriminator": optimizer(model.discriminator.parameters()),
            "encoder": optimizer(model.encoder.parameters()),
            "generator": optimizer(model.generator.parameters()),
            "memory": optimizer([model.memory]),
        }

    def discriminator_step(self, x: torch.Tensor) -> float:
        """Update D on real pairs (x, E(x)) against generated ones (G(z), z); its loss."""
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

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """E's, G's and M's loss terms on ``x``, with their graphs (Eqs. 3, 4, 6 and 7)."""
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
        d_loss = self.discriminator_step(batch)
        losses = self.losses(batch)
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
