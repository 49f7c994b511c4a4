"""``/resource-manager`` forecasts: trends of CPU, memory and agents fitted to samples and projected."""

from __future__ import annotations

from typing import Any

from ...models import TERMINAL_WORKFLOW
from .. import payloads as P
from ..analyses.findings import lsq_slope
from ..context import Context
from ..registry import Operations, Outcome
from ..reporting import scope_of
from . import C

OPS = Operations(C, None)
operation = OPS.operation


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
