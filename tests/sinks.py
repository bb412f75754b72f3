"""A sink that keeps what it is given, for tests of the scoring path."""

from __future__ import annotations


class ListSink:
    """Collects results and dead letters in lists (the :class:`connectors.Sink` protocol, and
    the daemon's :class:`~streammem.service.clients.FlushingSink`)."""

    def __init__(self) -> None:
        self.results: list[dict] = []
        self.letters: list = []

    def write(self, results: list[dict]) -> None:
        self.results.extend(results)

    def dead_letter(self, letters: list) -> None:
        self.letters.extend(letters)

    def flush(self, timeout_s: float | None = None) -> None:
        pass

    def close(self, timeout_s: float | None = None) -> None:
        pass
