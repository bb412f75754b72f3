"""A sink that keeps what it is given, for tests of the scoring path."""

from __future__ import annotations


class ListSink:
    """Collects results and dead letters in lists (the :class:`connectors.Sink` protocol)."""

    def __init__(self) -> None:
        self.results: list[dict] = []
        self.letters: list = []

    def write(self, results: list[dict]) -> None:
        self.results.extend(results)

    def dead_letter(self, letters: list) -> None:
        self.letters.extend(letters)

    def close(self) -> None:
        pass
