"""``/subagents '<phase context>' '<task list>' [--flags]``: analyses gathered into one report.

The tasks run in turn on the host's event loop (the analyses read the live state,
which only that loop may touch), each timed; the response says so rather than
claiming a parallelism that does not happen.

Each task names a component (and optionally an operation) and focus words; it runs
the analyses those choose. A task naming a state-changing operation runs the
analyses that operation would act on, never the change itself: a fan-out only
investigates.
"""

from __future__ import annotations

import time
from typing import Any

from . import payloads as P
from .analyses import choose, run_analyses
from .analyses.findings import SEVERITY_RANK, report
from .context import Context
from .registry import Operations, Outcome, Registry
from .responses import CommandError

OP_ANALYSES: dict[tuple[str, str], list[str]] = {
    ("resource-manager", "emergency-analysis"): [
        "utilisation",
        "resource_leaks",
        "cpu_spinning",
        "stalled_agents",
        "bottlenecks",
    ],
    ("resource-manager", "analyze-utilization"): ["utilisation", "bottlenecks", "reallocation"],
    ("resource-manager", "agent-pool-assessment"): ["pool_capacity", "agent_health", "reallocation"],
    ("resource-manager", "agent-reallocation"): ["network", "reallocation"],
    ("resource-manager", "check-conflicts"): ["conflicts"],
    ("performance-monitor", "emergency-assessment"): ["utilisation", "bottlenecks", "performance_trend"],
    ("performance-monitor", "bottlenecks"): ["bottlenecks"],
    ("performance-monitor", "comprehensive-analysis"): [
        "performance_trend",
        "bottlenecks",
        "utilisation",
        "reallocation",
    ],
    ("coordination-hub", "dependency-analysis"): ["dependency_chains", "critical_paths"],
    ("coordination-hub", "workflow-efficiency-analysis"): ["coordination_overhead", "performance_trend"],
    ("coordination-hub", "checkpoint-validation"): ["checkpoint_integrity", "log_replay"],
    ("coordination-hub", "communication-redundancy-activation"): ["network", "stalled_agents"],
    ("coordination-hub", "network-failure-analysis"): ["network", "stalled_agents"],
    ("workflow-recovery", "corruption-assessment"): ["state_consistency", "checkpoint_integrity", "log_replay"],
    ("workflow-recovery", "analyze-cascade-failure"): [
        "agent_health",
        "failures",
        "dependency_chains",
        "critical_paths",
    ],
}
DEFAULT_BY_COMPONENT = {
    "debug": ["agent_health", "stalled_agents", "state_consistency"],
    "resource-manager": ["utilisation", "pool_capacity"],
    "performance-monitor": ["performance_trend", "bottlenecks"],
    "coordination-hub": ["dependency_chains", "coordination_overhead"],
    "workflow-recovery": ["failures", "checkpoint_integrity"],
    "x": ["utilisation"],
}
FLAG_PRIORITY = {
    "emergency": "critical",
    "critical-failure": "critical",
    "data-protection": "critical",
    "network-resilient": "high",
    "performance-focus": "high",
}


def _mutates(ctx: Context, component: str, operation: str) -> bool:
    spec = ctx.services.registry.get(component, operation)
    return spec is not None and spec.mutates


def analyses_for(task: P.SubagentTask, registry: Registry) -> tuple[list[str], str | None]:
    """The analyses a task runs, and the operation of ``registry`` it names (canonical)."""
    comp = task.command[1:]
    op_name = None
    defaults = DEFAULT_BY_COMPONENT.get(comp, ["utilisation"])
    if task.operation:
        spec = registry.get(comp, task.operation)
        if spec is None:
            near = Registry.suggest(task.operation, registry.operations(comp))
            raise CommandError(
                "UNKNOWN_OPERATION",
                f"subagent task: /{comp} has no operation {task.operation!r}"
                + (f"; did you mean {', '.join(near)}?" if near else ""),
                {"component": comp, "operation": task.operation, "suggestions": near},
            )
        op_name = spec.operation
        defaults = OP_ANALYSES.get((comp, op_name), defaults)
    words = [*task.focus, task.analysis or "", task.scope]
    chosen = choose(words, [])
    names = list(dict.fromkeys(defaults + chosen)) if task.operation else (chosen or defaults)
    return names, op_name


OPS = Operations("subagents", "several investigations (analyses) run in turn, timed, gathered into one report")
operation = OPS.operation


@operation(
    "subagents",
    "run",
    kind="analysis",
    payload=P.Subagents,
    default=True,
    json_args=("context", "tasks"),
    flags={
        "emergency": "priority critical",
        "critical-failure": "priority critical",
        "data-protection": "priority critical",
        "network-resilient": "priority high, network analyses first",
        "performance-focus": "priority high, performance analyses first",
    },
    summary="run the listed analyses (in turn, each timed) and gather one report",
)
async def run(ctx: Context, p: P.Subagents) -> Outcome:
    """The first JSON argument is the phase context (phase, priority, coordination);
    the second lists the tasks, each ``{"command", "operation"?, "scope", "focus"}``."""
    plans = [analyses_for(t, ctx.services.registry) for t in p.tasks]  # validate all before running any
    priority: str = p.context.priority
    for flag in ctx.flags:
        fp = FLAG_PRIORITY.get(flag)
        if fp and SEVERITY_RANK[fp] > SEVERITY_RANK[priority]:
            priority = fp

    async def one(i: int, task: P.SubagentTask, names: list[str], op: str | None) -> dict[str, Any]:
        t0 = time.perf_counter()
        findings = await run_analyses(ctx.engine, names)
        took = time.perf_counter() - t0
        rep = report(findings, names)
        return {
            "wall_s": round(took, 4),
            "task": i + 1,
            "command": task.command,
            "operation": op,
            "scope": task.scope,
            "focus": task.focus,
            "executed": "analysis only" if op and _mutates(ctx, task.command[1:], op) else "analysis",
            **rep,
        }

    t_all = time.perf_counter()
    sections = [await one(i, t, names, op) for i, (t, (names, op)) in enumerate(zip(p.tasks, plans, strict=True))]
    total = time.perf_counter() - t_all
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for sec in sections:
        for f in sec["findings"]:
            key = (f["analysis"], f["subject"], f["summary"])
            if key not in merged:
                merged[key] = {**f, "from_tasks": [sec["task"]]}
            else:
                merged[key]["from_tasks"].append(sec["task"])
    findings = sorted(
        merged.values(), key=lambda f: (-SEVERITY_RANK.get(f["severity"], 0), f["analysis"], f["subject"])
    )
    counts: dict[str, int] = {}
    for f in findings:
        counts[f["severity"]] = counts.get(f["severity"], 0) + 1
    escalate = [f for f in findings if SEVERITY_RANK.get(f["severity"], 0) >= (3 if priority == "critical" else 4)]
    result = {
        "phase": p.context.phase,
        "priority": priority,
        "coordination": p.context.coordination,
        "execution": "in turn, on the host's event loop (the analyses read the live state)",
        "wall_s": round(total, 4),
        "tasks": sections,
        "findings": findings,
        "counts": counts,
        "worst": findings[0]["severity"] if findings else "info",
        "escalate": [f"{f['severity']}: {f['summary']}" for f in escalate[:10]],
    }
    times = ", ".join(f"#{x['task']} {x['wall_s'] * 1000:.0f} ms" for x in sections)
    summary = (
        f"{p.context.phase}: {len(sections)} task(s) run in turn in {total * 1000:.0f} ms "
        f"({times}), {len(findings)} finding(s) "
        f"({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}); priority {priority}"
    )
    return Outcome(result, summary, [f"{f['severity']}: {f['subject']}" for f in escalate[:3]])
