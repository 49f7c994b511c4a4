"""``/incident``: the operator's decisions on incident plans, as commands.

The incident pipeline registers these into the command registry itself (imported
by ``core.incidents``), so the command language never imports the pipeline.

``/incident approve|reject|abort PLAN_ID``, ``/incident edit PLAN_ID '{"steps": [...]}'``,
``/incident list`` and ``/incident show ID``. The work is done by the engine-facing
functions of ``core.incidents.decisions`` so the console, scripts and drills share
one implementation; the command records who decided (the actor).
(The bare word after the operation is a plan or incident id, carried in the
registry's leading-id slot.)
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..commands.context import Context
from ..commands.payloads import Payload
from ..commands.registry import Operations, Outcome
from ..commands.responses import CommandError
from ..event_types import AGENT_BACKOFF
from ..timefmt import clock
from . import decisions
from .services import IncidentServices

C = "incident"
OPS = Operations(C, "incidents and their recovery plans: approve, reject, edit, abort, replan, resolve, list, show")
operation = OPS.operation


class Reason(Payload):
    reason: str = Field("", description="why (recorded with the decision)")


class Edit(Payload):
    steps: list[Any] = Field(
        min_length=1, description="the new step list: command strings, or {command, payload|payloads, flags}"
    )


class ListRequest(Payload):
    status: str | None = Field(None, description="only incidents with this status (open, recovering, resolved, failed)")


def _named(ctx: Context, kind: str, known: dict[str, Any]) -> str:
    """The plan or incident id in the command's id slot, which must exist."""
    key = ctx.workflow_id
    code = kind.upper()
    if not key:
        raise CommandError(
            f"{code}_REQUIRED", f"{ctx.spec.name} needs a {kind} id", {"usage": ctx.spec.usage}, ["/incident list"]
        )
    if key not in known:
        raise CommandError(f"{code}_NOT_FOUND", f"no {kind} {key!r}", {"known": sorted(known)}, ["/incident list"])
    return key


def _plan_id(ctx: Context) -> str:
    return _named(ctx, "plan", ctx.state.plans)


@operation(
    C, "approve", kind="lifecycle", payload=Reason, workflow_arg="required", summary="approve a proposed plan (PLAN_ID)"
)
async def approve(ctx: Context, p: Reason) -> Outcome:
    pid = _plan_id(ctx)
    res = decisions.approve(ctx.engine, pid, actor=ctx.actor)
    return Outcome(res, f"{pid} approved by {ctx.actor}")


@operation(
    C,
    "reject",
    kind="lifecycle",
    payload=Reason,
    workflow_arg="required",
    summary="reject a proposed plan (PLAN_ID); nothing of it runs",
)
async def reject(ctx: Context, p: Reason) -> Outcome:
    pid = _plan_id(ctx)
    res = decisions.reject(ctx.engine, pid, actor=ctx.actor, reason=p.reason)
    return Outcome(res, f"{pid} rejected by {ctx.actor}")


@operation(
    C,
    "edit",
    kind="lifecycle",
    payload=Edit,
    workflow_arg="required",
    summary="replace the steps of a proposed plan that have not run",
)
async def edit(ctx: Context, p: Edit) -> Outcome:
    pid = _plan_id(ctx)
    res = decisions.edit(ctx.engine, pid, p.steps, actor=ctx.actor, registry=ctx.services.registry)
    return Outcome(res, f"{pid} edited by {ctx.actor}: {res['steps']} steps")


@operation(
    C,
    "abort",
    kind="destructive",
    payload=Reason,
    workflow_arg="required",
    summary="abort a plan and roll back to the checkpoint taken before it",
)
async def abort(ctx: Context, p: Reason) -> Outcome:
    pid = _plan_id(ctx)
    res = await decisions.abort(ctx.engine, pid, actor=ctx.actor, reason=p.reason or f"aborted by {ctx.actor}")
    return Outcome(
        res,
        f"{pid} aborted by {ctx.actor}; {len((res.get('rollback') or {}).get('changes', []))} change(s) rolled back",
    )


class Note(Payload):
    note: str = Field(
        "", description="why (recorded with the incident); a one-word note may also be given as --note=WORD"
    )


def _incident_id(ctx: Context) -> str:
    return _named(ctx, "incident", ctx.state.incidents)


@operation(
    C,
    "replan",
    kind="lifecycle",
    payload=Payload,
    workflow_arg="required",
    summary="propose a new plan for an incident whose plan was rejected, aborted or failed (INC_ID)",
)
async def replan(ctx: Context, p: Payload) -> Outcome:
    services = ctx.services
    pipeline = services.incidents if isinstance(services, IncidentServices) else None
    if pipeline is None:
        raise CommandError(
            "NO_INCIDENT_PIPELINE",
            f"{ctx.spec.name} needs the incident pipeline (a host or a drill runs it); this process has none",
            {},
            ["opsdeck serve --demo --db DB"],
        )
    iid = _incident_id(ctx)
    res = pipeline.replan(iid, actor=ctx.actor)
    return Outcome(res, f"{iid}: new plan {res['plan_id']} ({res['steps']} steps) proposed by {ctx.actor}")


@operation(
    C,
    "resolve",
    kind="lifecycle",
    payload=Note,
    workflow_arg="required",
    flags={"note": "why the incident is closed by hand"},
    summary='close an incident by hand with a note (INC_ID \'{"note": "..."}\' or --note=WORD); recorded as not validated',
)
async def resolve(ctx: Context, p: Note) -> Outcome:
    iid = _incident_id(ctx)
    flag = ctx.flags.get("note")
    note = p.note or (flag if isinstance(flag, str) else "")
    res = decisions.resolve(ctx.engine, iid, note, actor=ctx.actor)
    return Outcome(res, f"{iid} resolved by {ctx.actor} (not validated): {note}")


@operation(C, "list", kind="analysis", payload=ListRequest, summary="incidents with their plans and states")
async def list_(ctx: Context, p: ListRequest) -> Outcome:
    rows = []
    for inc in ctx.state.incidents.values():
        if p.status and inc.status != p.status:
            continue
        plans = [
            {"id": pid, "state": ctx.state.plans[pid].state.value, "title": ctx.state.plans[pid].title}
            for pid in inc.plans
            if pid in ctx.state.plans
        ]
        rows.append(
            {
                "id": inc.id,
                "scenario": inc.scenario,
                "type": inc.type,
                "status": inc.status,
                "detected_at": inc.detected_at,
                "plans": plans,
            }
        )
    return Outcome({"incidents": rows}, f"{len(rows)} incident(s)")


@operation(
    C,
    "show",
    kind="analysis",
    payload=Payload,
    workflow_arg="required",
    summary="one incident or plan in full (INC-.. or PLAN-..)",
)
async def show(ctx: Context, p: Payload) -> Outcome:
    key = ctx.workflow_id or ""
    if key in ctx.state.plans:
        plan = ctx.state.plans[key]
        return Outcome({"plan": plan.model_dump(mode="json")}, f"{key} {plan.state}: {plan.title}")
    if key in ctx.state.incidents:
        inc = ctx.state.incidents[key]
        return Outcome({"incident": inc.model_dump(mode="json")}, f"{key} {inc.status}: {inc.type}")
    raise CommandError(
        "NOT_FOUND",
        f"no incident or plan {key!r}",
        {"incidents": sorted(ctx.state.incidents), "plans": sorted(ctx.state.plans)},
        ["/incident list"],
    )


class Quarantine(Payload):
    agents: list[str] = Field(min_length=1, description="agents to keep out of dispatch")
    duration: float = Field(3600.0, gt=0, description="seconds of backoff")
    move_tasks: bool = Field(True, description="move their running tasks (with context) back to the queue")


@operation(
    C,
    "quarantine-agents",
    kind="destructive",
    payload=Quarantine,
    summary="keep agents an incident blames (slow, flapping) out of dispatch for a while; their tasks move with context",
)
async def quarantine_agents(ctx: Context, p: Quarantine) -> Outcome:
    """Each agent gets a backoff (AGENT_BACKOFF until now + duration): the scheduler
    hands it no task until then. Its running task returns to the queue with its
    progress, so another agent resumes it."""
    eng = ctx.engine
    for a in p.agents:
        ctx.live_agent(a)
    until = round(ctx.now + p.duration, 3)
    moved = []
    for a in p.agents:
        eng.emit(
            AGENT_BACKOFF, "resource", "agents", {"agent": a, "until": until, "reason": "quarantine"}, actor=ctx.actor
        )
        key = ctx.state.agents[a].current_task
        if p.move_tasks and key:
            prog = ctx.state.tasks[key].context.progress
            eng.release_task(key, reason="agent_quarantined", actor=ctx.actor)
            moved.append({"task": key, "from": a, "progress_kept": prog})
    eng.request_dispatch()
    return Outcome(
        {"quarantined": p.agents, "until": until, "moved": moved},
        f"{len(p.agents)} agent(s) out of dispatch until {clock(until)}; {len(moved)} task(s) moved",
    )
