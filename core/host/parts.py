"""The parts of a host loaded once it has started its agents, not with :mod:`core.host.host`.

The command language and the incident pipeline are about a third of a headless run's
imports, the control endpoint's aiohttp (and the ssl contexts it makes) a sixth. A host
opened by :meth:`~core.host.host.Host.open_with` imports them after its runtime has
started its agents, while they start (a new process takes longer than these imports),
instead of before: the agents start 0.1-0.3 s sooner. In the loop's own thread: imported
by a worker thread, they held the GIL against the loop handing out the first tasks
(each wake-up of the loop waited up to the 5 ms switch interval), which made a run of
600 tasks slower, not faster (measured). Light to import.
"""

from __future__ import annotations

from types import ModuleType


def import_opened_host() -> list[ModuleType]:
    """What a host opened to be served imports: its parts and the control endpoint."""
    return [*import_host_parts(), *import_server()]


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
