"""Turning analyses into an operation's outcome: the report, a summary, next steps."""

from __future__ import annotations

from typing import Any

from .analyses import WINDOWED, run_analyses
from .analyses.findings import Finding, report
from .context import Context
from .registry import Outcome

NEXT_BY_ANALYSIS = {
    "resource_leaks": "/coordination-hub emergency-cleanup",
    "cpu_spinning": "/coordination-hub redistribute-tasks",
    "stalled_agents": "/coordination-hub redistribute-tasks",
    "bottlenecks": "/resource-manager balance",
    "reallocation": "/resource-manager optimize",
    "agent_health": "/coordination-hub execute-dependency-recovery",
    "pool_capacity": "/resource-manager scale",
    "network": "/coordination-hub communication-redundancy-activation",
    "state_consistency": "/workflow-recovery execute-data-recovery",
    "log_replay": "/workflow-recovery execute-data-recovery",
    "checkpoint_integrity": "/coordination-hub checkpoint",
    "conflicts": "/resource-manager resolve-conflicts",
    "critical_paths": "/resource-manager reserve",
    "dependency_chains": "/workflow-recovery recovery-plan",
    "failures": "/workflow-recovery recovery-plan",
    "performance_trend": "/performance-monitor execute-optimization",
}


def summarise(findings: list[Finding], names: list[str]) -> str:
    rep = report(findings, names)
    counts = ", ".join(f"{n} {k}" for k, n in sorted(rep["counts"].items(), key=lambda kv: kv[0]))
    top = rep["findings"][0]["summary"] if rep["findings"] else "nothing found"
    return f"{len(findings)} finding(s) ({counts or 'none'}) from {', '.join(names)}; top: {top}"


async def analysis_outcome(
    ctx: Context,
    names: list[str],
    only: set[str] | None = None,
    extra: dict[str, Any] | None = None,
    window: tuple[str, float] | None = None,
) -> Outcome:
    """The analyses' report; ``window`` (the field the operator named, seconds) limits
    the analyses over time to that window, and the report says which did."""
    findings = await run_analyses(ctx.engine, names, only, window[1] if window else None)
    rep = report(findings, names)
    rep["window"] = window_used(ctx, names, window)
    if extra:
        rep.update(extra)
    if only is not None:
        rep["workflows"] = sorted(only)
    nxt = []
    for f in rep["findings"]:
        if f["severity"] in ("critical", "high", "medium"):
            cmd = NEXT_BY_ANALYSIS.get(f["analysis"])
            if cmd and cmd not in nxt:
                nxt.append(cmd)
    return Outcome(rep, summarise(findings, names), nxt[:5])


def window_used(ctx: Context, names: list[str], window: tuple[str, float] | None) -> dict[str, Any]:
    """What the response says about time: the window and the analyses it applied to."""
    over = [n for n in names if n in WINDOWED]
    now_only = [n for n in names if n not in WINDOWED]
    if window is None:
        return {"given": False, "note": "no window given: each analysis over time used its default", "over_time": over}
    field, secs = window
    return {
        "given": True,
        "field": field,
        "seconds": secs,
        "from": round(ctx.now - secs, 3),
        "to": round(ctx.now, 3),
        "applies_to": over,
        "current_state_only": now_only,
    }


def scope_of(ctx: Context, ids: list[str] | None = None) -> set[str] | None:
    """The workflows an analysis is restricted to: the positional id and/or listed ids."""
    out = set()
    if ctx.workflow_id:
        out.add(ctx.any_workflow(ctx.workflow_id).id)
    for w in ids or []:
        out.add(ctx.any_workflow(w).id)
    return out or None
