"""Which detail screen a row of the panes opens (enter on a workflow, agent, incident or plan)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.screen import Screen

from .agent import AgentScreen
from .incident import IncidentScreen
from .workflow import WorkflowScreen

if TYPE_CHECKING:
    from core.projection import State


def detail_screen(state: State, option_id: str) -> Screen[Any] | None:
    """The screen for a pane row's id (``wf:ID``, ``agent:ID``, ``incident:ID``, ``plan:ID``:
    its incident's screen), or None for a row that opens nothing."""
    kind, _, key = option_id.partition(":")
    if kind == "wf":
        return WorkflowScreen(key)
    if kind == "agent":
        return AgentScreen(key)
    if kind == "incident":
        return IncidentScreen(key)
    plan = state.plans.get(key) if kind == "plan" else None
    if plan is not None and plan.incident_id in state.incidents:
        return IncidentScreen(plan.incident_id)
    return None
