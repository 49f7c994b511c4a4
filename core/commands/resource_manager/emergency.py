"""``/resource-manager`` emergencies: reallocation under exhaustion, agent reallocation and management."""

from __future__ import annotations

from typing import Any

from ...engine.liveness import tasks_on_unreachable
from ...event_types import POOL_RESIZED
from ...models import TERMINAL_WORKFLOW, AgentStatus, Resources, WorkflowStatus
from .. import measured
from .. import payloads as P
from ..context import Context
from ..registry import Operations, Outcome
from ..responses import CommandError
from . import C
from .holdings import held, live_limits, recovery, shed

OPS = Operations(C, None)
operation = OPS.operation


@operation(
    C,
    "emergency-reallocation",
    kind="destructive",
    payload=P.EmergencyReallocation,
    summary="pause low-priority work, reduce allocations keeping the critical path, guarantee high-priority capacity",
)
async def emergency_reallocation(ctx: Context, p: P.EmergencyReallocation) -> Outcome:
    """Actions run in order. ``pause_low_priority_workflows`` pauses each workflow: its
    tasks' processes are SIGSTOPped and stay (they keep their agents and memory, use no
    CPU). ``requeue_low_priority_workflows`` pauses each workflow and stops its tasks,
    putting them back in the queue (their processes end; a real process starts again
    from the beginning when the workflow resumes). ``reduce_resource_allocation`` lowers
    the allocation and stops running tasks beyond it, critical path last;
    ``optimize_high_priority_workflow`` reserves ``resource_guarantee``. The
    ``resource_recovery`` reported is measured from the processes paused or stopped;
    what the reservations released is reported apart, labelled ``reserved``."""
    s = ctx.state
    eng = ctx.engine
    cap = eng.config.capacity
    lim = eng.config.workflow_limits
    # Checks first: nothing changes unless every action can apply.
    g_total = {"cpu": 0.0, "mem": 0.0}
    for act in p.actions:
        for wid in act.affected:
            wf = ctx.workflow(wid)
            if wf.frozen:
                raise CommandError("WORKFLOW_FROZEN", f"{wid} is frozen for data protection", {"workflow_id": wid})
            if wf.status in TERMINAL_WORKFLOW or (
                wf.status is WorkflowStatus.PENDING
                and act.action in ("pause_low_priority_workflows", "requeue_low_priority_workflows")
            ):
                raise CommandError(
                    "INVALID_STATE",
                    f"{wid} is {wf.status.value}: {act.action} needs a running workflow",
                    {"workflow_id": wid, "status": wf.status.value},
                    ["/coordination-hub list-workflows"],
                )
            if act.action == "optimize_high_priority_workflow" and act.resource_guarantee is not None:
                g_total["cpu"] += act.resource_guarantee.cores or 0.0
                g_total["mem"] += act.resource_guarantee.memory_gb or 0.0
    named = {w for a in p.actions if a.action == "optimize_high_priority_workflow" for w in a.affected}
    others = [
        w.guarantee
        for w in s.workflows.values()
        if w.id not in named and w.guarantee and w.status not in TERMINAL_WORKFLOW
    ]
    if (
        g_total["cpu"] + sum(g.cpu_cores for g in others) > cap.cpu_cores
        or g_total["mem"] + sum(g.memory_gb for g in others) > cap.memory_gb
    ):
        raise CommandError(
            "RESOURCE_EXHAUSTED",
            f"the guarantees asked ({g_total['cpu']:g} cores / {g_total['mem']:g} GB) do not fit the capacity "
            f"{cap.cpu_cores:g} / {cap.memory_gb:g} with the existing guarantees",
            {"requested": g_total},
        )
    total_before = held(ctx)
    util_before = eng.utilisation()
    results = []
    all_probes: list[measured.Probe] = []
    for act in p.actions:
        before = held(ctx, act.affected)
        probes = measured.probe(ctx, [k for w in act.affected for k in s.running_by_wf.get(w, ())])
        detail: dict[str, Any] = {"action": act.action, "affected": act.affected}
        per: dict[str, dict[str, Any]] = {}
        if act.action in ("pause_low_priority_workflows", "requeue_low_priority_workflows"):
            for wid in act.affected:
                wf = s.workflows[wid]
                done: dict[str, Any] = {}
                if wf.status is WorkflowStatus.PAUSED:
                    done["already_paused"] = True
                else:
                    done["paused_tasks"] = eng.pause_workflow(wid, actor=ctx.actor, reason="emergency_reallocation")
                if act.action == "requeue_low_priority_workflows":
                    held_now = sorted(s.running_by_wf.get(wid, ()))
                    done["requeued_tasks"] = [
                        k for k in held_now if eng.release_task(k, reason="requeued", actor=ctx.actor)
                    ]
                per[wid] = done
            detail["workflows"] = per
        elif act.action == "reduce_resource_allocation":
            r = act.reduction
            assert r is not None
            for wid in act.affected:
                a = s.workflows[wid].allocation
                new = Resources(
                    cpu_cores=round(max(0.5, a.cpu_cores - (r.cores or 0.0)), 3),
                    memory_gb=round(max(0.5, a.memory_gb - (r.memory_gb or 0.0)), 3),
                    agents=max(1, a.agents - (r.agents or 0)),
                )
                eng.set_allocation(wid, new, actor=ctx.actor)
                per[wid] = {
                    "allocation_before": a.model_dump(),
                    "allocation_after": new.model_dump(),
                    **shed(ctx, wid, new, act.maintain_critical_path),
                }
            detail["workflows"] = per
        else:
            for wid in act.affected:
                wf = s.workflows[wid]
                entry: dict[str, Any] = {}
                g = act.resource_guarantee
                if g is not None:
                    gr = Resources(cpu_cores=g.cores or 0.0, memory_gb=g.memory_gb or 0.0, agents=g.agents or 0)
                    eng.reserve(wid, gr, actor=ctx.actor)
                    entry["guarantee"] = gr.model_dump()
                    if act.optimization == "emergency_efficiency_mode":
                        a = wf.allocation
                        na = Resources(
                            cpu_cores=min(lim.cpu_cores, max(a.cpu_cores, gr.cpu_cores)),
                            memory_gb=min(lim.memory_gb, max(a.memory_gb, gr.memory_gb)),
                            agents=min(lim.agents, max(a.agents, gr.agents)),
                        )
                        if na != a:
                            eng.set_allocation(wid, na, actor=ctx.actor)
                            entry["allocation_before"] = a.model_dump()
                            entry["allocation_after"] = na.model_dump()
                entry["critical_path"] = s.critical_path(wid)
                per[wid] = entry
            detail["workflows"] = per
        after = held(ctx, act.affected)
        detail["held_before"] = before
        detail["held_after"] = after
        detail["resource_recovery"] = measured.recovered(ctx, probes, await measured.settle(ctx, probes))
        detail["reservations_released"] = recovery(ctx, before, after)
        if act.resource_recovery is not None:
            detail["expected_recovery"] = {**act.resource_recovery, "basis": "operator's expectation"}
        all_probes += probes
        results.append(detail)
    total_after = held(ctx)
    rec = measured.recovered(ctx, all_probes, await measured.settle(ctx, all_probes))
    touched = sorted(
        {
            w
            for a in p.actions
            if a.action not in ("pause_low_priority_workflows", "requeue_low_priority_workflows")
            for w in a.affected
            if s.workflows[w].status is WorkflowStatus.RUNNING
        }
    )
    live = await live_limits(ctx, touched)
    return Outcome(
        {
            "strategy": p.strategy,
            "actions": results,
            "resource_recovery": rec,
            "reservations_released": recovery(ctx, total_before, total_after),
            "held_before": total_before,
            "held_after": total_after,
            "utilisation_before": util_before,
            "live_limits": live,
        },
        f"{len(results)} action(s); recovered ({rec['basis']}, {len(rec['processes'])} task(s)) "
        f"{rec['cpu_cores']:g} cores cpu ({rec['cpu']:.1f}%), {rec['memory_mb']:g} MB memory ({rec['memory']:.1f}%), "
        f"{rec['agents']} agent(s) freed; {live['summary']}",
        [
            "/coordination-hub emergency-cleanup",
            "/performance-monitor post-emergency-monitoring",
            "/workflow-recovery gradual-resumption",
        ],
    )


@operation(
    C,
    "agent-reallocation",
    kind="destructive",
    payload=P.AnalysisRequest,
    summary="move tasks off unreachable agents to reachable ones (network-aware distribution)",
)
async def agent_reallocation(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    """Each task held by an unreachable agent goes back to the queue with its context,
    for a reachable agent to continue; the agent's late reports are then ignored."""
    if p.window_given():
        raise CommandError(
            "INVALID_PAYLOAD", "agent-reallocation acts on the agents unreachable now: it takes no time window"
        )
    s = ctx.state
    moved = []
    for agent, key in tasks_on_unreachable(s).items():
        prog = s.tasks[key].context.progress
        ctx.engine.release_task(key, reason="agent_unreachable", actor=ctx.actor)
        moved.append({"task": key, "from": agent, "progress_kept": prog})
    idle = sorted(a.id for a in s.live_agents() if a.status is AgentStatus.IDLE)
    return Outcome(
        {"moved": moved, "idle_reachable_agents": idle},
        f"{len(moved)} task(s) moved off unreachable agents; {len(idle)} idle reachable agent(s) can take them",
    )


@operation(
    C,
    "update-agent-management",
    kind="lifecycle",
    payload=P.UpdateAgentManagement,
    summary="raise pool minimums where agents failed; with health_monitoring_enhancements ping agents at half the heartbeat",
)
async def update_agent_management(ctx: Context, p: P.UpdateAgentManagement) -> Outcome:
    """With ``redundancy_improvements`` each pool that lost agents (from the state and
    the lessons of post-failure-learning) gets its minimum raised by one and is topped
    up to it. With ``health_monitoring_enhancements`` the engine pings every live agent
    at half the heartbeat interval (an answer counts as a heartbeat), so a silent agent
    is found unreachable in half the time."""
    s = ctx.state
    eng = ctx.engine
    failed_pools: dict[str, int] = {}
    for a in s.agents.values():
        if a.failures:
            failed_pools[a.pool] = failed_pools.get(a.pool, 0) + a.failures
    if p.failure_lessons == "integrated":
        for pool, n in s.learning.get("policy", {}).get("failures_by_pool", {}).items():
            failed_pools[pool] = max(failed_pools.get(pool, 0), int(n))
    changes = []
    if p.redundancy_improvements:
        for pool_name in sorted(failed_pools):
            pool = s.pools.get(pool_name)
            if pool is None or pool.min_size >= pool.max_size:
                continue
            new_min = pool.min_size + 1
            eng.emit(
                POOL_RESIZED,
                "resource",
                "agents",
                {"pool": pool_name, "min_size": new_min, "reason": "redundancy"},
                actor=ctx.actor,
            )
            added = []
            while (
                sum(1 for a in s.live_agents() if a.pool == pool_name) < new_min
                and len(s.live_agents()) < eng.config.capacity.agents
            ):
                added.append(eng.add_agent(pool_name, actor=ctx.actor))
            changes.append(
                {"pool": pool_name, "min_size": new_min, "added": added, "failures": failed_pools[pool_name]}
            )
    hb = eng.config.intervals.heartbeat_s
    interval = hb / 2 if p.health_monitoring_enhancements else hb
    settings = {
        "redundancy_improvements": p.redundancy_improvements,
        "health_check_interval_s": interval,
        "predictive_failure_detection": p.predictive_failure_detection == "enabled",
        "failure_lessons": p.failure_lessons,
        "pools_with_failures": failed_pools,
    }
    eng.set_setting("agent_management", settings, actor=ctx.actor)
    active = eng.health_check_interval() is not None and eng.runtime is not None  # every runtime answers pings
    miss = eng.config.intervals.missed_heartbeats + 0.5
    limit = interval * miss if active else hb * miss
    return Outcome(
        {
            "pool_changes": changes,
            "settings": settings,
            "health_checks": {
                "active": active,
                "every_s": settings["health_check_interval_s"] if active else None,
                "silent_agent_unreachable_after_s": limit,
                "predictive_failure_detection": "recorded only",
            },
        },
        f"{len(changes)} pool(s) given more redundancy; "
        + (
            f"agents pinged every {settings['health_check_interval_s']:g}s (silent ones unreachable after {limit:g}s)"
            if active
            else f"heartbeats only (silent agents unreachable after {limit:g}s)"
        ),
    )
