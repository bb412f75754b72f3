"""Encoder / decoder backbones shared by every model (pure ``nn.Module`` s).

* :func:`mlp_backbone` — the Memorizer MLP (784-512-256-128, Linear-BN-LeakyReLU blocks, mirrored),
  widths configurable; also the tabular backbone.
* :func:`conv28_backbone` — MemAE's MNIST conv net for 1x28x28 (latent 64x4x4).
* :func:`conv32_backbone` — a 4-stage conv net for 3x32x32 (latent 256x2x2), our choice for
  CIFAR-10 since the paper's exact layers are not public.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

__all__ = ["Backbone", "build_backbone", "conv28_backbone", "conv32_backbone", "mlp_backbone"]

OUTPUT_ACTIVATIONS = ("linear", "sigmoid", "tanh", "block")


@dataclass
class Backbone:
    """An encoder, a decoder and the shape of the latent between them (without the batch dim)."""

    encoder: nn.Module
    decoder: nn.Module
    latent_shape: tuple[int, ...]


def _fc_block(n_in: int, n_out: int, activation: str, batch_norm: bool = True) -> list[nn.Module]:
    act = nn.LeakyReLU() if activation == "leaky_relu" else nn.Tanh()
    return [nn.Linear(n_in, n_out), *([nn.BatchNorm1d(n_out)] if batch_norm else []), act]


def _output_layer(activation: str) -> list[nn.Module]:
    if activation == "sigmoid":
        return [nn.Sigmoid()]
    if activation == "tanh":
        return [nn.Tanh()]
    return []


def mlp_backbone(
    n_features: int,
    hidden_sizes: Sequence[int] = (512, 256),
    latent_size: int = 128,
    activation: str = "leaky_relu",
    output_activation: str = "linear",
    decoder_input_size: int | None = None,
    batch_norm: bool = True,
) -> Backbone:
    """Mirrored MLP ``n_features → hidden… → latent → …hidden → n_features``.

    Every layer is Linear-BatchNorm-activation except the decoder's last one, which is linear
    followed by ``output_activation`` (``"block"`` makes it a full block, the Memorizer paper's
    literal FC6). ``decoder_input_size`` widens the decoder's first layer (MNAD concatenates the
    query and the memory read, 2 x latent). ``batch_norm=False`` leaves the BatchNorm layers out
    (DAGMM's compression network has none).

    Examples
    --------
    >>> bb = mlp_backbone(784)
    >>> bb.latent_shape
    (128,)
    """
    if activation not in ("leaky_relu", "tanh"):
        raise ValueError(f"activation must be 'leaky_relu' or 'tanh', got {activation!r}")
    if output_activation not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}")
    widths = [n_features, *hidden_sizes, latent_size]
    encoder: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(widths):
        encoder += _fc_block(n_in, n_out, activation, batch_norm)
    back = widths[::-1]
    back[0] = decoder_input_size or latent_size
    decoder: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(back[:-1]):
        decoder += _fc_block(n_in, n_out, activation, batch_norm)
    if output_activation == "block":
        decoder += _fc_block(back[-2], back[-1], activation, batch_norm)
    else:
        decoder += [nn.Linear(back[-2], back[-1]), *_output_layer(output_activation)]
    return Backbone(nn.Sequential(*encoder), nn.Sequential(*decoder), (latent_size,))


def _norm(channels: int, batch_norm: bool) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels)] if batch_norm else []


def _conv(n_in: int, n_out: int, kernel: int, act: nn.Module, bn: bool = True) -> list[nn.Module]:
    return [nn.Conv2d(n_in, n_out, kernel, 2, kernel // 2), *_norm(n_out, bn), act]


def _deconv(
    n_in: int, n_out: int, out_pad: int, act: nn.Module | None, bn: bool = True
) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.ConvTranspose2d(n_in, n_out, 3, 2, 1, out_pad)]
    return layers + ([*_norm(n_out, bn), act] if act is not None else [])


def conv28_backbone(
    in_channels: int = 1, output_activation: str = "linear", batch_norm: bool = True
) -> Backbone:
    """MemAE's MNIST net: Conv(1,s2,16)-Conv(3,s2,32)-Conv(3,s2,64) → 64x4x4, mirrored.

    Padding (not given by the paper) is 0 for k=1 and 1 for k=3: 28 → 14 → 7 → 4; the decoder's
    output paddings bring 4 → 7 → 14 → 28. BatchNorm follows every layer but the last unless
    ``batch_norm=False``.
    """
    relu, bn = nn.ReLU, batch_norm
    encoder = nn.Sequential(
        *_conv(in_channels, 16, 1, relu(), bn),
        *_conv(16, 32, 3, relu(), bn),
        *_conv(32, 64, 3, relu(), bn),
    )
    decoder = nn.Sequential(
        *_deconv(64, 64, 0, relu(), bn),
        *_deconv(64, 32, 1, relu(), bn),
        *_deconv(32, in_channels, 1, None),
        *_output_layer(output_activation),
    )
    return Backbone(encoder, decoder, (64, 4, 4))


def conv32_backbone(
    in_channels: int = 3, output_activation: str = "linear", batch_norm: bool = True
) -> Backbone:
    """Conv(64)-Conv(128)-Conv(128)-Conv(256), k3 s2 p1, BN, LeakyReLU(0.2): 32 → 2, mirrored."""

    def lrelu() -> nn.Module:
        return nn.LeakyReLU(0.2)

    bn = batch_norm
    encoder = nn.Sequential(
        *_conv(in_channels, 64, 3, lrelu(), bn),
        *_conv(64, 128, 3, lrelu(), bn),
        *_conv(128, 128, 3, lrelu(), bn),
        *_conv(128, 256, 3, lrelu(), bn),
    )
    decoder = nn.Sequential(
        *_deconv(256, 128, 1, lrelu(), bn),
        *_deconv(128, 128, 1, lrelu(), bn),
        *_deconv(128, 64, 1, lrelu(), bn),
        *_deconv(64, in_channels, 1, None),
        *_output_layer(output_activation),
    )
    return Backbone(encoder, decoder, (256, 2, 2))


BACKBONES = ("mlp", "conv28", "conv32")


def build_backbone(
    name: str,
    input_shape: tuple[int, ...],
    hidden_sizes: Sequence[int] = (512, 256),
    latent_size: int = 128,
    activation: str = "leaky_relu",
    output_activation: str = "linear",
    decoder_input_size: int | None = None,
    batch_norm: bool = True,
) -> Backbone:
    """Build a backbone by name for inputs of ``input_shape`` (without the batch dim)."""
    if name == "mlp":
        return mlp_backbone(
            math.prod(input_shape),
            hidden_sizes,
            latent_size,
            activation,
            output_activation,
            decoder_input_size,
            batch_norm,
        )
    expected = {"conv28": (28, 28), "conv32": (32, 32)}
    if name not in expected:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
    if len(input_shape) != 3 or tuple(input_shape[1:]) != expected[name]:
        raise ValueError(
            f"backbone {name!r} needs input_shape (C, {expected[name][0]}, {expected[name][1]}), "
            f"got {tuple(input_shape)}"
        )
    build = conv28_backbone if name == "conv28" else conv32_backbone
    return build(input_shape[0], output_activation, batch_norm)
