"""``/workflow-recovery`` restores: checkpoints picked and restored, rollbacks and their preview."""

from __future__ import annotations

from typing import Any

from ...engine import Engine
from ...event_types import (
    STATE_RESTORED,
)
from .. import payloads as P
from .. import rollback_rows
from ..context import Context
from ..registry import Operations, Outcome
from ..responses import CommandError
from . import C

OPS = Operations(C, "restores, rollbacks, failure analysis, staged resumption and context transfer")
operation = OPS.operation

# -- restoring ----------------------------------------------------------------------------


async def pick_checkpoint(ctx: Context, ref: int | str) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    if isinstance(ref, int):
        if ref not in ctx.state.checkpoints:
            raise CommandError(
                "CHECKPOINT_NOT_FOUND",
                f"no checkpoint {ref}",
                {"known": sorted(ctx.state.checkpoints)},
                ["/workflow-recovery list-checkpoints"],
            )
        return ref, await ctx.engine.verified_checkpoint(ref), []
    return await ctx.latest_verified_checkpoint()


def restore_snapshot(
    engine: Engine, snap: dict[str, Any], workflows: list[str] | None, checkpoint: int | None, actor: str, reason: str
) -> None:
    """Bring workflows (or all) to ``snap``: stop their tasks, append STATE_RESTORED."""
    ids = (
        workflows if workflows else sorted(set(snap["workflows"]) | set(engine.state.workflows))
    )  # finished ones hold no task
    for wid in ids:
        for key in sorted(engine.state.running_by_wf.get(wid, ())):
            t = engine.state.tasks[key]
            if t.agent and engine.runtime is not None:
                engine.runtime.stop_task(t.agent, key)
    for wid in workflows or [None]:  # type: ignore[list-item]
        engine.emit(
            STATE_RESTORED,
            "coordination",
            "rollback",
            {"checkpoint": checkpoint, "workflow": wid, "reason": reason, "snapshot": snap},
            actor=actor,
        )
    engine.request_dispatch()


async def restore(ctx: Context, ref: int | str, workflows: list[str] | None, reason: str) -> Outcome:
    for w in workflows or []:
        ctx.any_workflow(w)  # a finished workflow may be rolled back too
    cp_id, snap, skipped = await pick_checkpoint(ctx, ref)
    ids = workflows or rollback_rows.affected(ctx.state, snap)
    before = rollback_rows.briefs(ctx.state, ids)
    h0 = ctx.state.state_hash()
    if workflows:
        for w in workflows:
            await ctx.engine.rollback(cp_id, workflow=w, actor=ctx.actor, reason=reason)
    else:
        await ctx.engine.rollback(cp_id, actor=ctx.actor, reason=reason)
    rows = rollback_rows.measured(before, ctx.state)
    changed = sum(r.changed for r in rows)
    cp = ctx.state.checkpoints[cp_id]
    return Outcome(
        {
            "checkpoint": cp_id,
            "checkpoint_seq": cp.seq,
            "kind": cp.kind,
            "workflows": ids,
            "rows": [r.model_dump(mode="json") for r in rows],
            "skipped_checkpoints": skipped,
            "state_hash_before": h0,
            "state_hash_after": ctx.state.state_hash(),
        },
        f"rolled back to checkpoint #{cp_id} (seq {cp.seq}): {changed} of {len(rows)} workflow(s) changed",
        ["/workflow-status", "/workflow-recovery validate-state"],
        workflow_id=workflows[0] if workflows and len(workflows) == 1 else None,
    )


@operation(
    C,
    "rollback-preview",
    kind="analysis",
    payload=P.RollbackPreviewRequest,
    summary="what a rollback to a checkpoint would do: each workflow's status, phase, progress now -> then",
    workflow_arg="optional",
)
async def rollback_preview(ctx: Context, p: P.RollbackPreviewRequest) -> Outcome:
    wfs = ctx.named_workflows(p.workflows)
    for w in wfs:
        ctx.any_workflow(w)
    cp_id, snap, skipped = await pick_checkpoint(ctx, p.checkpoint)
    rows = rollback_rows.preview(ctx.state, snap, wfs or None)
    changed = sum(r.changed for r in rows)
    return Outcome(
        {"checkpoint": cp_id, "rows": [r.model_dump(mode="json") for r in rows], "skipped_checkpoints": skipped},
        f"a rollback to checkpoint #{cp_id} would change {changed} of {len(rows)} workflow(s); nothing was changed",
    )


@operation(
    C,
    "restore",
    kind="destructive",
    payload=P.RestoreRequest,
    summary="restore a workflow (or all) from a verified checkpoint",
    workflow_arg="optional",
)
async def restore_op(ctx: Context, p: P.RestoreRequest) -> Outcome:
    wfs = ctx.named_workflows(p.workflows)
    return await restore(ctx, p.checkpoint, wfs or None, "restore")


@operation(
    C,
    "rollback",
    kind="destructive",
    payload=P.RestoreRequest,
    summary="roll back: full (all), partial (the named workflow) or selective (listed)",
    workflow_arg="optional",
)
async def rollback_op(ctx: Context, p: P.RestoreRequest) -> Outcome:
    if p.mode == "full":
        wfs = None
    elif p.mode == "partial":
        if not ctx.workflow_id and len(p.workflows) != 1:
            raise CommandError(
                "WORKFLOW_REQUIRED",
                "a partial rollback names one workflow",
                {},
                ['/workflow-recovery rollback <workflow-id> \'{"mode": "partial"}\''],
            )
        wfs = [ctx.workflow_id or p.workflows[0]]
    else:
        if not p.workflows:
            raise CommandError("INVALID_PAYLOAD", 'a selective rollback lists its workflows in "workflows"')
        wfs = p.workflows
    return await restore(ctx, p.checkpoint, wfs, f"rollback_{p.mode}")


@operation(
    C,
    "partial-restore",
    kind="destructive",
    payload=P.RestoreRequest,
    summary="restore only the listed workflows",
    workflow_arg="optional",
)
async def partial_restore(ctx: Context, p: P.RestoreRequest) -> Outcome:
    wfs = ctx.named_workflows(p.workflows)
    if not wfs:
        raise CommandError("WORKFLOW_REQUIRED", "partial-restore names at least one workflow")
    return await restore(ctx, p.checkpoint, wfs, "partial_restore")


@operation(
    C,
    "emergency-restore",
    kind="destructive",
    payload=P.Empty,
    summary="restore everything from the latest verified checkpoint",
)
async def emergency_restore(ctx: Context, p: P.Empty) -> Outcome:
    return await restore(ctx, "latest_verified", None, "emergency_restore")
