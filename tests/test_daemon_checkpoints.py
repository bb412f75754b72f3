"""The daemon's checkpoints and offsets tell the truth (reliability report, failures 4 and 5).

The daemon runs in-process until it has read its partitions' logs: from memory, or on the real
Tansu broker of the session through a consumer assigned its partitions (no group join, so these
run in seconds).
"""

from __future__ import annotations

import io
import json
import logging
import re

import numpy as np
import pandas as pd
import pytest
from consumers import MemoryConsumer, ReadToEnd
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from sinks import ListSink

import streammem
from connectors.kafka import make_consumer
from streammem.metrics import ServiceMetrics
from streammem.persistence import CheckpointError, load_checkpoint, save_checkpoint
from streammem.service.build import new_pipeline
from streammem.service.checkpoint import CheckpointStore
from streammem.service.config import Config, parse_config
from streammem.service.daemon import Daemon

TP = TopicPartition("events", 0)
EVENT = json.dumps({"temp": 20.0, "rpm": 900.0, "line": "a"}).encode()


def daemon_config(tmp_path, bootstrap: str = "127.0.0.1:1") -> Config:
    return parse_config(
        {
            "model": {"name": "MemAE", "params": {"num_slots": 10}},
            "source": {"kind": "kafka"},
            "sink": {"kind": "kafka"},
            "kafka": {"bootstrap_servers": bootstrap, "group_id": "ckpt", "max_poll_records": 3},
            "checkpoint": {"dir": str(tmp_path / "checkpoints"), "interval_s": 0},
            "metrics": {"port": None},
        }
    )


def run(
    config: Config,
    consumer: KafkaConsumer | MemoryConsumer,
    ends: dict[TopicPartition, int],
    results: int | None = None,
) -> tuple[Daemon, ListSink]:
    """A daemon run on ``consumer`` until it has read each partition up to its end (or until
    it has written ``results`` results), and the sink its results went to."""
    sink = ListSink()
    until = None if results is None else lambda: len(sink.results) >= results
    daemon = Daemon(
        config,
        ServiceMetrics(),
        new_consumer=lambda kafka, listener: ReadToEnd(consumer, ends, daemon.stop, until=until),
        new_sink=lambda kafka: sink,
    )
    assert daemon.run() == 0
    return daemon, sink


def checkpoint(config: Config, tp: TopicPartition, offset: int) -> dict:
    pipeline = new_pipeline(config, ServiceMetrics(), (tp.topic, str(tp.partition)))
    return {**pipeline.state_dict(), "topic": tp.topic, "partition": tp.partition, "offset": offset}


def fallbacks(daemon: Daemon) -> float:
    return daemon.metrics.registry.get_sample_value("streammem_checkpoint_fallbacks_total")


def resume_at_100(config: Config, caplog) -> tuple[Daemon, ListSink]:
    """Run over offsets 98-101, committed up to 98: a daemon that resumed from its checkpoint
    at offset 100 skips 98 and 99, which that checkpoint has learned already."""
    consumer = MemoryConsumer({TP: [EVENT] * 102}, committed={TP: 98})
    with caplog.at_level(logging.INFO):
        daemon, sink = run(config, consumer, {TP: 102})
    assert [r["offset"] for r in sink.results] == [100, 101]
    assert "from its checkpoint at offset 100" in caplog.text
    assert consumer.commits == {TP: 102}
    return daemon, sink


BAD = {
    "detector_a_string": lambda good: {**good, "detector": "x"},
    "calibrator_a_list": lambda good: {**good, "calibrator": []},
    "detector_wrong_inside": lambda good: {**good, "detector": {"class": "MemAE", "params": 1}},
    "offset_missing": lambda good: {k: v for k, v in good.items() if k != "offset"},
    "offset_not_an_int": lambda good: {**good, "offset": "12"},
    "offset_too_large": lambda good: {**good, "offset": 2**70},
    "another_partition": lambda good: {**good, "partition": 3},
}


@pytest.mark.parametrize("bad", list(BAD), ids=list(BAD))
def test_a_checkpoint_that_does_not_rebuild_falls_back_to_the_older_one(tmp_path, bad, caplog):
    config = daemon_config(tmp_path)
    store = CheckpointStore(config.checkpoint.dir)
    good = checkpoint(config, TP, 100)
    store.save("events-0", good)
    store.save("events-0", BAD[bad](good))
    daemon, _ = resume_at_100(config, caplog)
    assert fallbacks(daemon) == 1
    assert "trying an older one" in caplog.text


def test_a_checkpoint_holding_code_is_never_run(tmp_path, caplog):
    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))

    config = daemon_config(tmp_path)
    store = CheckpointStore(config.checkpoint.dir)
    store.save("events-0", checkpoint(config, TP, 100))
    save_checkpoint({"detector": Payload()}, store.root / "events-0" / "ckpt-0000000009.pt")
    daemon, _ = resume_at_100(config, caplog)
    assert not (tmp_path / "ran").exists() and fallbacks(daemon) == 1


def test_topic_names_map_to_distinct_folders_inside_the_root(tmp_path):
    store = CheckpointStore(tmp_path / "root")
    paths = [store.save(name, {"offset": 1}) for name in ("a/b-0", "a b-0", "a_b-0", "..", ".")]
    assert len({path.parent for path in paths}) == 5
    assert all(path.parent.parent == tmp_path / "root" for path in paths)


def test_checkpoint_age_is_not_reset_while_no_checkpoint_exists(tmp_path):
    config = daemon_config(tmp_path)
    age = "streammem_checkpoint_age_seconds"
    # nothing but empty polls, as during the group join: no checkpoint is written
    daemon, _ = run(config, MemoryConsumer({TP: []}), {TP: 0})
    assert daemon.metrics.registry.get_sample_value(age) == -1
    daemon, _ = run(config, MemoryConsumer({TP: [EVENT] * 5}), {TP: 5})
    assert 0 <= daemon.metrics.registry.get_sample_value(age) < 60
    assert CheckpointStore(config.checkpoint.dir).load_latest("events-0")["offset"] == 5


def test_a_commit_beyond_the_log_end_reads_the_new_log_from_its_start(tmp_path, caplog):
    """A re-created topic whose group kept its commit (300) while the new log ends at 100:
    fetching at 300 returns nothing, so offsets 0-99 were passed over unread. The daemon goes
    back to the log's start and counts what it reads again."""
    config = daemon_config(tmp_path)
    consumer = MemoryConsumer({TP: [EVENT] * 100}, committed={TP: 300})
    with caplog.at_level(logging.WARNING):
        daemon, sink = run(config, consumer, {}, results=100)
    assert [r["offset"] for r in sink.results] == list(range(100))
    assert consumer.commits == {TP: 100}
    labels = {"topic": "events", "partition": "0"}
    get = daemon.metrics.registry.get_sample_value
    assert get("streammem_offset_resets_total", labels) == 1
    assert get("streammem_offsets_reread_total", labels) == 100
    assert "position 300 beyond the log's end 100" in caplog.text


@pytest.mark.kafka
def test_resuming_checks_the_checkpoint_offset_against_the_broker(broker, tmp_path, caplog):
    """A checkpoint ahead of the commit skips what it covers (seeking past it); one beyond the
    log's end (10^12, or a broker that lost its log) is not trusted: the log is read from its
    start."""
    broker.create_topic("resume", 2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(20):
        event = {"temp": 20.0 + i % 3, "rpm": 900.0, "line": "ab"[i % 2]}
        producer.send("resume", json.dumps(event).encode(), partition=i % 2)
    producer.flush()
    producer.close()
    consumer = make_consumer(broker.bootstrap, "resume-group")
    ahead, absurd = TopicPartition("resume", 0), TopicPartition("resume", 1)
    consumer.assign([ahead, absurd])
    consumer.commit({tp: OffsetAndMetadata(2, "", -1) for tp in (ahead, absurd)})
    config = daemon_config(tmp_path, broker.bootstrap)
    store = CheckpointStore(config.checkpoint.dir)
    store.save("resume-0", checkpoint(config, ahead, 7))
    store.save("resume-1", checkpoint(config, absurd, 10**12))
    with caplog.at_level(logging.INFO):
        daemon, sink = run(config, consumer, {ahead: 10, absurd: 10})
    scored = {(r["partition"], r["offset"]) for r in sink.results}
    assert scored == {(0, o) for o in range(7, 10)} | {(1, o) for o in range(10)}
    assert "offsets 2-6 were scored before the checkpoint" in caplog.text
    resets = daemon.metrics.registry.get_sample_value(
        "streammem_offset_resets_total", {"topic": "resume", "partition": "1"}
    )
    assert resets == 1 and "checkpoint at 1000000000000" in caplog.text


def test_a_detector_loads_from_a_binary_file_object(tmp_path):
    detector = streammem.MemAE(num_slots=10)
    detector.learn_many(pd.DataFrame({"a": np.arange(300.0), "b": np.ones(300)}))
    detector.save(tmp_path / "model.pt")
    with open(tmp_path / "model.pt", "rb") as handle:
        loaded = streammem.load(handle)
    probe = pd.DataFrame({"a": [3.0], "b": [1.0]})
    assert loaded.score_many(probe)[0] == detector.score_many(probe)[0]
    buffer = io.BytesIO((tmp_path / "model.pt").read_bytes())
    assert streammem.load(buffer).n_updates_ == detector.n_updates_


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "truncated or empty"),
        (b"\x80\x02" + bytes(100), "refused unread (not written by streammem, or tampered"),
        (b"h" + bytes(200), "corrupt or not a torch checkpoint (KeyError: 0)"),
    ],
)
def test_unreadable_checkpoints_say_why(tmp_path, content, reason):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=re.escape(reason)):
        load_checkpoint(tmp_path / "bad.pt")
