"""The README's alerts example runs as printed and still finds what it says it finds."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- alerts-example:start -->\n```python\n(.*?)```", text, re.S)
    assert match, "the README lost its alerts example"
    return match.group(1)


def test_the_alerts_example_reads_a_frame_and_prints_its_alerts():
    code = example()
    assert len(code.strip().splitlines()) <= 13
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), namespace)
    alerts = namespace["frame"].loc[namespace["flagged"]]
    assert alerts["is_anomaly"].mean() > 0.7  # most alerts fall on injected faults
    assert set(alerts["fault"]) >= {"stuck", "noise"}
    assert "stuck" in printed.getvalue() and "noise" in printed.getvalue()
