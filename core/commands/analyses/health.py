"""Analyses of agents and coordination: stalled and failed agents, failures, the network, event overhead."""

from __future__ import annotations

from ...engine import Engine
from ...models import AgentStatus, FinishedWorkflow, TaskStatus, WorkflowStatus
from ...timefmt import duration
from .findings import AnalysisSet, Finding
from .flow import _ready_by_spec

DECLARED = AnalysisSet()
analysis = DECLARED.analysis
windowed = DECLARED.windowed


@analysis("stalled_agents", "agents holding a task that have gone silent (no heartbeat or progress)")
async def stalled_agents(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    now = engine.clock.now()
    hb = engine.config.intervals.heartbeat_s
    for a in sorted(s.agents.values(), key=lambda a: a.id):
        if a.status in (AgentStatus.FAILED, AgentStatus.RETIRED):
            continue
        silent = engine.telemetry.silent_for(a, now)
        task = s.tasks.get(a.current_task) if a.current_task else None
        if task is not None and only is not None and task.workflow not in only:
            continue
        if a.status is AgentStatus.UNREACHABLE or silent > 2 * hb:
            sev = "critical" if task is not None else "medium"
            out.append(
                Finding(
                    "stalled_agents",
                    sev,
                    a.id,
                    f"{a.id} ({a.status.value}) silent for {duration(silent)}"
                    + (f" holding {task.id}" if task else ""),
                    {
                        "status": a.status.value,
                        "silent_s": round(silent, 1),
                        "task": task.id if task else None,
                        "task_progress": task.context.progress if task else None,
                        "heartbeat_s": hb,
                    },
                )
            )
        elif a.status is AgentStatus.PAUSED and task is not None:
            wf = s.workflows[task.workflow]
            if wf.status is WorkflowStatus.RUNNING:
                out.append(
                    Finding(
                        "stalled_agents",
                        "medium",
                        a.id,
                        f"{a.id} is paused on {task.id} while {wf.id} runs",
                        {"task": task.id, "workflow": wf.id},
                    )
                )
    return out


@analysis("agent_health", "failed and unreachable agents, failure counts, pools under their minimum")
async def agent_health(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    for a in sorted(s.agents.values(), key=lambda a: a.id):
        if a.status is AgentStatus.FAILED:
            out.append(
                Finding(
                    "agent_health",
                    "high",
                    a.id,
                    f"{a.id} ({a.pool}) has failed ({a.failures} failure(s))",
                    {
                        "pool": a.pool,
                        "failures": a.failures,
                        "tasks_done": a.tasks_done,
                        "specializations": a.specializations,
                    },
                )
            )
        elif a.status is AgentStatus.UNREACHABLE:
            out.append(
                Finding(
                    "agent_health",
                    "high",
                    a.id,
                    f"{a.id} ({a.pool}) is unreachable",
                    {"pool": a.pool, "task": a.current_task},
                )
            )
        elif a.failures:
            out.append(
                Finding(
                    "agent_health",
                    "low",
                    a.id,
                    f"{a.id} recovered after {a.failures} failure(s)",
                    {"failures": a.failures},
                )
            )
    return out


@windowed("failures", "failed tasks and workflows, tasks retried")
async def failures(engine: Engine, only: set[str] | None = None, window_s: float | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    start = engine.clock.now() - window_s if window_s is not None else float("-inf")
    for w in sorted(s.all_workflows(), key=lambda w: w.id):
        if only is not None and w.id not in only:
            continue
        if window_s is not None and w.finished_at is not None and w.finished_at < start:
            continue  # ended before the window
        if isinstance(w, FinishedWorkflow):  # out of the hot state: its summary has what this needs
            if w.status is WorkflowStatus.FAILED:
                out.append(
                    Finding(
                        "failures",
                        "high",
                        w.id,
                        f"{w.id} failed: {', '.join(w.failed_tasks) or 'no failed task recorded'}",
                        {"failed_tasks": w.failed_tasks, "finished_at": w.finished_at},
                    )
                )
            if w.retried:
                out.append(
                    Finding(
                        "failures",
                        "medium",
                        w.id,
                        f"{w.id}: {len(w.retried)} task(s) needed more than one attempt",
                        {"tasks": dict(list(w.retried.items())[:10])},
                    )
                )
            continue
        if w.status is WorkflowStatus.FAILED:
            bad = [k for k in w.tasks if s.tasks[k].status is TaskStatus.FAILED]
            out.append(
                Finding(
                    "failures",
                    "high",
                    w.id,
                    f"{w.id} failed: {', '.join(bad) or 'no failed task recorded'}",
                    {"failed_tasks": bad, "finished_at": w.finished_at},
                )
            )
        retried = [
            (k, t.attempts)
            for k in w.tasks
            if (t := s.tasks[k]).attempts > 1 and (t.started_at is None or t.started_at >= start)
        ]
        if retried:
            out.append(
                Finding(
                    "failures",
                    "medium",
                    w.id,
                    f"{w.id}: {len(retried)} task(s) needed more than one attempt",
                    {"tasks": dict(retried[:10])},
                )
            )
    return out


@analysis("network", "unreachable agents, how long they have been silent and what they hold")
async def network(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    now = engine.clock.now()
    lost = [a for a in s.agents.values() if a.status is AgentStatus.UNREACHABLE]
    for a in sorted(lost, key=lambda a: a.id):
        silent = engine.telemetry.silent_for(a, now)
        out.append(
            Finding(
                "network",
                "high",
                a.id,
                f"{a.id} unreachable for {duration(silent)}"
                + (f", holding {a.current_task}" if a.current_task else ""),
                {"silent_s": round(silent, 1), "task": a.current_task, "pool": a.pool},
            )
        )
    live = len(s.live_agents())
    out.append(
        Finding(
            "network",
            "high" if lost else "info",
            "partition",
            f"{len(lost)} of {live} live agent(s) unreachable",
            {
                "unreachable": sorted(a.id for a in lost),
                "live": live,
                "reachable_share": round(1 - len(lost) / live, 3) if live else 0.0,
            },
        )
    )
    return out


@analysis("coordination_overhead", "events per minute by type and agents idle while matching work waits")
async def coordination_overhead(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    now = engine.clock.now()
    window = 900.0
    if engine.store is not None:
        await engine.flush()
        counts: dict[str, int] = {}
        total = 0
        seq = max(0, s.seq - 20000)
        for ev in await engine.store.read_events(seq):
            if ev.ts >= now - window:
                counts[ev.type] = counts.get(ev.type, 0) + 1
                total += 1
        top = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:8])
        per_min = total / (window / 60.0)
        out.append(
            Finding(
                "coordination_overhead",
                "info",
                "events",
                f"{per_min:.1f} events/min over the last {window / 60:.0f} min",
                {"events": total, "per_minute": round(per_min, 2), "top_types": top},
            )
        )
    ready = _ready_by_spec(s, only)
    idle_with_work = sorted(
        a.id for a in s.live_agents() if a.status is AgentStatus.IDLE and any(sp in ready for sp in a.specializations)
    )
    if idle_with_work:
        out.append(
            Finding(
                "coordination_overhead",
                "medium",
                "dispatch",
                f"{len(idle_with_work)} idle agent(s) have matching ready work they are not given (allocation or capacity bound)",
                {"agents": idle_with_work, "ready_by_specialization": {k: len(v) for k, v in ready.items()}},
            )
        )
    return out
