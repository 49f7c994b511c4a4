"""``/coordination-hub``: workflow lifecycle, agents, events, checkpoints, protection."""

from __future__ import annotations

import gc
from typing import Any

from pydantic import ValidationError

from ..event_types import (
    CHECKPOINT_CREATED,
    COMMAND_EXECUTED,
    RESOURCE_OPTIMIZED,
    STATE_RESTORED,
    TASK_WORKTREE,
    WORKFLOW_COMPLETED,
)
from ..events import EventHeader
from ..models import TERMINAL_WORKFLOW, AgentStatus, FinishedWorkflow, Resources, TaskStatus, WorkflowStatus
from . import payloads as P
from .analyses import choose
from .context import Context
from .monitoring import configure, thresholds_for
from .registry import Operations, Outcome
from .reporting import analysis_outcome, scope_of
from .responses import CommandError
from .taskmoves import transfer_contexts
from .workflow_recovery import restore
from .workflow_status import task_rows

C = "coordination-hub"
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
    "cleanup",
    kind="destructive",
    payload=P.Empty,
    summary="purge engine caches and retire idle agents above pool minimums",
)
async def cleanup(ctx: Context, p: P.Empty) -> Outcome:
    return await _cleanup(ctx, P.EmergencyCleanup(actions=["cache_purging", "idle_process_termination"]))


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


@operation(
    C,
    "assign-agents",
    kind="lifecycle",
    payload=P.AssignAgents,
    summary="give a workflow N agent slots (or the listed idle agents)",
    workflow_arg="required",
)
async def assign_agents(ctx: Context, p: P.AssignAgents) -> Outcome:
    wf = ctx.workflow()
    s = ctx.state
    if isinstance(p.agents, list):
        for a in p.agents:
            ag = ctx.live_agent(a)
            if ag.status is not AgentStatus.IDLE:
                raise CommandError("INVALID_STATE", f"{a} is {ag.status.value}, not idle", {"agent": a})
        n = s.in_use(wf.id).agents + len(p.agents)
    else:
        n = p.agents
    if n < 1 or n > ctx.engine.config.workflow_limits.agents:
        raise CommandError("RESOURCE_LIMIT", f"{n} agents is outside 1..{ctx.engine.config.workflow_limits.agents}")
    before = wf.allocation
    ctx.engine.set_allocation(wf.id, before.model_copy(update={"agents": n}), actor=ctx.actor, base=True)
    assigned = []
    if isinstance(p.agents, list):
        from .taskmoves import assign_task, can_assign

        for a in p.agents:
            for key in list(s.ready.get(wf.id, ())):
                if can_assign(ctx.engine, key, a) is None:
                    assign_task(ctx.engine, key, a, ctx.actor)
                    assigned.append({"task": key, "agent": a})
                    break
    return Outcome(
        {"workflow_id": wf.id, "agents_before": before.agents, "agents_after": n, "assigned": assigned},
        f"{wf.id} now has {n} agent slot(s) (was {before.agents}); {len(assigned)} task(s) assigned",
        workflow_id=wf.id,
    )


@operation(
    C,
    "redistribute-tasks",
    kind="destructive",
    payload=P.Redistribute,
    summary="move tasks off given (or unreachable/slow) agents back to the queue",
)
async def redistribute_tasks(ctx: Context, p: P.Redistribute) -> Outcome:
    """Default: tasks on unreachable agents and on agents whose progress rate is
    ``slow_factor`` times under plan. Tasks keep their context."""
    s = ctx.state
    now = ctx.now
    chosen: dict[str, str] = {}
    for a in p.from_agents:
        ctx.agent(a)
        if s.agents[a].current_task:
            chosen[a] = "named"
    if not p.from_agents:
        for ag in s.agents.values():
            if not ag.current_task:
                continue
            t = s.tasks[ag.current_task]
            if ag.status is AgentStatus.UNREACHABLE:
                chosen[ag.id] = "unreachable"
            elif ag.status is AgentStatus.BUSY and t.started_at is not None and t.duration_s > 0:
                elapsed = now - t.started_at
                planned = min(1.0, elapsed / t.duration_s)
                if (
                    elapsed > 2 * ctx.engine.config.intervals.heartbeat_s
                    and t.context.progress * p.slow_factor < planned
                ):
                    chosen[ag.id] = f"slow: {t.context.progress:.0%} done of {planned:.0%} planned"
    moved = []
    for a, why in sorted(chosen.items()):
        key = s.agents[a].current_task
        if key:
            prog = s.tasks[key].context.progress
            ctx.engine.release_task(key, reason="redistributed", actor=ctx.actor)
            moved.append({"task": key, "from": a, "why": why, "progress_kept": prog})
    return Outcome({"moved": moved}, f"{len(moved)} task(s) returned to the queue for other agents")


@operation(C, "monitor-pool", kind="analysis", payload=P.Empty, summary="agents per pool: live, idle, busy, failed")
async def monitor_pool(ctx: Context, p: P.Empty) -> Outcome:
    return await analysis_outcome(ctx, ["pool_capacity", "agent_health"])


@operation(C, "publish-event", kind="lifecycle", payload=P.PublishEvent, summary="record an event line as observed")
async def publish_event(ctx: Context, p: P.PublishEvent) -> Outcome:
    try:
        header = EventHeader(type=p.type, component=p.component, scope=p.scope, data=p.data)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        raise CommandError("INVALID_EVENT", f"{e['loc'][0]}: {e['msg']}", {"field": str(e["loc"][0])}) from None
    if header.type in (STATE_RESTORED, COMMAND_EXECUTED, CHECKPOINT_CREATED) or header.type.startswith(
        ("TASK_", "AGENT_", "WORKFLOW_", "RESUMPTION_")
    ):
        raise CommandError(
            "RESERVED_EVENT", f"{header.type} is an engine event; it cannot be published by hand", {"type": header.type}
        )
    ev = ctx.engine.inject(header, actor=ctx.actor)
    return Outcome({"seq": ev.seq, "line": ev.line()}, f"published {ev.type} as seq {ev.seq}")


def subscribed_types(state: Any, name: str | None = None) -> set[str]:
    """The event types of subscription ``name`` (of every subscription without one).
    Read by the console (a notification per matching event), by ``GET /v1/events
    ?subscription=NAME`` and by ``get-events '{"subscription": NAME}'``."""
    subs = state.settings.get("subscriptions", {})
    if not isinstance(subs, dict):
        return set()
    if name is not None:
        return set(subs.get(name, []))
    return {t for types in subs.values() for t in types}


@operation(
    C,
    "subscribe-event",
    kind="monitoring",
    payload=P.SubscribeEvent,
    summary="a named subscription to event types: delivered as console notifications, to GET /v1/events?subscription=NAME and get-events",
)
async def subscribe_event(ctx: Context, p: P.SubscribeEvent) -> Outcome:
    subs = dict(ctx.state.settings.get("subscriptions", {}))
    subs[p.name] = sorted(set(p.types))
    ctx.engine.set_setting("subscriptions", subs, actor=ctx.actor)
    seen = {t: ctx.state.observed.get(t, 0) for t in p.types}
    return Outcome(
        {
            "subscriptions": subs,
            "observed_so_far": seen,
            "from_seq": ctx.state.seq,
            "delivered_to": [
                "console notifications",
                f"GET /v1/events?subscription={p.name}",
                f'/coordination-hub get-events \'{{"subscription": "{p.name}"}}\'',
            ],
        },
        f"subscription {p.name!r} to {', '.join(p.types)}: delivered from seq {ctx.state.seq}",
    )


@operation(
    C,
    "get-events",
    kind="analysis",
    payload=P.GetEvents,
    summary="the latest events from the log (types, since, limit, workflow)",
    workflow_arg="optional",
)
async def get_events(ctx: Context, p: P.GetEvents) -> Outcome:
    eng = ctx.engine
    if eng.store is None:
        raise CommandError("NO_STORE", "this engine has no stored log", {}, ["open a database with --db"])
    await eng.flush()
    wid = ctx.workflow_id or p.workflow
    if wid:
        ctx.workflow(wid)
    types = list(p.types)
    if p.subscription is not None:
        sub = subscribed_types(ctx.state, p.subscription)
        if not sub:
            raise CommandError(
                "SUBSCRIPTION_NOT_FOUND",
                f"no subscription {p.subscription!r}",
                {"known": sorted(ctx.state.settings.get("subscriptions", {}))},
                ["/coordination-hub subscribe-event"],
            )
        types = sorted(set(types) & sub if types else sub)
    since = p.since if (wid or types) else max(p.since, ctx.state.seq - p.limit)
    evs = await eng.store.read_events(since, None, types=types or None)
    if wid:
        evs = [e for e in evs if e.data.get("workflow_id") == wid or str(e.data.get("task", "")).startswith(wid + "/")][
            -p.limit :
        ]
    else:
        evs = evs[-p.limit :]
    rows = [{"seq": e.seq, "ts": e.ts, "actor": e.actor, "line": e.line()[:500]} for e in evs]
    return Outcome({"events": rows, "count": len(rows)}, f"{len(rows)} event(s)", workflow_id=wid)


@operation(C, "save-state", kind="checkpoint", payload=P.SaveState, summary="checkpoint the whole state (manual)")
async def save_state(ctx: Context, p: P.SaveState) -> Outcome:
    cp = await ctx.engine.checkpoint("manual", p.label or "save-state", actor=ctx.actor)
    c = ctx.state.checkpoints[cp]
    return Outcome({"checkpoint": cp, "seq": c.seq, "state_hash": c.state_hash}, f"state saved as checkpoint #{cp}")


@operation(
    C, "load-state", kind="destructive", payload=P.LoadState, summary="bring the whole state back to a checkpoint"
)
async def load_state(ctx: Context, p: P.LoadState) -> Outcome:
    return await restore(ctx, p.checkpoint, None, "load_state")


@operation(
    C,
    "checkpoint",
    kind="checkpoint",
    payload=P.CheckpointRequest,
    summary="checkpoint now (kind: manual, emergency, incremental, phase_complete)",
    workflow_arg="optional",
)
async def checkpoint(ctx: Context, p: P.CheckpointRequest) -> Outcome:
    if ctx.workflow_id:
        ctx.workflow()
    cp = await ctx.engine.checkpoint(p.kind, p.label, ctx.workflow_id, actor=ctx.actor)
    c = ctx.state.checkpoints[cp]
    return Outcome(
        {"checkpoint": cp, "seq": c.seq, "kind": c.kind, "state_hash": c.state_hash},
        f"checkpoint #{cp} at seq {c.seq}",
        workflow_id=ctx.workflow_id,
    )


@operation(
    C,
    "restore",
    kind="destructive",
    payload=P.RestoreRequest,
    summary="restore a workflow (or all) from a checkpoint",
    workflow_arg="optional",
)
async def restore_op(ctx: Context, p: P.RestoreRequest) -> Outcome:
    wfs = ([ctx.workflow_id] if ctx.workflow_id else []) + p.workflows
    return await restore(ctx, p.checkpoint, wfs or None, "restore")


@operation(
    C,
    "rollback",
    kind="destructive",
    payload=P.RestoreRequest,
    summary="roll a workflow (or all) back to a checkpoint",
    workflow_arg="optional",
)
async def rollback_op(ctx: Context, p: P.RestoreRequest) -> Outcome:
    wfs = ([ctx.workflow_id] if ctx.workflow_id else []) + p.workflows
    return await restore(ctx, p.checkpoint, wfs or None, "rollback")


# -- the scenarios ------------------------------------------------------------------------


def idle_beyond_minimum(s: Any, pool: str | None = None) -> list[str]:
    """The agents ``idle_process_termination`` retires: in each pool (or ``pool``), the idle
    ones beyond the pool's minimum size, highest ids first. The approve dialog shows the
    same list before the operator decides."""
    out: list[str] = []
    for name, pl in sorted(s.pools.items()):
        if pool is not None and name != pool:
            continue
        live = [a for a in s.live_agents() if a.pool == name]
        idle = sorted(
            (a for a in live if a.status is AgentStatus.IDLE and not a.current_task), key=lambda a: a.id, reverse=True
        )
        out += [a.id for a in idle[: max(0, len(live) - pl.min_size)]]
    return out


async def _cleanup(ctx: Context, p: P.EmergencyCleanup) -> Outcome:
    s = ctx.state
    eng = ctx.engine
    cap = eng.config.capacity
    if p.pool is not None and p.pool not in s.pools:
        raise CommandError("POOL_NOT_FOUND", f"no pool {p.pool!r}", {"known": sorted(s.pools)})
    done: dict[str, Any] = {}
    freed_gb = 0.0
    mem_before = eng.utilisation()["memory"]
    if "aggressive_garbage_collection" in p.actions:
        done["garbage_collected_objects"] = gc.collect()
    not_applied: dict[str, str] = {}
    freed_bytes = 0
    if "cache_purging" in p.actions:
        got = eng.runtime.purge_caches() if eng.runtime is not None else {}  # on the Runtime protocol
        freed_gb += float(got.get("cache_gb", 0.0))
        done["caches"] = got
        if eng.store is not None:  # the store's own: old metric samples, the write-ahead log
            await eng.flush()
            async with eng.store_lock:  # one transaction at a time on the shared connection
                rec = await eng.store.reclaim(ctx.now - eng.config.intervals.metric_retention_s)
            done["store"] = rec
            freed_bytes += rec["wal_bytes_freed"]
        elif not got.get("cache_gb"):
            not_applied["cache_purging"] = "no runtime cache and no store to reclaim"
    if "temp_file_cleanup" in p.actions:
        got_tmp = eng.runtime.cleanup_temp() if eng.runtime is not None else None
        if got_tmp is None:
            not_applied["temp_file_cleanup"] = (
                f"the {eng.runtime.name if eng.runtime is not None else 'no'} runtime's tasks write no files"
            )
        else:
            done["temp_files"] = got_tmp
            freed_bytes += got_tmp["bytes_removed"]
            for wt in got_tmp.get("worktrees_removed") or []:  # checkouts of finished tasks; branches kept
                eng.emit(TASK_WORKTREE, "coordination", "agent", {**wt, "outcome": "pruned"}, actor=ctx.actor)
    retired: list[str] = []
    if "idle_process_termination" in p.actions:
        for aid in idle_beyond_minimum(s, p.pool):
            eng.retire_agent(aid, actor=ctx.actor)
            retired.append(aid)
        done["retired_idle_agents"] = retired
    measured: dict[str, float] = {  # what a recovery target is compared with
        "memory": round(freed_gb / cap.memory_gb * 100.0, 2),
        "agents": len(retired),
        "storage": round(freed_bytes / (cap.storage_gb * 1024**3) * 100.0, 6),
    }
    recovered = {
        "memory": measured["memory"],
        "memory_gb": round(freed_gb, 3),
        "agents": len(retired),
        "storage": measured["storage"],
        "storage_bytes": freed_bytes,
        "basis": {
            "memory_gb": "simulated (the simulated runtime's cache model)"
            if eng.runtime is not None and eng.runtime.capabilities.simulated
            else "measured (what the runtime's purge freed)",
            "storage_bytes": "measured (bytes removed from disk)",
            "agents": "counted (agents retired)",
            "capacity": cap.bases,
        },
    }
    if not_applied:
        done["not_applied"] = not_applied
    targets = {
        k: {"target_pct": v, "recovered_pct": measured.get(k, 0.0), "met": measured.get(k, 0.0) >= v}
        for k, v in p.resource_recovery_target.items()
    }
    eng.emit(
        RESOURCE_OPTIMIZED,
        "resource",
        "cleanup",
        {"recovered": recovered, "actions": list(p.actions), "retired": retired},
        actor=ctx.actor,
    )
    return Outcome(
        {"actions": done, "resource_recovery": recovered, "targets": targets, "memory_pct_before": mem_before},
        f"freed {freed_gb:.2f} GB of caches ({recovered['memory']:.1f}% of memory), {freed_bytes} bytes of storage"
        + (f" ({done['temp_files']['files_removed']} temp file(s))" if "temp_files" in done else "")
        + f", retired {len(retired)} idle agent(s)"
        + (f"; not applied: {', '.join(f'{k} ({v})' for k, v in not_applied.items())}" if not_applied else "")
        + (f"; targets met: {sum(1 for t in targets.values() if t['met'])}/{len(targets)}" if targets else ""),
        ["/resource-manager status"],
    )


@operation(
    C,
    "emergency-cleanup",
    kind="destructive",
    payload=P.EmergencyCleanup,
    summary="garbage-collect, purge caches (runtime; store: old metrics, the WAL), delete finished tasks' temp dirs, retire idle agents",
)
async def emergency_cleanup(ctx: Context, p: P.EmergencyCleanup) -> Outcome:
    """What is recovered is measured: cache gigabytes the runtime released, bytes the
    store gave back (metric rows past retention, the WAL checkpointed and truncated),
    files and bytes of temp directories of task runs no longer running (the local
    runtime gives each run its own ``TMPDIR``; on the simulated runtime there are no
    files, and the response says so), agents retired; each
    ``resource_recovery_target`` is reported met or not."""
    return await _cleanup(ctx, p)


@operation(
    C,
    "execute-dependency-recovery",
    kind="lifecycle",
    payload=P.ExecuteDependencyRecovery,
    summary="replace failed agents (matching specializations), move their task context, recover dependency chains",
)
async def execute_dependency_recovery(ctx: Context, p: P.ExecuteDependencyRecovery) -> Outcome:
    s = ctx.state
    eng = ctx.engine
    # Checks first.
    for act in p.recovery_actions:
        for a in act.failed_agents:
            ag = ctx.agent(a)
            if ag.status not in (AgentStatus.FAILED, AgentStatus.UNREACHABLE):
                raise CommandError(
                    "INVALID_STATE",
                    f"{a} is {ag.status.value}, not failed or unreachable: it needs no replacement",
                    {"agent": a},
                    ["/resource-manager agent-pool-assessment"],
                )
        for w in (act.primary_workflow, act.dependent_workflow):
            if w:
                ctx.workflow(w)
    n_new = sum(len(a.failed_agents) for a in p.recovery_actions if a.action == "immediate_agent_replacement")
    free = (
        eng.config.capacity.agents
        - len(s.live_agents())
        + sum(
            1 for act in p.recovery_actions for a in act.failed_agents if s.agents[a].status is AgentStatus.UNREACHABLE
        )
    )
    if n_new > free:
        raise CommandError(
            "RESOURCE_EXHAUSTED",
            f"{n_new} replacement(s) needed, {free} agent slot(s) free",
            {"capacity": eng.config.capacity.agents},
        )
    results: list[dict[str, Any]] = []
    for act in p.recovery_actions:
        if act.action == "immediate_agent_replacement":
            pairs: list[tuple[str, str | None]] = []
            created_pool = None
            if act.replacement_pool and act.replacement_pool not in s.pools:
                specs = sorted({sp for a in act.failed_agents for sp in s.agents[a].specializations})
                eng.create_pool(act.replacement_pool, specs, 0, max(len(act.failed_agents), 5))
                created_pool = act.replacement_pool
            for a in act.failed_agents:
                src = s.agents[a]
                if src.status is AgentStatus.UNREACHABLE:
                    eng.retire_agent(a, actor=ctx.actor)
                pool = act.replacement_pool or src.pool
                spec = list(src.specializations) if act.specialization_matching else None
                new = eng.add_agent(pool, spec, actor=ctx.actor)
                pairs.append((a, new))
            moved = await transfer_contexts(eng, pairs, ctx.actor) if act.context_transfer != "none" else []
            eng.set_setting(
                "recovery.replacements",
                {**s.settings.get("recovery.replacements", {}), **dict(pairs)},
                actor=ctx.actor,
            )
            results.append(
                {
                    "action": act.action,
                    "replacements": dict(pairs),
                    "created_pool": created_pool,
                    "context_transfers": moved,
                }
            )
        elif act.action == "dependency_chain_recovery":
            named = s.any_workflow(act.primary_workflow) if act.primary_workflow else None
            prim = named or ctx.workflow(act.primary_workflow)
            entry: dict[str, Any] = {"action": act.action, "primary": prim.id}
            failed_tasks = (
                prim.failed_tasks
                if isinstance(prim, FinishedWorkflow)
                else [k for k in prim.tasks if s.tasks[k].status is TaskStatus.FAILED]
            )
            if act.checkpoint_restoration and (prim.status is WorkflowStatus.FAILED or failed_tasks):
                out = await restore(ctx, "latest_verified", [prim.id], "dependency_recovery")
                entry["restored"] = out.result["checkpoint"]
                prim = s.any_workflow(prim.id) or prim
            elif act.checkpoint_restoration:
                entry["restored"] = None
                entry["restore_note"] = f"{prim.id} has no failed task: nothing to restore"
            if prim.status is WorkflowStatus.PAUSED and not prim.frozen:
                eng.resume_workflow(prim.id, actor=ctx.actor)
                entry["resumed"] = True
            elif prim.status is WorkflowStatus.PENDING:
                eng.start_workflow(prim.id, actor=ctx.actor)
                entry["started"] = True
            if act.dependent_workflow:
                dep = s.any_workflow(act.dependent_workflow) or ctx.workflow(act.dependent_workflow)
                if prim.id not in dep.depends_on:
                    raise CommandError(
                        "INVALID_PAYLOAD", f"{dep.id} does not depend on {prim.id}", {"depends_on": dep.depends_on}
                    )
                if dep.status is WorkflowStatus.PENDING and not dep.queued:
                    eng.start_workflow(dep.id, actor=ctx.actor)
                entry["dependent"] = {
                    "workflow_id": dep.id,
                    "status": dep.status.value,
                    "queued": dep.queued,
                    "waits_for": [d for d in dep.depends_on if s.status_of(d) is not WorkflowStatus.COMPLETED],
                }
            entry["primary_status"] = prim.status.value
            entry["critical_path"] = s.critical_path(prim.id)
            results.append(entry)
        else:
            lvl = act.monitoring_level or "comprehensive"
            out = configure(
                ctx,
                "recovered_workflows",
                {
                    "scope": act.scope,
                    "level": lvl,
                    "thresholds": thresholds_for(ctx, "high"),
                    "failure_prediction": act.failure_prediction == "enabled",
                },
                3600.0,
            )
            out.result["watching"] = (
                "RESOURCE_THRESHOLD alerts at 0.75x the warning thresholds for 1 h, then MONITORING_WINDOW_CLOSED with peaks"
            )
            results.append({"action": act.action, **out.result})
    n_rep = sum(len(r.get("replacements", {})) for r in results)
    transfers = [t for r in results for t in r.get("context_transfers", [])]
    n_ctx = sum(1 for t in transfers if t["moved"])
    not_moved = [f"{t['task']} ({t['state']})" for t in transfers if not t["moved"]]
    return Outcome(
        {"strategy": p.recovery_strategy, "actions": results, "contexts_moved": n_ctx, "contexts_not_moved": not_moved},
        f"{n_rep} agent(s) replaced, {n_ctx} task context(s) moved"
        + (f", {len(not_moved)} not moved: {', '.join(not_moved)}" if not_moved else "")
        + f", {len(results)} action(s)",
        ["/workflow-recovery transfer-context", "/workflow-status"],
    )


@operation(
    C,
    "dependency-analysis",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="dependency chains and critical paths",
    workflow_arg="optional",
)
async def dependency_analysis(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    return await analysis_outcome(
        ctx,
        choose(p.focus, ["dependency_chains", "critical_paths"]),
        scope_of(ctx, p.workflows),
        {"scope": p.scope},
        p.window_given(),
    )


@operation(
    C,
    "workflow-efficiency-analysis",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="event rates, dispatch inefficiency and performance trends",
)
async def workflow_efficiency_analysis(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    return await analysis_outcome(
        ctx, ["coordination_overhead", "performance_trend", "bottlenecks"], None, {"scope": p.scope}, p.window_given()
    )


@operation(
    C,
    "emergency-data-protection",
    kind="checkpoint",
    payload=P.EmergencyDataProtection,
    summary="emergency checkpoint, freeze the workflow's state, validate backups, commit the log",
    workflow_arg="optional",
)
async def emergency_data_protection(ctx: Context, p: P.EmergencyDataProtection) -> Outcome:
    """The checkpoint is taken before the freeze, so it is the last state before
    protection. While frozen, operator and plan commands that would change the
    workflow are refused and no new task of it is dispatched; its tasks already
    running are not stopped, and what they report (progress, completion, failure) is
    recorded as a runtime fact, marked ``during_freeze``."""
    from ..engine import EngineError

    eng = ctx.engine
    wid = p.affected_workflow or ctx.workflow_id
    wf = ctx.workflow(wid) if wid else None
    res: dict[str, Any] = {"workflow_id": wf.id if wf else None, "protection_level": p.protection_level}
    if "create_emergency_checkpoint" in p.immediate_actions:
        cp = await eng.checkpoint(
            "emergency", f"data protection {wf.id if wf else 'all'}", wf.id if wf else None, actor=ctx.actor
        )
        res["checkpoint"] = cp
    if "freeze_state_modifications" in p.immediate_actions:
        targets = (
            [wf.id] if wf else sorted(w.id for w in ctx.state.workflows.values() if w.status not in TERMINAL_WORKFLOW)
        )
        for w in targets:
            if not ctx.state.workflows[w].frozen:
                eng.freeze(w, True, actor=ctx.actor)
        res["frozen"] = targets
        res["freeze_scope"] = {
            "refused": "operator and plan commands that change these workflows: start, pause, resume, cancel, "
            "emergency-stop, reassign, allocation, reallocation, guarantees, stage limits",
            "not_dispatched": "no new task of these workflows starts",
            "not_refused": "tasks already running keep running: their progress, completion or failure is a "
            "runtime fact, recorded with during_freeze",
            "running_tasks": sorted(k for w in targets for k in ctx.state.running_by_wf.get(w, ())),
        }
    if "activate_backup_validation" in p.immediate_actions:
        ok, bad = [], {}
        for cp_id in sorted(ctx.state.checkpoints):
            try:
                await eng.verified_checkpoint(cp_id)
                ok.append(cp_id)
            except EngineError as exc:
                bad[str(cp_id)] = exc.message
        res["backups"] = {"verified": ok, "failed": bad}
    if "enable_transaction_logging" in p.immediate_actions:
        eng.set_setting(
            "data_protection",
            {"workflow": wf.id if wf else None, "level": p.protection_level, "commit_every_command": True},
            actor=ctx.actor,
        )
        await eng.flush()
        res["log_committed_through_seq"] = ctx.state.seq
        res["transaction_logging"] = "every command from now on is committed to the log before its response"
    return Outcome(
        res,
        f"protected {wf.id if wf else 'all workflows'}: "
        + ", ".join(
            x
            for x in (
                f"checkpoint #{res['checkpoint']}" if "checkpoint" in res else "",
                f"{len(res.get('frozen', []))} frozen (commands refused, "
                f"{len(res['freeze_scope']['running_tasks'])} running task(s) not stopped)"
                if "frozen" in res
                else "",
                f"{len(res['backups']['verified'])} backup(s) verify" if "backups" in res else "",
            )
            if x
        ),
        ["/workflow-recovery corruption-assessment", "/workflow-recovery execute-data-recovery"],
        workflow_id=wf.id if wf else None,
    )


@operation(
    C,
    "checkpoint-validation",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="verify every checkpoint and the log against the live state",
)
async def checkpoint_validation(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    return await analysis_outcome(
        ctx, ["checkpoint_integrity", "log_replay"], None, {"scope": p.scope}, p.window_given()
    )


INTEGRITY_FULL_CHECK_S = {"every_minute": 60.0, "hourly": 3600.0, "every_operation": 300.0}
"""Full integrity check period by validation frequency (mirrors DataIntegrityDetector)."""


@operation(
    C,
    "enable-enhanced-integrity-monitoring",
    kind="monitoring",
    payload=P.EnhancedIntegrityMonitoring,
    summary="integrity monitoring the engine applies: the checkpoint interval in force and how often the store is verified",
)
async def enable_enhanced_integrity_monitoring(ctx: Context, p: P.EnhancedIntegrityMonitoring) -> Outcome:
    """``checkpoint_frequency`` sets the interval of the engine's automatic checkpoints:
    relaxed 2x, normal 1x, aggressive 1/3x, paranoid 1/15x of ``intervals.checkpoint_s``.
    ``validation_frequency`` sets how often the data-integrity detector verifies the
    store: ``every_operation`` checks each committed row and each new checkpoint at
    every pump (a full check every 300 s), ``every_minute`` a full check every 60 s,
    ``hourly`` every 3600 s. ``auto_recovery`` and ``corruption_detection`` are
    recorded only: recovery plans still go through the approval policy."""
    base = ctx.engine.config.intervals.checkpoint_s
    interval = {"relaxed": base * 2, "normal": base, "aggressive": base / 3, "paranoid": base / 15}[
        p.checkpoint_frequency
    ]
    from .analyses import state_consistency

    check = (await state_consistency(ctx.engine, None))[0]
    out = configure(
        ctx,
        "integrity",
        {
            "level": p.monitoring_level,
            "validation_frequency": p.validation_frequency,
            "checkpoint_interval_s": interval,
            "corruption_detection": p.corruption_detection,
            "auto_recovery": p.auto_recovery == "enabled",
            "baseline_problems": len(check.evidence["problems"]),
        },
    )
    out.result["integrity_check"] = check.as_dict()
    out.result["in_force"] = {
        "checkpoint_interval_s": ctx.engine.checkpoint_interval(),
        "full_check_every_s": INTEGRITY_FULL_CHECK_S[p.validation_frequency],
        "incremental_check_every_commit": p.validation_frequency == "every_operation",
    }
    out.result["recorded_only"] = ["auto_recovery", "corruption_detection"]
    out.summary += (
        f"; checkpoints every {interval:g}s; store verified "
        + (
            "at every commit (incremental), fully every 300s"
            if p.validation_frequency == "every_operation"
            else f"fully every {INTEGRITY_FULL_CHECK_S[p.validation_frequency]:g}s"
        )
        + f"; {len(check.evidence['problems'])} inconsistency(ies) now"
    )
    return out


PROTECTION = {
    "transaction_atomicity_guarantees": (
        "always",
        "events commit in atomic batches (one transaction per group commit)",
    ),
    "state_checksumming": (
        "always",
        "every event is SHA-256 chained to the previous one; checkpoints carry a state hash",
    ),
    "state_change_auditing": ("always", "every command is recorded as COMMAND_EXECUTED with who ran it"),
    "integrity_alerting": ("always", "the data-integrity detector raises DATA_INTEGRITY_ALERT"),
    "real_time_consistency_monitoring": (
        "turned_on",
        "the store is verified at every commit (integrity monitoring every_operation)",
    ),
    "automated_backup_validation": (
        "turned_on",
        "each new checkpoint's hash is verified at the next commit (integrity monitoring every_operation)",
    ),
    "synchronization_validation": ("not_available", "no separate mechanism: recorded only"),
    "corruption_prediction": ("not_available", "no predictor: recorded only"),
}


@operation(
    C,
    "implement-enhanced-protection",
    kind="monitoring",
    payload=P.EnhancedProtection,
    summary="protection measures: says which are always in force, turns on per-commit verification, names those it cannot provide",
)
async def implement_enhanced_protection(ctx: Context, p: P.EnhancedProtection) -> Outcome:
    measures = sorted({*p.protection_enhancements, *p.monitoring_improvements})
    if not measures:
        raise CommandError("INVALID_PAYLOAD", "name at least one protection enhancement or monitoring improvement")
    report = {m: {"status": PROTECTION[m][0], "what": PROTECTION[m][1]} for m in measures}
    turned_on = [m for m in measures if PROTECTION[m][0] == "turned_on"]
    if turned_on:
        cur = ctx.state.settings.get("monitoring.integrity")
        cfg = (
            dict(cur)
            if isinstance(cur, dict) and not cur.get("closed")
            else {"checkpoint_interval_s": ctx.engine.config.intervals.checkpoint_s}
        )
        cfg.pop("baseline", None)
        cfg.update({"validation_frequency": "every_operation", "set_by": "implement-enhanced-protection"})
        configure(ctx, "integrity", {k: v for k, v in cfg.items() if k not in ("since", "until", "by")})
    out = configure(
        ctx, "protection", {"measures": measures, "state_hash": ctx.state.state_hash(), "seq": ctx.state.seq}
    )
    out.result["measures"] = report
    n_na = sum(1 for m in measures if PROTECTION[m][0] == "not_available")
    out.summary = (
        f"{sum(1 for m in measures if PROTECTION[m][0] == 'always')} measure(s) always in force, {len(turned_on)} turned on"
        + (" (store verified at every commit)" if turned_on else "")
        + (f", {n_na} not available (recorded only)" if n_na else "")
        + f"; reference checksum {ctx.state.state_hash()[:12]} at seq {ctx.state.seq}"
    )
    return out


@operation(
    C,
    "network-failure-analysis",
    kind="analysis",
    payload=P.NetworkFailureAnalysis,
    summary="which agents are unreachable, for how long, holding what",
)
async def network_failure_analysis(ctx: Context, p: P.NetworkFailureAnalysis) -> Outcome:
    names = ["network", "stalled_agents"]
    if "state_synchronization" in p.affected_components:
        names.append("state_consistency")
    if "event_distribution" in p.affected_components:
        names.append("coordination_overhead")
    return await analysis_outcome(
        ctx, names, None, {"failure_scope": p.failure_scope, "components": p.affected_components}
    )


def _move_off_unreachable(ctx: Context, silent_at_least: float) -> list[dict[str, Any]]:
    """Release the tasks of unreachable agents silent that long: each goes back to the
    queue with its context (progress, partial results) for a reachable agent."""
    moved = []
    for a in sorted(ctx.state.agents.values(), key=lambda a: a.id):
        if a.status is AgentStatus.UNREACHABLE and a.current_task:
            silent = ctx.now - ctx.engine.telemetry.liveness.get(a.id, a.last_heartbeat or ctx.now)
            if silent >= silent_at_least:
                key = a.current_task
                prog = ctx.state.tasks[key].context.progress
                ctx.engine.release_task(key, reason="agent_unreachable", actor=ctx.actor)
                moved.append({"task": key, "from": a.id, "silent_s": round(silent, 1), "progress_kept": prog})
    return moved


@operation(
    C,
    "communication-redundancy-activation",
    kind="destructive",
    payload=P.CommunicationRedundancy,
    summary="move tasks off agents unreachable longer than reassign_after, now and from then on (standing); optionally add replacement agents",
)
async def communication_redundancy_activation(ctx: Context, p: P.CommunicationRedundancy) -> Outcome:
    """The standing reassignment is applied by the engine at every sample
    (``Liveness.reassign_unreachable``) while this setting is in force. A link to an
    unreachable agent cannot be re-established from here: with ``replace_unreachable``
    the pool gets a new agent per unreachable one instead (up to its maximum and the
    fleet's capacity); the cut-off agent's buffered work is merged when it reconnects."""
    s = ctx.state
    eng = ctx.engine
    out = configure(
        ctx, "communication", {"redundancy": True, "reassign_after_s": p.reassign_after, "standing_reassignment": True}
    )
    proto = s.settings.get("monitoring.distributed_protocols")
    keep = isinstance(proto, dict) and not proto.get("closed") and bool(proto.get("keep_tasks_on_unreachable"))
    moved = [] if keep else _move_off_unreachable(ctx, p.reassign_after)
    added = []
    if p.replace_unreachable:
        for a in sorted((a for a in s.agents.values() if a.status is AgentStatus.UNREACHABLE), key=lambda a: a.id):
            pool = s.pools[a.pool]
            live = sum(1 for x in s.live_agents() if x.pool == a.pool)
            if live >= pool.max_size or len(s.live_agents()) >= eng.config.capacity.agents:
                continue
            added.append(
                {"for": a.id, "agent": eng.add_agent(a.pool, list(a.specializations), actor=ctx.actor), "pool": a.pool}
            )
        eng.request_dispatch()
    out.result.update(
        {
            "moved": moved,
            "replacements": added,
            "reestablished": [],
            "kept_on_isolated_agents": keep,
            "links": "not re-established: a cut link cannot be repaired from the control plane",
        }
    )
    out.summary = (
        f"standing reassignment on (after {p.reassign_after:g}s silent"
        + ("; the distributed protocol in force keeps tasks on isolated agents" if keep else "")
        + f"); {len(moved)} task(s) moved now; "
        f"{len(added)} replacement agent(s) added"
    )
    return out


@operation(
    C,
    "activate-distributed-protocols",
    kind="destructive",
    payload=P.ActivateDistributedProtocols,
    summary="partition protocol: keep tasks running on isolated agents (agent autonomy) or move them off now; buffered reports merge on reconnection",
)
async def activate_distributed_protocols(ctx: Context, p: P.ActivateDistributedProtocols) -> Outcome:
    """Agents always buffer their reports with sequence numbers while cut off, and the
    engine always applies them exactly once through the conflict-free merge
    (``core.merge``) when they reconnect: those two adaptations are in force whatever
    is asked. ``agent_autonomy_increase`` keeps tasks on isolated agents (the standing
    reassignment then skips them); without it the tasks of unreachable agents move
    to reachable agents now, with their context."""
    s = ctx.state
    adapt = [a.adaptation for a in p.coordination_adaptations]
    keep = "agent_autonomy_increase" in adapt
    out = configure(
        ctx,
        "distributed_protocols",
        {
            "mode": p.protocol_mode,
            "strategy": p.communication_strategy,
            "adaptations": adapt,
            "keep_tasks_on_unreachable": keep,
        },
    )
    lost = sorted(a.id for a in s.agents.values() if a.status is AgentStatus.UNREACHABLE)
    holding = {a: task for a in lost if (task := s.agents[a].current_task)}
    moved = [] if keep else _move_off_unreachable(ctx, 0.0)
    out.result.update(
        {
            "partition": {"unreachable": lost, "tasks_held": holding},
            "kept_on_isolated_agents": sorted(holding.values()) if keep else [],
            "moved": moved,
            "always_on": [
                "buffered reports with per-agent sequence numbers",
                "exactly-once apply through the conflict-free merge on reconnection",
            ],
        }
    )
    out.summary = (
        f"{len(lost)} agent(s) partitioned; "
        + (
            f"{len(holding)} task(s) keep running isolated"
            if keep
            else f"{len(moved)} task(s) moved to reachable agents"
        )
        + "; buffered reports merge on reconnection"
    )
    return out


@operation(
    C,
    "implement-network-resilience",
    kind="monitoring",
    payload=P.NetworkResilience,
    summary="automatic failover (the standing reassignment of silent agents' tasks); the other measures are recorded only",
)
async def implement_network_resilience(ctx: Context, p: P.NetworkResilience) -> Outcome:
    measures = p.resilience_enhancements + p.monitoring_improvements
    if not measures:
        raise CommandError("INVALID_PAYLOAD", "name at least one resilience enhancement or monitoring improvement")
    hb = ctx.engine.config.intervals.heartbeat_s
    failover_after = (
        hb * ctx.engine.config.intervals.missed_heartbeats if "automatic_failover_mechanisms" in measures else None
    )
    out = configure(ctx, "network_resilience", {"measures": sorted(measures), "failover_after_s": failover_after})
    if failover_after is not None:  # the engine's standing reassignment: tasks of silent agents move
        configure(
            ctx,
            "communication",
            {
                "redundancy": True,
                "reassign_after_s": failover_after,
                "standing_reassignment": True,
                "set_by": "implement-network-resilience",
            },
        )
    lost = sum(1 for a in ctx.state.agents.values() if a.status is AgentStatus.UNREACHABLE)
    out.result["applied"] = (
        {"automatic_failover_mechanisms": f"tasks of agents silent {failover_after:g}s move to reachable agents"}
        if failover_after
        else {}
    )
    out.result["recorded_only"] = sorted(m for m in measures if m != "automatic_failover_mechanisms")
    out.summary = (
        f"{len(measures)} resilience measure(s); {lost} agent(s) unreachable now"
        + (f"; failover: tasks of agents silent {failover_after:g}s move" if failover_after else "")
        + (f"; recorded only: {', '.join(out.result['recorded_only'])}" if out.result["recorded_only"] else "")
    )
    return out
