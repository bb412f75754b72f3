"""The daemon's checkpoints and offsets tell the truth (reliability report, failures 4 and 5).

The daemon runs in-process until it has read its partitions' logs: from memory, or on the real
Tansu broker of the session through a consumer assigned its partitions (no group join, so these
run in seconds).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from consumers import MemoryConsumer, ReadToEnd
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from sinks import ListSink

import streammem
from connectors.kafka import make_consumer
from connectors.tansu import free_port
from streammem.learning.training import preload_optimizer
from streammem.metrics import ServiceMetrics
from streammem.persistence import CheckpointError, load_checkpoint, save_checkpoint
from streammem.service.build import new_pipeline
from streammem.service.checkpoint import CheckpointStore
from streammem.service.config import Config, parse_config
from streammem.service.daemon import Daemon

TP = TopicPartition("events", 0)
EVENT = json.dumps({"temp": 20.0, "rpm": 900.0, "line": "a"}).encode()


def daemon_config(tmp_path, bootstrap: str = "127.0.0.1:1", **sections: dict) -> Config:
    return parse_config(
        {
            "model": {"name": "MemAE", "params": {"num_slots": 10}},
            "source": {"kind": "kafka"},
            "sink": {"kind": "kafka"},
            "kafka": {"bootstrap_servers": bootstrap, "group_id": "ckpt", "max_poll_records": 3},
            "checkpoint": {"dir": str(tmp_path / "checkpoints"), "interval_s": 0},
            "metrics": {"port": None},
            **sections,
        }
    )


def run(
    config: Config,
    consumer: KafkaConsumer | MemoryConsumer,
    ends: dict[TopicPartition, int],
    until: Callable[[ListSink], bool] | None = None,
) -> tuple[Daemon, ListSink]:
    """A daemon run on ``consumer`` until it has read each partition up to its end (or until
    ``until(sink)`` is true after a poll), and the sink its results went to."""
    sink = ListSink()
    stop_when = None if until is None else lambda: until(sink)
    daemon = Daemon(
        config,
        ServiceMetrics(),
        new_consumer=lambda kafka, listener: ReadToEnd(
            consumer, ends, daemon.stop, until=stop_when
        ),
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
    "reread_below_not_an_offset": lambda good: {**good, "reread_below": -1},
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
        daemon, sink = run(config, consumer, {}, until=lambda sink: len(sink.results) >= 100)
    assert [r["offset"] for r in sink.results] == list(range(100))
    assert consumer.commits == {TP: 100}
    labels = {"topic": "events", "partition": "0"}
    get = daemon.metrics.registry.get_sample_value
    assert get("streammem_offset_resets_total", labels) == 1
    assert get("streammem_offsets_reread_total", labels) == 100
    assert "position 300 beyond the log's end 100" in caplog.text


def test_offsets_read_again_are_counted_across_a_restart(tmp_path):
    """The mark below which offsets are read again goes with the partition's checkpoint, so
    its next owner goes on counting (a rebalance lost it)."""
    config = daemon_config(tmp_path)
    consumer = MemoryConsumer({TP: [EVENT] * 100}, committed={TP: 300})
    first, _ = run(config, consumer, {}, until=lambda sink: len(sink.results) >= 60)
    consumer = MemoryConsumer({TP: [EVENT] * 100}, committed=consumer.commits)
    second, sink = run(config, consumer, {TP: 100})
    labels = {"topic": "events", "partition": "0"}
    reread = [
        daemon.metrics.registry.get_sample_value("streammem_offsets_reread_total", labels)
        for daemon in (first, second)
    ]
    assert reread[0] >= 60 and sum(reread) == 100 and len(sink.results) == 100 - reread[0]


@pytest.mark.kafka
def test_resuming_checks_the_checkpoint_offset_against_the_broker(broker, tmp_path, caplog):
    """A checkpoint ahead of the commit skips what it covers (seeking past it); one beyond the
    log's end (10^12) while the commit is within it is a bad checkpoint, not log loss: it is
    skipped (it was reported as the broker losing its log, and the log read again)."""
    broker.create_topic("resume-offsets", 2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(20):
        event = {"temp": 20.0 + i % 3, "rpm": 900.0, "line": "ab"[i % 2]}
        producer.send("resume-offsets", json.dumps(event).encode(), partition=i % 2)
    producer.flush()
    producer.close()
    consumer = make_consumer(broker.bootstrap, "resume-group")
    ahead, absurd = TopicPartition("resume-offsets", 0), TopicPartition("resume-offsets", 1)
    consumer.assign([ahead, absurd])
    consumer.commit({tp: OffsetAndMetadata(2, "", -1) for tp in (ahead, absurd)})
    config = daemon_config(tmp_path, broker.bootstrap)
    store = CheckpointStore(config.checkpoint.dir)
    store.save("resume-offsets-0", checkpoint(config, ahead, 7))
    store.save("resume-offsets-1", checkpoint(config, absurd, 10**12))
    with caplog.at_level(logging.INFO):
        daemon, sink = run(config, consumer, {ahead: 10, absurd: 10})
    scored = {(r["partition"], r["offset"]) for r in sink.results}
    assert scored == {(0, o) for o in range(7, 10)} | {(1, o) for o in range(2, 10)}
    assert "offsets 2-6 were scored before the checkpoint" in caplog.text
    resets = daemon.metrics.registry.get_sample_value(
        "streammem_offset_resets_total", {"topic": "resume-offsets", "partition": "1"}
    )
    assert resets is None and fallbacks(daemon) == 1
    assert "its offset 1000000000000 is beyond the log's end 10" in caplog.text


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


# ---------------------------------------------------------------------------- disk faults
@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` on ``folder``: a real full or read-only filesystem (root only)."""
    folder.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def remount(folder: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True)


@contextlib.contextmanager
def file_where_the_folder_goes(folder: Path) -> Iterator[Callable[[], None]]:
    folder.write_text("not a folder")
    yield folder.unlink


@contextlib.contextmanager
def no_space(folder: Path) -> Iterator[Callable[[], None]]:
    with tmpfs(folder, "1m"):
        filler = folder / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as handle:
            handle.write(bytes(2**21))
        yield filler.unlink


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Callable[[], None]]:
    with tmpfs(folder, "4m"):
        remount(folder, "ro")
        yield lambda: remount(folder, "rw")


@contextlib.contextmanager
def descriptors_left(count: int) -> Iterator[Callable[[], None]]:
    """Only ``count`` file descriptors left to open (the limit lowered, the rest taken); yields
    what gives them back."""
    preload_optimizer()  # the daemon imports it on a thread, which needs files
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + count + 16, limits[1]))
    held = []

    def release() -> None:
        while held:
            os.close(held.pop())
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)

    try:
        with contextlib.suppress(OSError):
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        for _ in range(count):
            os.close(held.pop())
        yield release
    finally:
        release()


def too_many_open_files(folder: Path) -> contextlib.AbstractContextManager:
    """Every file descriptor in use (as 1,017 idle metrics connections did): opening fails."""
    return descriptors_left(0)


DISK_FAULTS = {
    fault.__name__: fault
    for fault in (file_where_the_folder_goes, no_space, read_only, too_many_open_files)
}


def failures(daemon: Daemon) -> float:
    return daemon.metrics.registry.get_sample_value(
        "streammem_checkpoint_failures_total", {"operation": "save"}
    )


@pytest.mark.parametrize("fault", list(DISK_FAULTS))
def test_checkpoints_that_cannot_be_written_degrade_and_recover(tmp_path, fault, caplog):
    """Every checkpoint fails until the disk is repaired, halfway. The daemon used to exit 2
    at the first (1, with torch's traceback, on a full disk) with its results flushed but
    never committed, so every restart emitted them again. Scoring and committing go on, each
    failure is counted and logged, and checkpoints resume once the disk is back."""
    config = daemon_config(tmp_path)
    folder = Path(config.checkpoint.dir)
    consumer = MemoryConsumer({TP: [EVENT] * 60})
    repaired = []

    def repair_halfway(sink: ListSink) -> bool:
        if len(sink.results) >= 30 and not repaired:
            repair()
            repaired.append(True)
        return len(sink.results) >= 60

    with DISK_FAULTS[fault](folder) as repair:
        with caplog.at_level(logging.WARNING):
            daemon, sink = run(config, consumer, {}, until=repair_halfway)
        assert [r["offset"] for r in sink.results] == list(range(60))
        assert consumer.commits == {TP: 60}
        assert failures(daemon) >= 1
        assert caplog.text.count("cannot write the checkpoint") == failures(daemon)
        assert CheckpointStore(folder).load_latest("events-0")["offset"] == 60
        assert not list(folder.rglob("*.tmp"))


def test_a_daemon_stops_cleanly_when_its_last_checkpoint_cannot_be_written(tmp_path, caplog):
    config = daemon_config(tmp_path)
    consumer = MemoryConsumer({TP: [EVENT] * 9})
    with file_where_the_folder_goes(Path(config.checkpoint.dir)), caplog.at_level(logging.ERROR):
        daemon, sink = run(config, consumer, {TP: 9})
    assert len(sink.results) == 9 and consumer.commits == {TP: 9}
    assert "cannot write the checkpoint at offset 9" in caplog.records[-1].getMessage()
    assert failures(daemon) == caplog.text.count("cannot write the checkpoint")


def test_a_folder_named_like_a_checkpoint_is_left_alone(tmp_path):
    """It used to be counted among the checkpoints and deleted with the oldest: EISDIR, exit 2."""
    config = daemon_config(tmp_path)
    odd = Path(config.checkpoint.dir) / "events-0" / "ckpt-0000000000.pt"
    odd.mkdir(parents=True)
    daemon, _ = run(config, MemoryConsumer({TP: [EVENT] * 30}), {TP: 30})
    store = CheckpointStore(config.checkpoint.dir)
    assert odd.is_dir() and failures(daemon) == 0
    assert store.load_latest("events-0")["offset"] == 30
    assert len(store.paths("events-0")) == config.checkpoint.keep


def test_a_stray_temporary_file_is_removed(tmp_path):
    """What a save cut short (kill -9) leaves behind goes when the partition's model loads."""
    config = daemon_config(tmp_path)
    store = CheckpointStore(config.checkpoint.dir)
    store.save("events-0", checkpoint(config, TP, 0))
    stray = store.root / "events-0" / ".ckpt-0000000001.pt.k2j4x9.tmp"
    stray.write_bytes(b"half a checkpoint")
    run(config, MemoryConsumer({TP: [EVENT] * 3}), {TP: 3})
    assert not stray.exists()


IDLE_CLIENTS = """
import socket, sys, time
held = []
for _ in range(int(sys.argv[2])):
    try:
        held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5))
    except OSError:
        pass
print(len(held), flush=True)
time.sleep(120)
"""


def test_idle_metrics_connections_leave_descriptors_for_checkpoints(tmp_path):
    """1,017 idle connections to the metrics endpoint, under a 1,024-descriptor limit, made the
    next checkpoint fail: the endpoint held a thread and a descriptor for each, for good. Here
    200 connect (from another process) while 64 descriptors are left."""
    port = free_port()
    config = daemon_config(tmp_path, metrics={"port": port, "max_connections": 4})
    clients: list[subprocess.Popen] = []

    def connect_then_read(sink: ListSink) -> bool:
        if not clients:
            command = [sys.executable, "-c", IDLE_CLIENTS, str(port), "200"]
            clients.append(subprocess.Popen(command, stdout=subprocess.PIPE))
            assert int(clients[0].stdout.readline()) > 64  # more than descriptors are left
        return len(sink.results) >= 30

    try:
        with descriptors_left(64):
            consumer = MemoryConsumer({TP: [EVENT] * 30})
            daemon, _ = run(config, consumer, {}, until=connect_then_read)
    finally:
        for client in clients:
            client.kill()
            client.wait()
    assert failures(daemon) == 0
    assert CheckpointStore(config.checkpoint.dir).load_latest("events-0")["offset"] == 30
