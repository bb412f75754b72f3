"""The Memorizer paper's baselines on the shared backbone: SAE, DAE, VAE, MNAD and SSPCAB.

Each is a :class:`~streammem.nn.models.ReconstructionModel` whose auxiliary losses (already
weighted) come back in :attr:`ModelOutput.losses`, so the plain
:class:`~streammem.learning.training.ReconstructionTrainer` trains them. The Memorizer paper
gives none of their hyper-parameters; the defaults below are ours (``research/papers.md`` §2, §6).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from streammem.nn.models import AutoEncoderNet, ModelOutput, _backbone, _latent_width

__all__ = ["DenoisingAENet", "MNADNet", "SSPCABBlock", "SSPCABNet", "SparseAENet", "VAENet"]


class SparseAENet(AutoEncoderNet):
    """Sparse AE (Ng, 2011): the AE plus an L1 penalty on the bottleneck activations.

    Examples
    --------
    >>> import torch
    >>> net = SparseAENet((6,), hidden_sizes=(8,), latent_size=4)
    >>> sorted(net(torch.randn(3, 6)).losses)
    ['sparsity']
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        backbone: str = "mlp",
        sparsity_weight: float = 1e-3,
        **backbone_kwargs,
    ) -> None:
        super().__init__(_backbone(input_shape, backbone, **backbone_kwargs), input_shape)
        self.sparsity_weight = sparsity_weight

    def forward(self, x: torch.Tensor) -> ModelOutput:
        z = self.encode(x)
        losses = {"sparsity": self.sparsity_weight * z.abs().mean()}
        return ModelOutput(self.decode(z, x), losses)


class DenoisingAENet(AutoEncoderNet):
    """Denoising AE (Vincent et al., 2008): reconstruct the clean input from a noisy one.

    Gaussian noise of standard deviation ``noise_std`` is added in training mode only; scoring
    (eval mode) sees the clean input.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        backbone: str = "mlp",
        noise_std: float = 0.1,
        **backbone_kwargs,
    ) -> None:
        super().__init__(_backbone(input_shape, backbone, **backbone_kwargs), input_shape)
        self.noise_std = noise_std

    def forward(self, x: torch.Tensor) -> ModelOutput:
        noisy = x + self.noise_std * torch.randn_like(x) if self.training else x
        return ModelOutput(self.decode(self.encode(noisy), x))


class VAENet(AutoEncoderNet):
    """Variational AE (Kingma & Welling, 2013) on the backbone's bottleneck.

    Two linear heads map the bottleneck to ``(μ, log σ²)``; training decodes ``z = μ + σ ε``,
    scoring decodes ``μ``. The KL term is divided by the number of input values so that it is on
    the scale of the per-element MSE (the ELBO up to a constant factor), times ``kl_weight``.

    Examples
    --------
    >>> import torch
    >>> net = VAENet((6,), hidden_sizes=(8,), latent_size=4)
    >>> sorted(net(torch.randn(3, 6)).losses)
    ['kl']
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        backbone: str = "mlp",
        kl_weight: float = 1.0,
        **backbone_kwargs,
    ) -> None:
        bb = _backbone(input_shape, backbone, **backbone_kwargs)
        super().__init__(bb, input_shape)
        width = _latent_width(bb, False)
        self.mean_head = nn.Linear(width, width)
        self.logvar_head = nn.Linear(width, width)
        self.kl_weight = kl_weight
        self._n_values = math.prod(self.input_shape)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.encode(x).flatten(1)
        mean, logvar = self.mean_head(h), self.logvar_head(h).clamp(-10, 10)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if self.training else mean
        kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(dim=1).mean()
        losses = {"kl": self.kl_weight * kl / self._n_values}
        return ModelOutput(self.decode(z.reshape(-1, *self.latent_shape), x), losses)


class MNADNet(AutoEncoderNet):
    """MNAD (Park et al., CVPR 2020) on a vector bottleneck.

    The L2-normalised query ``q`` reads ``p̂ = softmax(q Mᵀ) M`` from ``num_items`` memory items
    that are not trained by gradient but updated after each training forward pass (each item moves
    towards the queries whose nearest item it is, weighted by the softmax over queries, then is
    re-normalised). The decoder sees ``concat(q, p̂)``. Losses: compactness
    ``‖q − p_nearest‖²`` and separateness (triplet margin 1 with the second nearest item).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        backbone: str = "mlp",
        num_items: int = 10,
        compactness_weight: float = 0.01,
        separateness_weight: float = 0.01,
        **backbone_kwargs,
    ) -> None:
        latent = backbone_kwargs.get("latent_size", 128)
        bb = _backbone(input_shape, backbone, decoder_input_size=2 * latent, **backbone_kwargs)
        super().__init__(bb, input_shape)
        if len(self.latent_shape) != 1:
            raise ValueError("MNADNet needs a vector bottleneck (the mlp backbone)")
        self.register_buffer("items", F.normalize(torch.rand(num_items, latent), dim=1))
        self.compactness_weight = compactness_weight
        self.separateness_weight = separateness_weight

    def forward(self, x: torch.Tensor) -> ModelOutput:
        query = F.normalize(self.encode(x), dim=1)
        scores = query @ self.items.T
        read = torch.softmax(scores, dim=1).detach() @ self.items
        nearest = scores.topk(2, dim=1).indices
        first, second = self.items[nearest[:, 0]], self.items[nearest[:, 1]]
        losses = {
            "compactness": self.compactness_weight * F.mse_loss(query, first),
            "separateness": self.separateness_weight
            * F.triplet_margin_loss(query, first, second, margin=1.0),
        }
        if self.training:
            self._update_items(query.detach(), scores.detach(), nearest[:, 0])
        reconstruction = self.decoder(torch.cat([query, read], dim=1)).reshape(x.shape)
        return ModelOutput(reconstruction, losses, torch.softmax(scores, dim=1))

    @torch.no_grad()
    def _update_items(self, query: torch.Tensor, scores: torch.Tensor, owner: torch.Tensor) -> None:
        over_queries = torch.softmax(scores, dim=0)
        for item in owner.unique():
            mine = owner == item
            weights = over_queries[mine, item] / over_queries[mine, item].max()
            moved = self.items[item] + (weights[:, None] * query[mine]).sum(0)
            self.items[item] = F.normalize(moved, dim=0)


class SSPCABBlock(nn.Module):
    """SSPCAB (Ristea et al., CVPR 2022): masked convolution + squeeze-and-excitation.

    Four ``kernel x kernel`` convolutions read the corners of a window whose centre (dilation
    ``dilation``) is masked; their sum passes a ReLU and a channel attention with reduction
    ``reduction``. The block's own loss is ``MSE(input, output)`` (weighted by the caller).
    """

    def __init__(
        self, channels: int, kernel: int = 1, dilation: int = 1, reduction: int = 8
    ) -> None:
        super().__init__()
        self.pad = kernel + dilation
        self.offset = kernel + 2 * dilation + 1
        self.kernel = kernel
        self.corners = nn.ModuleList(nn.Conv2d(channels, channels, kernel) for _ in range(4))
        hidden = max(1, channels // reduction)
        self.excite = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, [self.pad] * 4)
        h, w, k, o = x.shape[2], x.shape[3], self.kernel, self.offset
        views = [
            padded[:, :, : h + k - 1, : w + k - 1],
            padded[:, :, o : o + h + k - 1, : w + k - 1],
            padded[:, :, : h + k - 1, o : o + w + k - 1],
            padded[:, :, o : o + h + k - 1, o : o + w + k - 1],
        ]
        out = F.relu(sum(conv(v) for conv, v in zip(self.corners, views, strict=True)))
        scale = self.excite(out.mean(dim=(2, 3)))
        return out * scale[:, :, None, None]


class SSPCABNet(AutoEncoderNet):
    """The AE with an SSPCAB block on its bottleneck.

    On the MLP backbone the bottleneck vector (width F) is viewed as a ``(F / 16, 4, 4)`` map for
    the block (how the Memorizer paper fitted the 2-D block to its MLP is not stated); the block's
    output feeds the decoder and ``loss_weight · MSE(block input, block output)`` is added.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        backbone: str = "mlp",
        loss_weight: float = 0.1,
        **backbone_kwargs,
    ) -> None:
        bb = _backbone(input_shape, backbone, **backbone_kwargs)
        super().__init__(bb, input_shape)
        width = _latent_width(bb, False)
        self._map_shape = bb.latent_shape if len(bb.latent_shape) == 3 else (width // 16, 4, 4)
        if math.prod(self._map_shape) != width:
            raise ValueError(f"SSPCABNet needs a bottleneck width divisible by 16, got {width}")
        self.block = SSPCABBlock(self._map_shape[0])
        self.loss_weight = loss_weight

    def forward(self, x: torch.Tensor) -> ModelOutput:
        z = self.encode(x)
        feature = z.reshape(-1, *self._map_shape)
        out = self.block(feature)
        losses = {"sspcab": self.loss_weight * F.mse_loss(out, feature)}
        return ModelOutput(self.decode(out.reshape(z.shape), x), losses)
