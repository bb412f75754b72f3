"""The bench's streaming column against its offline column."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.cells import Cell, TaskData
from bench.runner import fit, score
from bench.streaming import estimator_params, stream_scores
from bench.zoo import TrainConfig, build_model, model_specs
from streammem import Network


def spec(protocol: str, dataset: str, name: str):
    return next(s for s in model_specs(protocol, dataset) if s.name == name)


def test_estimator_gets_the_model_hyper_parameters():
    cell = Cell("mnist", "one_class", spec("one_class", "mnist", "MemAE"), "streaming", 0, 0)
    kwargs, dropped = estimator_params(cell)
    assert kwargs == {
        "network": Network(backbone="conv28"),
        "num_slots": 100,
        "temperature": 1.0,
    }
    assert dropped == []
    roco = Cell("mnist", "roco", spec("roco", "mnist", "AE"), "streaming", 0, 0)
    kwargs, dropped = estimator_params(roco)
    network = kwargs["network"]
    assert network.hidden_sizes == (512, 256) and network.latent_size == 128
    assert network.output_activation == "block" and dropped == []


@pytest.mark.parametrize(
    ("protocol", "dataset"),
    [("one_class", "mnist"), ("one_class", "cifar10"), ("roco", "mnist"), ("kdd", "kddcup")],
)
def test_every_streaming_cell_gets_its_whole_model_configuration(protocol, dataset):
    for model in model_specs(protocol, dataset):
        if model.estimator is None:
            continue
        cell = Cell(dataset, protocol, model, "streaming", 0, 0)
        assert estimator_params(cell)[1] == [], model.name


def test_steps_per_batch_defaults_to_the_offline_epochs_and_is_in_the_key():
    memae = spec("one_class", "mnist", "MemAE")
    default = Cell("mnist", "one_class", memae, "streaming", 0, 0)
    single = Cell("mnist", "one_class", memae, "streaming", 0, 0, stream_steps=1)
    assert default.steps_per_batch() == 20 and single.steps_per_batch() == 1
    assert default.key() != single.key()
    offline = Cell("mnist", "one_class", memae, "offline", 0, 0)
    assert "steps_per_batch" not in offline.config()


def test_one_step_per_batch_equals_one_offline_epoch():
    """Same seed, order, batches and optimiser: one streamed pass is one offline epoch."""
    rng = np.random.default_rng(0)
    data = TaskData(
        rng.random((128, 1, 28, 28), dtype=np.float32),
        np.zeros((0, 1, 28, 28), np.float32),
        rng.random((20, 1, 28, 28), dtype=np.float32),
        np.arange(20) % 2,
    )
    ae = spec("one_class", "mnist", "AE")
    cell = Cell("mnist", "one_class", ae, "streaming", 0, 3, stream_steps=1)
    streamed = stream_scores(cell, data)
    torch.manual_seed(3)
    model = build_model(ae, (1, 28, 28))
    fit(model, data.train, data.val, TrainConfig(1e-3, 64, 1), seed=3)
    np.testing.assert_allclose(streamed, score(model, data.test), rtol=1e-4)
