"""``/workflow-recovery`` restores: checkpoints picked and restored, rollbacks and their preview.

A rollback's rows say what it does to each workflow, in the terms an operator reads:
status, phase and progress before -> after. A preview reads the checkpoint's snapshot
the way the ``STATE_RESTORED`` reducer applies it (:func:`core.work_reducers.restored`):
a workflow live at the checkpoint comes back as it was then, one finished then stays
finished as it was, one created since is removed. The rows of a rollback that ran are
measured on the state before and after.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ...engine import Engine
from ...event_types import (
    STATE_RESTORED,
)
from ...models import FinishedWorkflow, Task, Workflow
from ...projection import State
from .. import payloads as P
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
    ids = workflows or affected(ctx.state, snap)
    before = briefs(ctx.state, ids)
    h0 = ctx.state.state_hash()
    if workflows:
        for w in workflows:
            await ctx.engine.rollback(cp_id, workflow=w, actor=ctx.actor, reason=reason)
    else:
        await ctx.engine.rollback(cp_id, actor=ctx.actor, reason=reason)
    rows = measured(before, ctx.state)
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
    rows = preview(ctx.state, snap, wfs or None)
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


# -- a rollback's rows -------------------------------------------------------------------


class WorkflowBrief(BaseModel):
    status: str
    phase: str | None
    """The first phase with work left (None: none left, or the workflow is finished)."""
    progress: float
    """Share of its tasks done, 0..1 (a running task counts its reported progress)."""


class RollbackRow(BaseModel):
    workflow: str
    before: WorkflowBrief | None
    """None: the workflow does not exist before."""
    after: WorkflowBrief | None
    """None: the rollback removes it (it was created after the checkpoint)."""

    @property
    def changed(self) -> bool:
        return self.before != self.after


def brief(s: State, wf_id: str) -> WorkflowBrief | None:
    """The workflow's status, phase and progress in ``s`` (None: ``s`` does not know it)."""
    wf = s.any_workflow(wf_id)
    if wf is None:
        return None
    phase = s.current_phase(wf_id) if wf_id in s.workflows else None
    return WorkflowBrief(status=wf.status.value, phase=phase, progress=round(s.workflow_progress(wf_id), 4))


def briefs(s: State, ids: list[str]) -> dict[str, WorkflowBrief | None]:
    return {w: brief(s, w) for w in ids}


def affected(s: State, snap: dict[str, Any], workflow: str | None = None) -> list[str]:
    """The workflows a rollback to ``snap`` touches (all, or the one named)."""
    if workflow:
        return [workflow]
    return sorted(set(snap["workflows"]) | set(snap.get("finished", {})) | set(s.workflows) | set(s.finished))


def snapshot_state(snap: dict[str, Any], ids: list[str]) -> State:
    """The workflows ``ids`` as a rollback to ``snap`` leaves them, as a State to read."""
    out = State({})  # only read: no event is folded into it
    for wf_id in ids:
        live = snap["workflows"].get(wf_id)
        if live is None:
            done = snap.get("finished", {}).get(wf_id)
            if done is not None:
                out.finished[wf_id] = FinishedWorkflow.model_validate(done)
            continue
        wf = Workflow.model_validate(live)
        out.workflows[wf_id] = wf
        for key in wf.tasks:
            out.tasks[key] = Task.model_validate(snap["tasks"][key])
    return out


def preview(s: State, snap: dict[str, Any], workflows: list[str] | None = None) -> list[RollbackRow]:
    """Each workflow a rollback to ``snap`` touches: as it is in ``s`` -> as it will be."""
    ids = workflows or affected(s, snap)
    then = snapshot_state(snap, ids)
    return [RollbackRow(workflow=w, before=brief(s, w), after=brief(then, w)) for w in ids]


def measured(before: dict[str, WorkflowBrief | None], s: State) -> list[RollbackRow]:
    """The rows of a rollback that ran: ``before`` (taken first) -> ``s`` now."""
    return [RollbackRow(workflow=w, before=b, after=brief(s, w)) for w, b in before.items()]
