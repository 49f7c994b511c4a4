"""The storage's condition as a host meets it: a full disk, a read-only file system,
another process's lock.

A host whose commit is refused stays up: the events it could not commit are held in
memory (never published, so never acknowledged to a client), commands are answered
``STORAGE_*`` and taken back, a simulated clock waits, and each beat retries the
commit until the storage accepts writes again. :class:`StorageWatch` keeps what
happened for ``/host status`` and ``/v1/health`` and says each change once
(``notify``: the headless verbs print it on stderr).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..store_errors import StorageError
from ..timefmt import duration

LOCK_NOTICE_EVERY_S = 5.0
"""While a write waits for another process's lock, say so this often."""


def held_words(events: int, samples: int) -> str:
    """What a refused commit leaves in memory: its events, and metric samples when any."""
    return f"{events} event(s)" + (f" and {samples} metric sample(s)" if samples else "")


@dataclass
class StorageWatch:
    """What the host knows of its storage right now, and since when."""

    notify: Callable[[str], None] | None = None
    holding: Callable[[], tuple[int, int]] = lambda: (0, 0)
    """The events and the metric samples held in memory, not committed, now."""
    problem: StorageError | None = None
    since: float | None = None
    """Wall time the current problem began."""
    held: int = 0
    """Events emitted but not committed (held in memory) at the last refusal."""
    refusals: int = 0
    """Commits the storage refused since the host started."""
    waited_s: float = 0.0
    """How long the current (or last) write has waited for another process's lock."""
    _last_notice: float = 0.0

    @property
    def failing(self) -> bool:
        """Writes are being refused (a lock being waited for is not a refusal)."""
        return self.problem is not None and self.problem.kind != "locked"

    def say(self, text: str) -> None:
        if self.notify is not None:
            self.notify(text)

    def waiting(self, err: StorageError, waited: float) -> None:
        """A write is waiting for another process's lock (``Store.on_wait``)."""
        now = time.monotonic()
        first = self.problem is None or self.problem.kind != "locked"
        if first:
            self.problem, self.since = err, time.time()
        self.waited_s = waited
        if first or now - self._last_notice >= LOCK_NOTICE_EVERY_S:
            self._last_notice = now
            self.say(f"{err} (waiting {duration(waited)} so far)")

    def refused(self, err: StorageError) -> None:
        """A commit was refused: what it left (:attr:`holding`) waits in memory."""
        self.refusals += 1
        self.held, samples = self.holding()
        if self.problem is None or self.problem.kind != err.kind:
            self.problem, self.since = err, time.time()
            self.say(f"{err} ({held_words(self.held, samples)} held in memory, not committed)")

    def accepted(self) -> None:
        """A commit went through: whatever was wrong has passed."""
        if self.problem is None:
            return
        took = time.time() - (self.since or time.time())
        if self.problem.kind == "locked":
            self.say(f"the lock on {self.problem.path} was released after {duration(took)}: writes go on")
        else:
            self.say(
                f"{self.problem.path}: writes are accepted again after {duration(took)}; "
                f"the {self.held} event(s) held in memory are committed"
            )
        self.problem, self.since, self.held = None, None, 0

    def status(self, metrics_problem: str | None, anchor_error: str | None) -> dict[str, Any]:
        """The ``storage`` entry of ``/host status``."""
        p = self.problem
        return {
            "state": "ok" if p is None else p.kind,
            "problem": None if p is None else str(p),
            "since": self.since,
            "held_events": self.held if p is not None else 0,
            "refusals": self.refusals,
            "lock_waited_s": round(self.waited_s, 1) if p is not None and p.kind == "locked" else None,
            "metrics": metrics_problem,
            "anchor": anchor_error,
        }
