"""Reconstruction models built from a backbone and (optionally) a memory.

Each model is a pure ``nn.Module``: ``forward(x)`` returns a :class:`ModelOutput` with the
reconstruction and the model's own auxiliary losses (already weighted); ``anomaly_score(x)`` is the
per-sample reconstruction error. How a model is optimised lives in
:mod:`streammem.learning.training` (:func:`~streammem.learning.training.make_trainer` picks a
model's strategy); nothing here knows of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from streammem.nn.backbones import Backbone, build_backbone
from streammem.nn.memory import MemAEMemory, MemorizerMemory, TrustRegion, TwinMemory

__all__ = [
    "AENet",
    "AutoEncoderNet",
    "MemAENet",
    "MemorizerNet",
    "ModelOutput",
    "RFTMNet",
    "ReconstructionModel",
]


@dataclass
class ModelOutput:
    """A forward pass: reconstruction (input's shape), weighted auxiliary losses, memory weights."""

    reconstruction: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    memory_weights: torch.Tensor | None = None


class ReconstructionModel(nn.Module):
    """Base class: a model whose anomaly score is a per-sample reconstruction error."""

    input_shape: tuple[int, ...]

    def forward(self, x: torch.Tensor) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def reconstruction_loss(self, x: torch.Tensor, output: ModelOutput) -> torch.Tensor:
        """Mean squared error over all elements (the authors' ``nn.MSELoss``)."""
        return F.mse_loss(output.reconstruction, x)

    @staticmethod
    def sample_errors(x: torch.Tensor, output: ModelOutput) -> torch.Tensor:
        """Per-sample mean squared reconstruction error, shape (B,)."""
        return (output.reconstruction - x).pow(2).flatten(1).mean(dim=1)

    @torch.no_grad()
    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample mean squared reconstruction error, shape (B,). Higher = more anomalous."""
        return self.sample_errors(x, self(x))

    @staticmethod
    def score_parts(x: torch.Tensor, output: ModelOutput) -> torch.Tensor:
        """Each input element's share of :meth:`anomaly_score`, shape of ``x``: its squared
        error over the number of elements, so a sample's shares add up to its score."""
        return (output.reconstruction - x).pow(2) / math.prod(x.shape[1:])


class AutoEncoderNet(ReconstructionModel):
    """Encoder → (memory) → decoder.

    Parameters
    ----------
    backbone
        Encoder, decoder and latent shape (see :mod:`streammem.nn.backbones`).
    input_shape
        Shape of one input without the batch dim; MLP backbones see it flattened.
    memory
        A memory module returning :class:`~streammem.nn.memory.MemoryReadout`, or ``None``.
    per_position
        For a conv latent (C, H, W): ``True`` queries the memory once per position with C-dim
        vectors, ``False`` with the whole flattened latent.
    radius_quantile
        With a memory: codes pass a :class:`~streammem.nn.memory.TrustRegion` of this
        quantile of normal codes' distance to their read; ``None``: the papers' read alone.

    Examples
    --------
    >>> import torch
    >>> from streammem.nn.backbones import mlp_backbone
    >>> net = AutoEncoderNet(mlp_backbone(6, (8,), 4), (6,))
    >>> net.anomaly_score(torch.randn(3, 6)).shape
    torch.Size([3])
    """

    def __init__(
        self,
        backbone: Backbone,
        input_shape: Sequence[int],
        memory: nn.Module | None = None,
        per_position: bool = False,
        radius_quantile: float | None = None,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.encoder = backbone.encoder
        self.decoder = backbone.decoder
        self.latent_shape = backbone.latent_shape
        self.memory = memory
        self.per_position = per_position
        use_trust = memory is not None and radius_quantile is not None
        self.trust = TrustRegion(radius_quantile) if use_trust else None
        self.flat_input = isinstance(backbone.encoder[0], nn.Linear)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1) if self.flat_input else x)

    def decode(self, z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).reshape(like.shape)

    @torch.no_grad()
    def initialize_memory(self, x: torch.Tensor) -> None:
        """Seed the memory's slots with the encodings of real inputs ``x`` (no-op without a
        memory): random slots can sit far from every encoding, where no read reaches them."""
        if self.memory is None or not hasattr(self.memory, "initialize_from"):
            return
        z = self.encode(x)
        query = z if (self.per_position or z.dim() == 2) else z.flatten(1)
        self.memory.initialize_from(query)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        z = self.encode(x)
        if self.memory is None:
            return ModelOutput(self.decode(z, x))
        query = z if (self.per_position or z.dim() == 2) else z.flatten(1)
        # Inside a trust region the memory reads a copy of the code that carries no gradient:
        # its slots and addressing learn from the codes, and cannot bend the encoder's.
        readout = self.memory(query if self.trust is None else query.detach())
        read, losses = readout.output, readout.losses
        if self.trust is not None:
            read, pull = self.trust(query, read)
            losses = {**losses, **pull}
        z_hat = read.reshape(z.shape)
        return ModelOutput(self.decode(z_hat, x), losses, readout.weights)


def _latent_width(backbone: Backbone, per_position: bool) -> int:
    return backbone.latent_shape[0] if per_position else math.prod(backbone.latent_shape)


def _backbone(input_shape: Sequence[int], backbone: str, **kwargs) -> Backbone:
    return build_backbone(backbone, tuple(input_shape), **kwargs)


class MemAENet(AutoEncoderNet):
    """MemAE: memory with hard shrinkage and an entropy loss between encoder and decoder.

    ``shrink_threshold=0`` gives MemAE-nonSpar. See :class:`~streammem.nn.memory.MemAEMemory`.

    Examples
    --------
    >>> import torch
    >>> net = MemAENet((1, 28, 28), backbone="conv28", num_slots=100)
    >>> out = net(torch.rand(2, 1, 28, 28))
    >>> out.reconstruction.shape, sorted(out.losses)
    (torch.Size([2, 1, 28, 28]), ['entropy'])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        backbone: str = "mlp",
        num_slots: int = 100,
        shrink_threshold: float | None = None,
        similarity: str = "cosine",
        entropy_weight: float = 0.0002,
        per_position: bool = False,
        temperature: float = 1.0,
        radius_quantile: float | None = None,
        **backbone_kwargs,
    ) -> None:
        bb = _backbone(input_shape, backbone, **backbone_kwargs)
        memory = MemAEMemory(
            num_slots,
            _latent_width(bb, per_position),
            shrink_threshold,
            similarity,
            entropy_weight,
            temperature,
        )
        super().__init__(bb, input_shape, memory, per_position, radius_quantile)


class MemorizerNet(AutoEncoderNet):
    """Memorizer: multi-round shared-mapping memory on the bottleneck (no extra loss)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        backbone: str = "mlp",
        num_slots: int = 10,
        rounds: int = 8,
        radius_quantile: float | None = None,
        **backbone_kwargs,
    ) -> None:
        bb = _backbone(input_shape, backbone, **backbone_kwargs)
        memory = MemorizerMemory(num_slots, _latent_width(bb, False), rounds)
        super().__init__(bb, input_shape, memory, radius_quantile=radius_quantile)


class RFTMNet(AutoEncoderNet):
    """Our reconstruction of RFTM: twin memories with random forgetting (see TwinMemory)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        backbone: str = "mlp",
        num_slots: int = 10,
        rounds: int = 1,
        forget: float = 0.25,
        decomposition: str = "split",
        reintegration: str = "concat",
        radius_quantile: float | None = None,
        **backbone_kwargs,
    ) -> None:
        bb = _backbone(input_shape, backbone, **backbone_kwargs)
        memory = TwinMemory(
            num_slots, _latent_width(bb, False), rounds, forget, decomposition, reintegration
        )
        super().__init__(bb, input_shape, memory, radius_quantile=radius_quantile)


class AENet(AutoEncoderNet):
    """The memory-less autoencoder on the same backbone (the over-generalising baseline)."""

    def __init__(
        self, input_shape: Sequence[int], backbone: str = "mlp", **backbone_kwargs
    ) -> None:
        super().__init__(_backbone(input_shape, backbone, **backbone_kwargs), input_shape)
