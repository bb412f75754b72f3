"""The service and the connectors type-check (mypy, configured in pyproject.toml), so a
renamed detector, encoder or client member fails CI instead of the service at run time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_on_the_service(tmp_path):
    command = [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert "No module named mypy" not in result.stderr, "mypy is a test dependency"
    assert result.returncode == 0, result.stdout + result.stderr
