from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.tansu import free_port
from streammem.learning.fit import TrainingStats
from streammem.metrics import DEAD_LETTER_REASONS, ServiceMetrics
from streammem.service.config import ConfigError, MetricsConfig
from streammem.service.exposition import serve_metrics


def scrape(port: int) -> list:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return list(text_string_to_metric_families(response.read().decode()))


def test_endpoint_serves_every_instrument_on_loopback():
    metrics = ServiceMetrics()
    model = ("events", "0")
    metrics.record_batch([0.01, 0.5, 40.0], alerts=1, seconds=0.004, threshold=2.5, model=model)
    stats = TrainingStats(3, {"reconstruction": 0.2, "entropy": 0.01}, 0.4, {"temp": 0.97})
    metrics.record_training(3, stats, model=model)
    metrics.record_checkpoint()
    metrics.consumer_lag.labels("events", "0").set(12)
    port = free_port()
    server = serve_metrics(metrics.registry, MetricsConfig(port=port))
    try:
        assert server.server_address[0] == "127.0.0.1"
        families = {family.name: family for family in scrape(port)}
    finally:
        server.shutdown()
        server.server_close()
    assert all(name.startswith("streammem_") for name in families)
    expected = {
        "streammem_events",
        "streammem_alerts",
        "streammem_dead_letters",
        "streammem_score",
        "streammem_threshold",
        "streammem_batch_seconds",
        "streammem_model_updates",
        "streammem_training_loss",
        "streammem_memory_slot_usage",
        "streammem_fit_r2",
        "streammem_checkpoint_age_seconds",
        "streammem_consumer_lag",
        "streammem_broker_retries",
        "streammem_broker_up",
        "streammem_last_successful_poll_timestamp_seconds",
        "streammem_checkpoint_fallbacks",
        "streammem_checkpoint_failures",
    }
    assert expected <= set(families)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("streammem_events_total", ())] == 3
    assert samples[("streammem_model_updates_total", ())] == 3
    loss = (("loss", "entropy"), ("partition", "0"), ("topic", "events"))
    assert samples[("streammem_training_loss", loss)] == 0.01
    fit = (("field", "temp"), ("partition", "0"), ("topic", "events"))
    assert samples[("streammem_fit_r2", fit)] == 0.97
    assert samples[("streammem_score_bucket", (("le", "+Inf"),))] == 3
    assert 0 <= samples[("streammem_checkpoint_age_seconds", ())] < 60
    reasons = {dict(s.labels)["reason"] for s in families["streammem_dead_letters"].samples}
    assert reasons == set(DEAD_LETTER_REASONS)


def test_checkpoint_age_is_negative_before_the_first_checkpoint():
    registry = ServiceMetrics().registry
    assert registry.get_sample_value("streammem_checkpoint_age_seconds") == -1.0


def test_unknown_dead_letter_reasons_are_refused_to_keep_labels_bounded():
    with pytest.raises(ValueError, match="unknown dead-letter reason"):
        ServiceMetrics().record_dead_letter("KeyError: 'user-1234'")


def test_two_instances_do_not_collide():
    first, second = ServiceMetrics(), ServiceMetrics()
    first.events.inc(5)
    assert second.registry.get_sample_value("streammem_events_total") == 0


# ---------------------------------------------------------------------------- the endpoint
def held_open(connection: socket.socket) -> bool:
    """Whether the server still holds ``connection`` (it has not closed it)."""
    connection.setblocking(False)
    try:
        return connection.recv(1) != b""
    except BlockingIOError:
        return True


def test_connections_beyond_the_limit_are_closed_and_idle_ones_time_out():
    """prometheus-client's server kept a thread and a descriptor for every idle connection, for
    good (1,017 of them left the daemon no descriptor for its checkpoints)."""
    port = free_port()
    threads = threading.active_count()
    config = MetricsConfig(port=port, max_connections=4, timeout_s=2.0)
    server = serve_metrics(ServiceMetrics().registry, config)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
    try:
        time.sleep(0.5)
        assert sum(held_open(connection) for connection in idle) == 4
        # the serving thread, and a thread and a deadline for each connection served
        assert threading.active_count() - threads <= 1 + 2 * 4
        time.sleep(2.5)
        assert not any(held_open(connection) for connection in idle)
        assert scrape(port)  # the slots are free again
    finally:
        for connection in idle:
            connection.close()
        server.shutdown()
        server.server_close()


def test_a_request_trickled_byte_by_byte_is_cut_off_at_the_deadline():
    port = free_port()
    server = serve_metrics(ServiceMetrics().registry, MetricsConfig(port=port, timeout_s=1.0))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            started = time.monotonic()
            with contextlib.suppress(OSError):  # reset by the server
                for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\n":
                    slow.sendall(bytes([byte]))
                    time.sleep(0.3)  # each read is quick, the whole is not
            assert time.monotonic() - started < 2.5
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, Path]:
    """A server certificate, and a client certificate signed by a CA (openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl makes the test certificates")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *new_key, "-keyout", "server.key", "-out", "server.pem", "-days",
            "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")  # fmt: skip
    openssl("req", "-x509", *new_key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=scrapers")  # fmt: skip
    openssl("req", "-new", *new_key, "-keyout", "client.key", "-out", "client.csr", "-subj",
            "/CN=prometheus")  # fmt: skip
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.pem", "-days", "1")  # fmt: skip
    return {name: tmp_path / name for name in ("server.pem", "server.key", "ca.pem")} | {
        "client.pem": tmp_path / "client.pem",
        "client.key": tmp_path / "client.key",
    }


def test_tls_with_client_certificates_and_handshakes_that_never_end(certificates):
    port = free_port()
    config = MetricsConfig(
        port=port,
        timeout_s=2.0,
        tls_cert_file=str(certificates["server.pem"]),
        tls_key_file=str(certificates["server.key"]),
        tls_client_ca_file=str(certificates["ca.pem"]),
    )
    server = serve_metrics(ServiceMetrics().registry, config)
    url = f"https://127.0.0.1:{port}/metrics"
    anonymous = ssl.create_default_context(cafile=certificates["server.pem"])
    known = ssl.create_default_context(cafile=certificates["server.pem"])
    known.load_cert_chain(certificates["client.pem"], certificates["client.key"])
    try:
        # prometheus-client shakes hands on its accepting thread: this one would block it
        with socket.create_connection(("127.0.0.1", port)):
            started = time.monotonic()
            with urllib.request.urlopen(url, context=known, timeout=5) as response:
                assert b"streammem_events_total" in response.read()
            assert time.monotonic() - started < 1.0
        with pytest.raises(OSError):  # no client certificate: refused in the handshake
            urllib.request.urlopen(url, context=anonymous, timeout=5).read()
        with pytest.raises(OSError):  # plain HTTP gets nothing
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        server.shutdown()
        server.server_close()


def test_basic_authentication(tmp_path):
    (tmp_path / "password").write_text("s3cret\n")
    port = free_port()
    config = MetricsConfig(
        port=port, basic_auth_username="prom", basic_auth_password_file=str(tmp_path / "password")
    )
    server = serve_metrics(ServiceMetrics().registry, config)

    def status(credentials: str | None) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
        if credentials is not None:
            token = base64.b64encode(credentials.encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    try:
        assert [status(None), status("prom:wrong"), status("prom:s3cret")] == [401, 401, 200]
    finally:
        server.shutdown()
        server.server_close()


def test_unusable_endpoint_files_name_their_key(tmp_path):
    (tmp_path / "empty").write_text("")
    cases = {
        "metrics.tls_cert_file: cannot use": {
            "tls_cert_file": str(tmp_path / "absent.pem"),
            "tls_key_file": str(tmp_path / "absent.key"),
        },
        "metrics.basic_auth_password_file: cannot read": {
            "basic_auth_username": "prom",
            "basic_auth_password_file": str(tmp_path / "absent"),
        },
        "holds no password": {
            "basic_auth_username": "prom",
            "basic_auth_password_file": str(tmp_path / "empty"),
        },
    }
    for message, settings in cases.items():
        with pytest.raises(ConfigError, match=message):
            serve_metrics(ServiceMetrics().registry, MetricsConfig(port=free_port(), **settings))
