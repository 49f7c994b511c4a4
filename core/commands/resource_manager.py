"""``/resource-manager``: capacity, allocation, reservation and reallocation."""

from __future__ import annotations

import asyncio
import math
import statistics
from pathlib import Path
from typing import Any

from ..event_types import POOL_RESIZED
from ..models import TERMINAL_WORKFLOW, AgentStatus, Resources, TaskStatus, WorkflowStatus
from ..scheduler import dispatch
from ..store import file_bytes
from . import budgets, measured
from . import payloads as P
from .analyses.findings import lsq_slope
from .context import Context
from .monitoring import configure, thresholds_for
from .registry import Operations, Outcome
from .reporting import analysis_outcome, scope_of
from .responses import CommandError

C = "resource-manager"
OPS = Operations(C, "capacity, allocation, reservation and reallocation of CPU, memory and agents")
operation = OPS.operation


def held(ctx: Context, wf_ids: list[str] | None = None) -> dict[str, float]:
    """Resources running tasks hold now (all workflows, or the listed ones)."""
    s = ctx.state
    ids = wf_ids if wf_ids is not None else list(s.workflows)
    cpu = mem = 0.0
    n = 0
    for w in ids:
        u = s.in_use(w)
        cpu += u.cpu_cores
        mem += u.memory_gb
        n += u.agents
    return {"cpu_cores": round(cpu, 3), "memory_gb": round(mem, 3), "agents": n}


def recovery(ctx: Context, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the scheduler's reservations dropped by (basis ``reserved``: not what the
    processes used; see :mod:`.measured` for that)."""
    cap = ctx.engine.config.capacity
    cores = before["cpu_cores"] - after["cpu_cores"]
    gb = before["memory_gb"] - after["memory_gb"]
    return {
        "cpu": round(cores / cap.cpu_cores * 100.0, 2),
        "memory": round(gb / cap.memory_gb * 100.0, 2),
        "agents": int(before["agents"] - after["agents"]),
        "cpu_cores": round(cores, 3),
        "memory_gb": round(gb, 3),
        "basis": "reserved",
    }


def runnable_now(ctx: Context) -> int:
    """How many tasks the scheduler would start at this instant (a pure query)."""
    return len(dispatch(ctx.state, ctx.engine.config.capacity, ctx.now))


def check_limits(ctx: Context, wid: str, r: Resources) -> None:
    lim = ctx.engine.config.workflow_limits
    if r.cpu_cores > lim.cpu_cores or r.memory_gb > lim.memory_gb or r.agents > lim.agents:
        raise CommandError(
            "RESOURCE_LIMIT",
            f"{wid}: {r.model_dump()} exceeds the per-workflow limit "
            f"{lim.cpu_cores:g} cores / {lim.memory_gb:g} GB / {lim.agents} agents",
            {"workflow_id": wid},
        )


def shed(ctx: Context, wid: str, alloc: Resources, keep_critical: bool) -> dict[str, Any]:
    """Release running tasks of ``wid`` until it fits ``alloc``, critical path last."""
    s = ctx.state
    critical = set(s.critical_path(wid)) if keep_critical else set()
    running = [s.tasks[k] for k in sorted(s.running_by_wf.get(wid, ())) if s.tasks[k].status is TaskStatus.RUNNING]
    order = sorted((t for t in running if t.id not in critical), key=lambda t: (t.context.progress, t.id))
    released: list[str] = []

    def over() -> bool:
        u = s.in_use(wid)
        return u.agents > alloc.agents or u.cpu_cores > alloc.cpu_cores + 1e-9 or u.memory_gb > alloc.memory_gb + 1e-9

    while over() and order:
        t = order.pop(0)
        ctx.engine.release_task(t.id, reason="allocation_reduced", actor=ctx.actor)
        released.append(t.id)
    kept = sorted(k for k in critical if s.tasks[k].status is TaskStatus.RUNNING)
    return {"released_tasks": released, "kept_on_critical_path": kept, "still_over_allocation": over()}


# -- analyses -------------------------------------------------------------------------


@operation(
    C,
    "status",
    kind="analysis",
    payload=P.StatusRequest,
    summary="capacity, utilisation and every workflow's allocation",
    workflow_arg="optional",
)
async def status(ctx: Context, p: P.StatusRequest) -> Outcome:
    """Capacity, current utilisation, and per workflow: allocation, what it holds, guarantee, limit."""
    s = ctx.state
    only = scope_of(ctx)
    rows = []
    for w in sorted(s.workflows.values(), key=lambda w: (-w.priority, w.id)):
        if only is not None and w.id not in only:
            continue
        rows.append(
            {
                "workflow_id": w.id,
                "status": w.status.value,
                "band": w.band.value,
                "allocation": w.allocation.model_dump(),
                "in_use": s.in_use(w.id).model_dump(),
                "guarantee": w.guarantee.model_dump() if w.guarantee else None,
                "stage_limit": w.stage_limit.model_dump() if w.stage_limit else None,
            }
        )
    u = ctx.engine.utilisation()
    res = {"capacity": ctx.engine.config.capacity.model_dump(), "utilisation": u, "held": held(ctx), "workflows": rows}
    line = f"cpu {u['cpu']:.1f}%, memory {u['memory']:.1f}%, agents {u['agents']:.1f}%; {len(rows)} workflow(s)"
    if not ctx.state.usage.empty():
        res["usage"] = use = budgets.usage_section(ctx)
        line += f"; {use['total']['tokens']:,} tokens, ${use['total']['cost_usd']:.4f} reported"
    return Outcome(res, line)


@operation(
    C,
    "usage",
    kind="analysis",
    payload=P.ResourceQuery,
    summary="usage of one resource type (system, agents, workflows, cpu, memory, storage)",
    word_args=("resource_type",),
)
async def usage(ctx: Context, p: P.ResourceQuery) -> Outcome:
    """Usage of one resource type, measured: samples for cpu/memory, agents by status, held by workflow."""
    s = ctx.state
    tel = ctx.engine.telemetry
    rt = p.resource_type
    res: dict[str, Any] = {"resource_type": rt}
    if rt in ("cpu", "memory", "system"):
        for m in (
            ["cpu_pct"]
            if rt == "cpu"
            else ["memory_pct"]
            if rt == "memory"
            else ["cpu_pct", "memory_pct", "agents_pct"]
        ):
            vals = tel.get(m).values(120)
            res[m] = {
                "last": vals[-1] if vals else None,
                "mean": round(statistics.fmean(vals), 2) if vals else None,
                "max": max(vals) if vals else None,
                "samples": len(vals),
            }
    if rt in ("agents", "system"):
        by: dict[str, int] = {}
        for a in s.agents.values():
            by[a.status.value] = by.get(a.status.value, 0) + 1
        res["agents"] = by
    if rt in ("workflows", "system"):
        res["workflows"] = {
            w: s.in_use(w).model_dump() for w in sorted(s.workflows) if s.workflows[w].status not in TERMINAL_WORKFLOW
        }
    if rt == "tokens":
        res["tokens"] = budgets.usage_section(ctx)
    if rt == "storage":
        store = ctx.engine.store
        if store is None:
            res["storage"] = {"database_bytes": 0, "note": "in-memory engine: nothing stored"}
        else:
            size = sum([await asyncio.to_thread(file_bytes, Path(store.path + suf)) for suf in ("", "-wal")])
            res["storage"] = {
                "database_bytes": size,
                "capacity_gb": ctx.engine.config.capacity.storage_gb,
                "used_pct": round(size / (ctx.engine.config.capacity.storage_gb * 1e9) * 100, 6),
            }
    if rt == "tokens":
        total = res["tokens"]["total"]
        return Outcome(res, f"{total['tokens']:,} tokens, ${total['cost_usd']:.4f} as the tasks reported them")
    return Outcome(res, f"{rt} usage measured")


@operation(
    C,
    "raise-budget",
    kind="lifecycle",
    payload=budgets.BudgetRequest,
    summary="raise a workflow's (or a pool's) budget of tokens/cost and resume what it paused",
    workflow_arg="optional",
)
async def raise_budget(ctx: Context, p: budgets.BudgetRequest) -> Outcome:
    """Raise a budget above what is spent, then resume the workflows paused under it."""
    return budgets.raise_budget(ctx, p)


@operation(
    C,
    "release-pool",
    kind="lifecycle",
    payload=budgets.PoolRelease,
    summary="let N agents of a pool held after a rate limit work again, or lift the hold",
)
async def release_pool(ctx: Context, p: budgets.PoolRelease) -> Outcome:
    """After its reset time, a held pool's agents start work again: as many as given, or all."""
    return budgets.release_pool(ctx, p)


@operation(C, "capacity", kind="analysis", payload=P.Empty, summary="capacity, what is held and the headroom left")
async def capacity(ctx: Context, p: P.Empty) -> Outcome:
    """Configured capacity against what running tasks hold and what guarantees reserve."""
    cap = ctx.engine.config.capacity
    h = held(ctx)
    live = len(ctx.state.live_agents())
    g = [w.guarantee for w in ctx.state.workflows.values() if w.guarantee and w.status not in TERMINAL_WORKFLOW]
    headroom = {
        "cpu_cores": round(cap.cpu_cores - h["cpu_cores"], 3),
        "memory_gb": round(cap.memory_gb - h["memory_gb"], 3),
        "agent_slots": cap.agents - live,
    }
    res = {
        "capacity": cap.model_dump(),
        "held": h,
        "reserved": {"cpu_cores": sum(x.cpu_cores for x in g), "memory_gb": sum(x.memory_gb for x in g)},
        "headroom": headroom,
        "running_workflows": sum(
            1 for w in ctx.state.workflows.values() if w.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED)
        ),
    }
    return Outcome(
        res,
        f"headroom {headroom['cpu_cores']:g} cores, {headroom['memory_gb']:g} GB, {headroom['agent_slots']} agent slot(s)",
    )


@operation(
    C,
    "check-conflicts",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="allocations and guarantees that over-commit capacity",
)
async def check_conflicts(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    return await analysis_outcome(ctx, ["conflicts"], None, None, p.window_given())


def _forecast(ctx: Context, metric: str, horizon: float, threshold: float) -> dict[str, Any]:
    now = ctx.now
    pts = ctx.engine.telemetry.get(metric).since(now - 1800.0)
    if len(pts) < 3:
        return {"metric": metric, "samples": len(pts), "forecast": None}
    slope = lsq_slope(pts)
    last = pts[-1][1]
    proj = last + slope * horizon
    eta = (threshold - last) / slope if slope > 0 and last < threshold else None
    return {
        "metric": metric,
        "samples": len(pts),
        "last": last,
        "slope_per_min": round(slope * 60, 4),
        "forecast": round(min(max(proj, 0.0), 100.0), 2),
        "horizon_s": horizon,
        "threshold": threshold,
        "seconds_to_threshold": round(eta, 1) if eta is not None else None,
    }


@operation(
    C,
    "forecast",
    kind="analysis",
    payload=P.ResourceQuery,
    summary="linear forecast of utilisation and time to threshold",
    word_args=("resource_type",),
)
async def forecast(ctx: Context, p: P.ResourceQuery) -> Outcome:
    """Least-squares trend of the last 30 min of samples, projected ``horizon`` ahead."""
    th = ctx.engine.config.thresholds
    rows = [
        _forecast(ctx, "cpu_pct", p.horizon, th.cpu_warning),
        _forecast(ctx, "memory_pct", p.horizon, th.memory_warning),
        _forecast(ctx, "agents_pct", p.horizon, th.agents_critical),
    ]
    soon = [
        r["metric"]
        for r in rows
        if r.get("seconds_to_threshold") is not None and r["seconds_to_threshold"] <= p.horizon
    ]
    return Outcome(
        {"forecasts": rows},
        f"{len(soon)} metric(s) forecast to cross their threshold within {p.horizon:g}s"
        + (f": {', '.join(soon)}" if soon else ""),
    )


@operation(
    C, "analyze-trends", kind="analysis", payload=P.WindowRequest, summary="trend (slope) of every system metric"
)
async def analyze_trends(ctx: Context, p: P.WindowRequest) -> Outcome:
    now = ctx.now
    out = {}
    for m in ("cpu_pct", "memory_pct", "agents_pct", "throughput_per_min", "response_time", "efficiency"):
        pts = ctx.engine.telemetry.get(m).since(now - p.window)
        if len(pts) >= 2:
            out[m] = {
                "slope_per_min": round(lsq_slope(pts) * 60, 5),
                "samples": len(pts),
                "first": pts[0][1],
                "last": pts[-1][1],
            }
    rising = [m for m, v in out.items() if v["slope_per_min"] > 0]
    return Outcome(
        {"window_s": p.window, "trends": out}, f"{len(out)} metric(s) with data; rising: {', '.join(rising) or 'none'}"
    )


@operation(
    C,
    "predict",
    kind="analysis",
    payload=P.Empty,
    summary="completion estimate per workflow from its measured progress rate",
    workflow_arg="optional",
)
async def predict(ctx: Context, p: P.Empty) -> Outcome:
    """ETA = remaining work / progress rate so far; also the critical path's remaining work."""
    s = ctx.state
    only = scope_of(ctx)
    rows = []
    for w in sorted(s.workflows.values(), key=lambda w: w.id):
        if w.status in TERMINAL_WORKFLOW or (only is not None and w.id not in only):
            continue
        prog = s.workflow_progress(w.id)
        elapsed = ctx.now - w.started_at if w.started_at is not None else 0.0
        rate = prog / elapsed if elapsed > 0 else 0.0
        eta = (1 - prog) / rate if rate > 0 else None
        path = s.critical_path(w.id)
        rows.append(
            {
                "workflow_id": w.id,
                "status": w.status.value,
                "progress": round(prog, 4),
                "elapsed_s": round(elapsed, 1),
                "eta_s": round(eta, 1) if eta is not None else None,
                "critical_path_remaining_s": round(
                    sum(s.tasks[k].duration_s * (1 - s.tasks[k].context.progress) for k in path), 1
                ),
            }
        )
    return Outcome({"predictions": rows}, f"{len(rows)} workflow(s) estimated")


@operation(
    C,
    "analyze-utilization",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="utilisation, bottlenecks and reallocation opportunities",
    aliases=("utilization-analysis", "analyze-utilisation"),
    workflow_arg="optional",
)
async def analyze_utilization(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    from .analyses import choose

    names = choose([*p.focus, p.analysis or ""], ["utilisation", "bottlenecks", "reallocation"])
    return await analysis_outcome(ctx, names, scope_of(ctx, p.workflows), {"scope": p.scope}, p.window_given())


@operation(
    C,
    "emergency-analysis",
    kind="analysis",
    payload=P.EmergencyAnalysis,
    summary="utilisation against thresholds, leaks, spinning, stalls, bottlenecks",
)
async def emergency_analysis(ctx: Context, p: P.EmergencyAnalysis) -> Outcome:
    """What is exhausting the system now. ``affected_systems`` chooses the analyses;
    ``analysis_depth`` comprehensive adds critical paths and reallocation."""
    names = ["utilisation"]
    sysm = set(p.affected_systems)
    if sysm & {"memory"}:
        names.append("resource_leaks")
    if sysm & {"cpu"}:
        names.append("cpu_spinning")
    if sysm & {"agent_pool", "agents"}:
        names += ["stalled_agents", "pool_capacity"]
    if sysm & {"network"}:
        names.append("network")
    names.append("bottlenecks")
    if p.analysis_depth == "comprehensive":
        names += ["reallocation", "critical_paths"]
    out = await analysis_outcome(
        ctx, list(dict.fromkeys(names)), None, {"trigger": p.trigger, "depth": p.analysis_depth}
    )
    if p.immediate_action_required:
        out.next_steps = [
            "/resource-manager emergency-reallocation",
            "/coordination-hub emergency-cleanup",
            *out.next_steps,
        ][:5]
    return out


@operation(
    C,
    "agent-pool-assessment",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="available agents per pool, failures, scaling options",
)
async def agent_pool_assessment(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    return await analysis_outcome(
        ctx, ["pool_capacity", "agent_health", "reallocation"], None, {"scope": p.scope}, p.window_given()
    )


# -- monitoring --------------------------------------------------------------------------


@operation(
    C,
    "monitor",
    kind="monitoring",
    payload=P.MonitoringRequest,
    summary="watch resource utilisation with alert thresholds",
)
async def monitor(ctx: Context, p: P.MonitoringRequest) -> Outcome:
    return configure(
        ctx,
        "resources",
        {
            "interval_s": p.interval,
            "metrics": p.metrics,
            "sensitivity": p.alert_sensitivity,
            "thresholds": thresholds_for(ctx, p.alert_sensitivity),
        },
        p.duration,
    )


# -- allocation --------------------------------------------------------------------------


async def live_limits(ctx: Context, workflows: list[str]) -> dict[str, Any]:
    """Re-limit the running processes of ``workflows`` to their allocation now (where
    the runtime runs OS processes) and summarise what each mechanism applied."""
    per = {w: await ctx.engine.relimit_workflow(w) for w in workflows}
    applies = any(r["applies"] for r in per.values())
    if not applies:
        reason = next(iter(per.values()))["reason"] if per else "no running task to re-limit"
        return {"applies": False, "reason": reason, "summary": f"running tasks not re-limited ({reason})"}
    done = sum(r["relimited"] for r in per.values())
    failed = sum(r["failed"] for r in per.values())
    unchanged = sorted(k for r in per.values() for k in r.get("unchanged", ()))
    mechs = sorted({k for r in per.values() for t in r["tasks"] if t.get("changed") for k in t.get("applied", {})})
    return {
        "applies": True,
        "workflows": per,
        "relimited": done,
        "unchanged": unchanged,
        "failed": failed,
        "mechanisms": mechs,
        "summary": f"{done} running task(s) re-limited, read back ({', '.join(mechs) or 'none'})"
        + (f", {len(unchanged)} already at that limit" if unchanged else "")
        + (f", {failed} failed" if failed else ""),
    }


@operation(
    C,
    "allocate",
    kind="lifecycle",
    payload=P.Allocate,
    summary="set a workflow's allocation (cpu/cpu_cores, memory_gb, agents)",
    workflow_arg="optional",
)
async def allocate(ctx: Context, p: P.Allocate) -> Outcome:
    """A workflow's allocation; with ``budget`` ({"cost_usd", "tokens", "warn_share"}) the
    workflow's budget, or with ``pool`` too the pool's."""
    if p.cores is None and p.memory_gb is None and p.agents is None:
        if p.budget is not None:
            return budgets.allocate_budget(ctx, p)
        raise CommandError("INVALID_PAYLOAD", "allocate needs at least one of cpu_cores, memory_gb, agents, budget")
    if p.budget is not None or p.pool is not None:
        raise CommandError("INVALID_PAYLOAD", "allocate a budget in a command of its own (no cpu/memory/agents)")
    wf = ctx.workflow(ctx.workflow_id or p.workflow)
    cur = wf.allocation
    new = Resources(
        cpu_cores=p.cores if p.cores is not None else cur.cpu_cores,
        memory_gb=p.memory_gb if p.memory_gb is not None else cur.memory_gb,
        agents=p.agents if p.agents is not None else cur.agents,
    )
    check_limits(ctx, wf.id, new)
    before = ctx.engine.set_allocation(wf.id, new, actor=ctx.actor, base=True)
    live = await live_limits(ctx, [wf.id])
    return Outcome(
        {"workflow_id": wf.id, "before": before.model_dump(), "after": new.model_dump(), "live_limits": live},
        f"{wf.id} allocation {before.agents}->{new.agents} agents, {before.cpu_cores:g}->{new.cpu_cores:g} cores; {live['summary']}",
        workflow_id=wf.id,
    )


@operation(
    C,
    "reserve",
    kind="lifecycle",
    payload=P.ResourceAmount,
    summary="guarantee capacity to a workflow",
    workflow_arg="required",
)
async def reserve(ctx: Context, p: P.ResourceAmount) -> Outcome:
    """Record the guarantee (the scheduler keeps that capacity for the workflow) and
    apply it to its running processes as ``emergency-reallocation``'s guarantee does:
    a guaranteed task runs at the host's own niceness, read back from the OS."""
    wf = ctx.workflow()
    g = Resources(cpu_cores=p.cores or 0.0, memory_gb=p.memory_gb or 0.0, agents=p.agents or 0)
    if g == Resources():
        raise CommandError("INVALID_PAYLOAD", 'reserve needs an amount, e.g. {"cpu": 2, "memory_gb": 4}')
    before = wf.guarantee
    ctx.engine.reserve(wf.id, g, actor=ctx.actor)
    live = await live_limits(ctx, [wf.id] if wf.status is WorkflowStatus.RUNNING else [])
    return Outcome(
        {
            "workflow_id": wf.id,
            "guarantee": g.model_dump(),
            "previous": before.model_dump() if before else None,
            "scheduler": "the guaranteed capacity is kept for this workflow when dispatching",
            "live_limits": live,
        },
        f"{wf.id} guaranteed {g.cpu_cores:g} cores / {g.memory_gb:g} GB / {g.agents} agents in the scheduler; "
        f"{live['summary']}",
        workflow_id=wf.id,
    )


@operation(
    C,
    "release",
    kind="destructive",
    payload=P.Release,
    summary="drop a workflow's guarantee and/or shrink its allocation to what it uses",
    workflow_arg="optional",
)
async def release(ctx: Context, p: P.Release) -> Outcome:
    wf = ctx.workflow(ctx.workflow_id or p.workflow)
    res: dict[str, Any] = {"workflow_id": wf.id}
    if p.what in ("guarantee", "both") and wf.guarantee is not None:
        res["guarantee_released"] = wf.guarantee.model_dump()
        ctx.engine.reserve(wf.id, None, actor=ctx.actor)
    if p.what in ("allocation", "both"):
        u = ctx.state.in_use(wf.id)
        new = Resources(cpu_cores=round(u.cpu_cores, 2), memory_gb=round(u.memory_gb, 2), agents=u.agents)
        res["allocation_before"] = wf.allocation.model_dump()
        ctx.engine.set_allocation(wf.id, new, actor=ctx.actor)
        res["allocation_after"] = new.model_dump()
    if len(res) == 1:
        raise CommandError("NOTHING_TO_RELEASE", f"{wf.id} has no guarantee to release", {"workflow_id": wf.id})
    return Outcome(res, f"released {', '.join(k for k in res if k != 'workflow_id')} of {wf.id}", workflow_id=wf.id)


@operation(
    C, "reallocate", kind="destructive", payload=P.Reallocate, summary="move allocation from one workflow to another"
)
async def reallocate(ctx: Context, p: P.Reallocate) -> Outcome:
    src, dst = ctx.workflow(p.from_workflow), ctx.workflow(p.to_workflow)
    if src.id == dst.id:
        raise CommandError("INVALID_PAYLOAD", "from_workflow and to_workflow are the same")
    a, b = src.allocation, dst.allocation
    if p.agents > a.agents or p.cpu_cores > a.cpu_cores + 1e-9 or p.memory_gb > a.memory_gb + 1e-9:
        raise CommandError("RESOURCE_EXHAUSTED", f"{src.id} holds only {a.model_dump()}", {"requested": p.model_dump()})
    if p.agents == 0 and p.cpu_cores == 0 and p.memory_gb == 0:
        raise CommandError("INVALID_PAYLOAD", "reallocate needs agents, cpu_cores or memory_gb above 0")
    na = Resources(
        cpu_cores=round(a.cpu_cores - p.cpu_cores, 3),
        memory_gb=round(a.memory_gb - p.memory_gb, 3),
        agents=a.agents - p.agents,
    )
    nb = Resources(
        cpu_cores=round(b.cpu_cores + p.cpu_cores, 3),
        memory_gb=round(b.memory_gb + p.memory_gb, 3),
        agents=b.agents + p.agents,
    )
    check_limits(ctx, dst.id, nb)
    before = runnable_now(ctx)
    ctx.engine.set_allocation(src.id, na, actor=ctx.actor)
    shed_res = shed(ctx, src.id, na, True)
    ctx.engine.set_allocation(dst.id, nb, actor=ctx.actor)
    live = await live_limits(ctx, [src.id, dst.id])
    return Outcome(
        {
            "from": {"workflow_id": src.id, "before": a.model_dump(), "after": na.model_dump(), **shed_res},
            "to": {"workflow_id": dst.id, "before": b.model_dump(), "after": nb.model_dump()},
            "runnable_now_before": before,
            "runnable_now_after": runnable_now(ctx),
            "live_limits": live,
        },
        f"moved {p.agents} agent(s), {p.cpu_cores:g} cores, {p.memory_gb:g} GB from {src.id} to {dst.id}; {live['summary']}",
    )


@operation(
    C,
    "resolve-conflicts",
    kind="destructive",
    payload=P.Empty,
    summary="shrink the lowest-priority allocations until they fit the capacity",
)
async def resolve_conflicts(ctx: Context, p: P.Empty) -> Outcome:
    s = ctx.state
    cap = ctx.engine.config.capacity
    act = sorted(
        (
            w
            for w in s.workflows.values()
            if w.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED) and not w.frozen
        ),
        key=lambda w: (w.priority, w.id),
    )
    changes = []
    for field, limit in (("agents", float(cap.agents)), ("cpu_cores", cap.cpu_cores), ("memory_gb", cap.memory_gb)):
        total = sum(getattr(w.allocation, field) for w in act)
        for w in act:
            if total <= limit + 1e-9:
                break
            cur = getattr(w.allocation, field)
            floor = 1 if field == "agents" else 0.5
            cut = min(cur - floor, total - limit)
            if cut <= 0:
                continue
            if field == "agents":
                cut = math.ceil(cut)
            new = w.allocation.model_copy(update={field: type(cur)(round(cur - cut, 3))})
            ctx.engine.set_allocation(w.id, new, actor=ctx.actor)
            changes.append({"workflow_id": w.id, "field": field, "before": cur, "after": getattr(new, field)})
            total -= cut
    return Outcome(
        {"changes": changes, "capacity": cap.model_dump()},
        f"{len(changes)} allocation change(s)" if changes else "no over-commitment: nothing changed",
    )


@operation(
    C,
    "optimize",
    kind="lifecycle",
    payload=P.Empty,
    summary="fit allocations to demand: grow allocation-bound workflows, trim unused slots",
    aliases=("optimise",),
)
async def optimize(ctx: Context, p: P.Empty) -> Outcome:
    """Grow the allocation of workflows whose ready tasks wait on it (when matching idle
    agents exist), trim slots no task can use; reports tasks runnable before and after."""
    s = ctx.state
    lim = ctx.engine.config.workflow_limits
    before = runnable_now(ctx)
    changes = []
    for w in sorted(s.workflows.values(), key=lambda w: (-w.priority, w.id)):
        if w.status is not WorkflowStatus.RUNNING or w.frozen:
            continue
        u = s.in_use(w.id)
        ready = [s.tasks[k] for k in s.ready.get(w.id, ()) if s.tasks[k].status is TaskStatus.PENDING]
        idle_match = {
            a.id
            for a in s.live_agents()
            if a.status is AgentStatus.IDLE
            for t in ready
            if t.specialization in a.specializations
        }
        a = w.allocation
        want = u.agents + min(len(ready), len(idle_match))
        if want > a.agents:
            new = Resources(
                cpu_cores=min(
                    lim.cpu_cores, max(a.cpu_cores, u.cpu_cores + sum(t.cpu for t in ready[: want - u.agents]))
                ),
                memory_gb=min(
                    lim.memory_gb, max(a.memory_gb, u.memory_gb + sum(t.memory_gb for t in ready[: want - u.agents]))
                ),
                agents=min(lim.agents, want),
            )
        elif not ready and a.agents > max(1, u.agents) and s.wf_left.get(w.id, 0) <= u.agents:
            new = a.model_copy(update={"agents": max(1, u.agents)})
        else:
            continue
        if new != a:
            ctx.engine.set_allocation(w.id, new, actor=ctx.actor)
            changes.append({"workflow_id": w.id, "before": a.model_dump(), "after": new.model_dump()})
    after = runnable_now(ctx)
    return Outcome(
        {"changes": changes, "runnable_now_before": before, "runnable_now_after": after},
        f"{len(changes)} allocation(s) changed; tasks startable now {before} -> {after}",
    )


@operation(
    C,
    "balance",
    kind="lifecycle",
    payload=P.Empty,
    summary="share agent slots among running workflows by priority and demand",
)
async def balance(ctx: Context, p: P.Empty) -> Outcome:
    s = ctx.state
    cap = ctx.engine.config.capacity
    lim = ctx.engine.config.workflow_limits
    run = [w for w in s.workflows.values() if w.status is WorkflowStatus.RUNNING and not w.frozen]
    demand = {
        w.id: s.in_use(w.id).agents + sum(1 for k in s.ready.get(w.id, ()) if s.tasks[k].status is TaskStatus.PENDING)
        for w in run
    }
    weights = {w.id: w.priority * (1 if demand[w.id] else 0) for w in run}
    total_w = sum(weights.values())
    live = len(s.live_agents())
    slots = min(cap.agents, live)
    before = runnable_now(ctx)
    changes = []
    for w in sorted(run, key=lambda w: (-w.priority, w.id)):
        if not total_w or not demand[w.id]:
            continue
        share = max(1, min(lim.agents, demand[w.id], round(slots * weights[w.id] / total_w)))
        prev = w.allocation.agents
        if share != prev:
            new = w.allocation.model_copy(update={"agents": share})
            ctx.engine.set_allocation(w.id, new, actor=ctx.actor)
            changes.append({"workflow_id": w.id, "agents_before": prev, "agents_after": share})
    return Outcome(
        {
            "slots": slots,
            "demand": demand,
            "changes": changes,
            "runnable_now_before": before,
            "runnable_now_after": runnable_now(ctx),
        },
        f"{len(changes)} workflow(s) rebalanced over {slots} agent slot(s)",
    )


@operation(
    C,
    "scale",
    kind="destructive",
    payload=P.Scale,
    summary="grow or shrink an agent pool (shrinking retires idle agents)",
)
async def scale(ctx: Context, p: P.Scale) -> Outcome:
    s = ctx.state
    pool = s.pools.get(p.pool)
    if pool is None:
        raise CommandError(
            "POOL_NOT_FOUND",
            f"no pool {p.pool!r}",
            {"known": sorted(s.pools)},
            ["/resource-manager agent-pool-assessment"],
        )
    if p.size > pool.max_size or p.size < pool.min_size:
        raise CommandError(
            "RESOURCE_LIMIT",
            f"pool {p.pool} size must stay within {pool.min_size}..{pool.max_size}",
            {"requested": p.size},
        )
    live = sorted((a for a in s.live_agents() if a.pool == p.pool), key=lambda a: a.id)
    added, retired = [], []
    if p.size > len(live):
        free = ctx.engine.config.capacity.agents - len(s.live_agents())
        if p.size - len(live) > free:
            raise CommandError(
                "RESOURCE_EXHAUSTED", f"only {free} agent slot(s) left of {ctx.engine.config.capacity.agents}"
            )
        for _ in range(p.size - len(live)):
            added.append(ctx.engine.add_agent(p.pool, actor=ctx.actor))
    else:
        idle = [a for a in reversed(live) if a.status is AgentStatus.IDLE]
        for a in idle[: len(live) - p.size]:
            ctx.engine.retire_agent(a.id, actor=ctx.actor)
            retired.append(a.id)
    now_live = sum(1 for a in s.live_agents() if a.pool == p.pool)
    return Outcome(
        {
            "pool": p.pool,
            "before": len(live),
            "after": now_live,
            "added": added,
            "retired": retired,
            "short_by": max(0, now_live - p.size),
        },
        f"pool {p.pool}: {len(live)} -> {now_live} agents" + (" (busy agents kept)" if now_live > p.size else ""),
    )


# -- the scenarios -----------------------------------------------------------------------


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
    for a in sorted(s.agents.values(), key=lambda a: a.id):
        if a.status is AgentStatus.UNREACHABLE and a.current_task:
            key = a.current_task
            prog = s.tasks[key].context.progress
            ctx.engine.release_task(key, reason="agent_unreachable", actor=ctx.actor)
            moved.append({"task": key, "from": a.id, "progress_kept": prog})
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
