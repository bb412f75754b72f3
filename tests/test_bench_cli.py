"""``python -m bench NAME``: every benchmark is listed, dispatched, and parses the shared flags
the same way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import bench.__main__ as entry
from bench.cli import RESULTS, bench_parser, report_dir

ROOT = Path(__file__).resolve().parents[1]


def test_every_benchmark_with_a_main_is_listed_and_nothing_else():
    listed = entry.commands()
    assert {"reproduce", "stream", "sensors", "correlated", "nab", "explain", "throughput"} <= set(
        listed
    )
    assert not {"cli", "tables", "report", "__main__"} & set(listed)  # helpers, not commands
    assert all(listed.values()), "each benchmark says what it does"


@pytest.mark.parametrize("name", sorted(entry.commands()))
def test_each_benchmark_answers_help_under_the_parent_command(name, capsys):
    with pytest.raises(SystemExit) as done:
        entry.main([name, "--help"])
    assert done.value.code == 0
    assert f"python -m bench {name}" in capsys.readouterr().out


def test_the_listing_and_an_unknown_name(capsys):
    assert entry.main([]) == 0
    assert "stream" in capsys.readouterr().out
    assert entry.main(["nope"]) == 2
    assert "no benchmark 'nope'" in capsys.readouterr().err


def test_the_parent_command_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "bench", "headline"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "| " in result.stdout  # the headline table, computed from the committed results


def test_shared_flags_and_the_report_folder(tmp_path):
    parser = bench_parser("bench.demo", "Demo.\n\nMore.", quick="x", data="d/", out="demo")
    assert parser.description == "Demo."
    args = parser.parse_args([])
    assert report_dir(args, "demo", tmp_path) == RESULTS / "demo"
    args = parser.parse_args(["--quick", "--data-root", "/data"])
    assert (report_dir(args, "demo", tmp_path), args.data_root) == (tmp_path, "/data")
    args = parser.parse_args(["--quick", "--out", str(tmp_path / "o")])
    assert report_dir(args, "demo", tmp_path) == tmp_path / "o"
    with pytest.raises(SystemExit):
        bench_parser("bench.demo", None).parse_args(["--quick"])  # no smoke run declared
