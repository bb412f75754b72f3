"""The network's shape as one value: the backbone and its widths, activations and batch norm.

Like :class:`~streammem.Schedule` for training, the knobs that describe the network travel
together, so every detector takes ``network=Network(hidden_sizes=(128,))`` and a new knob is
added here once, not in five detector signatures.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from streammem.checks import check_choice, check_integer
from streammem.nn.backbones import OUTPUT_ACTIVATIONS

__all__ = ["BACKBONES", "Network", "fold_network_params"]

#: The backbones a detector can use, and the record shape each conv backbone reads.
BACKBONES = ("mlp", "conv28", "conv32")
_IMAGE_SHAPES = {"conv28": (1, 28, 28), "conv32": (3, 32, 32)}
_ACTIVATIONS = ("leaky_relu", "tanh")


@dataclasses.dataclass(frozen=True)
class Network:
    """The encoder / decoder a detector builds around its memory.

    Parameters
    ----------
    backbone
        ``"mlp"``, ``"conv28"`` (1x28x28 images) or ``"conv32"`` (3x32x32 images).
    hidden_sizes
        MLP widths, encoder side (the decoder mirrors them).
    latent_size
        MLP bottleneck width; ``None``: about a third of the encoded width, even, between 2
        and 16, so that narrow records cannot pass through unchanged.
    activation
        MLP hidden activation, ``"leaky_relu"`` or ``"tanh"``.
    output_activation
        ``"linear"``, ``"sigmoid"``, ``"tanh"``, or ``"block"`` (mlp only: the last layer is a
        full Linear-BatchNorm-activation block, as in the Memorizer paper).
    batch_norm
        Batch norm after each hidden layer; ``None``: off for ``"mlp"`` (its batch statistics
        cost fit on streams: R² 0.85 against 0.99 on correlated sensors, see the committed
        ablations), on for the conv backbones (the papers' nets).
    input_shape
        Shape of one record for the model; ``None``: the encoded width (or the conv image).

    Examples
    --------
    >>> Network(hidden_sizes=[128]).hidden_sizes  # sequences are kept as tuples
    (128,)
    >>> Network().uses_batch_norm, Network(backbone="conv28").uses_batch_norm
    (False, True)
    >>> Network(backbone="conv28").input_shape_for(784)
    (1, 28, 28)
    >>> Network(backbone="conv28", activation="tanh")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: network.activation='tanh' applies to the 'mlp' backbone only; ...
    """

    backbone: str = "mlp"
    hidden_sizes: Sequence[int] = (64,)
    latent_size: int | None = None
    activation: str = "leaky_relu"
    output_activation: str = "linear"
    batch_norm: bool | None = None
    input_shape: Sequence[int] | None = None

    def __post_init__(self) -> None:
        # Frozen and hashable: sequences become tuples; a bad setting fails where it is written.
        if isinstance(self.hidden_sizes, (str, bytes)) or not isinstance(
            self.hidden_sizes, Sequence
        ):
            raise ValueError(
                "network.hidden_sizes must be a sequence of integers >= 1, "
                f"got {self.hidden_sizes!r}"
            )
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(self.input_shape))
        self._check()

    def _check(self) -> None:
        check_choice("network.backbone", self.backbone, BACKBONES)
        check_choice("network.activation", self.activation, _ACTIVATIONS)
        check_choice("network.output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        check_choice("network.batch_norm", self.batch_norm, (None, True, False))
        for size in self.hidden_sizes:
            check_integer("network.hidden_sizes[...]", size, 1)
        for size in self.input_shape or ():
            check_integer("network.input_shape[...]", size, 1)
        check_integer("network.latent_size", self.latent_size, 1, optional=True)
        if not self.is_mlp and self.activation != "leaky_relu":
            raise ValueError(
                f"network.activation={self.activation!r} applies to the 'mlp' backbone only; "
                f"{self.backbone!r} has fixed activations"
            )
        if not self.is_mlp and self.output_activation == "block":
            raise ValueError("network.output_activation='block' applies to the 'mlp' backbone only")

    @property
    def is_mlp(self) -> bool:
        """Whether records are vectors (the conv backbones read images)."""
        return self.backbone == "mlp"

    @property
    def uses_batch_norm(self) -> bool:
        """``batch_norm``, or the backbone's default when it is ``None``."""
        return self.batch_norm if self.batch_norm is not None else not self.is_mlp

    def input_shape_for(self, width: int) -> tuple[int, ...]:
        """The shape the model reads a record of ``width`` encoded values in."""
        shape = self.input_shape or _IMAGE_SHAPES.get(self.backbone) or (width,)
        if math.prod(shape) != width:
            raise ValueError(
                f"input_shape {tuple(shape)} holds {math.prod(shape)} values but records "
                f"encode to {width}"
            )
        return tuple(shape)

    def default_latent_size(self, input_shape: Sequence[int]) -> int:
        """``latent_size``, or about a third of the width, even (RFTM halves it), 2 to 16."""
        if self.latent_size is not None:
            return self.latent_size
        return 2 * min(8, max(1, math.prod(input_shape) // 6))

    def model_kwargs(self, latent_size: int) -> dict[str, Any]:
        """The arguments of :mod:`streammem.nn.models`' nets beside the backbone's name."""
        if not self.is_mlp:
            return {"output_activation": self.output_activation, "batch_norm": self.uses_batch_norm}
        return {
            "hidden_sizes": self.hidden_sizes,
            "latent_size": latent_size,
            "activation": self.activation,
            "output_activation": self.output_activation,
            "batch_norm": self.uses_batch_norm,
        }


_FIELDS = tuple(f.name for f in dataclasses.fields(Network))


def fold_network_params(params: Mapping[str, Any], accepted: Sequence[str]) -> dict[str, Any]:
    """``params`` with the network's settings written the old way (``hidden_sizes=...`` beside
    the detector's own arguments, before :class:`Network`) folded into ``network``; settings
    in ``accepted`` (the detector's own arguments, as MemGAN's ``input_shape``) stay.

    Old checkpoints, configs and bench commands keep working through it.

    Examples
    --------
    >>> params = fold_network_params({"num_slots": 10, "hidden_sizes": [32], "backbone": "mlp"},
    ...                              accepted=("num_slots", "network"))
    >>> params["num_slots"], params["network"].hidden_sizes, sorted(params)
    (10, (32,), ['network', 'num_slots'])
    """
    legacy = {k: v for k, v in params.items() if k in _FIELDS and k not in accepted}
    if not legacy or "network" not in accepted:
        return dict(params)
    kept = {k: v for k, v in params.items() if k not in legacy}
    base = kept.get("network") or Network()
    kept["network"] = dataclasses.replace(base, **legacy)
    return kept
