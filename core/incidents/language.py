"""The command language with ``/incident``: the language's own operations and the
incident pipeline's, composed here (the manager runs plan steps in it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..commands.operations import LANGUAGE as COMMANDS
from . import commands as incident_commands
from .services import IncidentPipeline, IncidentServices

if TYPE_CHECKING:
    from ..engine import Engine

LANGUAGE = COMMANDS.extended(incident_commands.OPS)
"""The command language with ``/incident``."""


def incident_services(engine: Engine, pipeline: IncidentPipeline | None = None) -> IncidentServices:
    """Services for commands on ``engine`` with ``/incident`` (``pipeline``: the manager, if one runs)."""
    return IncidentServices(engine, LANGUAGE, incidents=pipeline)
