"""The parts of a host loaded once it has started its agents, not with :mod:`core.host.host`.

The command language and the incident pipeline are about a third of a headless run's
imports. A host opened by :meth:`~core.host.host.Host.open_with` imports them after its
runtime has started its agents, while they start (a new process takes longer than these
imports), instead of before: the agents start 0.1-0.3 s sooner. In the loop's own thread:
imported by a worker thread, they held the GIL against the loop handing out the first
tasks (each wake-up of the loop waited up to the 5 ms switch interval), which made a run
of 600 tasks slower, not faster (measured). A host that detects no incident (``opsdeck run
--headless`` without ``--incidents``) makes them only when first used (:class:`HostParts`),
and the control endpoint's server (aiohttp) loads with its first connection (:mod:`.door`).
Light to import.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from ..incident_models import TERMINAL_PLAN

if TYPE_CHECKING:
    from ..incidents.manager import ApproveMode, IncidentManager
    from .control import HostControl, HostServices


class HostParts:
    """A host's incident pipeline and the services its commands run with (the composition
    root's wiring: the engine, the whole language, the pipeline and the host itself). Made
    with the host when it detects incidents (every kind's detector) or a previous host left
    a plan running; else by the first use (a command, a drill), with no detector."""

    def __init__(self, host: HostControl, approve_mode: ApproveMode, detecting: bool) -> None:
        self.host = host
        self.approve_mode: ApproveMode = approve_mode
        self.detecting = detecting
        self.made: tuple[IncidentManager, HostServices] | None = None
        if detecting or any(p.state not in TERMINAL_PLAN for p in host.engine.state.plans.values()):
            self.make()

    def make(self) -> tuple[IncidentManager, HostServices]:
        if self.made is None:
            from ..incidents.manager import IncidentManager
            from .language import services

            engine = self.host.engine
            manager = IncidentManager(engine, self.approve_mode, scenarios=None if self.detecting else [])
            wired = services(engine, host=self.host, incidents=manager)
            manager.serve_with(wired)
            self.made = manager, wired
        return self.made

    async def pump(self) -> None:
        """Detect and advance plans, where a pipeline is made (none has no detector, no plan)."""
        if self.made is not None:
            await self.made[0].pump()


def import_host_parts() -> list[ModuleType]:
    """What making a :class:`~core.host.host.Host` imports: the command language, the incident pipeline."""
    from ..incidents import drills, manager
    from . import control, language

    return [drills, manager, control, language]


SERVER_MODULE = f"{__package__}.server"
"""The control endpoint's module, which :func:`import_server` loads."""


def import_server() -> list[ModuleType]:
    """What serving the control endpoint imports (aiohttp)."""
    from . import server

    return [server]
