"""bench.daemon: its arguments, report lines and detector inputs (no broker, no timing)."""

from __future__ import annotations

import json

import pytest

from bench.daemon import (
    Discard,
    Rates,
    daemon_config,
    decoded_polls,
    detector_rate,
    installed_clients,
    parse_args,
    pipeline_rate,
    report,
    river_model,
)


def test_several_daemons_default_to_four_partitions_and_need_one_each():
    assert parse_args([]).partitions == 1 and parse_args([]).daemons == 1
    assert parse_args(["--daemons", "2"]).partitions == 4
    assert parse_args(["--daemons", "3", "--partitions", "3"]).partitions == 3
    for argv in (["--daemons", "0"], ["--daemons", "2", "--partitions", "1"]):
        with pytest.raises(SystemExit):
            parse_args(argv)


def test_clients_default_to_every_installed_one_and_refuse_unknown_ones():
    assert parse_args([]).clients == installed_clients()
    assert "kafka-python" in installed_clients()
    assert parse_args(["--clients", "kafka-python,kafka-python"]).clients == ["kafka-python"]
    for argv in (["--clients", "pykafka"], ["--clients", ","]):
        with pytest.raises(SystemExit):
            parse_args(argv)


def rates(**changes) -> Rates:
    figures = {
        "raw": {"kafka-python": 40_000.0, "confluent": 80_000.0},
        "serve": {"kafka-python": (8_000.0, [0]), "confluent": (20_000.0, [0])},
        "detector": 50_000.0,
        "pipeline": 30_000.0,
        "river_loop": 10_000.0,
    }
    return Rates(**{**figures, **changes})


def test_the_report_shows_each_client_and_ends_with_the_lines_the_checks_read():
    lines = report(parse_args(["--events", "1000"]), rates())
    assert lines[0] == "1,000 KDDCUP99 records as JSON, 1 partition(s), Tansu"
    assert lines[1].split()[:2] == ["kafka-python:", "consume"]
    assert "40,000 events/s" in lines[1]
    assert "8,000 events/s" in lines[2] and "exit status 0; serve/raw 0.20" in lines[2]
    assert "80,000 events/s" in lines[3] and "serve/raw 0.25" in lines[4]
    assert "50,000 events/s" in lines[5] and "30,000 events/s" in lines[6]
    assert "10,000 events/s" in lines[7]
    assert "confluent, the fastest client" in lines[-3]
    assert lines[-2:] == ["serve/detector 0.40", "serve/river-loop 2.00"]


def test_several_daemons_run_on_the_fastest_client_and_keep_their_line():
    lines = report(parse_args(["--daemons", "2"]), rates(many=(30_000.0, [0, 0])))
    assert lines[0] == "100,000 KDDCUP99 records as JSON, 4 partition(s), Tansu"
    assert lines[8].startswith("2 x serve (confluent), one group")
    assert "30,000 events/s" in lines[8] and "exit statuses 0, 0" in lines[8]
    assert lines[9].split()[:2] == ["daemons/one", "1.50"]
    assert lines[-2:] == ["serve/detector 0.40", "serve/river-loop 2.00"]
    one_client = rates(serve={"kafka-python": (8_000.0, [0])}, raw={"kafka-python": 40_000.0})
    assert report(parse_args([]), one_client)[-2:] == [
        "serve/detector 0.16",
        "serve/river-loop 0.80",
    ]


def test_the_detector_and_the_river_loop_read_the_polls_the_daemon_reads(tmp_path):
    from streammem.metrics import ServiceMetrics
    from streammem.service.build import new_pipeline
    from streammem.service.config import parse_config

    config = parse_config(daemon_config("127.0.0.1:9092", tmp_path, "g", "kafka-python"))
    assert config.kafka.client == "kafka-python" and config.kafka.max_poll_records == 500
    events = [
        {"duration": i % 7, "protocol_type": "tcp", "src_bytes": 100 + i} for i in range(1_100)
    ]
    messages = [(str(i).encode(), json.dumps(e).encode()) for i, e in enumerate(events)]
    polls = list(decoded_polls(messages, config))
    assert [len(poll) for poll in polls] == [500, 500, 100]
    assert polls[1].records[0] == events[500] and polls[1].origins[0]["offset"] == 500
    summary = new_pipeline(config, ServiceMetrics()).process(polls[0], Discard())
    assert (summary.events, summary.dead_letters) == (500, 0)
    assert detector_rate(config, messages) > 0 and pipeline_rate(config, messages) > 0
    model = river_model(list(events[0]))  # the string field is left out
    assert set(next(iter(model.steps.values())).keys) == {"duration", "src_bytes"}
    model.learn_one(events[0])
    assert model.score_one(events[1]) >= 0
