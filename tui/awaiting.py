"""Which plan an operator's decision key acts on: the one that awaits that decision.

``a`` (approve), ``d`` (reject) and ``e`` (edit) are decisions on a proposed plan; ``K``
(abort and roll back) on a plan not yet finished. A key acts on the highlighted plan
when that plan awaits its decision; otherwise on the plan that does (critical incidents
first, then the oldest), and the console says which plan it took instead and why. When
no plan awaits the decision, the key says so and does nothing: a finished plan
(completed, rejected, failed, rolled back) is never a target, whatever is highlighted or
clicked. Pure functions of the state: no Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.incident_models import TERMINAL_PLAN, Plan, PlanState

if TYPE_CHECKING:
    from core.projection import State

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}

# action -> (plan states that await it, preferred states first, what the decision needs in words)
DECISIONS: dict[str, tuple[tuple[PlanState, ...], str]] = {
    "approve": ((PlanState.PROPOSED,), "approval"),
    "reject": ((PlanState.PROPOSED,), "a decision (approve or reject)"),
    "edit_plan": ((PlanState.PROPOSED,), "approval (only a proposed plan can be edited)"),
    "abort_plan": (
        (PlanState.EXECUTING, PlanState.APPROVED, PlanState.PROPOSED),
        "an abort (it is not finished)",
    ),
}


def awaits(plan: Plan, action: str) -> bool:
    """Whether ``plan`` awaits the decision ``action`` now."""
    return plan.state in DECISIONS[action][0]


def _urgency(s: State, pid: str, action: str) -> tuple[int, int, float, str]:
    p = s.plans[pid]
    inc = s.incidents.get(p.incident_id)
    sev = SEVERITY_RANK[inc.severity] if inc is not None else len(SEVERITY_RANK)
    return (sev, DECISIONS[action][0].index(p.state), p.created_at, pid)


def awaiting(s: State, action: str) -> list[str]:
    """Every plan awaiting ``action``, most urgent first: critical incidents first, then
    (for an abort) running plans before proposed ones, then the oldest."""
    ids = [pid for pid, p in s.plans.items() if awaits(p, action)]
    return sorted(ids, key=lambda pid: _urgency(s, pid, action))


@dataclass(frozen=True)
class Target:
    plan: str | None
    """The plan the decision acts on; None: nothing awaits it (``note`` says so)."""
    note: str = ""
    """Why this plan and not the highlighted one, or why nothing; empty when the
    highlighted plan is the target."""


def target(s: State, action: str, highlighted: str | None) -> Target:
    """The plan ``action`` acts on, given the highlighted plan (None: none highlighted)."""
    need = DECISIONS[action][1]
    if highlighted is not None and highlighted in s.plans and awaits(s.plans[highlighted], action):
        return Target(highlighted)
    queue = awaiting(s, action)
    hl = ""
    if highlighted is not None and highlighted in s.plans:
        hl = f"{highlighted} is {s.plans[highlighted].state.value}"
    if not queue:
        what = "no plan awaits " + need
        return Target(None, f"{what} ({hl}); nothing was done" if hl else f"{what}; nothing was done")
    pid = queue[0]
    inc = s.plans[pid].incident_id
    known = s.incidents.get(inc)
    sev = known.severity if known is not None else ""
    why = f"{pid} of {inc}" + (f" ({sev})" if sev else "") + f" awaits {need}"
    return Target(pid, f"{hl}: {why}" if hl else why)


def plan_of_row(s: State, row_id: str | None) -> str | None:
    """The plan a highlighted incidents-pane row stands for: a plan row, one of its
    steps, or an incident (its plan awaiting a decision, else its newest)."""
    if not row_id:
        return None
    kind, _, key = row_id.partition(":")
    if kind == "plan":
        return key if key in s.plans else None
    if kind == "step":
        pid = key.rsplit(":", 1)[0]
        return pid if pid in s.plans else None
    if kind == "incident":
        return plan_for_incident(s, key)
    return None


def plan_for_incident(s: State, incident: str) -> str | None:
    """The incident's plan in force (not finished), else its newest."""
    mine = [pid for pid, p in s.plans.items() if p.incident_id == incident]
    live = [pid for pid in mine if s.plans[pid].state not in TERMINAL_PLAN]
    pick = live or mine
    return pick[-1] if pick else None


def next_decision(s: State, after: str | None) -> str | None:
    """The next plan awaiting approval after ``after`` in the approval queue (wrapping),
    for the key that jumps to the next incident needing a decision."""
    queue = awaiting(s, "approve")
    if not queue:
        return None
    if after in queue:
        return queue[(queue.index(after) + 1) % len(queue)]
    return queue[0]
