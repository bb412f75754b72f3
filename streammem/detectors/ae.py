"""AE as a streaming River anomaly detector."""

from __future__ import annotations

from streammem.detectors.base import MemoryDetector
from streammem.features.encoder import FeatureEncoder
from streammem.learning.schedule import Schedule
from streammem.nn.models import AENet
from streammem.nn.network import Network

__all__ = ["AE"]


class AE(MemoryDetector):
    """Plain autoencoder (no memory): the baseline that over-generalises.

    Parameters
    ----------
    schedule, device, seed, num_threads, network, encoder
        Shared by every detector; see :class:`~streammem.detectors.base.MemoryDetector`.

    Examples
    --------
    >>> import random
    >>> import streammem
    >>> rng = random.Random(0)
    >>> det = streammem.AE(seed=1)
    >>> det.score_one({"a": 0.0, "b": 0.0, "c": 0.0})  # finite before any learning
    0.0
    >>> for _ in range(3000):
    ...     a, b = rng.gauss(0, 1), rng.gauss(0, 1)
    ...     det.learn_one({"a": a, "b": b, "c": a + b})
    >>> normal = det.score_one({"a": 0.5, "b": -0.2, "c": 0.3})
    >>> broken = det.score_one({"a": 0.5, "b": -0.2, "c": -4.0})
    >>> broken > 3 * normal
    True
    """

    def __init__(
        self,
        schedule: Schedule | None = None,
        device: str = "auto",
        seed: int = 42,
        num_threads: int | None = 1,
        network: Network = Network(),  # noqa: B008 (frozen: one shared default is safe)
        encoder: FeatureEncoder | None = None,
    ) -> None:
        super().__init__(
            schedule=schedule,
            device=device,
            seed=seed,
            num_threads=num_threads,
            network=network,
            encoder=encoder,
        )

    def _build_net(self, input_shape: tuple[int, ...]) -> AENet:
        return AENet(input_shape, self.network_.backbone, **self._network_kwargs())
