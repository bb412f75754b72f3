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


def test_a_users_typed_records_type_check(tmp_path):
    """River users pass ``dict[str, float]``: a Mapping's key type is invariant, so parameters
    typed ``Mapping[Hashable, Any]`` refused every such dict."""
    script = tmp_path / "user.py"
    script.write_text(
        "import streammem\n"
        "x: dict[str, float] = {'a': 1.0}\n"
        "detector = streammem.MemAE(encoder=streammem.FeatureEncoder(categorical={'c': ['u']}))\n"
        "detector.learn_one(x)\n"
        "alerts = streammem.AlertFilter(detector)\n"
        "alerts.learn_one(x)\n"
        "score: float = detector.score_one(x)\n"
    )
    command = [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), str(script)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
