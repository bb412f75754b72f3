"""Helpers shared by the bench command lines."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BENCH_DIR", "parse_ints", "split_list"]

#: The bench folder: its ``cache/`` and ``results/`` are the commands' default places.
BENCH_DIR = Path(__file__).resolve().parent


def split_list(text: str | None, default: Sequence[str]) -> list[str]:
    """A comma-separated flag as a list, ``default`` when it is empty; commas inside brackets
    belong to their item (``MemAE[a=1;b=(1,2)]`` is one).

    Examples
    --------
    >>> split_list("floor, MemAE[a=1;b=(1,2)]", ["x"])
    ['floor', 'MemAE[a=1;b=(1,2)]']
    >>> split_list(None, ["x"])
    ['x']
    """
    if not text:
        return list(default)
    return [part.strip() for part in re.split(r",(?![^\[]*\])", text) if part.strip()]


def parse_ints(text: str | None) -> list[int] | None:
    """``"0-2,5"`` → ``[0, 1, 2, 5]``; ``None`` stays ``None`` (use the table's default)."""
    if text is None:
        return None
    values: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        values += range(int(low), int(high or low) + 1)
    return values
