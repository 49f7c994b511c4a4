"""``/workflow-recovery`` staged resumption: resume work in stages, advance or hold a resumption."""

from __future__ import annotations

from pydantic import Field

from ...event_types import (
    RESUMPTION_COMPLETED,
    RESUMPTION_CREATED,
)
from ...models import TERMINAL_WORKFLOW, WorkflowStatus
from .. import payloads as P
from ..context import Context
from ..registry import Operations, Outcome
from ..responses import CommandError
from ..resumption import HOLD_FACTOR, advance_resumption, apply_step, hold_resumption, plan_steps
from . import C

OPS = Operations(C, None)
operation = OPS.operation


class HoldResumption(P.Payload):
    held: bool | None = Field(None, description="true holds, false releases; omitted: toggle")


def _resumption_id(ctx: Context) -> str:
    rid = ctx.workflow_id
    if not rid:
        raise CommandError(
            "RESUMPTION_REQUIRED",
            f"{ctx.spec.name} needs a resumption id",
            {"usage": ctx.spec.usage},
            ["/workflow-recovery gradual-resumption"],
        )
    return rid


@operation(
    C,
    "advance-resumption",
    kind="destructive",
    payload=P.Empty,
    workflow_arg="required",
    summary="apply the next step of a staged resumption now (RESUMPTION_ID), without waiting for its checks",
)
async def advance_resumption_op(ctx: Context, p: P.Empty) -> Outcome:
    rid = _resumption_id(ctx)
    res = advance_resumption(ctx.engine, rid, actor=ctx.actor)
    r = ctx.state.resumptions[rid]
    return Outcome(res, f"{rid}: step {res['next_step']}/{len(r.steps)} applied by {ctx.actor} ({res['status']})")


@operation(
    C,
    "hold-resumption",
    kind="lifecycle",
    payload=HoldResumption,
    workflow_arg="required",
    summary="hold a staged resumption at its current step (no automatic advance), or release it",
)
async def hold_resumption_op(ctx: Context, p: HoldResumption) -> Outcome:
    rid = _resumption_id(ctx)
    res = hold_resumption(ctx.engine, rid, actor=ctx.actor, held=p.held)
    return Outcome(res, f"{rid} {'held' if res['held'] else 'released'} at step {res['next_step']} by {ctx.actor}")


@operation(
    C,
    "gradual-resumption",
    kind="lifecycle",
    payload=P.GradualResumption,
    summary="a staged resumption: each stage applied after utilisation holds under the safe threshold",
)
async def gradual_resumption(ctx: Context, p: P.GradualResumption) -> Outcome:
    """Words map to numbers: ``resource_limit`` conservative = 50 % of the workflow's base
    allocation, moderate = 75 %, full = none; ``gradual_scaling`` restores in thirds
    (or raises a conservative limit to 75 % first); ``safety_checks`` basic/standard/
    comprehensive hold the threshold 0.5x/1x/2x the configured hold period. Stage 1
    applies now; every later step waits for its check."""
    s = ctx.state
    eng = ctx.engine
    for st in p.stages:
        if st.action == "release_pool":
            if st.pool not in s.usage.holds:
                raise CommandError(
                    "INVALID_STATE", f"pool {st.pool!r} is not held", {"held_pools": sorted(s.usage.holds)}
                )
            continue
        wf = ctx.workflow(st.workflow)
        if wf.frozen:
            raise CommandError("WORKFLOW_FROZEN", f"{wf.id} is frozen for data protection", {"workflow_id": wf.id})
        if wf.status in TERMINAL_WORKFLOW or wf.status is WorkflowStatus.PENDING:
            raise CommandError(
                "INVALID_STATE",
                f"{wf.id} is {wf.status.value}: only running or paused workflows resume",
                {"workflow_id": wf.id},
                ["/coordination-hub list-workflows"],
            )
    th = eng.config.thresholds
    safe = p.safe_threshold or th.safe
    hold = p.hold if p.hold is not None else th.stable_hold_s * HOLD_FACTOR[p.safety_checks]
    cp = None
    if any(st.validation_checkpoints for st in p.stages):
        cp = await eng.checkpoint("incremental", "before gradual resumption", actor=ctx.actor)
    steps, stages = plan_steps(eng, p)
    planned = [st.model_dump() for st in steps]
    rid = f"resumption_{len(s.resumptions) + 1:03d}"
    eng.emit(
        RESUMPTION_CREATED,
        "coordination",
        "resumption",
        {
            "id": rid,
            "strategy": p.resumption_strategy,
            "safe_pct": safe,
            "hold_s": hold,
            "checkpoint": cp,
            "monitoring_level": p.monitoring_level,
            "stages": [st.model_dump() for st in stages],
            "steps": planned,
        },
        actor=ctx.actor,
    )
    applied = [apply_step(eng, rid, 0, ctx.actor)]
    if p.resumption_strategy == "immediate":
        for i in range(1, len(steps)):
            applied.append(apply_step(eng, rid, i, ctx.actor))
    if s.resumptions[rid].next_step >= len(steps):
        eng.emit(
            RESUMPTION_COMPLETED,
            "coordination",
            "resumption",
            {"id": rid, "steps": len(steps), "took_s": 0.0},
            actor=ctx.actor,
        )
    r = s.resumptions[rid]
    return Outcome(
        {
            "resumption": rid,
            "status": r.status,
            "safe_threshold_pct": safe,
            "hold_s": hold,
            "checkpoint": cp,
            "steps": planned,
            "applied": applied,
            "pending": len(steps) - r.next_step,
        },
        f"{rid}: {len(steps)} step(s); applied {len(applied)} now; each next step after {hold:g}s under {safe:g}% utilisation",
        ["/workflow-status", "/performance-monitor post-emergency-monitoring"],
    )
