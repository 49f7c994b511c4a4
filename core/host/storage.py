"""The storage's condition as a host meets it: a full disk, a read-only file system,
another process's lock.

A host whose commit is refused stays up: the events it could not commit are held in
memory (never published, so never acknowledged to a client), commands are answered
``STORAGE_*`` and taken back, a simulated clock waits, and each beat retries the
commit until the storage accepts writes again. What is held is bounded
(:mod:`core.engine.held`): at the events' limit no new work starts, beyond the samples'
limit newer samples are not stored. :class:`StorageWatch` keeps what happened for
``/host status`` and ``/v1/health`` and says each change once (``notify``: the
headless verbs print it on stderr).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..engine.checkpoints import unrecorded_words
from ..engine.held import HeldLimits
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

    limits: HeldLimits = field(default_factory=HeldLimits)
    """The engine's limits on what refused commits hold (:mod:`core.engine.held`)."""
    holding: Callable[[], tuple[int, int]] = lambda: (0, 0)
    """The events and the metric samples held in memory, not committed, now."""
    notify: Callable[[str], None] | None = None
    problem: StorageError | None = None
    since: float | None = None
    """Wall time the current problem began."""
    held: int = 0
    """Events emitted but not committed (held in memory) at the last refusal or lock-wait notice."""
    refusals: int = 0
    """Commits the storage refused since the host started."""
    waited_s: float = 0.0
    """How long the current (or last) write has waited for another process's lock."""
    _last_notice: float = 0.0
    _paused_said: bool = False
    """New work was said to be paused (at the events' limit) during the current problem."""
    _samples_said: bool = False
    """Samples beyond their limit were said not to be stored during the current problem."""
    _costs_at: tuple[int, int] = (0, 0)
    """The limits' counts (samples not stored, progress not recorded) when the last problem
    passed: they grow only while commits are refused."""

    @property
    def failing(self) -> bool:
        """Writes are being refused (a lock being waited for is not a refusal)."""
        return self.problem is not None and self.problem.kind != "locked"

    def say(self, text: str) -> None:
        if self.notify is not None:
            self.notify(text)

    def waiting(self, err: StorageError, waited: float) -> None:
        """A write is waiting for another process's lock (``Store.on_wait``): what it and
        the events emitted meanwhile hold counts against the events' limit."""
        now = time.monotonic()
        first = self.problem is None or self.problem.kind != "locked"
        if first:
            self.problem, self.since = err, time.time()
        self.waited_s = waited
        lim = self.limits
        lim.lock_wait = True
        self.held = self.holding()[0]
        if first or now - self._last_notice >= LOCK_NOTICE_EVERY_S:
            self._last_notice = now
            self.say(f"{err} (waiting {duration(waited)} so far)")
        if lim.paused and not self._paused_said:
            self._paused_said = True
            self.say(
                f"{self.held} event(s) held in memory while the lock is waited for, the limit is {lim.events_max}: "
                "no new work is started and running tasks' progress reports without new partial results are not "
                "recorded until the commit goes through"
            )

    def refused(self, err: StorageError) -> None:
        """A commit was refused: what it left (:attr:`holding`) waits in memory."""
        self.refusals += 1
        self.held, samples = self.holding()
        if self.problem is None or self.problem.kind != err.kind:
            self.problem, self.since = err, time.time()
            self.say(f"{err} ({held_words(self.held, samples)} held in memory, not committed)")
        lim = self.limits
        if lim.paused and not self._paused_said:
            self._paused_said = True
            self.say(
                f"{self.held} event(s) held in memory, the limit is {lim.events_max}: no new work is started "
                "and running tasks' progress reports without new partial results are not recorded until writes are "
                "accepted again"
            )
        dropped = lim.samples_not_stored - self._costs_at[0]
        if dropped and not self._samples_said:
            self._samples_said = True
            self.say(f"metric samples beyond {lim.samples_max} held are not stored ({dropped} so far)")

    def accepted(self) -> None:
        """A commit went through: whatever was wrong has passed."""
        if self.problem is None:
            return
        took = time.time() - (self.since or time.time())
        if self.problem.kind == "locked":
            text = f"the lock on {self.problem.path} was released after {duration(took)}: writes go on{self._costs()}"
        else:
            text = (
                f"{self.problem.path}: writes are accepted again after {duration(took)}; "
                f"the {self.held} event(s) held in memory are committed{self._costs()}"
            )
        self.problem, self.since, self.held = None, None, 0
        self._paused_said = self._samples_said = False
        self._costs_at = (self.limits.samples_not_stored, self.limits.progress_not_recorded)
        self.say(text)  # said once it has passed: a listener reading the state sees it so

    def _costs(self) -> str:
        """What the limits cost during the problem that just passed, for its last notice."""
        samples = self.limits.samples_not_stored - self._costs_at[0]
        progress = self.limits.progress_not_recorded - self._costs_at[1]
        words = [f"{samples} metric sample(s) beyond the limit were not stored"] if samples else []
        if progress:
            words.append(f"{progress} progress report(s) of running tasks were not recorded")
        if self._paused_said:
            words.append("new work is started again")
        return "".join(f"; {w}" for w in words)

    def status(self, metrics_problem: str | None, anchor_error: str | None, unrecorded: list[int]) -> dict[str, Any]:
        """The ``storage`` entry of ``/host status``; ``unrecorded``: the checkpoint rows no
        event records, as last found (at open, by a verify or a cleanup)."""
        p = self.problem
        held, samples = self.holding()  # now: what the runtime emitted since the last try counts too
        return {
            "state": "ok" if p is None else p.kind,
            "problem": None if p is None else str(p),
            "since": self.since,
            "held_events": held if p is not None else 0,
            "held_samples": samples,
            "paused": self.limits.paused,
            "limits": {"events": self.limits.events_max, "samples": self.limits.samples_max},
            "samples_not_stored": self.limits.samples_not_stored,
            "progress_not_recorded": self.limits.progress_not_recorded,
            "refusals": self.refusals,
            "lock_waited_s": round(self.waited_s, 1) if p is not None and p.kind == "locked" else None,
            "metrics": metrics_problem,
            "anchor": anchor_error,
            "checkpoints_unrecorded": len(unrecorded),
            "checkpoints": unrecorded_words(unrecorded) if unrecorded else None,
        }
