"""Readable reprs for every public streammem object, in River's layout.

River prints an estimator as its class and one ``name=value`` line per constructor argument,
but names a nested non-River estimator only by its class (``anomaly_detector=MemAE``), and
prints an argument left ``None`` as ``None`` where the docs promise a default. :func:`describe`
keeps River's layout, prints nested objects in full, and follows each ``None`` that stands for
a default with what it stands for.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

__all__ = ["describe"]

_INDENT = "  "


def describe(obj: Any, notes: Mapping[str, str] | None = None) -> str:
    """``obj``'s class and constructor arguments, one a line; ``notes`` says what an argument
    left ``None`` means.

    Examples
    --------
    >>> import streammem
    >>> print(describe(streammem.ConformalCalibrator(), {"window_size": "3 / alpha = 300"}))
    ConformalCalibrator (
      alpha=0.01
      window_size=None  # 3 / alpha = 300
      min_reference=None
    )
    """
    notes = notes or {}
    lines = [f"{type(obj).__name__} ("]
    for name, parameter in inspect.signature(type(obj).__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        value = getattr(obj, name)
        text = f'"{value}"' if isinstance(value, str) else repr(value)
        if value is None and name in notes:
            text += f"  # {notes[name]}"
        first, *rest = text.splitlines() or [""]
        lines.append(f"{_INDENT}{name}={first}")
        lines += [f"{_INDENT}{line}" for line in rest]
    lines.append(")")
    return "\n".join(lines)
