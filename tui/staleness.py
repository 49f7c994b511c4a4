"""Whether a plan's pending steps still fit the state now, before they are approved.

A plan is written from the state when its incident opened; by the time an operator
approves it, a workflow it pauses may have finished and an agent it replaces may be
gone. Each step that has not run is parsed with the command registry and every
workflow and agent it names is checked against the state now: a workflow must exist
and still be live (not completed, failed or cancelled); an agent must exist, and one
the step replaces (``failed_agents``) must still be failed or unreachable. A step
that fails a check is stale, with the reasons in words. Pure: no Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.incident_models import Plan, PlanState
from core.models import AgentStatus, WorkflowStatus
from core.timefmt import clock

from .operator import CommandRefused, bind_command

if TYPE_CHECKING:
    from core.projection import State

WORKFLOW_KEYS = frozenset(
    {"workflow", "workflows", "workflow_id", "affected", "primary_workflow", "dependent_workflow", "protect"}
)
REPLACED_AGENT_KEYS = frozenset({"failed_agents"})
AGENT_KEYS = frozenset({"agent", "agents"})
PENDING = frozenset({PlanState.PROPOSED, PlanState.APPROVED})
LIVE_WORKFLOW = (WorkflowStatus.PENDING, WorkflowStatus.RUNNING, WorkflowStatus.PAUSED)


@dataclass(frozen=True)
class StaleStep:
    index: int
    """1-based, as the dialogs number steps."""
    command: str
    reasons: tuple[str, ...]


def _names(data: Any, keys: frozenset[str], into: set[str], under: bool = False) -> None:
    """Every string under one of ``keys`` anywhere in ``data`` (lists and nested objects)."""
    if isinstance(data, dict):
        for k, v in data.items():
            _names(v, keys, into, under=k in keys)
    elif isinstance(data, list):
        for v in data:
            _names(v, keys, into, under)
    elif under and isinstance(data, str) and data:
        into.add(data)


def targets(command: str) -> tuple[set[str], set[str], set[str]] | None:
    """(workflows, agents, agents it replaces) a command names; None: it does not parse."""
    try:
        bound = bind_command(command)
    except CommandRefused:
        return None
    data = bound.payload.model_dump(mode="json")
    wfs: set[str] = set()
    agents: set[str] = set()
    replaced: set[str] = set()
    _names(data, WORKFLOW_KEYS, wfs)
    _names(data, AGENT_KEYS, agents)
    _names(data, REPLACED_AGENT_KEYS, replaced)
    if bound.workflow_id:
        wfs.add(bound.workflow_id)
    return wfs, agents, replaced


def _workflow_problem(s: State, wid: str) -> str | None:
    wf = s.workflows.get(wid)
    if wf is not None and wf.status in LIVE_WORKFLOW:
        return None
    done = s.finished.get(wid)
    if done is not None:
        at = done.finished_at
        return f"workflow {wid} is {done.status.value}" + (f" (since {clock(at)})" if at is not None else "")
    if wf is not None:
        return f"workflow {wid} is {wf.status.value}"
    return f"workflow {wid} does not exist"


def step_problems(s: State, command: str) -> list[str]:
    """Why ``command`` no longer fits the state now (empty: it does)."""
    found = targets(command)
    if found is None:
        return ["the command does not parse any more"]
    wfs, agents, replaced = found
    out = [p for w in sorted(wfs) if (p := _workflow_problem(s, w)) is not None]
    for a in sorted(agents | replaced):  # replacement agents an earlier step creates are not checked
        ag = s.agents.get(a)
        if ag is None:
            out.append(f"agent {a} does not exist")
        elif a in replaced and ag.status not in (AgentStatus.FAILED, AgentStatus.UNREACHABLE):
            out.append(f"agent {a} is {ag.status.value}: it needs no replacement")
        elif a not in replaced and ag.status is AgentStatus.RETIRED:
            out.append(f"agent {a} is retired")
    return out


def stale_steps(s: State, plan: Plan) -> list[StaleStep]:
    """The plan's steps that have not run and no longer fit the state now."""
    if plan.state not in PENDING:
        return []
    out = []
    for i, st in enumerate(plan.steps, 1):
        if st.state not in PENDING:
            continue
        problems = step_problems(s, st.command)
        if problems:
            out.append(StaleStep(i, st.command, tuple(problems)))
    return out
