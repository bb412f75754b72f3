"""Checkpoint files: atomic writes and safe, versioned loads.

A checkpoint is a dict of tensors and plain Python values written with ``torch.save`` and read
with ``torch.load(weights_only=True)``: loading never runs pickled code, so a checkpoint from an
untrusted place can at worst fail to load. Writes go to a temporary file in the same folder,
are fsync'ed, then renamed over the target, so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

__all__ = ["FORMAT_VERSION", "CheckpointError", "load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint is missing, unreadable, corrupt, or of an unsupported format version."""


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``obj`` (plus its format version) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, **obj}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


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
