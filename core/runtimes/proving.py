"""What a restarted console says while it finds again the agents of the last run.

The local runtime proves each live agent host (up to one handshake's time, all at once:
about 10 s for a stopped or hung one); the Ray runtime looks its agents' actors up by
name in the cluster. Either comes before any pane can show the run. Whoever opens a
runtime says so through :data:`PROVING`, set in the task that opens it (the console's
header, the headless verbs' stderr): nothing else is imported for it, and nothing is
said where nobody set it. The words are :class:`Proving`'s, each runtime naming what it
finds (:data:`AGENT_HOSTS`, :data:`RAY_ACTORS`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    """What a runtime finds again of the last run, in words."""

    noun: str
    """One of them: ``agent host``."""
    doing: str
    done: str
    missing: str
    """What became of those not found, after their count."""

    def plural(self, n: int) -> str:
        return f"{n} {self.noun}{'' if n == 1 else 's'}"


AGENT_HOSTS = Finding("agent host", "proving", "proved", "not proved (nothing was signalled)")
"""The local runtime's: each live host a trusted ``processes`` row names proves itself on its socket."""
RAY_ACTORS = Finding(
    "Ray actor", "finding", "found", "not found (their agents are failed; their tasks go back to be run again)"
)
"""The Ray runtime's: each live agent's detached actor looked up by its name in the namespace."""


@dataclass
class Proving:
    """The agents of the last run being found again, and when done how many were."""

    hosts: int
    finding: Finding = AGENT_HOSTS
    started: float = field(default_factory=time.monotonic)
    took_s: float | None = None
    """Set when every proof ended."""
    proved: int = 0
    """Hosts that proved themselves (adopted, or ended as the log asks)."""
    unanswered: int = 0
    """Hosts adopted without a proof: each held the row's socket as the row's pid and did
    not answer in time (stopped or hung); their connection proves them or judges them stuck."""

    def ended(self, proved: int, unanswered: int = 0) -> None:
        """Every proof ended: ``proved`` hosts proved themselves, ``unanswered`` were
        adopted for holding their socket without answering."""
        self.proved = proved
        self.unanswered = unanswered
        self.took_s = time.monotonic() - self.started

    @property
    def title(self) -> str:
        """What is found, for a heading: ``agent hosts``."""
        return f"{self.finding.noun}s"

    def words(self) -> str:
        what = self.finding
        hosts = what.plural(self.hosts)
        if self.took_s is None:
            return f"{what.doing} {hosts} of the last run…"
        left = self.hosts - self.proved - self.unanswered
        one = self.unanswered == 1
        silent = (
            f"; {self.unanswered} adopted without answering (holding {'its' if one else 'their'} socket: stopped"
            f" or hung; {'its connection proves it or judges it' if one else 'their connections prove them or judge them'}"
            " stuck)"
            if self.unanswered
            else ""
        )
        not_proved = f"; {left} {what.missing}" if left else ""
        return f"{what.done} {self.proved} of {hosts} of the last run in {self.took_s:.1f}s{silent}{not_proved}"


PROVING: ContextVar[Callable[[Proving], None] | None] = ContextVar("opsdeck_proving", default=None)
"""Told a :class:`Proving` when the proofs start and again when they end."""


def tell(proving: Proving) -> None:
    said = PROVING.get()
    if said is not None:
        said(proving)
