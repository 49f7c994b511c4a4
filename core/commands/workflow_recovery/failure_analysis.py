"""``/workflow-recovery`` failure analyses: failures, root causes, impact, cascades, corruption, a recovery plan."""

from __future__ import annotations

import json
from typing import Any

from ...engine.liveness import tasks_on_unreachable
from ...event_types import (
    AGENT_ERROR,
    AGENT_TIMEOUT,
    COMMUNICATION_FAILURE,
    RESOURCE_EXHAUSTION,
    TASK_FAILED,
    TASK_REASSIGNED,
    WORKFLOW_FAILED,
)
from ...models import AgentStatus, WorkflowStatus
from .. import payloads as P
from ..context import Context
from ..registry import Operations, Outcome
from ..reporting import analysis_outcome, scope_of, window_used
from . import C

OPS = Operations(C, None)
operation = OPS.operation

# -- failures ---------------------------------------------------------------------------


async def _log(ctx: Context, types: list[str], window: float | None = None) -> list[Any]:
    eng = ctx.engine
    if eng.store is None:
        return []
    await eng.flush()
    evs = await eng.store.read_events(0, types=types)
    if window is not None:
        evs = [e for e in evs if e.ts >= ctx.now - window]
    return evs


@operation(
    C,
    "analyze-failure",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="failed tasks, workflows and agents with their errors",
    workflow_arg="optional",
)
async def analyze_failure(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    w = p.window_given()
    evs = await _log(ctx, [TASK_FAILED, AGENT_ERROR, WORKFLOW_FAILED, AGENT_TIMEOUT], w[1] if w else None)
    errors: dict[str, int] = {}
    for e in evs:
        msg = str(e.data.get("error") or e.type)
        errors[msg] = errors.get(msg, 0) + 1
    return await analysis_outcome(
        ctx,
        ["failures", "agent_health"],
        scope_of(ctx, p.workflows),
        {"errors": errors, "failure_events": len(evs)},
        p.window_given(),
    )


@operation(
    C,
    "root-cause",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="the first failure in the log and what followed from it",
    workflow_arg="optional",
)
async def root_cause(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    s = ctx.state
    only = scope_of(ctx, p.workflows)
    w = p.window_given()
    evs = await _log(
        ctx,
        [
            AGENT_ERROR,
            AGENT_TIMEOUT,
            TASK_FAILED,
            TASK_REASSIGNED,
            WORKFLOW_FAILED,
            RESOURCE_EXHAUSTION,
            COMMUNICATION_FAILURE,
        ],
        w[1] if w else None,
    )

    def relevant(e: Any) -> bool:
        if only is None:
            return True
        wid = e.data.get("workflow_id") or str(e.data.get("task", "")).split("/")[0]
        return wid in only or (
            e.type in (AGENT_ERROR, AGENT_TIMEOUT)
            and any(str(e.data.get("task", "")).startswith(w + "/") for w in only)
        )

    chain = [
        {"seq": e.seq, "ts": e.ts, "type": e.type, "data": {k: v for k, v in e.data.items() if k != "output"}}
        for e in evs
        if relevant(e)
    ]
    if not chain:
        failed = sorted(a.id for a in s.agents.values() if a.status is AgentStatus.FAILED)
        return Outcome(
            {"chain": [], "failed_agents": failed, "window": window_used(ctx, [], w)},
            "no failure recorded"
            + (f" in the last {w[1]:g}s" if w else "")
            + (f"; failed agents {failed}" if failed else ""),
        )
    first = chain[0]
    return Outcome(
        {
            "root": first,
            "chain": chain[:30],
            "events": len(chain),
            "span_s": round(chain[-1]["ts"] - first["ts"], 3),
            "window": window_used(ctx, [], w),
        },
        f"first failure: {first['type']} at seq {first['seq']} ({json.dumps(first['data'])[:120]}); {len(chain)} related event(s)",
    )


@operation(
    C,
    "impact-assessment",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="what failures block: dependents, critical paths, lost capacity",
    workflow_arg="optional",
)
async def impact_assessment(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    return await analysis_outcome(
        ctx,
        ["dependency_chains", "critical_paths", "agent_health", "pool_capacity"],
        scope_of(ctx, p.workflows),
        None,
        p.window_given(),
    )


@operation(
    C,
    "recovery-plan",
    kind="analysis",
    payload=P.Empty,
    summary="the slash commands that would recover the current state",
)
async def recovery_plan(ctx: Context, p: P.Empty) -> Outcome:
    """A plan computed from the state; every step is a command that parses and validates."""
    from ..binding import resolve_spec

    s = ctx.state
    steps: list[dict[str, str]] = []
    replaced = s.settings.get("recovery.replacements", {})
    failed = sorted(a.id for a in s.agents.values() if a.status is AgentStatus.FAILED and a.id not in replaced)
    lost_pools = {a.pool for a in s.agents.values() if a.status is AgentStatus.FAILED}
    under = (
        [pn for pn in lost_pools if sum(1 for a in s.live_agents() if a.pool == pn) < s.pools[pn].min_size + 1]
        if lost_pools
        else []
    )
    if failed:
        steps.append(
            {
                "why": f"{len(failed)} failed agent(s)",
                "command": "/coordination-hub execute-dependency-recovery '"
                + json.dumps({"recovery_actions": [{"action": "immediate_agent_replacement", "failed_agents": failed}]})
                + "'",
            }
        )
    if tasks_on_unreachable(s):
        steps.append({"why": "unreachable agents hold tasks", "command": "/resource-manager agent-reallocation"})
    if not s.checkpoints:
        steps.append(
            {"why": "no checkpoint to recover to", "command": '/coordination-hub checkpoint \'{"kind": "emergency"}\''}
        )
    frozen = sorted(w.id for w in s.workflows.values() if w.frozen)
    if frozen:
        steps.append(
            {
                "why": f"frozen for data protection: {', '.join(frozen)}",
                "command": "/workflow-recovery execute-data-recovery '" + json.dumps({"workflows": frozen}) + "'",
            }
        )
    for w in sorted(s.workflows.values(), key=lambda w: -w.priority):
        if w.status is WorkflowStatus.FAILED and s.checkpoints:
            steps.append({"why": f"{w.id} failed", "command": f"/workflow-recovery restore {w.id}"})
        elif w.status is WorkflowStatus.PAUSED and not w.frozen:
            steps.append({"why": f"{w.id} is paused", "command": f"/coordination-hub resume {w.id}"})
    u = ctx.engine.utilisation()
    th = ctx.engine.config.thresholds
    if u["cpu"] >= th.exhaustion or u["memory"] >= th.exhaustion:
        steps.append(
            {
                "why": f"utilisation cpu {u['cpu']:.0f}% memory {u['memory']:.0f}%",
                "command": "/resource-manager emergency-analysis",
            }
        )
    for st in steps:
        st["valid"] = "yes" if resolve_spec(st["command"], ctx.services.registry) is not None else "no"
    return Outcome(
        {"steps": steps, "pools_short": sorted(under)},
        f"{len(steps)} step(s) planned",
        [st["command"] for st in steps][:5],
    )


@operation(
    C,
    "analyze-cascade-failure",
    kind="analysis",
    payload=P.AnalyzeCascadeFailure,
    summary="agent failures, their timeline, blocked dependency chains and critical paths",
)
async def analyze_cascade_failure(ctx: Context, p: P.AnalyzeCascadeFailure) -> Outcome:
    names = ["agent_health", "failures"]
    if p.dependency_analysis:
        names += ["dependency_chains", "critical_paths"]
    if p.impact_assessment == "comprehensive":
        names.append("pool_capacity")
    evs = await _log(ctx, [AGENT_ERROR, AGENT_TIMEOUT])
    timeline = [
        {"seq": e.seq, "ts": e.ts, "agent": e.data.get("agent"), "task": e.data.get("task"), "type": e.type}
        for e in evs
    ]
    affected = sorted({str(t["task"]).split("/")[0] for t in timeline if t["task"]})
    extra = {
        "timeline": timeline[-30:],
        "failures": len(timeline),
        "affected_workflows": affected,
        "span_s": round(timeline[-1]["ts"] - timeline[0]["ts"], 3) if len(timeline) > 1 else 0.0,
        "prioritisation": p.recovery_prioritization,
    }
    out = await analysis_outcome(ctx, names, None, extra)
    out.summary = f"{len(timeline)} agent failure(s) touching {', '.join(affected) or 'no workflow'}; " + out.summary
    return out


@operation(
    C,
    "corruption-assessment",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="state consistency, checkpoint integrity, log replay: what can be recovered how",
    workflow_arg="optional",
)
async def corruption_assessment(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    only = scope_of(ctx, p.workflows)
    out = await analysis_outcome(
        ctx, ["state_consistency", "checkpoint_integrity", "log_replay"], only, None, p.window_given()
    )
    cps = [f for f in out.result["findings"] if f["analysis"] == "checkpoint_integrity"]
    latest = cps[0]["evidence"]["latest_verified"] if cps else None
    out.result["rollback_feasible"] = latest is not None
    out.result["rollback_checkpoint"] = latest
    return out
