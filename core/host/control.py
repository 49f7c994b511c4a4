"""What a host offers the code it runs (``/host`` commands, the control endpoint):
the contract :class:`~core.host.host.Host` keeps, so that neither imports the host."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..incidents.services import IncidentServices
from ..timefmt import between, clock

if TYPE_CHECKING:
    from ..engine import Engine
    from ..incidents.drills import Drill


@dataclass
class Advance:
    """A run of the simulated clock forward, in steps (``/host advance``)."""

    start: float
    target: float
    cancelled: bool = False
    done: bool = False
    reached: float | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def outcome(self) -> str:
        """What the advance did, in words."""
        at = self.reached if self.reached is not None else self.start
        if self.error:
            return f"advance to {clock(self.target)} stopped at {clock(at)}: {self.error}"
        if self.cancelled and at < self.target:
            return f"advance to {clock(self.target)} cancelled at {clock(at)}"
        return f"advanced {between(self.start, at)} to {clock(at)}"

    def report(self, now: float) -> dict[str, Any]:
        return {
            "from": round(self.start, 3),
            "to": round(self.target, 3),
            "at": round(self.reached if self.reached is not None else now, 3),
            "done": self.done,
            "cancelled": self.cancelled,
            "error": self.error,
        }


class HostControl(Protocol):
    """One live engine with its pacing and drills (``core.host.host.Host``)."""

    db: Path
    engine: Engine
    kind: str
    speed: float
    clock_running: bool
    closing: bool

    @property
    def virtual(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...

    async def execute(self, text: str, actor: str = "operator") -> dict[str, Any]: ...

    def change_event(self) -> asyncio.Event: ...

    def pause_clock(self) -> None: ...

    def run_clock(self, speed: float | None = None) -> None: ...

    def start_advance(self, seconds: float) -> Advance: ...

    def cancel_advance(self) -> Advance | None: ...

    def start_drill(self, name: str) -> Drill: ...

    def cancel_drill(self, actor: str) -> Drill: ...


@dataclass(frozen=True)
class HostServices(IncidentServices):
    """The services of a command run by a host: ``/host`` commands reach it here
    (None in a process that opened the database in-process: they say so)."""

    host: HostControl | None = None
