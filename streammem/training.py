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

__all__ = ["ReconstructionTrainer", "Trainer", "adam", "preload_optimizer"]

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
    >>> trainer = net.make_trainer(learning_rate=1e-2)
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
