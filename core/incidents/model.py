"""Incidents and plans: the models live beside the projection (``core.incident_models``),
which holds them as typed state; the incident pipeline builds them from here."""

from __future__ import annotations

from ..incident_models import (
    TERMINAL_PLAN,
    Category,
    Incident,
    IncidentNote,
    IncidentOutcome,
    Plan,
    PlanOutcome,
    PlanState,
    PlanStep,
    StepCheck,
)

__all__ = [
    "TERMINAL_PLAN",
    "Category",
    "Incident",
    "IncidentNote",
    "IncidentOutcome",
    "Plan",
    "PlanOutcome",
    "PlanState",
    "PlanStep",
    "StepCheck",
]
