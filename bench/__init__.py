"""Offline benchmarks: reproduction of the papers' tables (``python -m bench.reproduce``).

The library never imports this package; it depends on the library.
"""

from __future__ import annotations

__all__: list[str] = []
