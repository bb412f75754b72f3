"""SchemaStage on its own: inferred -> provisional -> revised -> fixed, and its saved state.

tests/test_schema.py checks the same rule through the pipeline and the daemon's decoding."""

from __future__ import annotations

import pytest

import streammem
from streammem.interface import Schema
from streammem.service.schema_stage import SchemaStage
from streammem.service.served import Served


def served(**encoder) -> Served:
    declared = streammem.FeatureEncoder(**encoder) if encoder else None
    network = streammem.Network(hidden_sizes=(8,), latent_size=4)
    return Served(streammem.MemAE(network=network, encoder=declared))


def readings(n: int, temp="number") -> list[dict]:
    value = (lambda i: f"t{i % 3}") if temp == "text" else float
    return [{"temp": value(i), "rpm": 900.0 + i} for i in range(n)]


def test_a_declared_schema_is_never_touched():
    model = served(numeric=["temp", "rpm"], categorical={})  # both named: declared
    stage = SchemaStage(model, min_records=4, confirm_records=8)
    step = stage.step(model, readings(2, temp="text"), None)
    assert step.scorer is model and not step.adopted and stage.is_fixed(model)


def test_inferred_then_adopted_then_fixed():
    configured = served()
    stage = SchemaStage(configured, min_records=4, confirm_records=6)
    first = stage.step(configured, readings(3), None)
    assert not first.adopted and first.scorer is not configured  # a throw-away reads them
    assert stage.held is None
    adopted = stage.step(configured, readings(2), None)  # 5 records now: enough
    assert adopted.adopted and not adopted.revised
    model = adopted.scorer
    assert model.schema == Schema.of(["temp", "rpm"], {})
    assert stage.held == 0 and not stage.is_fixed(model)
    assert stage.step(model, readings(5), None).scorer is model
    assert stage.held == 5
    stage.step(model, readings(1), None)
    assert stage.held is None and stage.is_fixed(model)


def test_a_provisional_schema_is_revised_when_most_records_disagree():
    configured = served()
    stage = SchemaStage(configured, min_records=4, confirm_records=100)
    model = stage.step(configured, readings(4, temp="text"), None).scorer
    assert model.schema.categorical  # temp read as text first
    revised = stage.step(model, readings(4), None)
    assert revised.adopted and revised.revised
    assert revised.scorer.schema == Schema.of(["temp", "rpm"], {})


def test_state_round_trips_and_bad_state_is_named():
    configured = served()
    stage = SchemaStage(configured, min_records=4, confirm_records=100)
    model = stage.step(configured, readings(6), None).scorer
    stage.step(model, readings(3), None)
    state = stage.state_dict(model)
    again = SchemaStage(configured, min_records=4, confirm_records=100)
    again.load_state(state, declared=False)
    assert (again.held, again.sample) == (stage.held, stage.sample)
    assert again.held == 3 and len(again.sample) == 4
    declared = SchemaStage(configured)
    declared.load_state(state, declared=True)
    assert declared.held is None
    with pytest.raises(ValueError, match="schema_held is -1"):
        again.load_state({**state, "schema_held": -1}, declared=False)
    with pytest.raises(ValueError, match="cannot be read"):
        again.load_state({**state, "schema_sample": "{not json"}, declared=False)
    with pytest.raises(ValueError, match="not a list of records"):
        again.load_state({**state, "schema_sample": "[1, 2]"}, declared=False)
