"""The composition root of the command language: every operation a host, a console
or the command line can run, listed once, and the services a command gets.

The language's own operations (``core.commands.operations``), ``/incident``
(``core.incidents``) and ``/host`` (``core.host.commands``) are composed here; a
command reaches the host and the incident pipeline through the services passed in
its context, never by a lookup keyed by engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..incidents.language import LANGUAGE as INCIDENT_LANGUAGE
from . import commands as host_commands
from .control import HostControl, HostServices

if TYPE_CHECKING:
    from ..engine import Engine
    from ..incidents.manager import IncidentManager

LANGUAGE = INCIDENT_LANGUAGE.extended(host_commands.OPS)
"""Every operation: the command language's, ``/incident`` and ``/host``."""


def services(engine: Engine, host: HostControl | None = None, incidents: IncidentManager | None = None) -> HostServices:
    """What a command run on ``engine`` can use (``host``/``incidents``: None where none runs)."""
    return HostServices(engine, LANGUAGE, incidents=incidents, host=host)
