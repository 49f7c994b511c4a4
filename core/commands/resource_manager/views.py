"""``/resource-manager`` views: status, usage, capacity, conflicts, utilisation analyses, monitoring."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

from ...models import TERMINAL_WORKFLOW, WorkflowStatus
from ...store import file_bytes
from .. import budgets
from .. import payloads as P
from ..context import Context
from ..monitoring import configure, thresholds_for
from ..registry import Operations, Outcome
from ..reporting import analysis_outcome, scope_of
from . import C
from .holdings import held

OPS = Operations(C, "capacity, allocation, reservation and reallocation of CPU, memory and agents")
operation = OPS.operation

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
    from ..analyses import choose

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
