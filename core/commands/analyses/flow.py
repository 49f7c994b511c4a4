"""Analyses of the flow of work: bottlenecks, dependency chains, critical paths, performance over time."""

from __future__ import annotations

import statistics
from typing import Any

from ...engine import Engine
from ...models import AgentStatus, TaskStatus, WorkflowStatus
from ...projection import State
from ...timefmt import duration
from .findings import AnalysisSet, Finding, active_workflows

DECLARED = AnalysisSet()
analysis = DECLARED.analysis
windowed = DECLARED.windowed


def _ready_by_spec(s: State, only: set[str] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for w in s.workflows.values():
        if w.status is not WorkflowStatus.RUNNING or (only is not None and w.id not in only):
            continue
        for key in s.ready.get(w.id, ()):
            t = s.tasks[key]
            if t.status is TaskStatus.PENDING:
                out.setdefault(t.specialization, []).append(key)
    return out


@analysis(
    "bottlenecks",
    "where work waits: specializations without idle agents, allocation-bound workflows, saturated resources",
)
async def bottlenecks(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    ready = _ready_by_spec(s, only)
    for spec, keys in sorted(ready.items()):
        live = [a for a in s.live_agents() if spec in a.specializations]
        idle = [a for a in live if a.status is AgentStatus.IDLE]
        if not idle:
            sev = "high" if len(keys) >= 3 or not live else "medium"
            out.append(
                Finding(
                    "bottlenecks",
                    sev,
                    f"specialization:{spec}",
                    f"{len(keys)} ready {spec} task(s) wait; {len(live)} {spec} agent(s) live, none idle",
                    {
                        "ready_tasks": keys[:10],
                        "ready": len(keys),
                        "live_agents": len(live),
                        "busy_agents": sorted(a.id for a in live if a.status is not AgentStatus.IDLE),
                    },
                )
            )
    for w in active_workflows(s, only):
        if w.status is not WorkflowStatus.RUNNING:
            continue
        used = s.in_use(w.id)
        nready = sum(1 for k in s.ready.get(w.id, ()) if s.tasks[k].status is TaskStatus.PENDING)
        lim = w.allocation
        limit_agents = min(lim.agents, w.stage_limit.agents) if w.stage_limit else lim.agents
        if nready and used.agents >= limit_agents:
            out.append(
                Finding(
                    "bottlenecks",
                    "medium",
                    w.id,
                    f"{w.id}: {nready} ready task(s) held back by its allocation of {limit_agents} agent(s)",
                    {
                        "ready": nready,
                        "running": used.agents,
                        "allocation": lim.model_dump(),
                        "stage_limit": w.stage_limit.model_dump() if w.stage_limit else None,
                    },
                )
            )
    th = engine.config.thresholds
    util = engine.utilisation()
    for name, value, limit in (
        ("cpu", util["cpu"], th.cpu_warning),
        ("memory", util["memory"], th.memory_warning),
        ("agents", util["agents"], th.agents_critical),
    ):
        if value >= limit:
            out.append(
                Finding(
                    "bottlenecks",
                    "critical" if value >= th.exhaustion else "high",
                    f"resource:{name}",
                    f"{name} utilisation {value:.1f}% is at or over its threshold {limit:.0f}%",
                    {"utilisation_pct": value, "threshold_pct": limit},
                )
            )
    return out


@analysis("dependency_chains", "workflow and task dependency chains and what is blocked on what")
async def dependency_chains(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state

    def chain(wid: str, seen: tuple[str, ...] = ()) -> list[str]:
        w = s.any_workflow(wid)
        if w is None or wid in seen or not w.depends_on:
            return [wid]
        return max((chain(d, (*seen, wid)) for d in w.depends_on), key=len) + [wid]

    everything = s.all_workflows()
    for w in sorted(everything, key=lambda w: w.id):
        if only is not None and w.id not in only and not (set(w.depends_on) & (only or set())):
            continue
        if not w.depends_on:
            dependents = sorted(x.id for x in everything if w.id in x.depends_on)
            if dependents:
                out.append(
                    Finding(
                        "dependency_chains",
                        "info",
                        w.id,
                        f"{w.id} ({w.status.value}, {s.workflow_progress(w.id):.0%}) blocks {', '.join(dependents)}",
                        {
                            "dependents": dependents,
                            "progress": round(s.workflow_progress(w.id), 4),
                            "status": w.status.value,
                        },
                    )
                )
            continue
        c = chain(w.id)
        unmet = [d for d in w.depends_on if s.status_of(d) is not WorkflowStatus.COMPLETED]
        dead = [d for d in unmet if s.status_of(d) in (WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)]
        sev = "critical" if dead else "medium" if unmet and w.status is WorkflowStatus.PENDING else "info"
        out.append(
            Finding(
                "dependency_chains",
                sev,
                w.id,
                f"chain {' -> '.join(c)}: "
                + (f"waits on {', '.join(unmet)}" if unmet else "dependencies met")
                + (f" ({', '.join(dead)} can never complete)" if dead else ""),
                {
                    "chain": c,
                    "depth": len(c),
                    "unmet": unmet,
                    "dead_dependencies": dead,
                    "dependency_progress": {d: round(s.workflow_progress(d), 4) for d in w.depends_on if s.knows(d)},
                },
            )
        )
    for w in active_workflows(s, only):
        blocked = [
            k
            for k in w.tasks
            if s.tasks[k].status is TaskStatus.PENDING
            and any(s.tasks[d].status is TaskStatus.FAILED for d in s.tasks[k].depends_on)
        ]
        if blocked:
            out.append(
                Finding(
                    "dependency_chains",
                    "high",
                    w.id,
                    f"{w.id}: {len(blocked)} task(s) depend on failed tasks",
                    {"blocked": blocked[:10]},
                )
            )
    return out


@analysis("critical_paths", "the longest remaining chain of work per workflow and who holds it")
async def critical_paths(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    for w in sorted(active_workflows(s, only), key=lambda w: -w.priority):
        path = s.critical_path(w.id)
        if not path:
            continue
        remaining = sum(s.tasks[k].duration_s * (1 - s.tasks[k].context.progress) for k in path)
        holders = {k: a for k in path if (a := s.tasks[k].agent)}
        at_risk = [k for k, a in holders.items() if s.agents[a].status in (AgentStatus.UNREACHABLE, AgentStatus.FAILED)]
        waiting = [k for k in path if s.tasks[k].status is TaskStatus.PENDING and s.pending_deps.get(k, 1) == 0]
        sev = "high" if at_risk else "medium" if waiting and w.status is WorkflowStatus.RUNNING else "info"
        out.append(
            Finding(
                "critical_paths",
                sev,
                w.id,
                f"{w.id} critical path: {len(path)} task(s), {duration(remaining)} of work left"
                + (f"; {len(at_risk)} held by lost agents" if at_risk else "")
                + (f"; {len(waiting)} ready but unassigned" if waiting else ""),
                {
                    "path": path,
                    "remaining_s": round(remaining, 1),
                    "holders": holders,
                    "at_risk": at_risk,
                    "ready_unassigned": waiting,
                },
            )
        )
    return out


@windowed("performance_trend", "response time, efficiency and throughput now against an earlier baseline")
async def performance_trend(
    engine: Engine, only: set[str] | None = None, window_s: float | None = None
) -> list[Finding]:
    out: list[Finding] = []
    tel = engine.telemetry
    now = engine.clock.now()
    window = window_s if window_s is not None else 1800.0
    for metric, worse_if in (("response_time", "up"), ("efficiency", "down"), ("throughput_per_min", "down")):
        recent = [v for _, v in tel.get(metric).since(now - window)]
        older = [v for t, v in tel.get(metric).points if now - 2 * window <= t < now - window]
        if not recent:
            continue
        r = statistics.fmean(recent)
        ev: dict[str, Any] = {"recent_mean": round(r, 4), "recent_samples": len(recent), "window_s": window}
        if older:
            b = statistics.fmean(older)
            change = (r - b) / b * 100.0 if b else 0.0
            ev.update({"baseline_mean": round(b, 4), "baseline_samples": len(older), "change_pct": round(change, 2)})
            bad = change > 0 if worse_if == "up" else change < 0
            trigger = engine.config.performance.degradation_trigger_pct
            sev = (
                "high" if bad and abs(change) >= 3 * trigger else "medium" if bad and abs(change) >= trigger else "info"
            )
            out.append(
                Finding("performance_trend", sev, metric, f"{metric} {r:.3g} vs baseline {b:.3g} ({change:+.1f}%)", ev)
            )
        else:
            out.append(Finding("performance_trend", "info", metric, f"{metric} {r:.3g} (no baseline yet)", ev))
    return out
