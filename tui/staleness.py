"""Whether a plan's pending steps still fit the state now, before they are approved.

A plan is written from the state when its incident opened; by the time an operator
approves it, a workflow it pauses may have finished and an agent it replaces may be
gone. Each step that has not run is bound with the command registry and every workflow,
agent and task it names is checked against the state now, by the check the executor
makes when a step is due (:mod:`core.incidents.preconditions`). A step that fails a
check is stale, with the reasons in words. Pure: no Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.incident_models import Plan, PlanState
from core.incidents.preconditions import check, targets_of

from .operator import CommandRefused, bind_command

if TYPE_CHECKING:
    from core.projection import State

PENDING = frozenset({PlanState.PROPOSED, PlanState.APPROVED})


@dataclass(frozen=True)
class StaleStep:
    index: int
    """1-based, as the dialogs number steps."""
    command: str
    reasons: tuple[str, ...]


def targets(command: str) -> tuple[set[str], set[str], set[str]] | None:
    """(workflows, agents, agents it replaces) a command names; None: it does not parse."""
    try:
        found = targets_of(bind_command(command))
    except CommandRefused:
        return None
    return set(found.workflows), set(found.agents), set(found.replaced)


def step_problems(s: State, command: str) -> list[str]:
    """Why ``command`` no longer fits the state now (empty: it does)."""
    try:
        found = targets_of(bind_command(command))
    except CommandRefused:
        return ["the command does not parse any more"]
    return [c.problem for c in check(s, found) if c.problem]


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
