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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.projection import State

PROPOSED = "proposed"
FINISHED = frozenset({"completed", "rejected", "failed", "rolled_back"})
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}

# action -> (plan states that await it, preferred states first, what the decision needs in words)
DECISIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "approve": ((PROPOSED,), "approval"),
    "reject": ((PROPOSED,), "a decision (approve or reject)"),
    "edit_plan": ((PROPOSED,), "approval (only a proposed plan can be edited)"),
    "abort_plan": (("executing", "approved", PROPOSED), "an abort (it is not finished)"),
}


def plan_state(plan: dict[str, Any]) -> str:
    return str(plan.get("state") or plan.get("status") or PROPOSED).lower()


def plan_incident(plan: dict[str, Any]) -> str | None:
    v = plan.get("incident_id") or plan.get("incident")
    return str(v) if v else None


def awaits(plan: dict[str, Any], action: str) -> bool:
    """Whether ``plan`` awaits the decision ``action`` now."""
    return plan_state(plan) in DECISIONS[action][0]


def _urgency(s: State, pid: str, action: str) -> tuple[int, int, float, str]:
    p = s.plans[pid]
    inc = s.incidents.get(plan_incident(p) or "") or {}
    states = DECISIONS[action][0]
    sev = SEVERITY_RANK.get(str(inc.get("severity", "")).lower(), len(SEVERITY_RANK))
    created = p.get("created_at")
    return (sev, states.index(plan_state(p)), float(created) if isinstance(created, (int, float)) else 0.0, pid)


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
        hl = f"{highlighted} is {plan_state(s.plans[highlighted])}"
    if not queue:
        what = "no plan awaits " + need
        return Target(None, f"{what} ({hl}); nothing was done" if hl else f"{what}; nothing was done")
    pid = queue[0]
    inc = plan_incident(s.plans[pid]) or "?"
    sev = str((s.incidents.get(inc) or {}).get("severity") or "")
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
    mine = [pid for pid, p in s.plans.items() if plan_incident(p) == incident]
    live = [pid for pid in mine if plan_state(s.plans[pid]) not in FINISHED]
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
