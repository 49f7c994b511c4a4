"""The folds of the events the command language and the incident pipeline add:
staged resumptions, learned lessons, checkpoint pruning, incidents, plans and steps.

The event catalogue (``core.event_types``) names which function folds which type, so
a replay of the log (or a checkpoint plus replay) rebuilds them exactly. They sit
below the layers that emit these events, so folding never imports them:
checks happen in the functions that emit them (``core.commands``,
``core.incidents``); reducers only fold.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

from .events import Event
from .incident_models import Incident, IncidentNote, IncidentOutcome, Plan, PlanOutcome, PlanState, PlanStep
from .models import Resumption, ResumptionApplied, ResumptionStage, StagedStep

if TYPE_CHECKING:
    from .projection import Fold, State

LESSONS_KEPT = 20


# -- the command language: staged resumptions, lessons, pruning -------------------


def resumption_created(s: State, ev: Event) -> None:
    d = ev.data
    s.replacing("resumptions", s.resumptions, d["id"])
    s.resumptions[d["id"]] = Resumption(
        id=d["id"],
        created_at=ev.ts,
        created_by=ev.actor,
        safe_pct=d["safe_pct"],
        hold_s=d["hold_s"],
        checkpoint=d.get("checkpoint"),
        stages=[ResumptionStage.model_validate(st) for st in d["stages"]],
        steps=[StagedStep.model_validate(st) for st in d["steps"]],
    )


def resumption_step(s: State, ev: Event) -> None:
    s.changing("resumptions", s.resumptions, ev.data["id"])
    r = s.resumptions[ev.data["id"]]
    r.next_step = ev.data["step"] + 1
    r.applied.append(
        ResumptionApplied(step=ev.data["step"], at=ev.ts, utilisation=copy.deepcopy(ev.data.get("utilisation", {})))
    )


def resumption_held(s: State, ev: Event) -> None:
    s.changing("resumptions", s.resumptions, ev.data["id"])
    s.resumptions[ev.data["id"]].held = bool(ev.data["held"])


def resumption_done(status: Literal["completed", "aborted"]) -> Fold:
    """The fold of a resumption that ended as ``status`` (one per declaration)."""

    def fn(s: State, ev: Event) -> None:
        s.changing("resumptions", s.resumptions, ev.data["id"])
        r = s.resumptions[ev.data["id"]]
        r.status = status
        r.finished_at = ev.ts
        r.reason = ev.data.get("reason")

    return fn


def learning(s: State, ev: Event) -> None:
    s.changing("learning", s.learning, "lessons")
    s.changing("learning", s.learning, "policy")
    lessons: list[dict[str, Any]] = s.learning.setdefault("lessons", [])
    lessons.append({"at": ev.ts, **ev.data})
    del lessons[:-LESSONS_KEPT]
    policy = ev.data.get("policy")
    if isinstance(policy, dict):
        s.learning.setdefault("policy", {}).update(policy)


def checkpoints_pruned(s: State, ev: Event) -> None:
    for cp_id in ev.data.get("ids", []):
        s.replacing("checkpoints", s.checkpoints, int(cp_id))
        s.checkpoints.pop(int(cp_id), None)


# -- the incident pipeline: incidents, plans, steps ------------------------------


def _step(s: State, ev: Event) -> PlanStep:
    s.changing("plans", s.plans, ev.data["plan_id"])
    return s.plans[ev.data["plan_id"]].steps[int(ev.data["step"])]


def incident_opened(s: State, ev: Event) -> None:
    inc = Incident.model_validate(copy.deepcopy(ev.data["incident"]))  # never share the event's data
    s.replacing("incidents", s.incidents, inc.id)
    s.incidents[inc.id] = inc


def incident_resolved(s: State, ev: Event) -> None:
    s.changing("incidents", s.incidents, ev.data["incident_id"])
    inc = s.incidents[ev.data["incident_id"]]
    inc.status = ev.data.get("status", "resolved")
    inc.resolved_at = ev.ts
    inc.outcome = IncidentOutcome.model_validate(copy.deepcopy(ev.data.get("outcome", {})))


def plan_proposed(s: State, ev: Event) -> None:
    plan = Plan.model_validate(copy.deepcopy(ev.data["plan"]))
    s.replacing("plans", s.plans, plan.id)
    s.plans[plan.id] = plan
    inc = s.incidents.get(plan.incident_id)
    if inc is not None:
        s.changing("incidents", s.incidents, inc.id)
        inc.plans = [*inc.plans, plan.id]
        inc.status = "recovering"


def plan_approved(s: State, ev: Event) -> None:
    s.changing("plans", s.plans, ev.data["plan_id"])
    p = s.plans[ev.data["plan_id"]]
    p.state = PlanState.APPROVED
    p.decided_by = ev.actor
    p.decided_at = ev.ts
    for st in p.steps:
        if st.state is PlanState.PROPOSED:
            st.state = PlanState.APPROVED


def plan_rejected(s: State, ev: Event) -> None:
    s.changing("plans", s.plans, ev.data["plan_id"])
    p = s.plans[ev.data["plan_id"]]
    p.state = PlanState.REJECTED
    p.decided_by = ev.actor
    p.decided_at = ev.ts
    p.outcome = PlanOutcome(rejected=True, reason=ev.data.get("reason", ""))
    for st in p.steps:
        if st.state in (PlanState.PROPOSED, PlanState.APPROVED):
            st.state = PlanState.REJECTED
    inc = s.incidents.get(p.incident_id)
    if inc is not None and inc.status == "recovering":
        s.changing("incidents", s.incidents, inc.id)
        inc.status = "open"


def plan_edited(s: State, ev: Event) -> None:
    s.changing("plans", s.plans, ev.data["plan_id"])
    p = s.plans[ev.data["plan_id"]]
    p.steps = [PlanStep.model_validate(copy.deepcopy(st)) for st in ev.data["steps"]]
    p.edited_by = [*p.edited_by, ev.actor]


def plan_started(s: State, ev: Event) -> None:
    s.changing("plans", s.plans, ev.data["plan_id"])
    p = s.plans[ev.data["plan_id"]]
    if ev.data.get("checkpoint") is not None:
        p.checkpoint = ev.data["checkpoint"]


def step_started(s: State, ev: Event) -> None:
    st = _step(s, ev)
    st.state = PlanState.EXECUTING
    st.started_at = ev.ts
    s.changing("plans", s.plans, ev.data["plan_id"])
    p = s.plans[ev.data["plan_id"]]
    if p.state is PlanState.APPROVED:
        p.state = PlanState.EXECUTING


def step_completed(s: State, ev: Event) -> None:
    st = _step(s, ev)
    st.state = PlanState.COMPLETED
    st.finished_at = ev.ts
    st.result = copy.deepcopy(ev.data.get("result", {}))


def step_failed(s: State, ev: Event) -> None:
    st = _step(s, ev)
    st.state = PlanState.FAILED
    st.finished_at = ev.ts
    st.error = ev.data.get("error", "")
    st.result = copy.deepcopy(ev.data.get("result", {}))


def step_skipped(s: State, ev: Event) -> None:
    st = _step(s, ev)
    st.state = PlanState.SKIPPED
    st.finished_at = ev.ts
    st.result = {
        "summary": f"skipped: {ev.data.get('reason', '')}",
        "skipped": copy.deepcopy(ev.data.get("targets", [])),
    }


def plan_aborted(s: State, ev: Event) -> None:
    s.changing("plans", s.plans, ev.data["plan_id"])
    p = s.plans[ev.data["plan_id"]]
    inc = s.incidents.get(p.incident_id)
    if inc is not None and inc.status == "recovering":
        s.changing("incidents", s.incidents, inc.id)
        inc.status = "open"  # no plan in force: it can be re-planned or resolved
    rollback = ev.data.get("rollback")
    p.state = PlanState.ROLLED_BACK if rollback else PlanState.FAILED
    p.outcome = PlanOutcome.model_validate(
        {**p.outcome.model_dump(), "aborted_by": ev.actor, "reason": ev.data.get("reason", ""), "rollback": rollback}
    )
    for st in p.steps:
        if st.state in (PlanState.PROPOSED, PlanState.APPROVED, PlanState.EXECUTING):
            st.state = PlanState.REJECTED
        elif st.state is PlanState.COMPLETED and rollback:
            st.state = PlanState.ROLLED_BACK


def plan_completed(s: State, ev: Event) -> None:
    s.changing("plans", s.plans, ev.data["plan_id"])
    p = s.plans[ev.data["plan_id"]]
    p.state = PlanState.COMPLETED
    p.outcome = PlanOutcome.model_validate({**p.outcome.model_dump(), **copy.deepcopy(ev.data.get("outcome", {}))})


def incident_noted(s: State, ev: Event) -> None:
    s.changing("incidents", s.incidents, ev.data["incident_id"])
    inc = s.incidents[ev.data["incident_id"]]
    note = IncidentNote(at=ev.ts, by=ev.actor, note=ev.data.get("note", ""), action=ev.data.get("action"))
    inc.notes = [*inc.notes, note]


def incident_reopened(s: State, ev: Event) -> None:
    s.changing("incidents", s.incidents, ev.data["incident_id"])
    inc = s.incidents[ev.data["incident_id"]]
    inc.status = "open"
    inc.resolved_at = None
