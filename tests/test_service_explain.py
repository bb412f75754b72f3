"""``top_fields`` in the service: which results carry them, by the readings' fields under a
window, in the metrics and the plot, never on a dead letter, and across a restart."""

from __future__ import annotations

import copy
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sinks import ListSink

from connectors import RecordBatch
from streammem.metrics import ServiceMetrics
from streammem.service.build import new_pipeline
from streammem.service.config import ConfigError, parse_config
from streammem.service.job import run_job
from streammem.service.pipeline import ScoringPipeline
from streammem.service.plot import score_figure

CONFIG = {
    "calibration": {"alpha": 0.01, "window_size": 500, "min_reference": 100},
    "features": {"window": {"size": 10, "key": "machine", "features": ["std", "last_minus_mean"]}},
    "metrics": {"port": None},
}
SPIKES = (2210, 2630, 2850)  # rows whose "b" jumps


def config(**sections) -> object:
    data = copy.deepcopy(CONFIG)
    for section, values in sections.items():
        data[section] = values
    return parse_config(data)


def readings(n: int, seed: int = 0) -> list[dict]:
    """Two machines; ``b`` and ``c`` follow ``a``, ``d`` is noise; a spike on ``b`` at
    :data:`SPIKES`."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = np.sin(i / 50) + 0.1 * rng.normal()
        record = {"machine": ["press", "lathe"][i % 2], "a": a, "d": rng.normal()}
        record |= {"b": 2 * a + 0.1 * rng.normal(), "c": 0.1 * rng.normal() - a}
        record["b"] += 6.0 if i in SPIKES else 0.0
        out.append(record)
    return out


def run(pipeline: ScoringPipeline, n: int = 3000, size: int = 250) -> ListSink:
    sink, records = ListSink(), readings(n)
    for start in range(0, n, size):
        rows = range(start, start + size)
        pipeline.process(
            RecordBatch(records[start : start + size], [{"row": i} for i in rows]), sink
        )
    return sink


@pytest.fixture(scope="module")
def windowed() -> tuple[ScoringPipeline, ListSink]:
    pipeline = new_pipeline(config(), ServiceMetrics())
    return pipeline, run(pipeline)


def test_alerts_carry_their_top_reading_fields_and_other_results_none(windowed):
    _, sink = windowed
    alerts = [r for r in sink.results if r["alert"]]
    assert all(r["top_fields"] is None for r in sink.results if not r["alert"])
    assert alerts and all(1 <= len(r["top_fields"]) <= 3 for r in alerts)
    fields = {entry["field"] for r in alerts for entry in r["top_fields"]}
    assert fields <= {"machine", "a", "b", "c", "d"}  # the readings' fields, not b_std
    spiked = {r["row"]: r for r in sink.results if r["row"] in SPIKES}
    assert all(r["alert"] and r["top_fields"][0]["field"] == "b" for r in spiked.values())
    contributions = [entry["contribution"] for entry in spiked[SPIKES[0]]["top_fields"]]
    assert contributions == sorted(contributions, reverse=True)
    assert sum(contributions) <= spiked[SPIKES[0]]["score"] * (1 + 1e-6)


def test_alerts_are_counted_by_top_field_only(windowed):
    pipeline, sink = windowed
    registry = pipeline.metrics.registry
    tops = [r["top_fields"][0]["field"] for r in sink.results if r["alert"]]
    counted = {
        sample.labels["field"]: sample.value
        for metric in registry.collect()
        if metric.name == "streammem_alerts_by_top_field"
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    assert counted == {field: float(tops.count(field)) for field in set(tops)}
    assert set(counted) <= {"machine", "a", "b", "c", "d"}


def test_top_fields_are_configured_off_or_for_every_record():
    off = new_pipeline(config(sink={"kind": "none", "top_fields": 0}), ServiceMetrics())
    assert all("top_fields" not in r for r in run(off, n=500).results)
    every = config(sink={"kind": "none", "top_fields": 1, "top_fields_for": "all"})
    results = run(new_pipeline(every, ServiceMetrics()), n=500).results
    assert all(len(r["top_fields"]) == 1 for r in results if r["score"] > 0)
    with pytest.raises(ConfigError, match=r"sink\.top_fields: must be >= 0"):
        config(sink={"top_fields": -1})


def test_a_dead_lettered_record_has_no_top_fields():
    pipeline = new_pipeline(config(features={}), ServiceMetrics())
    records = readings(300)
    records[250] = {**records[250], "a": "broken"}
    sink = ListSink()
    pipeline.process(RecordBatch(records, [{"row": i} for i in range(300)]), sink)
    (letter,) = sink.letters
    assert letter.origin == {"row": 250} and "top_fields" not in letter.origin
    assert 250 not in [r["row"] for r in sink.results]


def test_top_fields_survive_a_restart(tmp_path, monkeypatch):
    """A job stopped mid-file goes on from its checkpoint: its Parquet output keeps one
    top_fields column (declared, though the first row groups have no alert), the resumed
    model names the spiked field, and dead letters have no top_fields."""
    records = readings(3000)
    records[2400]["a"] = None  # a dead letter after the restart
    table = pa.Table.from_pylist(records)
    source, output = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(table.append_column("id", pa.array(range(3000))), source)
    job = config(
        features={},
        source={"kind": "parquet", "path": str(source), "passthrough": ["id"], "batch_size": 250},
        sink={"kind": "parquet", "path": str(output), "row_group_size": 100},
        checkpoint={"dir": str(tmp_path / "ckpt"), "interval_s": 0},
    )
    original = ScoringPipeline.process
    calls = []

    def crash_at_the_ninth_batch(self, batch, sink):
        calls.append(1)
        if len(calls) == 9:
            raise KeyboardInterrupt
        return original(self, batch, sink)

    monkeypatch.setattr(ScoringPipeline, "process", crash_at_the_ninth_batch)
    with pytest.raises(KeyboardInterrupt):
        run_job(job, progress=False)
    monkeypatch.undo()
    assert run_job(job, progress=False).resumed_at == 2000
    results = pq.read_table(output).to_pylist()
    assert [r["id"] for r in results] == [i for i in range(3000) if i != 2400]
    assert all((r["top_fields"] is not None) == r["alert"] for r in results)
    spiked = [r for r in results if r["id"] in SPIKES]
    assert all(r["alert"] and r["top_fields"][0]["field"] == "b" for r in spiked)
    (letter,) = output.with_suffix(".dead-letters.jsonl").read_text().splitlines()
    assert json.loads(letter)["row"] == 2400 and "top_fields" not in json.loads(letter)


def test_the_plot_colours_each_alert_by_its_top_field(windowed):
    _, sink = windowed
    rows = [{**r, "is_anomaly": r["row"] in SPIKES} for r in sink.results]
    legend = score_figure(pa.Table.from_pylist(rows)).axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("alert, top field b (") for label in legend)
    assert "alert" not in legend
