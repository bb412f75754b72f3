"""The service's Prometheus endpoint: bounded, timed out, optionally TLS and basic auth.

prometheus-client's ``start_http_server`` serves the same exposition, but with a thread per
connection, no limit and no timeout, so idle connections each hold a thread and a file
descriptor for good (1,017 of them left the daemon none for its next checkpoint); and its TLS
wraps the listening socket, so the handshake runs on the accepting thread, where one client that
never finishes it blocks every scrape. This server keeps prometheus-client's WSGI app and:

- serves at most ``metrics.max_connections`` connections at once, closing any beyond them as
  soon as they are accepted (a client retries);
- gives each connection ``metrics.timeout_s``: for each read and write, and for the whole
  exchange (a client that trickles its request a byte at a time is cut off too);
- does the TLS handshake on the connection's own thread (``tls_cert_file`` and
  ``tls_key_file``; with ``tls_client_ca_file``, clients must present a certificate it signed,
  as exporter-toolkit's ``RequireAndVerifyClientCert``);
- asks for HTTP basic authentication (``basic_auth_username``, and the password in
  ``basic_auth_password_file``), checked in constant time; use it with TLS, which keeps the
  password from travelling in clear.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app

from streammem.service.config import ConfigError, MetricsConfig

__all__ = ["MetricsServer", "serve_metrics"]

log = logging.getLogger(__name__)

_App = Callable[[dict, Callable], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class MetricsServer(ThreadingMixIn, WSGIServer):
    """A WSGI server with a thread per connection, at most ``max_connections`` of them, each
    given ``timeout_s`` in all, optionally over TLS (``tls``)."""

    daemon_threads = True
    # Connections the kernel holds until they are accepted: they cost the process nothing.
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        app: _App,
        max_connections: int,
        timeout_s: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.address_family = socket.getaddrinfo(*address, type=socket.SOCK_STREAM)[0][0]
        self.timeout_s = timeout_s
        self.tls = tls
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _QuietHandler)
        self.set_app(app)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, client = super().get_request()
        connection.settimeout(self.timeout_s)
        return connection, client

    # A TCP server's requests are sockets (BaseServer's stubs allow a UDP server's tuples too).
    def process_request(self, request: socket.socket, client_address: Any) -> None:  # type: ignore[override]
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # every slot taken: close it now, hold nothing
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:  # type: ignore[override]
        # Shutting down a duplicate of the connection ends a read or write blocked on it.
        duplicate = request.dup()
        deadline = threading.Timer(self.timeout_s, _shut, (duplicate,))
        deadline.daemon = True
        deadline.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            deadline.cancel()
            duplicate.close()
            self._slots.release()

    def finish_request(self, request: socket.socket, client_address: Any) -> None:  # type: ignore[override]
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        with self.tls.wrap_socket(request, server_side=True) as secured:
            super().finish_request(secured, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that times out or fails its handshake is no error of the service."""
        log.debug("metrics connection from %s failed", client_address, exc_info=True)


def _shut(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already
        connection.shutdown(socket.SHUT_RDWR)


def serve_metrics(registry: CollectorRegistry, config: MetricsConfig) -> MetricsServer:
    """Serve ``registry`` as ``config`` says, from a daemon thread; stop it with
    ``shutdown()`` then ``server_close()``.

    Raises
    ------
    ConfigError
        A certificate, key or password file that cannot be used, naming its key; no port.
    OSError
        The address cannot be bound (another process on the port).

    """
    app = make_wsgi_app(registry)
    username, password_file = config.basic_auth_username, config.basic_auth_password_file
    if username is not None and password_file is not None:  # the config requires both or none
        password = _password(password_file)
        app = _basic_auth(app, username, password)
    if config.port is None:
        raise ConfigError("metrics.port is null: metrics are not served")
    server = MetricsServer(
        (config.address, config.port),
        app,
        config.max_connections,
        config.timeout_s,
        _tls(config),
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def _tls(config: MetricsConfig) -> ssl.SSLContext | None:
    if config.tls_cert_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(
            f"metrics.tls_cert_file: cannot use {config.tls_cert_file} with its key "
            f"{config.tls_key_file} ({err})"
        ) from err
    if config.tls_client_ca_file is not None:
        try:
            context.load_verify_locations(config.tls_client_ca_file)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(
                f"metrics.tls_client_ca_file: cannot use {config.tls_client_ca_file} ({err})"
            ) from err
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _password(path: str) -> str:
    try:
        password = Path(path).read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"metrics.basic_auth_password_file: cannot read {path} ({err})") from err
    if not password:
        raise ConfigError(f"metrics.basic_auth_password_file: {path} holds no password")
    return password


def _basic_auth(app: _App, username: str, password: str) -> _App:
    """``app`` behind HTTP basic authentication of one user."""
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            start_response(
                "401 Unauthorized",
                [("WWW-Authenticate", 'Basic realm="streammem"'), ("Content-Type", "text/plain")],
            )
            return [b"401 Unauthorized\n"]
        return app(environ, start_response)

    return guarded
