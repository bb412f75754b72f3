"""Kafka's log-continuity rules for one partition, in one place, with no I/O.

A partition's log is read by offset. The daemon must tell apart a log that went on (process
the new offsets), a restart behind the group's commit (relearn what was already sent, send
nothing twice), offsets the broker no longer holds (count them), and a log the broker lost (an
empty restart, a recreated topic: read the new log from its start, with the model kept).
:class:`PartitionLog` holds the offsets a partition's model has reached and decides, for each
poll, what the daemon does with its messages (:class:`Step`); the daemon carries it out
(seeks, metrics, processing).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeGuard

from streammem.persistence import CheckpointError

__all__ = ["Message", "PartitionLog", "Step", "is_offset"]

log = logging.getLogger(__name__)


class Message(Protocol):
    """What the rules read of a message: its offset."""

    @property
    def offset(self) -> int: ...


def is_offset(value: object) -> TypeGuard[int]:
    """Whether ``value`` can be a Kafka offset (a non-negative 64-bit int)."""
    return type(value) is int and 0 <= value < 2**63


@dataclasses.dataclass
class Step:
    """What to do with one poll's messages of a partition, in this order: ``reset`` (the log
    moved backwards: log the evidence, seek to the log's start), ``skipped`` (offsets the
    broker did not deliver: count them), ``seek`` (read again from this offset), ``relearn``
    (learn, send nothing), then ``process`` (score, send, learn), of which ``reread`` offsets
    a lost log had already reached (None: no log was lost)."""

    process: list = dataclasses.field(default_factory=list)
    relearn: list = dataclasses.field(default_factory=list)
    seek: int | None = None
    reset: str | None = None
    skipped: tuple[int, int] | None = None  # (count, before offset)
    reread: int | None = None


@dataclasses.dataclass
class PartitionLog:
    """Where a partition's model stands in its log, and the rules for the next poll.

    ``committed`` and ``end`` are the group's committed offset (None: none) and the log's end
    when the model was loaded; ``checkpointed`` the offset its checkpoint reflects.

    Examples
    --------
    A model checkpointed at offset 5, restarted after the group committed 8: offsets 5-7 were
    sent before the crash, so they are read again and learned, not sent.

    >>> from types import SimpleNamespace as Message
    >>> log = PartitionLog(committed=8, end=10, checkpointed=5)
    >>> log.step([Message(offset=8), Message(offset=9)]).seek
    5
    >>> step = log.step([Message(offset=o) for o in range(5, 10)])
    >>> [m.offset for m in step.relearn], [m.offset for m in step.process]
    ([5, 6, 7], [8, 9])
    >>> log.reached(step.process[-1]); log.position, log.to_commit
    (10, 10)

    A later poll that starts below the position is a new log: the model is kept, and the log
    is read again from its start.

    >>> log.step([Message(offset=0)]).reset
    'offset 0 after 9'
    """

    committed: int | None = None
    end: int | None = None
    checkpointed: int | None = None
    position: int | None = None  # next offset to process; None until a message is seen
    # Whether the checkpoint's offset was checked against the broker's log and commits.
    verified: bool = False
    # After the log moved backwards: offsets below this one are read a second time.
    reread_below: int | None = None
    # After a restart from a checkpoint older than the commit: offsets below this one were
    # sent before the crash, and are learned again without sending their results.
    relearn_below: int | None = None

    @classmethod
    def from_checkpoint(
        cls,
        state: Mapping[str, Any],
        topic: str,
        partition: int,
        committed: int | None,
        end: int,
    ) -> PartitionLog:
        """The log a checkpoint left; ``CheckpointError`` if it is not this partition's, or
        its offset is not one this log reached.

        An offset beyond the log's end is that of a bad checkpoint when the group's commit
        is within the log (10^12 never was an offset of it); with no commit, or a commit
        beyond the end too, it is the broker that lost its log (see :meth:`step`).
        """
        offset, reread_below = state.get("offset"), state.get("reread_below")
        if not is_offset(offset):
            raise CheckpointError(f"its offset is {offset!r}, not a Kafka offset")
        if reread_below is not None and not is_offset(reread_below):
            raise CheckpointError(f"its reread_below is {reread_below!r}, not a Kafka offset")
        found = (state.get("topic"), state.get("partition"))
        if found != (topic, partition):
            raise CheckpointError(f"it belongs to {found}, not to {(topic, partition)}")
        if committed is not None and committed <= end < offset:
            raise CheckpointError(
                f"its offset {offset} is beyond the log's end {end}, which holds the group's "
                f"committed offset {committed}: the log never reached it"
            )
        return cls(committed, end, checkpointed=offset, reread_below=reread_below)

    def state(self) -> dict[str, int | None]:
        """What a checkpoint keeps of the log: the offset reached, and the reread mark."""
        return {"offset": self.position, "reread_below": self.reread_below}

    # ------------------------------------------------------------------ a poll
    def step(self, messages: Sequence[Message], name: str = "") -> Step:
        """What to do with a poll's messages (in offset order, at least one); ``name`` is the
        partition, for the log lines."""
        step = self._first(messages, name) if not self.verified else self._next(messages)
        if step.process and self.relearn_below is not None:
            below = self.relearn_below
            step.relearn = [m for m in step.process if m.offset < below]
            step.process = [m for m in step.process if m.offset >= below]
            if messages[-1].offset + 1 >= below:
                self.relearn_below = None
                log.info("%s: relearned up to offset %d; scoring from there", name, below)
        if step.process and self.reread_below is not None:
            below = self.reread_below
            step.reread = sum(1 for m in step.process if m.offset < below)
            if step.process[-1].offset + 1 >= below:
                self.reread_below = None
        return step

    def _first(self, messages: Sequence[Message], name: str) -> Step:
        """The first poll after the model was loaded.

        Results below the checkpoint's offset were flushed before it was written, so a crash
        before the commit that followed it replays them: skip them, do not relearn them. But
        only when the broker still holds the log the checkpoint came from: a log that ends
        below the checkpoint, or a group with no commit at all, means the broker lost it (an
        empty restart, a recreated topic), and every message is new.
        """
        committed, end = self.committed, self.end
        checkpoint, first = self.checkpointed, messages[0].offset
        self.verified = True
        if checkpoint is not None and (committed is None or (end is not None and end < checkpoint)):
            evidence = f"checkpoint at {checkpoint}, committed {committed}, log end {end}"
            return Step(reset=self.reset(max(checkpoint, committed or 0), evidence))
        step = Step()
        reached = max(committed or 0, checkpoint or 0)
        if committed is not None and first > reached:
            step.skipped = (first - reached, first)
        if checkpoint is not None and first > checkpoint:
            log.info(
                "%s: its checkpoint is at offset %d, the group's commit at %d: relearning "
                "offsets %d-%d (sent before the restart) before scoring on",
                name,
                checkpoint,
                first,
                checkpoint,
                first - 1,
            )
            self.position, self.relearn_below = checkpoint, first
            step.seek = checkpoint
            return step
        if checkpoint is None or first >= checkpoint:
            step.process = list(messages)
            return step
        log.info("%s: offsets %d-%d were scored before the checkpoint", name, first, checkpoint - 1)
        self.position = checkpoint
        step.process = [m for m in messages if m.offset >= checkpoint]
        if not step.process:
            step.seek = checkpoint
        return step

    def _next(self, messages: Sequence[Message]) -> Step:
        """A later poll: none to process if one is below the position (the log was replaced,
        and is read again from its start); a gap is counted: the broker no longer holds
        (retention, compaction) or never delivered those offsets."""
        first, last = messages[0].offset, messages[-1].offset
        start = self.position
        if start is not None and first < start:
            return Step(reset=self.reset(start, f"offset {first} after {start - 1}"))
        step = Step(process=list(messages))
        missing = last + 1 - (first if start is None else start) - len(messages)
        if missing > 0:
            step.skipped = (missing, last)
        return step

    # ------------------------------------------------------------------ what happened
    def reset(self, reached: int, evidence: str) -> str:
        """The broker's log moved backwards: keep the model, forget the offsets it had
        reached (``reached``), and read the new log from its start; returns the evidence."""
        self.verified = True
        self.checkpointed = self.position = None
        # The mark survives a rebalance in the checkpoint: it may be higher than this log's.
        self.reread_below = max(reached, self.reread_below or 0)
        return evidence

    @staticmethod
    def beyond_end(position: int | None, end: int | None) -> str | None:
        """Evidence that a consumer at ``position`` sits past the log's ``end`` (the broker
        lost the log, or the topic was re-created, below it: its fetches return nothing
        until the new log grows past it, so every offset below would be passed over)."""
        if position is None or end is None or position <= end:
            return None
        return f"position {position} beyond the log's end {end}"

    def reached(self, last: Message) -> None:
        """``last`` and every offset before it got a result (or were relearned)."""
        self.position = last.offset + 1

    def rewind(self, offset: int) -> None:
        """A poll's results may not have reached the output: read again from ``offset``."""
        self.position = offset

    @property
    def to_commit(self) -> int | None:
        """The offset to commit, if any. A partition still relearning is behind the group's
        commit: committing it would move the commit backwards, and a second crash would send
        those results again."""
        return self.position if self.relearn_below is None else None

    @property
    def moved(self) -> bool:
        """Whether it has reached offsets its checkpoint does not reflect."""
        return self.position is not None and self.position != self.checkpointed

    def saved(self) -> None:
        """Its checkpoint now reflects the position."""
        self.checkpointed = self.position
