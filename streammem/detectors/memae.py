"""MemAE as a streaming River anomaly detector."""

from __future__ import annotations

from streammem.checks import check_choice, check_integer, check_number
from streammem.detectors.base import MemoryDetector
from streammem.features.encoder import FeatureEncoder
from streammem.learning.schedule import Schedule
from streammem.nn.models import MemAENet
from streammem.nn.network import Network

__all__ = ["MemAE"]


class MemAE(MemoryDetector):
    """MemAE (Gong et al., ICCV 2019): a memory of prototypes between encoder and decoder.

    The latent is rebuilt from a sparse combination of ``num_slots`` learned memory items, so
    inputs unlike the training data come back wrong and score high.

    Parameters
    ----------
    num_slots
        N, the number of memory items (100 for MNIST, 50 for KDDCUP in the paper).
    shrink_threshold
        λ of the hard shrinkage; ``None`` = 1/N; ``0`` = MemAE-nonSpar.
    similarity
        ``"cosine"`` (paper) or ``"dot"`` (authors' code).
    entropy_weight
        α of the addressing-entropy loss (0.0002 in the paper).
    per_position
        With a conv backbone, query the memory per feature-map position instead of with the
        whole latent.
    temperature
        τ of the addressing softmax, ``softmax(similarity / τ)``. The paper's τ = 1 leaves
        cosine logits in [-1, 1], where no read can focus on a few slots; 0.1 lets it.
    radius_quantile
        Codes no further from the memory than this quantile of normal codes' distance to
        their read pass it unchanged; only codes further out are pulled back towards it (see
        :class:`~streammem.nn.memory.TrustRegion`). ``None``: the paper's read alone, which
        quantises continuous data (measured: R² 0.6 against 0.96 on correlated sensors).
    schedule, device, seed, num_threads, network, encoder
        Shared by every detector; see :class:`~streammem.detectors.base.MemoryDetector`.

    Examples
    --------
    >>> import random
    >>> import streammem
    >>> rng = random.Random(0)
    >>> det = streammem.MemAE(seed=1)
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
        num_slots: int = 50,
        shrink_threshold: float | None = None,
        similarity: str = "cosine",
        entropy_weight: float = 0.0002,
        per_position: bool = False,
        temperature: float = 0.1,
        radius_quantile: float | None = 0.999,
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
        self.radius_quantile = radius_quantile
        self.num_slots = num_slots
        self.shrink_threshold = shrink_threshold
        self.similarity = similarity
        self.entropy_weight = entropy_weight
        self.per_position = per_position
        self.temperature = temperature

    def _repr_notes(self) -> dict[str, str]:
        return {**super()._repr_notes(), "shrink_threshold": "1 / num_slots"}

    def check_params(self) -> None:
        super().check_params()
        check_number(
            "radius_quantile", self.radius_quantile, 0.0, 1.0, optional=True, low_open=True
        )
        check_integer("num_slots", self.num_slots, 1)
        check_number("shrink_threshold", self.shrink_threshold, 0.0, 1.0, optional=True)
        check_choice("similarity", self.similarity, ("cosine", "dot"))
        check_number("entropy_weight", self.entropy_weight, 0.0)
        check_choice("per_position", self.per_position, (True, False))
        check_number("temperature", self.temperature, 0.0, low_open=True)

    def _build_net(self, input_shape: tuple[int, ...]) -> MemAENet:
        return MemAENet(
            input_shape,
            self.network_.backbone,
            num_slots=self.num_slots,
            shrink_threshold=self.shrink_threshold,
            similarity=self.similarity,
            entropy_weight=self.entropy_weight,
            per_position=self.per_position,
            temperature=self.temperature,
            radius_quantile=self.radius_quantile,
            **self._network_kwargs(),
        )
