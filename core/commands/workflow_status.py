"""``/workflow-status [workflow-id] [pause|resume|checkpoint|reassign|emergency-stop]``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..models import TERMINAL_WORKFLOW, AgentStatus, Resources, TaskStatus, WorkflowStatus
from . import payloads as P
from .context import Context
from .registry import Operations, Outcome
from .responses import CommandError

C = "workflow-status"
OPS = Operations(C, "status of one or all workflows, with pause/resume/checkpoint/reassign/emergency-stop")
operation = OPS.operation


def task_rows(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Archived task records as the status rows of a live workflow's tasks."""
    return [
        {
            "task": t["id"],
            "phase": t["phase"],
            "status": t["status"],
            "agent": t.get("agent"),
            "progress": t.get("context", {}).get("progress", 0.0),
        }
        for t in tasks
    ]


async def describe_any(ctx: Context, wid: str, with_tasks: bool = True) -> dict[str, Any]:
    """:func:`describe` for a live workflow; a finished one from its summary, its tasks
    read back from the archive."""
    done = ctx.state.finished.get(wid)
    if done is None:
        return describe(ctx, wid)
    record = await ctx.engine.archived(wid) if with_tasks else None
    return {
        "workflow_id": wid,
        "name": done.name,
        "status": done.status.value,
        "priority": done.priority,
        "band": done.band.value,
        "phase": None,
        "progress": round(done.progress, 4),
        "eta_s": None,
        "allocation": done.allocation.model_dump(),
        "in_use": Resources().model_dump(),
        "frozen": False,
        "guarantee": None,
        "stage_limit": None,
        "resumptions": [],
        "critical_path": [],
        "finished_at": done.finished_at,
        "task_status": done.task_status,
        "tasks": task_rows(record["tasks"]) if record is not None else [],
    }


def describe(ctx: Context, wid: str) -> dict[str, Any]:
    s = ctx.state
    w = s.workflows[wid]
    tasks = [
        {
            "task": k,
            "phase": s.tasks[k].phase,
            "status": s.tasks[k].status.value,
            "agent": s.tasks[k].agent,
            "progress": s.tasks[k].context.progress,
        }
        for k in w.tasks
    ]
    prog = s.workflow_progress(wid)
    elapsed = ctx.now - w.started_at if w.started_at is not None else 0.0
    eta = (1 - prog) * elapsed / prog if prog > 0 and elapsed > 0 and prog < 1 else None
    res = [r.id for r in s.resumptions.values() if r.status == "active" and any(st.workflow == wid for st in r.steps)]
    return {
        "workflow_id": wid,
        "name": w.name,
        "status": w.status.value,
        "priority": w.priority,
        "band": w.band.value,
        "phase": s.current_phase(wid),
        "progress": round(prog, 4),
        "eta_s": round(eta, 1) if eta else None,
        "allocation": w.allocation.model_dump(),
        "in_use": s.in_use(wid).model_dump(),
        "frozen": w.frozen,
        "guarantee": w.guarantee.model_dump() if w.guarantee else None,
        "stage_limit": w.stage_limit.model_dump() if w.stage_limit else None,
        "resumptions": res,
        "critical_path": s.critical_path(wid),
        "tasks": tasks,
    }


@operation(
    C,
    "status",
    kind="analysis",
    payload=P.StatusRequest,
    default=True,
    workflow_arg="optional",
    summary="status of one workflow (tasks, agents, critical path, ETA) or all",
)
async def status(ctx: Context, p: P.StatusRequest) -> Outcome:
    if ctx.workflow_id:
        d = await describe_any(ctx, ctx.any_workflow().id)
        return Outcome(
            d,
            f"{d['workflow_id']} {d['status']} {d['progress']:.0%} (phase {d['phase']})",
            workflow_id=d["workflow_id"],
        )
    s = ctx.state
    ids = [w.id for w in sorted(s.all_workflows(), key=lambda w: (-w.priority, w.id))]
    rows = [await describe_any(ctx, w, with_tasks=p.verbose) for w in ids]
    if not p.verbose:
        for r in rows:
            r.pop("tasks")
    return Outcome(
        {"workflows": rows}, "; ".join(f"{r['workflow_id']} {r['status']} {r['progress']:.0%}" for r in rows)
    )


@operation(C, "pause", kind="destructive", payload=P.Empty, workflow_arg="required", summary="pause the workflow")
async def pause(ctx: Context, p: P.Empty) -> Outcome:
    wf = ctx.workflow()
    paused = ctx.engine.pause_workflow(wf.id, actor=ctx.actor)
    return Outcome({"paused_tasks": paused, **describe(ctx, wf.id)}, f"{wf.id} paused", workflow_id=wf.id)


@operation(C, "resume", kind="lifecycle", payload=P.Empty, workflow_arg="required", summary="resume the workflow")
async def resume(ctx: Context, p: P.Empty) -> Outcome:
    wf = ctx.workflow()
    resumed = ctx.engine.resume_workflow(wf.id, actor=ctx.actor)
    return Outcome({"resumed_tasks": resumed, **describe(ctx, wf.id)}, f"{wf.id} resumed", workflow_id=wf.id)


@operation(
    C,
    "checkpoint",
    kind="checkpoint",
    payload=P.CheckpointRequest,
    workflow_arg="required",
    summary="checkpoint now, labelled with the workflow",
)
async def checkpoint(ctx: Context, p: P.CheckpointRequest) -> Outcome:
    wf = ctx.workflow()
    cp = await ctx.engine.checkpoint(p.kind, p.label or f"{wf.id} status checkpoint", wf.id, actor=ctx.actor)
    return Outcome(
        {"checkpoint": cp, "seq": ctx.state.checkpoints[cp].seq}, f"checkpoint #{cp} for {wf.id}", workflow_id=wf.id
    )


class Reassign(P.Payload):
    tasks: list[str] = Field(default_factory=list)


@operation(
    C,
    "reassign",
    kind="destructive",
    payload=Reassign,
    workflow_arg="required",
    summary="put tasks (listed, or those on unreachable/paused agents) back in the queue for other agents",
)
async def reassign(ctx: Context, p: Reassign) -> Outcome:
    wf = ctx.workflow()
    s = ctx.state
    if wf.frozen:
        raise CommandError(
            "WORKFLOW_FROZEN",
            f"workflow {wf.id!r} is frozen for data protection: state changes are refused until it is unfrozen",
            {"workflow_id": wf.id},
        )
    keys = [k if "/" in k else f"{wf.id}/{k}" for k in p.tasks]
    for k in keys:
        if k not in s.tasks or s.tasks[k].workflow != wf.id:
            raise CommandError("TASK_NOT_FOUND", f"{wf.id} has no task {k!r}", {"tasks": wf.tasks})
    if not keys:
        keys = [
            k
            for k in wf.tasks
            if s.tasks[k].status in (TaskStatus.RUNNING, TaskStatus.PAUSED)
            and (holder := s.tasks[k].agent)
            and s.agents[holder].status in (AgentStatus.UNREACHABLE, AgentStatus.FAILED)
        ]
    if not keys:
        raise CommandError(
            "NOTHING_TO_REASSIGN",
            f"no task of {wf.id} sits on an unreachable agent; name tasks to move",
            {"running": sorted(s.running_by_wf.get(wf.id, ()))},
            [f'/workflow-status {wf.id} reassign \'{{"tasks": ["..."]}}\''],
        )
    moved = []
    for k in keys:
        agent = ctx.engine.release_task(k, reason="reassigned", actor=ctx.actor)
        if agent:
            moved.append({"task": k, "from": agent, "progress_kept": s.tasks[k].context.progress})
    return Outcome({"moved": moved}, f"{len(moved)} task(s) of {wf.id} back in the queue", workflow_id=wf.id)


@operation(
    C,
    "emergency-stop",
    kind="destructive",
    payload=P.Empty,
    workflow_arg="required",
    summary="checkpoint, then cancel the workflow (restorable from that checkpoint)",
)
async def emergency_stop(ctx: Context, p: P.Empty) -> Outcome:
    wf = ctx.workflow()
    # Every refusal before the checkpoint: an error must leave nothing behind.
    if wf.frozen:
        raise CommandError(
            "WORKFLOW_FROZEN",
            f"workflow {wf.id!r} is frozen for data protection: state changes are refused until it is unfrozen",
            {"workflow_id": wf.id},
        )
    if wf.status in TERMINAL_WORKFLOW:
        raise CommandError("INVALID_STATE", f"workflow {wf.id!r} is already {wf.status.value}", {"workflow_id": wf.id})
    cp = await ctx.engine.checkpoint("emergency", f"before emergency stop of {wf.id}", wf.id, actor=ctx.actor)
    ctx.engine.cancel_workflow(wf.id, actor=ctx.actor)
    # A cancelled workflow may leave the hot state at once (its tasks held no agents).
    st = ctx.engine.state
    status = st.status_of(wf.id) or WorkflowStatus.CANCELLED  # just cancelled: it is known, hot or archived
    info = describe(ctx, wf.id) if wf.id in st.workflows else {"workflow_id": wf.id, "status": status.value}
    return Outcome(
        {"checkpoint": cp, **info},
        f"{wf.id} stopped; restorable from checkpoint #{cp}",
        [f"/workflow-recovery restore {wf.id} '{{\"checkpoint\": {cp}}}'"],
        workflow_id=wf.id,
    )
