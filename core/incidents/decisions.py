"""Operator decisions on plans: approve, reject, edit-then-approve, abort-with-rollback.

These are the engine-facing functions behind ``/incident approve|reject|edit|abort``
(the console and scripts share them). Each checks first and changes nothing on a bad
request (EngineError with a code naming what is wrong); each decision is an event
whose ``actor`` says who made it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..engine import EngineError
from ..event_types import (
    AGENT_BACKOFF,
    INCIDENT_NOTED,
    INCIDENT_RESOLVED,
    PLAN_ABORTED,
    PLAN_APPROVED,
    PLAN_EDITED,
    PLAN_REJECTED,
    POOL_RESIZED,
    RESUMPTION_ABORTED,
)
from ..incident_models import TERMINAL_PLAN, Incident, IncidentOutcome, Plan, PlanState, PlanStep
from ..models import TERMINAL_WORKFLOW, Resources, WorkflowStatus
from .approval import command_kind, decide

if TYPE_CHECKING:
    from ..commands.registry import Registry
    from ..engine import Engine


def get_plan(engine: Engine, plan_id: str) -> Plan:
    plan = engine.state.plans.get(plan_id)
    if plan is None:
        raise EngineError("PLAN_NOT_FOUND", f"no plan {plan_id!r}", {"known": sorted(engine.state.plans)})
    return plan


def approve(engine: Engine, plan_id: str, actor: str = "operator") -> dict[str, Any]:
    plan = get_plan(engine, plan_id)
    if plan.state is not PlanState.PROPOSED:
        raise EngineError(
            "INVALID_STATE",
            f"plan {plan_id} is {plan.state.value}; only a proposed plan can be approved",
            {"plan_id": plan_id},
        )
    engine.emit(
        PLAN_APPROVED,
        "incidents",
        "plan",
        {"plan_id": plan_id, "by": actor, "incident_id": plan.incident_id},
        actor=actor,
    )
    return {"plan_id": plan_id, "state": "approved", "by": actor}


def reject(engine: Engine, plan_id: str, actor: str = "operator", reason: str = "") -> dict[str, Any]:
    plan = get_plan(engine, plan_id)
    if plan.state is not PlanState.PROPOSED:
        raise EngineError(
            "INVALID_STATE",
            f"plan {plan_id} is {plan.state.value}; only a proposed plan can be rejected",
            {"plan_id": plan_id},
        )
    engine.emit(
        PLAN_REJECTED,
        "incidents",
        "plan",
        {"plan_id": plan_id, "by": actor, "reason": reason, "incident_id": plan.incident_id},
        actor=actor,
    )
    return {"plan_id": plan_id, "state": "rejected", "by": actor}


def _parse_steps(steps: Any) -> list[str]:
    if isinstance(steps, str):
        try:
            steps = json.loads(steps)
        except json.JSONDecodeError as exc:
            raise EngineError("INVALID_PLAN_EDIT", f"the edit is not JSON: {exc.msg} at column {exc.colno}") from None
    if isinstance(steps, dict) and "steps" in steps:
        steps = steps["steps"]
    if not isinstance(steps, list) or not steps:
        raise EngineError(
            "INVALID_PLAN_EDIT", 'the edit must be a non-empty JSON list of commands (or {"steps": [...]})'
        )
    out = []
    for i, st in enumerate(steps):
        text = st.get("command") if isinstance(st, dict) else st
        if isinstance(st, dict) and isinstance(text, str) and ("payload" in st or "payloads" in st or "flags" in st):
            from .playbooks import cmd

            words = text.strip().split()
            payloads = st.get("payloads", [st["payload"]] if "payload" in st else [])
            try:
                text = cmd(words[0].lstrip("/"), " ".join(words[1:]), *payloads, flags=tuple(st.get("flags", [])))
            except (ValueError, IndexError) as exc:
                raise EngineError("INVALID_PLAN_EDIT", f"step {i}: {exc}", {"step": i}) from None
        if not isinstance(text, str) or not text.strip().startswith("/"):
            raise EngineError(
                "INVALID_PLAN_EDIT",
                f"step {i}: expected a slash command string, found {type(text).__name__}",
                {"step": i},
            )
        out.append(text.strip())
    return out


def _check_command(text: str, i: int, registry: Registry) -> None:
    """Validate with the command language's own parser and payload models."""
    from ..commands.binding import bind
    from ..commands.grammar import CommandSyntaxError, parse
    from ..commands.responses import CommandError

    try:
        bind(parse(text), registry)
    except CommandSyntaxError as exc:
        raise EngineError(
            "INVALID_PLAN_EDIT",
            f"step {i}: line {exc.line}, column {exc.column}: {exc.message}",
            {"step": i, "command": text},
        ) from None
    except CommandError as exc:
        raise EngineError("INVALID_PLAN_EDIT", f"step {i}: {exc.message}", {"step": i, "command": text}) from None


def edit(
    engine: Engine, plan_id: str, steps: Any, actor: str = "operator", registry: Registry | None = None
) -> dict[str, Any]:
    """Replace the steps that have not run yet; steps already run must stay as they are.
    The new steps are checked in ``registry``, the language plan steps run in (``/incident
    edit`` passes its own, with ``/incident``); by default the language's own operations."""
    from ..commands import LANGUAGE

    language = registry or LANGUAGE
    plan = get_plan(engine, plan_id)
    if plan.state is not PlanState.PROPOSED:
        raise EngineError(
            "INVALID_STATE",
            f"plan {plan_id} is {plan.state.value}; only a proposed plan can be edited",
            {"plan_id": plan_id},
        )
    commands = _parse_steps(steps)
    done = [st for st in plan.steps if st.state is not PlanState.PROPOSED]
    if len(commands) < len(done) or any(commands[i] != st.command for i, st in enumerate(done)):
        raise EngineError(
            "INVALID_PLAN_EDIT",
            f"the first {len(done)} step(s) have already run and cannot change",
            {"ran": [st.command for st in done]},
        )
    for i, c in enumerate(commands[len(done) :], start=len(done)):
        _check_command(c, i, language)
    policy = engine.config.approval
    new_steps = [st.model_dump(mode="json") for st in done]
    old = {st.command: st for st in plan.steps[len(done) :]}
    for i, c in enumerate(commands[len(done) :], start=len(done)):
        kind = command_kind(c, language)
        prev = old.get(c)
        new_steps.append(
            PlanStep(
                index=i,
                command=c,
                title=prev.title if prev else "edited by " + actor,
                category=kind,
                approval=decide(kind, policy),
                gate=prev.gate if prev else None,
                check=prev.check if prev else None,
            ).model_dump(mode="json")
        )
    engine.emit(PLAN_EDITED, "incidents", "plan", {"plan_id": plan_id, "by": actor, "steps": new_steps}, actor=actor)
    return {"plan_id": plan_id, "steps": len(new_steps), "by": actor}


async def rollback_to(engine: Engine, cp_id: int, actor: str, since: float | None = None) -> dict[str, Any]:
    """Compensating rollback: bring the control plane back to the checkpoint (each
    workflow's status, allocation, guarantee, stage limit and freeze; pool sizes;
    agent backoffs) by appending events. Work completed in between is kept, so no
    task runs twice; agents added in between stay (capacity is not taken away from
    running work)."""
    snap = await engine.verified_checkpoint(cp_id)
    s = engine.state
    changes: list[str] = []
    for wf_id, w in sorted(snap["workflows"].items()):
        cur = s.workflows.get(wf_id)
        if cur is None or cur.status in TERMINAL_WORKFLOW:
            continue
        if cur.frozen and not w.get("frozen", False):
            engine.freeze(wf_id, False, actor=actor)
            changes.append(f"unfroze {wf_id}")
        if w["status"] == "running" and cur.status is WorkflowStatus.PAUSED:
            engine.resume_workflow(wf_id, actor=actor)
            changes.append(f"resumed {wf_id}")
        elif w["status"] == "paused" and cur.status is WorkflowStatus.RUNNING:
            engine.pause_workflow(wf_id, actor=actor, reason="rollback")
            changes.append(f"paused {wf_id}")
        alloc = Resources.model_validate(w["allocation"])
        if s.workflows[wf_id].allocation != alloc:
            engine.set_allocation(wf_id, alloc, actor=actor)
            changes.append(f"allocation of {wf_id} restored")
        g = Resources.model_validate(w["guarantee"]) if w.get("guarantee") else None
        if s.workflows[wf_id].guarantee != g:
            engine.reserve(wf_id, g, actor=actor)
            changes.append(f"guarantee of {wf_id} restored")
        lim = Resources.model_validate(w["stage_limit"]) if w.get("stage_limit") else None
        if s.workflows[wf_id].stage_limit != lim:
            engine.set_stage_limit(wf_id, lim, actor=actor)
            changes.append(f"stage limit of {wf_id} restored")
        if w.get("frozen", False) and not s.workflows[wf_id].frozen:
            engine.freeze(wf_id, True, actor=actor)
            changes.append(f"froze {wf_id}")
    for pool, p in snap["pools"].items():
        cur_p = s.pools.get(pool)
        if cur_p is not None and (cur_p.min_size, cur_p.max_size) != (p["min_size"], p["max_size"]):
            engine.emit(
                POOL_RESIZED,
                "resource",
                "agents",
                {"pool": pool, "min_size": p["min_size"], "max_size": p["max_size"], "reason": "rollback"},
                actor=actor,
            )
            changes.append(f"pool {pool} size restored")
    for a_id, a in snap["agents"].items():
        cur_a = s.agents.get(a_id)
        if cur_a is not None and cur_a.backoff_until != a.get("backoff_until"):
            engine.emit(
                AGENT_BACKOFF,
                "resource",
                "agents",
                {"agent": a_id, "until": a.get("backoff_until"), "reason": "rollback"},
                actor=actor,
            )
            changes.append(f"backoff of {a_id} restored")
    engine.request_dispatch()
    return {"checkpoint": cp_id, "changes": changes}


def stop_resumptions(engine: Engine, plan: Plan, actor: str) -> list[str]:
    """Abort every staged resumption the plan started that is still applying stages
    (created by the plan's steps), so nothing it began goes on after the abort."""
    ids = set()
    for st in plan.steps:
        res = (st.result or {}).get("result")
        if isinstance(res, dict) and isinstance(res.get("resumption"), str):
            ids.add(res["resumption"])
    stopped = []
    for rid, r in sorted(engine.state.resumptions.items()):
        if r.status == "active" and (rid in ids or r.created_by == f"plan:{plan.id}"):
            engine.emit(
                RESUMPTION_ABORTED,
                "coordination",
                "resumption",
                {"id": rid, "reason": f"plan {plan.id} aborted"},
                actor=actor,
            )
            stopped.append(rid)
    return stopped


async def abort(
    engine: Engine, plan_id: str, actor: str = "operator", reason: str = "aborted by operator"
) -> dict[str, Any]:
    """Stop a plan and roll back to the checkpoint taken before it."""
    plan = get_plan(engine, plan_id)
    if plan.state in TERMINAL_PLAN:
        raise EngineError("INVALID_STATE", f"plan {plan_id} is already {plan.state.value}", {"plan_id": plan_id})
    stopped = stop_resumptions(engine, plan, actor)
    rb = None
    if plan.checkpoint is not None:
        try:
            rb = await rollback_to(engine, plan.checkpoint, actor)
        except EngineError as exc:
            if exc.code not in ("CHECKPOINT_NOT_FOUND", "CHECKPOINT_CORRUPT"):
                raise
            # A step may have removed it (a data recovery drops the checkpoints that
            # differ from the log): the plan ends failed, not rolled back, and says why.
            reason = f"{reason}; not rolled back: {exc.message}"
        if rb is not None and stopped:
            rb["changes"] = [*(f"stopped {r}" for r in stopped), *rb["changes"]]
    engine.emit(
        PLAN_ABORTED,
        "incidents",
        "plan",
        {"plan_id": plan_id, "by": actor, "reason": reason, "rollback": rb, "incident_id": plan.incident_id},
        actor=actor,
    )
    return {"plan_id": plan_id, "state": "rolled_back" if rb else "failed", "rollback": rb}


def get_incident(engine: Engine, incident_id: str) -> Incident:
    inc = engine.state.incidents.get(incident_id)
    if inc is None:
        raise EngineError(
            "INCIDENT_NOT_FOUND", f"no incident {incident_id!r}", {"known": sorted(engine.state.incidents)}
        )
    return inc


def _active_plan(engine: Engine, inc: Incident) -> str | None:
    for pid in inc.plans:
        p = engine.state.plans.get(pid)
        if p is not None and p.state not in TERMINAL_PLAN:
            return pid
    return None


def resolve(engine: Engine, incident_id: str, note: str, actor: str = "operator") -> dict[str, Any]:
    """The operator closes an incident no plan resolved (rejected, failed, or handled
    outside opsdeck), with a note saying why: audited, and never counted as validated."""
    inc = get_incident(engine, incident_id)
    if not note.strip():
        raise EngineError(
            "NOTE_REQUIRED",
            'resolving an incident by hand needs a note saying why: \'{"note": "..."}\'',
            {"incident_id": incident_id},
        )
    if inc.status == "resolved":
        raise EngineError("INVALID_STATE", f"incident {incident_id} is already resolved", {"incident_id": incident_id})
    active = _active_plan(engine, inc)
    if active is not None:
        raise EngineError(
            "INVALID_STATE",
            f"plan {active} of {incident_id} is still {engine.state.plans[active].state.value}: abort or reject it first",
            {"incident_id": incident_id, "plan_id": active},
        )
    engine.emit(
        INCIDENT_NOTED,
        "incidents",
        "incident",
        {"incident_id": incident_id, "note": note, "action": "resolve"},
        actor=actor,
    )
    engine.emit(
        INCIDENT_RESOLVED,
        "incidents",
        "incident",
        {
            "incident_id": incident_id,
            "status": "resolved",
            "outcome": IncidentOutcome(
                validated=False, resolved_by=actor, note=note, previous_status=inc.status
            ).model_dump(),
        },
        actor=actor,
    )
    return {"incident_id": incident_id, "status": "resolved", "validated": False, "by": actor}
