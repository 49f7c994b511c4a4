"""``/performance-monitor`` readings: live metrics, dashboard, alerts, trends, regressions, analyses."""

from __future__ import annotations

import statistics
from typing import Any

from ...models import AgentStatus
from .. import payloads as P
from ..analyses import choose
from ..context import Context
from ..monitoring import baseline, configure, thresholds_for
from ..registry import Operations, Outcome
from ..reporting import analysis_outcome, scope_of
from . import C

OPS = Operations(C, "live metrics, trends, bottlenecks, optimisation and monitoring settings")
operation = OPS.operation


def _series(ctx: Context, metric: str, window: float, subject: str = "system") -> dict[str, Any]:
    pts = ctx.engine.telemetry.get(metric, subject).since(ctx.now - window)
    vals = [v for _, v in pts]
    if not vals:
        return {"samples": 0}
    return {
        "samples": len(vals),
        "last": vals[-1],
        "mean": round(statistics.fmean(vals), 4),
        "min": min(vals),
        "max": max(vals),
    }


@operation(
    C, "monitor", kind="monitoring", payload=P.MonitoringRequest, summary="watch performance metrics for a period"
)
async def monitor(ctx: Context, p: P.MonitoringRequest) -> Outcome:
    return configure(
        ctx,
        "performance",
        {
            "interval_s": p.interval,
            "metrics": p.metrics,
            "sensitivity": p.alert_sensitivity,
            "thresholds": thresholds_for(ctx, p.alert_sensitivity),
        },
        p.duration,
    )


@operation(
    C, "live-metrics", kind="analysis", payload=P.WindowRequest, summary="the latest samples and their recent range"
)
async def live_metrics(ctx: Context, p: P.WindowRequest) -> Outcome:
    m = {
        k: _series(ctx, k, p.window)
        for k in ("cpu_pct", "memory_pct", "agents_pct", "throughput_per_min", "response_time", "efficiency")
    }
    b = baseline(ctx)
    return Outcome(
        {"window_s": p.window, "metrics": m, "now": b},
        f"cpu {b['cpu_pct']:.1f}%, memory {b['memory_pct']:.1f}%, agents {b['agents_pct']:.1f}%, {b['throughput_per_min']:.2f} tasks/min",
    )


@operation(C, "dashboard", kind="analysis", payload=P.Empty, summary="one view: utilisation, workflows, agents, alerts")
async def dashboard(ctx: Context, p: P.Empty) -> Outcome:
    s = ctx.state
    agents: dict[str, int] = {}
    for a in s.agents.values():
        agents[a.status.value] = agents.get(a.status.value, 0) + 1
    wfs = {w.id: {"status": w.status.value, "progress": round(s.workflow_progress(w.id), 4)} for w in s.all_workflows()}
    al = await alerts(ctx, P.WindowRequest(window=300.0))
    return Outcome(
        {"now": baseline(ctx), "agents": agents, "workflows": wfs, "alerts": al.result["alerts"]},
        f"{len(wfs)} workflow(s), {agents.get('busy', 0)} busy agent(s), {len(al.result['alerts'])} alert(s)",
    )


@operation(
    C,
    "alerts",
    kind="analysis",
    payload=P.WindowRequest,
    summary="threshold breaches in the window (cpu, memory, agents, response time)",
)
async def alerts(ctx: Context, p: P.WindowRequest) -> Outcome:
    eng = ctx.engine
    th = eng.config.thresholds
    perf = eng.config.performance
    out: list[dict[str, Any]] = []
    for metric, limit, sev in (
        ("cpu_pct", th.cpu_warning, "high"),
        ("memory_pct", th.memory_warning, "high"),
        ("agents_pct", th.agents_critical, "critical"),
        ("response_time", perf.response_critical_s, "critical"),
        ("response_time", perf.response_warning_s, "medium"),
    ):
        pts = eng.telemetry.get(metric).since(ctx.now - p.window)
        over = [(t, v) for t, v in pts if v > limit]
        if over and not any(a["metric"] == metric for a in out):
            out.append(
                {
                    "metric": metric,
                    "severity": sev,
                    "threshold": limit,
                    "breaches": len(over),
                    "samples": len(pts),
                    "worst": max(v for _, v in over),
                    "first_at": over[0][0],
                    "last_at": over[-1][0],
                }
            )
    return Outcome({"window_s": p.window, "alerts": out}, f"{len(out)} alert(s) in the last {p.window:g}s")


@operation(
    C,
    "trends",
    kind="analysis",
    payload=P.Empty,
    summary="response time, efficiency and throughput against their baseline",
)
async def trends(ctx: Context, p: P.Empty) -> Outcome:
    return await analysis_outcome(ctx, ["performance_trend"])


@operation(
    C,
    "regression",
    kind="analysis",
    payload=P.WindowRequest,
    summary="recent response time and efficiency against an earlier baseline window",
)
async def regression(ctx: Context, p: P.WindowRequest) -> Outcome:
    tel = ctx.engine.telemetry
    rows = {}
    for metric in ("response_time", "efficiency", "throughput_per_min"):
        recent = [v for _, v in tel.get(metric).since(ctx.now - p.window)]
        base = [v for t, v in tel.get(metric).points if ctx.now - p.window - p.baseline <= t < ctx.now - p.window]
        if recent and base:
            r, b = statistics.fmean(recent), statistics.fmean(base)
            rows[metric] = {
                "recent": round(r, 4),
                "baseline": round(b, 4),
                "change_pct": round((r - b) / b * 100, 2) if b else None,
                "recent_samples": len(recent),
                "baseline_samples": len(base),
            }
    worse = [
        m
        for m, v in rows.items()
        if v["change_pct"] is not None and (v["change_pct"] > 5 if m == "response_time" else v["change_pct"] < -5)
    ]
    return Outcome({"comparison": rows}, f"{len(rows)} metric(s) compared; regressed: {', '.join(worse) or 'none'}")


@operation(
    C,
    "throughput",
    kind="analysis",
    payload=P.WindowRequest,
    summary="tasks completed per minute, system and per workflow",
)
async def throughput(ctx: Context, p: P.WindowRequest) -> Outcome:
    t0 = ctx.now - p.window
    per = {}
    by_wf: dict[str, int] = {}
    for t in await ctx.engine.tasks_with_archive(finished_since=t0):
        if t.finished_at is not None and t.finished_at >= t0 and t.status.value == "completed":
            by_wf[t.workflow] = by_wf.get(t.workflow, 0) + 1
    for wid, n in sorted(by_wf.items()):
        per[wid] = round(n * 60.0 / p.window, 4)
    total = sum(per.values())
    return Outcome(
        {
            "window_s": p.window,
            "per_minute": round(total, 4),
            "by_workflow": per,
            "sampled": _series(ctx, "throughput_per_min", p.window),
        },
        f"{total:.2f} task(s)/min over the last {p.window / 60:g} min",
    )


@operation(
    C,
    "agent-performance",
    kind="analysis",
    payload=P.Empty,
    summary="per agent: tasks done, failures, CPU, progress against plan",
)
async def agent_performance(ctx: Context, p: P.Empty) -> Outcome:
    s = ctx.state
    rows = []
    for a in sorted(s.agents.values(), key=lambda a: a.id):
        cpu, mem = ctx.engine.telemetry.agent_usage.get(a.id, (0.0, 0.0))
        row: dict[str, Any] = {
            "agent": a.id,
            "pool": a.pool,
            "status": a.status.value,
            "tasks_done": a.tasks_done,
            "failures": a.failures,
            "cpu_pct": cpu,
            "memory_mb": mem,
        }
        if a.current_task and a.status is AgentStatus.BUSY:
            t = s.tasks[a.current_task]
            if t.started_at is not None and t.duration_s > 0 and ctx.now > t.started_at:
                row["pace"] = round(t.context.progress / min(1.0, (ctx.now - t.started_at) / t.duration_s), 3)
        rows.append(row)
    slow = [r["agent"] for r in rows if r.get("pace", 1.0) < 0.5]
    return Outcome({"agents": rows, "slow": slow}, f"{len(rows)} agent(s); {len(slow)} slower than half their plan")


@operation(
    C,
    "bottlenecks",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="where work waits",
    aliases=("bottleneck-analysis",),
    workflow_arg="optional",
)
async def bottlenecks(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    names = list(dict.fromkeys(["bottlenecks", *choose(p.focus, [])]))
    return await analysis_outcome(ctx, names, scope_of(ctx, p.workflows), {"scope": p.scope}, p.window_given())


@operation(
    C,
    "efficiency",
    kind="analysis",
    payload=P.WindowRequest,
    summary="task efficiency (planned/actual time) and idle agents with waiting work",
)
async def efficiency(ctx: Context, p: P.WindowRequest) -> Outcome:
    out = await analysis_outcome(ctx, ["coordination_overhead", "performance_trend"])
    out.result["efficiency"] = _series(ctx, "efficiency", p.window)
    return out


@operation(
    C,
    "emergency-assessment",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="utilisation, bottlenecks and trends for an emergency",
)
async def emergency_assessment(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    names = list(dict.fromkeys(["utilisation", "bottlenecks", "performance_trend", *choose(p.focus, [])]))
    return await analysis_outcome(ctx, names, None, {"scope": p.scope}, p.window_given())


@operation(
    C,
    "comprehensive-analysis",
    kind="analysis",
    payload=P.ComprehensiveAnalysis,
    summary="trends, bottlenecks, utilisation and optimisation opportunities over a time horizon",
)
async def comprehensive_analysis(ctx: Context, p: P.ComprehensiveAnalysis) -> Outcome:
    names = ["performance_trend", "utilisation"]
    if p.bottleneck_identification:
        names.append("bottlenecks")
    if p.optimization_opportunities:
        names += ["reallocation", "coordination_overhead"]
    extra: dict[str, Any] = {"time_horizon_s": p.time_horizon}
    if p.correlation_analysis:
        extra["correlation"] = _correlation(ctx, p.time_horizon)
    return await analysis_outcome(ctx, names, None, extra)


def _correlation(ctx: Context, horizon: float) -> dict[str, Any]:
    """Pearson correlation of response time with CPU utilisation (nearest samples)."""
    tel = ctx.engine.telemetry
    rt = tel.get("response_time").since(ctx.now - horizon)
    cpu = tel.get("cpu_pct").since(ctx.now - horizon)
    if len(rt) < 3 or len(cpu) < 3:
        return {"pairs": 0, "response_time_vs_cpu": None}
    import bisect

    ts = [t for t, _ in cpu]
    pairs = []
    for t, v in rt:
        i = min(bisect.bisect_left(ts, t), len(ts) - 1)
        pairs.append((v, cpu[i][1]))
    try:
        r = statistics.correlation([a for a, _ in pairs], [b for _, b in pairs])
    except statistics.StatisticsError:
        r = None
    return {"pairs": len(pairs), "response_time_vs_cpu": round(r, 4) if r is not None else None}
