"""bench.daemon: its arguments and report lines (no broker, no timing)."""

from __future__ import annotations

import pytest

from bench.daemon import parse_args, report


def test_several_daemons_default_to_four_partitions_and_need_one_each():
    assert parse_args([]).partitions == 1 and parse_args([]).daemons == 1
    assert parse_args(["--daemons", "2"]).partitions == 4
    assert parse_args(["--daemons", "3", "--partitions", "3"]).partitions == 3
    for argv in (["--daemons", "0"], ["--daemons", "2", "--partitions", "1"]):
        with pytest.raises(SystemExit):
            parse_args(argv)


def test_the_report_keeps_the_one_daemon_lines_and_adds_the_group_against_one():
    one = report(parse_args(["--events", "1000"]), 40_000.0, (8_000.0, [0]))
    assert one[1:] == [
        "raw consume + json.loads      40,000 events/s",
        "streammem serve (MemAE)        8,000 events/s   (exit status 0)",
        "ratio                           0.20   (target >= 0.50)",
    ]
    args = parse_args(["--daemons", "2"])
    two = report(args, 40_000.0, (8_000.0, [0]), (12_000.0, [0, 0]))
    assert two[0] == "100,000 KDDCUP99 records as JSON, 4 partition(s), Tansu"
    assert two[1:4] == one[1:]
    assert two[4] == "2 x serve, one group          12,000 events/s   (exit statuses 0, 0)"
    assert two[5].split()[:2] == ["daemons/one", "1.50"]
