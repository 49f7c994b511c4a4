"""What a command can use where the incident pipeline runs, declared below the
pipeline: ``/incident`` operations reach the manager through this contract, so
neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..commands.context import Services


class IncidentPipeline(Protocol):
    """What ``/incident`` operations ask of the running pipeline (the manager)."""

    def replan(self, incident_id: str, actor: str = "operator") -> dict[str, Any]: ...


@dataclass(frozen=True)
class IncidentServices(Services):
    """The services of a command run where the incident pipeline may run."""

    incidents: IncidentPipeline | None = None
