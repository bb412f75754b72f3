"""MEMGAN as a streaming River anomaly detector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from streammem.checks import check_integer
from streammem.detectors.base import MemoryDetector
from streammem.features.encoder import FeatureEncoder
from streammem.learning.schedule import Schedule
from streammem.nn.memgan import MemGANNet
from streammem.nn.network import Network

__all__ = ["MemGAN"]


class MemGAN(MemoryDetector):
    """MEMGAN (Yang et al., 2020): a bidirectional GAN whose prior is the hull of a memory.

    Each gradient step of the schedule is one Algorithm-1 iteration (discriminator, then encoder,
    generator and memory); by default batches of 64 at Adam step size 1e-4 (the paper's). The
    score is ``‖x − G(P(E(x)))‖₂``. Images only: records are flattened images of
    ``input_shape`` ((C, 28, 28) or (C, 32, 32)) with values in [-1, 1]; the default encoder does
    not rescale them.

    Parameters
    ----------
    num_units
        n, the memory units (50 for MNIST, 100 for CIFAR-10 in the paper).
    unit_dim
        d, the latent width (64 for MNIST, 256 for CIFAR-10 in the paper).
    width
        Channels of the first conv layer of E, G and D.
    input_shape
        Shape of one image, channels first.
    schedule
        ``None``: ``Schedule(batch_size=64, learning_rate=1e-4, trim=0)`` (no trimming:
        an adversarial loss has no per-record error to trim).
    device, seed, num_threads, encoder
        Shared by every detector; see :class:`~streammem.detectors.base.MemoryDetector`.

    Examples
    --------
    >>> import numpy as np
    >>> from streammem.detectors.memgan import MemGAN
    >>> from streammem import Schedule
    >>> det = MemGAN(num_units=5, unit_dim=8, width=4, device="cpu",
    ...              schedule=Schedule(batch_size=8, min_records=8, trim=0))
    >>> images = np.random.default_rng(0).uniform(-1, 1, (16, 1, 28, 28))
    >>> det.learn_many(images)
    >>> det.score_many(images[:3]).shape
    (3,)
    """

    _default_schedule: ClassVar[Schedule] = Schedule(batch_size=64, learning_rate=1e-4, trim=0.0)

    def check_params(self) -> None:
        for size in self.input_shape:  # before network_, which reads it
            check_integer("input_shape[...]", size, 1)
        super().check_params()
        for name in ("num_units", "unit_dim", "width"):
            check_integer(name, getattr(self, name), 1)
        if self.schedule_.trim:
            raise ValueError(
                "MemGAN's adversarial training has no per-record error to trim: "
                "pass a schedule with trim=0"
            )

    def __init__(
        self,
        num_units: int = 50,
        unit_dim: int = 64,
        width: int = 32,
        input_shape: Sequence[int] = (1, 28, 28),
        schedule: Schedule | None = None,
        device: str = "auto",
        seed: int = 42,
        num_threads: int | None = 1,
        encoder: FeatureEncoder | None = None,
    ) -> None:
        super().__init__(
            schedule=schedule,
            device=device,
            seed=seed,
            num_threads=num_threads,
            encoder=encoder,
        )
        self.input_shape = input_shape
        self.num_units = num_units
        self.unit_dim = unit_dim
        self.width = width

    @property
    def network_(self) -> Network:
        """MemGAN's nets are its own; the conv backbone of its image size stands for them."""
        shape = tuple(self.input_shape)
        return Network(backbone="conv32" if shape[1:] == (32, 32) else "conv28", input_shape=shape)

    def _build_net(self, input_shape: tuple[int, ...]) -> MemGANNet:
        return MemGANNet(input_shape, self.num_units, self.unit_dim, self.width)
