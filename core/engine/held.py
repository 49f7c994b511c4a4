"""What a long storage refusal may hold in memory, and what the engine does at the limit.

While the storage refuses writes (a full disk, a read-only file system, another
program's lock), the events emitted and the metric samples taken wait in memory for the
next commit. Neither may grow without bound:

- events: once a refused commit leaves :data:`HELD_EVENTS_MAX` or more held, the engine
  starts no new work (no workflow admitted, no task assigned) and does not record running
  tasks' progress reports that bring no new partial results (each is superseded by the
  next; the output is in the task's file) until a commit goes through. Nothing held is
  dropped: what was emitted stays held and is committed then; the ends of running tasks
  are still recorded (at most one per agent), and commands are answered ``STORAGE_*``
  and taken back as at any refusal.
- metric samples: at most :data:`HELD_SAMPLES_MAX` are held; newer ones are not stored
  (the in-memory series the console draws keeps them), and are counted.

Both are checked when a commit is refused (the host retries every beat), so between two
tries what is held can pass a limit by what one beat brings.

A commit that waits for another program's lock (up to ``store_commit.LOCK_WAIT_S``) is not
refused yet, but what it holds grows all the same: the batch being written and what the
runtime emits meanwhile. Once the store says it waits (each try gives up after SQLite's busy
timeout), the events' limit is checked on that whole count whenever new work or a progress
report would be recorded, and bites as after a refusal until the commit settles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HELD_EVENTS_MAX = 20_000
"""Events held after a refused commit at which new work pauses: ~10-25 MB (tracemalloc,
the encoded row and its event held: 534 bytes a setting, 1,213 a progress report with
five output lines)."""
HELD_SAMPLES_MAX = 50_000
"""Metric samples held for the store at most while commits are refused (~2 MB: two
floats in their series' list each)."""


@dataclass
class HeldLimits:
    """The limits on what refused commits leave in memory, and what they cost so far."""

    events_max: int = HELD_EVENTS_MAX
    samples_max: int = HELD_SAMPLES_MAX
    emitted: Callable[[], int] = lambda: 0
    """Events emitted and not yet handed to the store (the log's batch being gathered)."""
    refused: bool = False
    """The last commit was refused (cleared by the next one that goes through)."""
    over: bool = False
    """A refused commit left :attr:`events_max` or more held (cleared by the next commit)."""
    in_store: int = 0
    """Events of the commit under way (handed to the store, not yet settled)."""
    lock_wait: bool = False
    """The commit under way waits for another program's lock."""
    progress_not_recorded: int = 0
    """Progress reports of running tasks not recorded while paused, since the engine started."""
    samples_not_stored: int = 0
    """Metric samples not stored because :attr:`samples_max` were held, since the engine started."""

    def held_events(self) -> int:
        """Events emitted and not committed: those of the commit under way and those since."""
        return self.in_store + self.emitted()

    @property
    def paused(self) -> bool:
        """New work is not started and progress is not recorded: a refused commit left
        :attr:`events_max` held, or a commit waiting for a lock holds that many now."""
        return self.over or (self.lock_wait and self.held_events() >= self.events_max)

    def after_refusal(self, events: int, samples: int) -> int:
        """A commit was refused, leaving ``events`` and ``samples`` held. Returns how many
        of the newest samples go beyond the limit (the caller drops them: not stored)."""
        self.refused = True
        over = max(samples - self.samples_max, 0)
        self.samples_not_stored += over
        if events >= self.events_max:
            self.over = True
        return over

    def settled(self, went_through: bool) -> bool:
        """The commit under way settled. Once one went through the limits no longer bite:
        whether work was paused until then (the caller dispatches again)."""
        was = went_through and self.paused
        self.in_store, self.lock_wait = 0, False
        if went_through:
            self.refused = self.over = False
        return was

    def skip_progress(self, partial: dict[str, Any] | None, recorded: dict[str, Any]) -> bool:
        """Whether a running task's progress report goes unrecorded now (counted): while
        paused, unless it brings partial results the task's ``recorded`` ones lack (a
        report carries all of them, and a run's last report is followed by none)."""
        if not self.paused or (partial and any(recorded.get(k, _ABSENT) != v for k, v in partial.items())):
            return False
        self.progress_not_recorded += 1
        return True


_ABSENT = object()
