"""Optimisation strategies: how a model's parameters are updated from one mini-batch.

Kept apart from the pure modules (:mod:`streammem.nn`) and from the streaming estimators, which
only call ``trainer.step(batch)``. A model picks its strategy with ``model.make_trainer``; an
adversarial model returns a trainer holding several optimisers.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import torch

from streammem.nn.models import ReconstructionModel

__all__ = ["ReconstructionTrainer", "Trainer", "adam"]


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


class ReconstructionTrainer:
    """Adam on ``reconstruction loss + Σ auxiliary losses``.

    Examples
    --------
    >>> import torch
    >>> from streammem.nn.models import MemAENet
    >>> _ = torch.manual_seed(0)
    >>> net = MemAENet((8,), hidden_sizes=(16,), latent_size=4, num_slots=10)
    >>> trainer = net.make_trainer(learning_rate=1e-2)
    >>> x = torch.randn(32, 8)
    >>> first = trainer.step(x)["loss"]
    >>> for _ in range(50):
    ...     last = trainer.step(x)["loss"]
    >>> last < first
    True
    """

    def __init__(
        self, model: ReconstructionModel, learning_rate: float, weight_decay: float = 0.0
    ) -> None:
        self.model = model
        self.optimizer = adam(model.parameters(), learning_rate, weight_decay)

    def step(self, batch: torch.Tensor) -> dict[str, float]:
        self.model.train()
        output = self.model(batch)
        reconstruction = self.model.reconstruction_loss(batch, output)
        total = reconstruction + sum(output.losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.model.eval()
        losses = {name: float(value.detach()) for name, value in output.losses.items()}
        losses["reconstruction"] = float(reconstruction.detach())
        losses["loss"] = float(total.detach())
        return losses

    def state_dict(self) -> dict[str, Any]:
        # a copy: torch's optimiser state_dict holds the live moment tensors
        return {"optimizer": copy.deepcopy(self.optimizer.state_dict())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
