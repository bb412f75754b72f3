"""Properties of the memory modules (pure torch, no streaming)."""

from __future__ import annotations

import pytest
import torch

from streammem.nn.memory import MemAEMemory, MemorizerMemory, TwinMemory, hard_shrink


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_memae_weights_are_a_distribution(similarity):
    mem = MemAEMemory(num_slots=20, dim=8, similarity=similarity)
    out = mem(torch.randn(16, 8))
    assert (out.weights >= 0).all()
    torch.testing.assert_close(out.weights.sum(1), torch.ones(16))
    torch.testing.assert_close(out.output, out.weights @ mem.slots)


def test_hard_shrinkage_zeroes_small_weights_and_renormalises():
    weights = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    shrunk = hard_shrink(weights, threshold=0.1)
    assert shrunk[0, 3] == 0 and (shrunk[0, :3] > 0).all()
    torch.testing.assert_close(shrunk.sum(1), torch.ones(1))


def test_shrinkage_makes_addressing_sparse_and_nonspar_stays_dense():
    queries = torch.randn(64, 8)
    sparse = MemAEMemory(num_slots=50, dim=8, shrink_threshold=2 / 50)(queries).weights
    dense = MemAEMemory(num_slots=50, dim=8, shrink_threshold=0)(queries).weights
    assert (sparse == 0).float().mean() > 0.3
    assert (dense > 0).all()


def test_entropy_loss_weighted_and_absent_when_alpha_is_zero():
    queries = torch.randn(8, 4)
    with_loss = MemAEMemory(10, 4, entropy_weight=0.0002)(queries).losses
    assert 0 < with_loss["entropy"] <= 0.0002 * torch.log(torch.tensor(10.0))
    assert MemAEMemory(10, 4, entropy_weight=0)(queries).losses == {}


def test_per_position_queries_on_a_conv_map():
    mem = MemAEMemory(num_slots=5, dim=3)
    out = mem(torch.randn(2, 3, 4, 4))
    assert out.output.shape == (2, 3, 4, 4) and out.weights.shape == (2 * 16, 5)


@pytest.mark.parametrize(
    "memory",
    [
        MemAEMemory(10, 6),
        MemorizerMemory(8, 6, rounds=3),
        TwinMemory(8, 6, forget=0.0),
    ],
    ids=["memae", "memorizer", "twin"],
)
def test_gradients_reach_every_memory_slot(memory):
    out = memory(torch.randn(32, 6))
    (out.output.pow(2).sum() + sum(out.losses.values(), torch.tensor(0.0))).backward()
    slot_params = [p for name, p in memory.named_parameters() if name.endswith("slots")]
    assert slot_params
    for param in slot_params:
        assert param.grad is not None and param.grad.abs().sum() > 0


def test_memorizer_rounds_add_the_input_residual():
    mem = MemorizerMemory(num_slots=4, dim=5, rounds=2).eval()
    h = torch.randn(3, 5)
    first, _ = mem.reads[0](h + h)
    expected, _ = mem.reads[1](first + h)
    torch.testing.assert_close(mem(h).output, expected)


def test_memorizer_shares_one_mapping_between_queries_and_slots():
    read = MemorizerMemory(num_slots=4, dim=5, rounds=1).reads[0]
    h = torch.randn(3, 5)
    logits = read.mapping(h) @ read.mapping(read.slots).T
    out, weights = read(h)
    torch.testing.assert_close(weights, torch.softmax(logits, dim=1))
    torch.testing.assert_close(out, weights @ read.slots)


def test_random_forgetting_only_in_training():
    twin = TwinMemory(num_slots=10, dim=8, forget=0.5)
    h = torch.randn(16, 8)
    twin.eval()
    eval_a, eval_b = twin(h), twin(h)
    torch.testing.assert_close(eval_a.output, eval_b.output)
    assert (eval_a.weights > 0).all(), "no slot is forgotten at test time"
    twin.train()
    train_weights = twin(h).weights
    dropped = (train_weights == 0).all(dim=0)
    assert dropped.any(), "training should forget some slots"
    assert not dropped[:10].all() and not dropped[10:].all(), "one slot always survives"


@pytest.mark.parametrize("mode", ["concat", "sum", "gate", "cascade"])
@pytest.mark.parametrize("decomposition", ["split", "projection"])
def test_twin_memory_modes_keep_the_width(mode, decomposition):
    twin = TwinMemory(8, 12, decomposition=decomposition, reintegration=mode)
    assert twin(torch.randn(5, 12)).output.shape == (5, 12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim": 7}, "even"),
        ({"forget": 1.0}, "forget"),
        ({"reintegration": "mix"}, "reintegration"),
        ({"decomposition": "pca"}, "decomposition"),
    ],
)
def test_twin_memory_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TwinMemory(**{"num_slots": 4, "dim": 8, **kwargs})
