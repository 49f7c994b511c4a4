"""``/coordination-hub`` agents: assignment, redistribution, pool view and cleanup of idle agents and caches."""

from __future__ import annotations

import gc
from typing import Any

from ...event_types import (
    RESOURCE_OPTIMIZED,
    TASK_WORKTREE,
)
from ...models import AgentStatus
from .. import payloads as P
from ..context import Context
from ..registry import Operations, Outcome
from ..reporting import analysis_outcome
from ..responses import CommandError
from . import C

OPS = Operations(C, None)
operation = OPS.operation


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
        from ..taskmoves import assign_task, can_assign

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
        "agents": round(len(retired) / max(cap.agents, 1) * 100.0, 2),  # a share of capacity, as the target is
        "storage": round(freed_bytes / (cap.storage_gb * 1024**3) * 100.0, 6),
    }
    recovered = {
        "memory": measured["memory"],
        "memory_gb": round(freed_gb, 3),
        # Agent slots in use released, as a reallocation counts them: an idle agent held none.
        "agents": 0,
        "agents_retired": len(retired),
        "storage": measured["storage"],
        "storage_bytes": freed_bytes,
        "basis": {
            "memory_gb": "simulated (the simulated runtime's cache model)"
            if eng.runtime is not None and eng.runtime.capabilities.simulated
            else "measured (what the runtime's purge freed)",
            "storage_bytes": "measured (bytes removed from disk)",
            "agents": "none in use (the agents retired were idle)",
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
