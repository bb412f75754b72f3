"""The network's settings as one value (streammem.Network), and the old way of writing them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import streammem
from streammem.nn.network import fold_network_params


def test_a_network_is_a_comparable_hashable_value():
    assert streammem.Network(hidden_sizes=[8]) == streammem.Network(hidden_sizes=(8,))
    assert len({streammem.Network(), streammem.Network()}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        streammem.Network().latent_size = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backbone": "resnet"}, "network.backbone must be one of"),
        ({"hidden_sizes": 64}, "network.hidden_sizes must be a sequence"),
        ({"hidden_sizes": (64, 0)}, r"network.hidden_sizes\[...\] must be an integer >= 1"),
        ({"latent_size": True}, "network.latent_size must be an integer >= 1 or None"),
        ({"batch_norm": "yes"}, "network.batch_norm must be one of"),
        ({"input_shape": (1, -28)}, r"network.input_shape\[...\] must be"),
    ],
)
def test_a_bad_setting_fails_where_the_network_is_written(settings, message):
    with pytest.raises(ValueError, match=message):
        streammem.Network(**settings)


def test_every_detector_builds_the_network_it_is_given():
    network = streammem.Network(hidden_sizes=(12, 6), latent_size=4, batch_norm=True)
    for cls in (streammem.AE, streammem.MemAE, streammem.Memorizer, streammem.RFTM):
        detector = cls(network=network, device="cpu")
        detector.learn_many(np.random.default_rng(0).normal(size=(64, 5)))
        widths = [
            m.out_features for m in detector.model_.encoder.modules() if hasattr(m, "out_features")
        ]
        assert widths[:2] == [12, 6], cls.__name__
        norms = [m for m in detector.model_.modules() if type(m).__name__ == "BatchNorm1d"]
        assert norms, cls.__name__


def test_a_checkpoint_from_before_network_loads_with_its_network():
    detector = streammem.MemAE(network=streammem.Network(hidden_sizes=(8,), latent_size=4))
    detector.learn_many(np.random.default_rng(0).normal(size=(64, 3)))
    state = detector.state_dict()
    old = dict(state["params"])  # the layout before Network: its fields beside the others
    del old["network"]
    old.update(
        backbone="mlp",
        input_shape=None,
        hidden_sizes=[8],
        latent_size=4,
        activation="leaky_relu",
        output_activation="linear",
        batch_norm=None,
    )
    loaded = streammem.from_state({**state, "params": old})
    assert loaded.network == detector.network
    rows = np.random.default_rng(1).normal(size=(5, 3))
    np.testing.assert_allclose(loaded.score_many(rows), detector.score_many(rows))


def test_folding_keeps_a_detectors_own_argument_of_the_same_name():
    memgan = fold_network_params({"input_shape": (1, 28, 28)}, accepted=("input_shape",))
    assert memgan == {"input_shape": (1, 28, 28)}
    memae = fold_network_params(
        {"network": streammem.Network(latent_size=2), "input_shape": (4,)}, accepted=("network",)
    )
    assert memae["network"] == streammem.Network(latent_size=2, input_shape=(4,))
