"""Memory modules: pure ``nn.Module`` s with no streaming logic.

* :class:`MemAEMemory` — Gong et al. (ICCV 2019): attention over N learnable slots with hard
  shrinkage and an entropy loss on the addressing weights.
* :class:`MemorizerMemory` — Li, Chen & Xing: multi-round memory with a mapping shared by queries
  and slots and a residual add between rounds; no extra loss.
* :class:`TwinMemory` — this project's reconstruction of RFTM (see its docstring).

Every module returns a :class:`MemoryReadout`: the read vectors, the addressing weights of the
last read (for slot-usage metrics), and a dict of auxiliary losses (already weighted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "REINTEGRATIONS",
    "MemAEMemory",
    "MemorizerMemory",
    "MemoryReadout",
    "SharedMappingRead",
    "TrustRegion",
    "TwinMemory",
    "addressing_entropy",
    "hard_shrink",
]

_EPS = 1e-12


@dataclass
class MemoryReadout:
    """What a memory returns: ``output`` has the query's shape; ``weights`` is (queries, slots)."""

    output: torch.Tensor
    weights: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


def hard_shrink(weights: torch.Tensor, threshold: float) -> torch.Tensor:
    """MemAE's differentiable hard shrinkage ``max(w-λ,0)·w/(|w-λ|+ε)`` then L1 re-normalisation."""
    shrunk = F.relu(weights - threshold) * weights / ((weights - threshold).abs() + _EPS)
    return F.normalize(shrunk, p=1, dim=1)


def addressing_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean entropy ``-Σ w log w`` of the addressing weights, one row per query."""
    return -(weights * torch.log(weights + _EPS)).sum(dim=1).mean()


def _as_queries(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...] | None]:
    """(B, C) stays as is; a conv map (B, C, *S) becomes one C-dim query per position."""
    if x.dim() == 2:
        return x, None
    channels = x.shape[1]
    moved = x.movedim(1, -1)
    return moved.reshape(-1, channels), tuple(moved.shape)


def _draw_rows(rows: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows of ``rows``, distinct while there are enough (uses the torch RNG)."""
    if len(rows) >= count:
        return rows[torch.randperm(len(rows), device=rows.device)[:count]]
    return rows[torch.randint(len(rows), (count,), device=rows.device)]


def _from_queries(q: torch.Tensor, shape: tuple[int, ...] | None) -> torch.Tensor:
    if shape is None:
        return q
    return q.reshape(shape).movedim(-1, 1)


class MemAEMemory(nn.Module):
    """MemAE memory: ``ẑ = ŵ M`` with ``ŵ`` the shrunk softmax attention of the query over M.

    Parameters
    ----------
    num_slots
        N, the number of memory items.
    dim
        C, the width of each item (the query width).
    shrink_threshold
        λ of the hard shrinkage; ``None`` means ``1/N`` (the paper's advice is [1/N, 3/N]);
        ``0`` disables shrinkage (MemAE-nonSpar).
    similarity
        ``"cosine"`` as in the paper, or ``"dot"`` as in the authors' code.
    entropy_weight
        α of the entropy loss on the addressing weights (0.0002 in every experiment of the paper).
    temperature
        τ dividing the similarities before the softmax (1 in the paper). Cosine similarities
        lie in [-1, 1], so at τ = 1 no slot can take more than e²/(e² + N - 1) of the weight
        and every read blends many slots; a smaller τ lets the read settle on a few prototypes.

    Inputs of shape (B, C) are whole-vector queries; (B, C, H, W) maps give one query per position.

    Examples
    --------
    >>> import torch
    >>> mem = MemAEMemory(num_slots=10, dim=4)
    >>> out = mem(torch.randn(3, 4))
    >>> out.output.shape, out.weights.shape
    (torch.Size([3, 4]), torch.Size([3, 10]))
    >>> bool(torch.allclose(out.weights.sum(1), torch.ones(3)))
    True
    """

    def __init__(
        self,
        num_slots: int,
        dim: int,
        shrink_threshold: float | None = None,
        similarity: str = "cosine",
        entropy_weight: float = 0.0002,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"similarity must be 'cosine' or 'dot', got {similarity!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_slots = num_slots
        self.dim = dim
        self.shrink_threshold = 1.0 / num_slots if shrink_threshold is None else shrink_threshold
        self.similarity = similarity
        self.entropy_weight = entropy_weight
        self.temperature = temperature
        bound = 1.0 / math.sqrt(dim)
        self.slots = nn.Parameter(torch.empty(num_slots, dim).uniform_(-bound, bound))

    def address(self, queries: torch.Tensor) -> torch.Tensor:
        """Addressing weights (queries, N), each row summing to one."""
        if self.similarity == "cosine":
            logits = F.normalize(queries, dim=1) @ F.normalize(self.slots, dim=1).T
        else:
            logits = queries @ self.slots.T
        weights = torch.softmax(logits / self.temperature, dim=1)
        if self.shrink_threshold > 0:
            weights = hard_shrink(weights, self.shrink_threshold)
        return weights

    @torch.no_grad()
    def initialize_from(self, queries: torch.Tensor) -> None:
        """Set the slots to queries of real data (drawn with replacement if there are fewer)."""
        queries, _ = _as_queries(queries)
        self.slots.copy_(_draw_rows(queries, self.num_slots))

    def forward(self, x: torch.Tensor) -> MemoryReadout:
        queries, shape = _as_queries(x)
        weights = self.address(queries)
        output = _from_queries(weights @ self.slots, shape)
        losses = {}
        if self.entropy_weight > 0:
            losses["entropy"] = self.entropy_weight * addressing_entropy(weights)
        return MemoryReadout(output, weights, losses)


class SharedMappingRead(nn.Module):
    """One Memorizer read: ``softmax((H W_S)(M W_S)ᵀ) M`` with W_S shared by queries and slots.

    ``forget`` drops each slot with that probability (training only, at least one survives):
    RFTM's random forgetting.
    """

    def __init__(self, num_slots: int, dim: int, forget: float = 0.0) -> None:
        super().__init__()
        self.slots = nn.Parameter(torch.randn(num_slots, dim) / math.sqrt(dim))
        self.mapping = nn.Linear(dim, dim, bias=False)
        self.forget = forget

    def forward(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.mapping(queries) @ self.mapping(self.slots).T
        if self.training and self.forget > 0:
            logits = logits.masked_fill(~self._surviving_slots(logits.device), float("-inf"))
        weights = torch.softmax(logits, dim=1)
        return weights @ self.slots, weights

    def _surviving_slots(self, device: torch.device) -> torch.Tensor:
        keep = torch.rand(self.slots.shape[0], device=device) >= self.forget
        if not keep.any():
            keep[torch.randint(self.slots.shape[0], (1,), device=device)] = True
        return keep


class MemorizerMemory(nn.Module):
    """Memorizer memory: R rounds ``H_r = Memory(H_{r-1} + H, M_r)`` with ``H_0 = H``.

    Each round has its own slots ``M_r`` (N x F) and its own shared mapping ``W_S`` (F x F); the
    paper leaves open whether W_S is per round, we keep one per round. No extra loss.

    Parameters
    ----------
    num_slots
        N (8 for MNIST, 10 for Fashion/KMNIST in the paper).
    dim
        F, the bottleneck width.
    rounds
        R (8 in the paper).
    forget
        Probability of dropping each slot during training (0 = plain Memorizer).

    Examples
    --------
    >>> import torch
    >>> mem = MemorizerMemory(num_slots=8, dim=16, rounds=3)
    >>> mem(torch.randn(5, 16)).output.shape
    torch.Size([5, 16])
    """

    def __init__(self, num_slots: int, dim: int, rounds: int = 8, forget: float = 0.0) -> None:
        super().__init__()
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        self.num_slots = num_slots
        self.dim = dim
        self.rounds = rounds
        self.forget = forget
        self.reads = nn.ModuleList(SharedMappingRead(num_slots, dim, forget) for _ in range(rounds))

    @torch.no_grad()
    def initialize_from(self, queries: torch.Tensor) -> None:
        """Set every round's slots to queries of real data."""
        for read in self.reads:
            read.slots.copy_(_draw_rows(queries, self.num_slots))

    def forward(self, x: torch.Tensor) -> MemoryReadout:
        state = x
        weights = x.new_zeros(x.shape[0], self.num_slots)
        for read in self.reads:
            state, weights = read(state + x)
        return MemoryReadout(state, weights)


REINTEGRATIONS = ("concat", "sum", "gate", "cascade")


class TwinMemory(nn.Module):
    """Twin memory with random forgetting — **this project's reconstruction of RFTM**.

    The RFTM paper ("Learn to Know Unknowns", ICLR 2023 submission) is public only as its abstract
    and introduction. They state: the latent space is decomposed, two memories re-represent it
    (a hippocampus → cortex cascade), reintegration is configurable, and no loss term is added.
    Everything concrete here is our design (``research/papers.md`` §5):

    * the bottleneck H (B x F) is decomposed into two parts, either by ``split`` (first / second
      half) or by two learned linear ``projection`` s F → F/2;
    * each part is read by a Memorizer-style memory (:class:`MemorizerMemory`, ``rounds`` each)
      whose slots are randomly forgotten (dropped with probability ``forget``) during training only;
    * the two read-outs are reintegrated into F dims by ``concat`` (default), ``sum`` (each read
      projected back to F and added), ``gate`` (a learned per-dim gate between the concatenated
      read and H), or ``cascade`` (the cortical memory reads its part plus the hippocampal read,
      then concat).

    Parameters
    ----------
    num_slots
        Slots of each memory (N_h = N_c).
    dim
        F, the bottleneck width (even).
    rounds
        Rounds of each memory.
    forget
        Per-slot forgetting probability during training.
    decomposition
        ``"split"`` or ``"projection"``.
    reintegration
        ``"concat"``, ``"sum"``, ``"gate"`` or ``"cascade"``.

    Examples
    --------
    >>> import torch
    >>> twin = TwinMemory(num_slots=10, dim=16, reintegration="gate")
    >>> twin(torch.randn(4, 16)).output.shape
    torch.Size([4, 16])
    """

    def __init__(
        self,
        num_slots: int,
        dim: int,
        rounds: int = 1,
        forget: float = 0.25,
        decomposition: str = "split",
        reintegration: str = "concat",
    ) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"TwinMemory needs an even bottleneck width, got {dim}")
        if decomposition not in ("split", "projection"):
            raise ValueError(
                f"decomposition must be 'split' or 'projection', got {decomposition!r}"
            )
        if reintegration not in REINTEGRATIONS:
            raise ValueError(
                f"reintegration must be one of {REINTEGRATIONS}, got {reintegration!r}"
            )
        if not 0.0 <= forget < 1.0:
            raise ValueError(f"forget must be in [0, 1), got {forget}")
        half = dim // 2
        self.num_slots = num_slots
        self.dim = dim
        self.decomposition = decomposition
        self.reintegration = reintegration
        self.hippocampal = MemorizerMemory(num_slots, half, rounds, forget)
        self.cortical = MemorizerMemory(num_slots, half, rounds, forget)
        if decomposition == "projection":
            self.project_a = nn.Linear(dim, half)
            self.project_b = nn.Linear(dim, half)
        if reintegration == "sum":
            self.expand_a = nn.Linear(half, dim)
            self.expand_b = nn.Linear(half, dim)
        if reintegration == "gate":
            self.gate = nn.Parameter(torch.zeros(dim))

    def _decompose(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.decomposition == "split":
            return x.chunk(2, dim=1)
        return self.project_a(x), self.project_b(x)

    @torch.no_grad()
    def initialize_from(self, queries: torch.Tensor) -> None:
        """Set both memories' slots to the parts of real queries they read."""
        part_a, part_b = self._decompose(queries)
        self.hippocampal.initialize_from(part_a)
        self.cortical.initialize_from(part_b)

    def forward(self, x: torch.Tensor) -> MemoryReadout:
        part_a, part_b = self._decompose(x)
        read_a = self.hippocampal(part_a)
        cortical_input = part_b + read_a.output if self.reintegration == "cascade" else part_b
        read_b = self.cortical(cortical_input)
        if self.reintegration == "sum":
            output = self.expand_a(read_a.output) + self.expand_b(read_b.output)
        else:
            output = torch.cat([read_a.output, read_b.output], dim=1)
        if self.reintegration == "gate":
            gate = torch.sigmoid(self.gate)
            output = gate * output + (1 - gate) * x
        weights = torch.cat([read_a.weights, read_b.weights], dim=1) / 2
        return MemoryReadout(output, weights)


class TrustRegion(nn.Module):
    """A memory read that normal codes pass through and only outlying codes feel.

    A memory rebuilds every code from a blend of its slots, which quantises a continuous
    manifold: on streams of correlated sensors the papers' read alone kept a model at R² 0.6
    where the same network without memory reached 0.97. Here a code ``q`` and its read ``r``
    give ``r + (q - r) * min(1, ρ / ‖q - r‖)``: a code no further from the memory than the
    ``quantile`` of normal codes (the radius ``ρ``, a running estimate over training batches,
    like batch norm's statistics) passes unchanged, and one further out is pulled back to
    distance ``ρ`` of the memory. So the memory still refuses what lies far from every
    prototype, and costs normal records no precision. Its slots follow the codes through a
    ``pull_weight * ‖sg(q) - r‖²`` loss (sg: no gradient to the encoder), since codes that
    pass unchanged send the slots no gradient through the reconstruction. Before any training
    the radius is infinite: every code passes.

    Examples
    --------
    >>> import torch
    >>> trust = TrustRegion(quantile=0.5).eval()
    >>> codes, reads = torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.zeros(2, 2)
    >>> trust(codes, reads)[0].tolist()  # untrained: every code passes
    [[1.0, 0.0], [3.0, 0.0]]
    >>> _ = trust.train()(codes, reads)  # a training batch sets the radius (its median: 2)
    >>> trust.eval()(codes, reads)[0].tolist()
    [[1.0, 0.0], [2.0, 0.0]]
    """

    def __init__(self, quantile: float = 0.999, momentum: float = 0.1, pull_weight: float = 0.1):
        super().__init__()
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        self.quantile = quantile
        self.momentum = momentum
        self.pull_weight = pull_weight
        self.register_buffer("radius", torch.tensor(math.inf))

    def forward(
        self, queries: torch.Tensor, reads: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The codes as the decoder gets them, and the slots' pull loss."""
        distance = (queries - reads).norm(dim=-1, keepdim=True)
        if self.training:
            with torch.no_grad():
                batch = torch.quantile(distance.flatten().float(), self.quantile)
                if torch.isinf(self.radius):
                    self.radius.copy_(batch)
                else:
                    self.radius.lerp_(batch, self.momentum)
        scale = (self.radius / distance.clamp_min(_EPS)).clamp(max=1.0)
        passed = reads + (queries - reads) * scale
        pull = self.pull_weight * (queries.detach() - reads).pow(2).sum(-1).mean()
        return passed, {"pull": pull}
