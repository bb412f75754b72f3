"""The README's alerts example prints exactly the output it shows, and its Kafka example the
count it waits for (the docs site includes both from the README)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.tansu import free_port

README = Path(__file__).resolve().parents[1] / "README.md"


def example() -> tuple[str, str]:
    """The README's alerts example and the output it shows."""
    text = README.read_text()
    match = re.search(
        r"\[start:alerts-example\] -->\n```python\n(.*?)```.*?```text\n(.*?)```", text, re.S
    )
    assert match, "the README lost its alerts example"
    return match.group(1), match.group(2)


def test_the_alerts_example_reads_a_frame_and_prints_its_alerts():
    code, shown = example()
    assert len(code.strip().splitlines()) <= 13
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), namespace)
    alerts = namespace["frame"].loc[namespace["flagged"]]
    assert alerts["is_anomaly"].mean() > 0.7  # most alerts fall on injected faults
    assert set(alerts["fault"]) >= {"stuck", "noise"}
    assert "stuck" in printed.getvalue() and "noise" in printed.getvalue()
    assert printed.getvalue() == shown  # what the README shows is what it prints


def kafka_example() -> tuple[str, str]:
    """The README's ``streammem serve`` command and its produce-then-read script."""
    text = README.read_text()
    match = re.search(r"\[start:kafka-example\] -->\n(.*?)<!-- --8<-- \[end:kafka", text, re.S)
    assert match, "the README lost its Kafka example"
    serve, produce = re.findall(r"```bash\n(.*?)```", match.group(1), re.S)
    command = re.search(r"^streammem serve .*?&$", serve, re.S | re.M)
    return command.group(0).replace("\\\n", " ").rstrip("&"), produce


@pytest.mark.kafka
def test_the_kafka_example_prints_the_events_it_sent(broker, tmp_path):
    """Its curl right after producing printed 0: the daemon was still joining its group."""
    command, produce = kafka_example()
    port = free_port()

    def local(text: str) -> str:  # the session's broker, a free metrics port, its own topics
        text = text.replace("127.0.0.1:9092", broker.bootstrap).replace("9108", str(port))
        for old, new in (
            ("'events'", "'readme-events'"),
            ("--input-topic events", "--input-topic readme-events"),
            ("--output-topic scores", "--output-topic readme-scores"),
        ):
            text = text.replace(old, new)
        return text

    serve = local(command).replace("streammem serve", f"{sys.executable} -m streammem serve")
    with (tmp_path / "serve.log").open("w") as log:
        daemon = subprocess.Popen(
            [*shlex.split(serve), "--metrics-port", str(port)],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        shown = subprocess.run(
            ["bash", "-c", local(produce).replace("python -c", f"{sys.executable} -c")],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=tmp_path,
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "streammem_events_total 5000.0" in shown.stdout
