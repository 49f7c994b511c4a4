"""``/coordination-hub`` workflow lifecycle: create, start, pause, resume, cancel, complete, status."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ...event_types import (
    WORKFLOW_COMPLETED,
)
from ...models import TERMINAL_WORKFLOW, Resources, TaskStatus, WorkflowStatus
from .. import payloads as P
from ..context import Context
from ..registry import Operations, Outcome
from ..responses import CommandError
from ..workflow_status import task_rows
from . import C

OPS = Operations(C, "workflow lifecycle, agent assignment, events, checkpoints and protection")
operation = OPS.operation


def _wf_row(ctx: Context, wid: str) -> dict[str, Any]:
    s = ctx.state
    done = s.finished.get(wid)
    if done is not None:  # out of the hot state: its summary
        return {
            "workflow_id": done.id,
            "name": done.name,
            "status": done.status.value,
            "priority": done.priority,
            "band": done.band.value,
            "progress": round(done.progress, 4),
            "phase": None,
            "tasks": dict(done.task_status),
            "allocation": done.allocation.model_dump(),
            "in_use": Resources().model_dump(),
            "frozen": False,
            "depends_on": done.depends_on,
            "stage_limit": None,
            "finished_at": done.finished_at,
        }
    w = s.workflows[wid]
    counts: dict[str, int] = {}
    for k in w.tasks:
        st = s.tasks[k].status.value
        counts[st] = counts.get(st, 0) + 1
    return {
        "workflow_id": w.id,
        "name": w.name,
        "status": w.status.value,
        "priority": w.priority,
        "band": w.band.value,
        "progress": round(s.workflow_progress(w.id), 4),
        "phase": s.current_phase(w.id),
        "tasks": counts,
        "allocation": w.allocation.model_dump(),
        "in_use": s.in_use(w.id).model_dump(),
        "frozen": w.frozen,
        "depends_on": w.depends_on,
        "stage_limit": w.stage_limit.model_dump() if w.stage_limit else None,
    }


# -- lifecycle ----------------------------------------------------------------------------


@operation(
    C,
    "create",
    kind="lifecycle",
    payload=P.CreateWorkflow,
    summary="create a workflow from its definition (phases of tasks)",
)
async def create(ctx: Context, p: P.CreateWorkflow) -> Outcome:
    spec_d = p.model_dump(exclude={"start"}, exclude_none=True)
    try:
        wid = await ctx.engine.submit_workflow(
            spec_d, actor=ctx.actor
        )  # validated once, in chunks: the console keeps drawing
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        raise CommandError(
            "INVALID_WORKFLOW",
            f"field {'.'.join(str(x) for x in e['loc'])}: {e['msg']}",
            {
                "errors": [
                    {"field": ".".join(str(x) for x in er["loc"]), "problem": er["msg"]}
                    for er in exc.errors(include_url=False)[:10]
                ]
            },
        ) from None
    if p.start:
        ctx.engine.start_workflow(wid, actor=ctx.actor)
    return Outcome(
        _wf_row(ctx, wid),
        f"created {wid} with {len(ctx.state.workflows[wid].tasks)} task(s)" + (" and queued it" if p.start else ""),
        [] if p.start else [f"/coordination-hub start {wid}"],
        workflow_id=wid,
    )


@operation(
    C,
    "start",
    kind="lifecycle",
    payload=P.Empty,
    summary="queue a pending workflow (it starts when its dependencies are met)",
    workflow_arg="required",
)
async def start(ctx: Context, p: P.Empty) -> Outcome:
    wf = ctx.workflow()
    ctx.engine.start_workflow(wf.id, actor=ctx.actor)
    return Outcome(
        _wf_row(ctx, wf.id),
        f"{wf.id} is {wf.status.value}" + (" (queued)" if wf.status is WorkflowStatus.PENDING else ""),
        workflow_id=wf.id,
    )


@operation(
    C,
    "pause",
    kind="destructive",
    payload=P.Empty,
    summary="pause a workflow: dispatch stops, running tasks pause",
    workflow_arg="required",
)
async def pause(ctx: Context, p: P.Empty) -> Outcome:
    wf = ctx.workflow()
    paused = ctx.engine.pause_workflow(wf.id, actor=ctx.actor)
    return Outcome(
        {**_wf_row(ctx, wf.id), "paused_tasks": paused},
        f"{wf.id} paused ({len(paused)} task(s))",
        [f"/coordination-hub resume {wf.id}"],
        workflow_id=wf.id,
    )


@operation(C, "resume", kind="lifecycle", payload=P.Empty, summary="resume a paused workflow", workflow_arg="required")
async def resume(ctx: Context, p: P.Empty) -> Outcome:
    wf = ctx.workflow()
    resumed = ctx.engine.resume_workflow(wf.id, actor=ctx.actor)
    return Outcome(
        {**_wf_row(ctx, wf.id), "resumed_tasks": resumed},
        f"{wf.id} resumed ({len(resumed)} task(s))",
        workflow_id=wf.id,
    )


@operation(
    C,
    "cancel",
    kind="destructive",
    payload=P.Empty,
    summary="cancel a workflow: its running tasks stop and release their agents",
    workflow_arg="required",
)
async def cancel(ctx: Context, p: P.Empty) -> Outcome:
    wf = ctx.workflow()
    running = sorted(ctx.state.running_by_wf.get(wf.id, ()))
    ctx.engine.cancel_workflow(wf.id, actor=ctx.actor)
    return Outcome(
        {**_wf_row(ctx, wf.id), "stopped_tasks": running},
        f"{wf.id} cancelled ({len(running)} running task(s) stopped)",
        workflow_id=wf.id,
    )


@operation(
    C,
    "complete",
    kind="lifecycle",
    payload=P.Empty,
    summary="mark a workflow complete once every task has completed",
    workflow_arg="required",
)
async def complete(ctx: Context, p: P.Empty) -> Outcome:
    wf = ctx.workflow()
    s = ctx.state
    if wf.status in TERMINAL_WORKFLOW:
        raise CommandError("INVALID_STATE", f"{wf.id} is already {wf.status.value}", {"workflow_id": wf.id})
    left = [k for k in wf.tasks if s.tasks[k].status is not TaskStatus.COMPLETED]
    if left:
        raise CommandError(
            "INVALID_STATE",
            f"{wf.id} has {len(left)} task(s) not completed",
            {"tasks": left[:20]},
            [f"/workflow-status {wf.id}", f"/workflow-status {wf.id} emergency-stop"],
        )
    took = ctx.now - (wf.started_at or wf.created_at)
    ctx.engine.emit(
        WORKFLOW_COMPLETED,
        "coordination",
        "workflow",
        {"workflow_id": wf.id, "duration_s": round(took, 3)},
        actor=ctx.actor,
    )
    return Outcome(_wf_row(ctx, wf.id), f"{wf.id} completed", workflow_id=wf.id)


@operation(
    C,
    "get-status",
    kind="analysis",
    payload=P.StatusRequest,
    summary="status of a workflow (or all)",
    workflow_arg="optional",
)
async def get_status(ctx: Context, p: P.StatusRequest) -> Outcome:
    ids = [ctx.any_workflow().id] if ctx.workflow_id else ctx.state.all_workflow_ids()
    rows = [_wf_row(ctx, w) for w in ids]
    if p.verbose and ctx.workflow_id:
        wf = ctx.state.workflows.get(ids[0])
        if wf is None:
            record = await ctx.engine.archived(ids[0])
            rows[0]["task_detail"] = [
                {k: r[k] for k in ("task", "status", "agent", "progress")}
                for r in task_rows(record["tasks"] if record else [])
            ]
        else:
            rows[0]["task_detail"] = [
                {
                    "task": k,
                    "status": ctx.state.tasks[k].status.value,
                    "agent": ctx.state.tasks[k].agent,
                    "progress": ctx.state.tasks[k].context.progress,
                }
                for k in wf.tasks
            ]
    return Outcome(
        {
            "workflows": rows,
            "resumptions": {
                k: {"status": r.status, "next_step": r.next_step, "steps": len(r.steps)}
                for k, r in ctx.state.resumptions.items()
            },
        },
        "; ".join(f"{r['workflow_id']} {r['status']} {r['progress']:.0%}" for r in rows[:6]),
        workflow_id=ctx.workflow_id,
    )


@operation(
    C, "list-workflows", kind="analysis", payload=P.Empty, summary="every workflow with status, priority and progress"
)
async def list_workflows(ctx: Context, p: P.Empty) -> Outcome:
    s = ctx.state
    rows = [_wf_row(ctx, w.id) for w in sorted(s.all_workflows(), key=lambda w: (-w.priority, w.id))]
    return Outcome(
        {"workflows": rows}, f"{len(rows)} workflow(s): " + ", ".join(f"{r['workflow_id']}={r['status']}" for r in rows)
    )
