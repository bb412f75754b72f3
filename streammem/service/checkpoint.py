"""A folder of numbered checkpoints per model, newest first, with fallback on corruption."""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

from streammem.persistence import (
    CheckpointError,
    load_checkpoint,
    remove_unfinished,
    save_checkpoint,
)

__all__ = ["CheckpointStore"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^ckpt-(\d{10})\.pt$")

T = TypeVar("T")


class CheckpointStore:
    """Keep the last ``keep`` checkpoints of each named model under ``root/<name>/``.

    Writes are atomic (see :mod:`streammem.persistence`). Loading tries the newest file first
    and falls back to older ones when a file cannot be read, logging an error each time; it
    first deletes what saves cut short left behind. Anything else named like a checkpoint (a
    folder) is neither loaded nor deleted, but its number is not reused.

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
        return [p for p in self._named(name) if p.is_file()]

    def _named(self, name: str) -> list[Path]:
        """Everything in the folder of ``name`` named like a checkpoint, newest first."""
        folder = self.root / _safe(name)
        if not folder.is_dir():
            return []
        found = [p for p in folder.iterdir() if _NAME.match(p.name)]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def save(self, name: str, state: dict[str, Any]) -> Path:
        """Write ``state`` as the newest checkpoint of ``name``, then delete those beyond
        ``keep``; ``OSError`` if it cannot be written (a checkpoint written but an old one
        left undeleted is only logged)."""
        taken = self._named(name)
        newest = _NAME.match(taken[0].name) if taken else None  # _named lists only matches
        number = int(newest.group(1)) + 1 if newest else 0
        path = self.root / _safe(name) / f"ckpt-{number:010d}.pt"
        save_checkpoint(state, path)
        for old in self.paths(name)[self.keep :]:
            try:
                old.unlink(missing_ok=True)
            except OSError as err:
                log.warning("cannot delete the old checkpoint %s (%s)", old, err)
        return path

    @overload
    def load_latest(self, name: str, rebuild: None = None) -> dict[str, Any] | None: ...

    @overload
    def load_latest(self, name: str, rebuild: Callable[[dict[str, Any]], T]) -> T | None: ...

    def load_latest(
        self, name: str, rebuild: Callable[[dict[str, Any]], T] | None = None
    ) -> T | dict[str, Any] | None:
        """The newest usable checkpoint of ``name``, or None if there is none.

        A file is used when it reads and, if ``rebuild`` is given, when ``rebuild`` turns its
        contents into what the caller needs (the result is returned instead); a file that
        fails either is skipped for the next older one, with an error log. A readable file can
        still be wrong inside (a hand-edited or hostile one), so any error ``rebuild`` raises
        counts as a bad file. ``OSError`` if the folder cannot be read.
        """
        self._remove_unfinished(name)
        for path in self.paths(name):
            try:
                state = load_checkpoint(path)
            except CheckpointError as err:
                self._fall_back("skipping unreadable checkpoint, trying an older one: %s", err)
                continue
            if rebuild is None:
                return state
            try:
                return rebuild(state)
            except Exception as err:  # any error rebuilding it: the file is not usable
                self._fall_back(
                    "skipping checkpoint %s, which does not rebuild (%s); trying an older one",
                    path,
                    err if isinstance(err, CheckpointError) else f"{type(err).__name__}: {err}",
                )
        return None

    def _remove_unfinished(self, name: str) -> None:
        folder = self.root / _safe(name)
        try:
            left = remove_unfinished(folder)
        except OSError as err:
            log.warning("cannot remove unfinished checkpoint files in %s (%s)", folder, err)
            return
        if left:
            log.warning("removed %d unfinished checkpoint file(s) in %s", len(left), folder)

    def _fall_back(self, message: str, *args: Any) -> None:
        log.error(message, *args)
        if self.on_fallback is not None:
            self.on_fallback()


def _safe(name: str) -> str:
    """One harmless path component per model name, a different one for every name.

    Topic names become folder names: characters other than letters, digits, ``-``, ``_`` and
    ``.`` are percent-encoded (so ``a/b``, ``a b`` and ``a_b`` stay apart), and so are the dots
    of a name made only of dots (``.`` and ``..`` would leave the folder).

    Examples
    --------
    >>> [_safe(n) for n in ("events-0", "a/b-0", "a b-0", "a_b-0", "..", "50%")]
    ['events-0', 'a%2Fb-0', 'a%20b-0', 'a_b-0', '%2E%2E', '50%25']

    """
    encoded = urllib.parse.quote(name, safe="-_.")
    return encoded.replace(".", "%2E") if set(encoded) <= {"."} else encoded
