"""bench.explain: faults land where the plan says and only there, the references rank as
they should, a small run gives every cell and a report stating each target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench import explain


@pytest.fixture(scope="module")
def stream() -> explain.Stream:
    return explain.demo_stream(1200)


@pytest.mark.parametrize("kind", explain.KINDS)
def test_a_fault_touches_its_field_on_its_key_only(stream, kind):
    learned, test = stream.halves
    episodes = explain.plan(stream, test, kind, 5, seed=0)
    faulty = explain.inject(test, learned, kind, episodes, seed=0)
    touched = faulty.ne(test)
    expected = pd.DataFrame(False, index=test.index, columns=test.columns)
    for episode in episodes:
        assert episode.field in stream.fields
        assert test.loc[episode.rows, "machine"].nunique() == 1
        expected.loc[episode.rows, episode.field] = True
    length = 1 if kind in ("spike", "break") else explain.FAULT_LENGTH
    assert all(len(e.rows) == length for e in episodes)
    if kind == "stuck":  # the first reading is the value it sticks at
        expected.loc[[e.rows[0] for e in episodes]] = False
        for e in episodes:
            assert faulty.loc[e.rows, e.field].nunique() == 1
    assert touched.equals(expected)
    rows = sorted(int(r) for e in episodes for r in e.rows)
    assert len(rows) == len(set(rows))


def test_a_correlation_break_is_plausible_alone_and_far_from_the_truth():
    values = pd.Series(np.random.default_rng(0).normal(10, 2, 2000))
    rng = np.random.default_rng(1)
    spread, median = explain.robust_spread(values), values.median()
    for truth in (8.0, 10.0, 12.5):
        value = explain.plausible_but_wrong(values, truth, rng)
        assert abs(value - median) <= 1.5 * spread and abs(value - truth) >= spread


def test_the_references_name_the_field_that_breaks_a_relation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=500)
    train = pd.DataFrame({"a": a, "b": 2 * a + 0.1 * rng.normal(size=500), "c": -a})
    owners = {c: c for c in train.columns}
    broken = pd.DataFrame({"a": [1.0], "b": [-2.0], "c": [-1.0]})
    assert explain.regression_ranker(train, owners, None)(broken).idxmax(axis=1)[0] == "b"
    spiked = pd.DataFrame({"a": [0.1], "b": [0.2], "c": [9.0]})
    assert explain.z_ranker(train, owners)(spiked).idxmax(axis=1)[0] == "c"
    rankings = pd.DataFrame({"a": [3.0, 1.0], "b": [2.0, 2.0], "c": [1.0, 3.0]})
    assert explain.accuracy(rankings, ["a", "b"]) == (0.5, 1.0)


@pytest.mark.parametrize("windowed", [False, True], ids=["rows", "window"])
def test_a_small_run_gives_every_kind_and_method(stream, windowed):
    cells = pd.DataFrame(explain.evaluate(stream, windowed, n_faults=4))
    assert len(cells) == len(explain.KINDS) * len(explain.METHODS)
    assert set(cells["method"]) == {"MemAE", "largest |z|", "regression"}
    assert cells["top1"].between(0, 1).all() and (cells["top3"] >= cells["top1"]).all()
    spikes = cells[cells["kind"] == "spike"]
    assert (spikes["top3"] > 0).all()


def test_the_report_states_each_target(stream, tmp_path):
    cells = pd.DataFrame(explain.evaluate(stream, True, n_faults=3))
    written = explain.write_report(cells, tmp_path, "python -m bench.explain --test", "MemAE")
    text = (tmp_path / "explain.md").read_text()
    assert "`python -m bench.explain --test`" in text and "largest \\|z\\|" in text
    assert text.count("| demo | window |") == 3
    assert written[-1].read_bytes()[:4] == b"\x89PNG"
