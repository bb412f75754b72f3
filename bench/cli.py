"""Helpers shared by the bench command lines."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["split_list"]


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
