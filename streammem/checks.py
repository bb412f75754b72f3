"""Parameter checks shared by every estimator: each raises ``ValueError`` naming the argument
and what it allows, so a bad setting fails where it is written, never deep inside torch."""

from __future__ import annotations

import numbers
from collections.abc import Collection
from typing import Any

__all__ = ["check_choice", "check_integer", "check_number", "is_real"]


def is_real(value: Any) -> bool:
    """A real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_integer(name: str, value: Any, least: int, optional: bool = False) -> None:
    """An integer >= ``least`` (or ``None`` when ``optional``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        allowed = f"an integer >= {least}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> None:
    """A real number within ``[low, high]`` (ends open when asked; ``None`` when optional)."""
    if optional and value is None:
        return
    inside = is_real(value) and value == value  # not NaN
    if inside and low is not None:
        inside = value > low if low_open else value >= low
    if inside and high is not None:
        inside = value < high if high_open else value <= high
    if not inside:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        allowed = f"a number in {span}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def check_choice(name: str, value: Any, options: Collection[Any]) -> None:
    """One of ``options``."""
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
