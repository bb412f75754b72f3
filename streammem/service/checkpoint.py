"""A folder of numbered checkpoints per model, newest first, with fallback on corruption."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streammem.persistence import CheckpointError, load_checkpoint, save_checkpoint

__all__ = ["CheckpointStore"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^ckpt-(\d{10})\.pt$")


class CheckpointStore:
    """Keep the last ``keep`` checkpoints of each named model under ``root/<name>/``.

    Writes are atomic (see :mod:`streammem.persistence`). Loading tries the newest file first
    and falls back to older ones when a file cannot be read, logging an error each time.

    Parameters
    ----------
    root
        Folder holding one sub-folder per model name.
    keep
        How many checkpoints to keep per name (older ones are deleted after a save).
    on_fallback
        Called once for every unreadable checkpoint skipped while loading.

    """

    def __init__(
        self, root: str | Path, keep: int = 3, on_fallback: Callable[[], None] | None = None
    ) -> None:
        self.root = Path(root)
        self.keep = keep
        self.on_fallback = on_fallback

    def paths(self, name: str) -> list[Path]:
        """Checkpoint files of ``name``, newest first."""
        folder = self.root / _safe(name)
        if not folder.is_dir():
            return []
        found = [p for p in folder.iterdir() if _NAME.match(p.name)]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def save(self, name: str, state: dict[str, Any]) -> Path:
        existing = self.paths(name)
        number = int(_NAME.match(existing[0].name).group(1)) + 1 if existing else 0
        path = self.root / _safe(name) / f"ckpt-{number:010d}.pt"
        save_checkpoint(state, path)
        for old in self.paths(name)[self.keep :]:
            old.unlink(missing_ok=True)
        return path

    def load_latest(self, name: str) -> dict[str, Any] | None:
        """The newest readable checkpoint of ``name``, or None if there is none."""
        for path in self.paths(name):
            try:
                return load_checkpoint(path)
            except CheckpointError as err:
                log.error("skipping unreadable checkpoint, trying an older one: %s", err)
                if self.on_fallback is not None:
                    self.on_fallback()
        return None


def _safe(name: str) -> str:
    """Model names come from topic names: keep them to one harmless path component."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
