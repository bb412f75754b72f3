"""The docs site builds with ``mkdocs build --strict``; its code blocks compile; the README's
headline table is what the committed bench results give.

The one output the README shows (the alerts example, which docs/alerts.md includes) is checked
exactly by tests/test_readme.py; the API pages' examples are doctests that pytest runs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import headline

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted([README, *(ROOT / "docs").glob("**/*.md")])
_BLOCK = re.compile(r"^```(?P<lang>[\w-]+)[^\n]*\n(?P<body>.*?)^```", re.S | re.M)


def blocks(page: Path, lang: str) -> list[tuple[int, str]]:
    """``(line, code)`` of each fenced block of ``lang`` on ``page``."""
    text = page.read_text()
    return [
        (text.count("\n", 0, m.start()) + 2, m["body"])
        for m in _BLOCK.finditer(text)
        if m["lang"] == lang
    ]


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_python_block_compiles(page):
    for line, code in blocks(page, "python"):
        try:
            compile(code, f"{_name(page)}:{line}", "exec")
        except SyntaxError as err:
            pytest.fail(f"{_name(page)}:{line}: {err}")


def test_the_site_builds_strict(tmp_path):
    missing = [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python") if not _has(m)]
    if missing:
        pytest.skip(
            f"the docs extra is not installed (no {', '.join(missing)}): pip install -e '.[docs]'"
        )
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "site" / "benchmarks" / "stream" / "report" / "index.html").exists()


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def test_the_readme_headline_table_is_the_committed_results():
    """Rerun the benches, then ``python -m bench.headline --write``: this keeps them in step."""
    assert headline.shown() == headline.table(), "run: python -m bench.headline --write"


def test_the_readme_stays_a_short_page_over_the_docs():
    assert len(README.read_text().splitlines()) <= 250
