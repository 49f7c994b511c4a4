"""What a restarted console says while it proves the agent hosts of the last run.

Proving a live host takes up to one handshake's time (all at once: about 10 s for a
stopped or hung one), before any pane can show the run. Whoever opens a runtime says
so through :data:`PROVING`, set in the task that opens it (the console's header, the
headless verbs' stderr): nothing else is imported for it, and nothing is said where
nobody set it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Proving:
    """The live hosts of the last run being proved, and when done how many were."""

    hosts: int
    started: float = field(default_factory=time.monotonic)
    took_s: float | None = None
    """Set when every proof ended."""
    proved: int = 0
    """Hosts that proved themselves (adopted, or ended as the log asks)."""

    def ended(self, proved: int) -> None:
        """Every proof ended: ``proved`` hosts proved themselves."""
        self.proved = proved
        self.took_s = time.monotonic() - self.started

    def words(self) -> str:
        hosts = f"{self.hosts} agent host{'' if self.hosts == 1 else 's'}"
        if self.took_s is None:
            return f"proving {hosts} of the last run…"
        left = self.hosts - self.proved
        not_proved = f"; {left} not proved (nothing was signalled)" if left else ""
        return f"proved {self.proved} of {hosts} of the last run in {self.took_s:.1f}s{not_proved}"


PROVING: ContextVar[Callable[[Proving], None] | None] = ContextVar("opsdeck_proving", default=None)
"""Told a :class:`Proving` when the proofs start and again when they end."""


def tell(proving: Proving) -> None:
    said = PROVING.get()
    if said is not None:
        said(proving)
