"""bench.alerts: feedings agree, counts add up, the report holds both tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.alerts import Stream, feed, feeding_rows, new_model, quality_rows, write_report


def _stream() -> Stream:
    rng = np.random.default_rng(0)
    a = rng.normal(size=700)
    frame = pd.DataFrame({"a": a, "b": 2 * a + rng.normal(0, 0.1, 700)})
    y = np.zeros(700, bool)
    y[400::50] = True
    frame.loc[y, "b"] = -4 * frame.loc[y, "a"] + 3
    return Stream("toy", "toy", frame, y, warmup=100)


def test_every_feeding_gives_the_alerts_of_one_record_at_a_time():
    stream = _stream()
    one = feed(new_model(stream), stream.frame, None)
    assert one.sum() > 0
    for chunk in (1, 64, 0):
        np.testing.assert_array_equal(feed(new_model(stream), stream.frame, chunk), one)


def test_the_report_counts_feedings_and_the_floor(tmp_path):
    stream = _stream()
    feeding = pd.DataFrame(feeding_rows([stream], ["one at a time", "whole stream"]))
    assert (feeding["alerts"] == feeding["alerts"].iloc[0]).all()
    assert (feeding["false_alarms"] + feeding["caught"] == feeding["alerts"]).all()
    quality = pd.DataFrame(quality_rows([stream]))
    assert set(quality["contender"]) == {"MemAE", "floor"}
    report = write_report(feeding, quality, tmp_path, "python -m bench.alerts --toy").read_text()
    assert "## Feeding" in report and "## Quality" in report
    assert "| toy | one at a time |" in report and "(pooled)" not in report.split("Per stream")[1]
