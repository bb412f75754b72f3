"""Checkpoint files: atomic writes and safe, versioned loads.

A checkpoint is a dict of tensors and plain Python values written with ``torch.save`` and read
with ``torch.load(weights_only=True)``: loading never runs pickled code, so a checkpoint from an
untrusted place can at worst fail to load. Writes go to a temporary file in the same folder,
are fsync'ed, then renamed over the target, so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import torch

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "from_state",
    "load",
    "load_checkpoint",
    "remove_unfinished",
    "save",
    "save_checkpoint",
    "stateful",
]

FORMAT_VERSION = 1
_UNFINISHED = ".tmp"  # suffix of the file a save writes before renaming it


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, corrupt, or of an unsupported format version."""


# Every stateful public class, by name: what ``from_state`` may rebuild (and nothing else).
_STATEFUL: dict[str, type] = {}
_T = TypeVar("_T", bound=type)


def stateful(cls: _T) -> _T:
    """Register a class whose ``state_dict()`` (with a ``"class"`` key) its ``from_state``
    classmethod restores, so :func:`from_state`, :func:`save` and :func:`load` know it."""
    _STATEFUL[cls.__name__] = cls
    return cls


def from_state(state: Mapping[str, Any]) -> Any:
    """Rebuild any streammem object from its ``state_dict()``.

    Examples
    --------
    >>> import streammem
    >>> calibrator = streammem.ConformalCalibrator(alpha=0.1)
    >>> calibrator.learn_many([1.0, 2.0, 3.0])
    >>> restored = streammem.from_state(calibrator.state_dict())
    >>> list(restored.reference_), restored.alpha
    ([1.0, 2.0, 3.0], 0.1)
    """
    if not isinstance(state, Mapping):
        raise CheckpointError(f"a state must be a mapping, got {type(state).__name__}")
    name = state.get("class")
    cls = _STATEFUL.get(name) if isinstance(name, str) else None
    if cls is None:
        raise CheckpointError(f"unknown class {name!r} in the state; known: {sorted(_STATEFUL)}")
    return cls.from_state(state)


def save(obj: Any, path: str | os.PathLike | BinaryIO) -> None:
    """Write any stateful streammem object (detector, encoder, window, calibrator, alert
    filter...) for :func:`load`: to a path, atomically, or to a binary file object (an open
    file, ``io.BytesIO``), from its current position.

    Examples
    --------
    >>> import io
    >>> import streammem
    >>> calibrator = streammem.ConformalCalibrator(alpha=0.1)
    >>> calibrator.learn_many([1.0, 2.0])
    >>> buffer = io.BytesIO()
    >>> streammem.save(calibrator, buffer)
    >>> _ = buffer.seek(0)
    >>> list(streammem.load(buffer).reference_)
    [1.0, 2.0]
    """
    state_dict = getattr(obj, "state_dict", None)
    if type(obj).__name__ not in _STATEFUL or state_dict is None:
        raise TypeError(
            f"{type(obj).__name__} cannot be saved safely: only streammem's own objects "
            f"({', '.join(sorted(_STATEFUL))}) have a weights_only-safe state"
        )
    payload = {"kind": "state", "state": state_dict()}
    if hasattr(path, "write"):
        torch.save({"format_version": FORMAT_VERSION, **payload}, path)
        return
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"save() writes to a path or a binary file object, got {type(path).__name__}"
        )
    save_checkpoint(payload, path)


def load(path: str | os.PathLike | BinaryIO) -> Any:
    """Load what :func:`save` wrote (safe: ``torch.load(weights_only=True)``)."""
    payload = load_checkpoint(path)
    kind = payload.get("kind")
    if kind == "detector":  # written by MemoryDetector.save before save() covered everything
        return from_state(payload["detector"])
    if kind != "state":
        name = getattr(path, "name", "the file object") if hasattr(path, "read") else path
        raise CheckpointError(f"{name} holds a {kind!r} checkpoint, not a saved object")
    return from_state(payload["state"])


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``obj`` (plus its format version) to ``path`` atomically.

    Raises ``OSError`` (with its errno: no space, read-only, too many open files...) when the
    file cannot be written, and leaves no temporary file behind.
    """
    path = Path(path)
    # Serialised first, in memory: torch reports a failed write as a bare RuntimeError
    # ("unexpected pos"), while a plain write says what went wrong.
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **obj}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_UNFINISHED, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def remove_unfinished(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that saves into ``folder`` left when they were cut short (a
    killed process); returns them. Call it only where no save is under way."""
    left = [p for p in Path(folder).glob(f".*{_UNFINISHED}") if p.is_file()]
    for path in left:
        path.unlink(missing_ok=True)
    return left


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening folders
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(source: str | os.PathLike | BinaryIO) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` without unpickling code.

    ``source`` is a path or a binary file object (an open file, ``io.BytesIO``).
    """
    name = getattr(source, "name", "the file object") if hasattr(source, "read") else source
    if not hasattr(source, "read"):
        source = Path(source)
        if not source.is_file():
            raise CheckpointError(f"no checkpoint at {source}")
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"cannot read checkpoint {name}: {_why(err)}") from err
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"{name} is not a streammem checkpoint")
    version = payload["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{name} has format version {version}; this streammem reads version {FORMAT_VERSION}"
        )
    return payload


def _why(err: Exception) -> str:
    """What a failed ``torch.load`` means, in a line (torch's own text can be a bare key such
    as ``101``, or advice to turn off the safe loader)."""
    text = str(err)
    if "Weights only load failed" in text:
        return (
            "it holds objects other than tensors and plain values, so it was refused unread "
            "(not written by streammem, or tampered with)"
        )
    if "central directory" in text or isinstance(err, EOFError) or not text.strip():
        return "the file is truncated or empty, or not a torch checkpoint"
    first = text.strip().splitlines()[0]
    return f"the file is corrupt or not a torch checkpoint ({type(err).__name__}: {first})"
