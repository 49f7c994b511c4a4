"""The analyses: findings computed from the engine's state and telemetry, with evidence.

Each analysis is a function of the engine (and an optional set of workflows to
restrict to) returning :class:`Finding` s. Nothing here changes state. Operations,
``/debug`` and ``/subagents`` choose analyses by name; focus words such as
``memory_leaks`` or ``critical_path_analysis`` map onto them (:func:`choose`).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Awaitable, Callable, Collection
from dataclasses import asdict, dataclass, field
from typing import Any

from ..engine import Engine, EngineError
from ..event_types import (
    EVENTS,
    TASK_PROGRESS,
)
from ..models import TERMINAL_WORKFLOW, AgentStatus, FinishedWorkflow, TaskStatus, WorkflowStatus
from ..projection import State
from ..timefmt import duration

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}


@dataclass
class Finding:
    analysis: str
    severity: str
    subject: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Analysis = Callable[[Engine, "set[str] | None"], Awaitable[list[Finding]]]
WindowedAnalysis = Callable[[Engine, "set[str] | None", "float | None"], Awaitable[list[Finding]]]
ANALYSES: dict[str, Analysis] = {}
WINDOWED: dict[str, WindowedAnalysis] = {}
"""The analyses over time (samples, completions, failures) that compute over a window."""
DESCRIPTIONS: dict[str, str] = {}


def analysis(name: str, description: str) -> Callable[[Analysis], Analysis]:
    def deco(fn: Analysis) -> Analysis:
        ANALYSES[name] = fn
        DESCRIPTIONS[name] = description
        return fn

    return deco


def windowed(name: str, description: str) -> Callable[[WindowedAnalysis], WindowedAnalysis]:
    """An analysis that takes a time window (None: its own default)."""

    def deco(fn: WindowedAnalysis) -> WindowedAnalysis:
        async def default(engine: Engine, only: set[str] | None = None) -> list[Finding]:
            return await fn(engine, only, None)

        ANALYSES[name] = default
        WINDOWED[name] = fn
        DESCRIPTIONS[name] = description
        return fn

    return deco


def _active(s: State, only: set[str] | None) -> list[Any]:
    return [w for w in s.workflows.values() if w.status not in TERMINAL_WORKFLOW and (only is None or w.id in only)]


def _rate_slope(points: list[tuple[float, float]]) -> float:
    """Median rate of change per second: robust to the steps of tasks starting/ending."""
    rates = [(v1 - v0) / (t1 - t0) for (t0, v0), (t1, v1) in itertools.pairwise(points) if t1 > t0]
    return statistics.median(rates) if rates else 0.0


def _lsq_slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    ts = [p[0] for p in points]
    vs = [p[1] for p in points]
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (v - mv) for t, v in zip(ts, vs, strict=True)) / den if den else 0.0


@windowed("resource_leaks", "memory growing steadily per agent (median slope of memory samples)")
async def resource_leaks(engine: Engine, only: set[str] | None = None, window_s: float | None = None) -> list[Finding]:
    out: list[Finding] = []
    tel = engine.telemetry
    now = engine.clock.now()
    window = window_s if window_s is not None else 600.0
    recent = 24  # the last two minutes at the default 5 s sampling
    for a in sorted(engine.state.live_agents(), key=lambda a: a.id):
        pts = tel.get("memory_mb", a.id).since(now - window)[-recent:]
        if len(pts) < 8:
            continue
        rate = _rate_slope(pts) * 60.0  # MB per minute
        ups = sum(1 for (_, v0), (_, v1) in itertools.pairwise(pts) if v1 > v0)
        share = ups / (len(pts) - 1)
        if rate > 0.5 and share >= 0.7:
            sev = "critical" if rate > 50 else "high" if rate > 10 else "medium" if rate > 2 else "low"
            out.append(
                Finding(
                    "resource_leaks",
                    sev,
                    a.id,
                    f"{a.id} memory grows {rate:.1f} MB/min in {share:.0%} of samples",
                    {
                        "slope_mb_per_min": round(rate, 2),
                        "samples": len(pts),
                        "rising_share": round(share, 3),
                        "first_mb": pts[0][1],
                        "last_mb": pts[-1][1],
                        "window_s": round(pts[-1][0] - pts[0][0], 1),
                    },
                )
            )
    sysm = tel.get("memory_pct").since(now - window)
    if len(sysm) >= 8:
        slope = _lsq_slope(sysm) * 60.0
        if slope > 0.2:
            out.append(
                Finding(
                    "resource_leaks",
                    "medium" if slope < 1 else "high",
                    "system",
                    f"system memory rising {slope:.2f} %/min",
                    {
                        "slope_pct_per_min": round(slope, 3),
                        "samples": len(sysm),
                        "first_pct": sysm[0][1],
                        "last_pct": sysm[-1][1],
                    },
                )
            )
    return out


async def _recent_progress(engine: Engine, window: float) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(task, agent) -> [(t, progress)] from the log's recent TASK_PROGRESS events."""
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    if engine.store is None:
        return out
    await engine.flush()
    now = engine.clock.now()
    for ev in await engine.store.read_events(max(0, engine.state.seq - 20000), types=[TASK_PROGRESS]):
        if ev.ts >= now - window and "progress" in ev.data:
            out.setdefault((ev.data["task"], ev.data.get("agent", "")), []).append((ev.ts, float(ev.data["progress"])))
    return out


@analysis("cpu_spinning", "agents burning CPU while their task's progress rate lags far behind plan")
async def cpu_spinning(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    """The progress rate over the last five minutes of reports (or, without them, since
    the task started) against the planned rate 1/duration."""
    out: list[Finding] = []
    s = engine.state
    now = engine.clock.now()
    hb = engine.config.intervals.heartbeat_s
    window = 300.0
    recent = await _recent_progress(engine, window)
    for a in sorted(s.agents.values(), key=lambda a: a.id):
        if a.status is not AgentStatus.BUSY or not a.current_task:
            continue
        t = s.tasks[a.current_task]
        if only is not None and t.workflow not in only:
            continue
        if t.started_at is None or t.duration_s <= 0:
            continue
        elapsed = now - t.started_at
        if elapsed < 2 * hb:
            continue
        pts = recent.get((t.id, a.id), [])
        if len(pts) >= 3 and pts[-1][0] > pts[0][0]:
            rate = (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
            basis = {"reports": len(pts), "over_s": round(pts[-1][0] - pts[0][0], 1)}
        else:
            rate = t.context.progress / elapsed
            basis = {"reports": len(pts), "over_s": round(elapsed, 1), "since_start": True}
        ratio = rate * t.duration_s
        cpu_pct = engine.telemetry.agent_usage.get(a.id, (0.0, 0.0))[0]
        if cpu_pct >= 25.0 and ratio < 0.5:
            sev = "high" if ratio < 0.25 else "medium"
            out.append(
                Finding(
                    "cpu_spinning",
                    sev,
                    a.id,
                    f"{a.id} uses {cpu_pct:.0f}% CPU on {t.id} but progresses at {ratio:.0%} of its planned rate",
                    {
                        "task": t.id,
                        "cpu_pct": cpu_pct,
                        "progress": t.context.progress,
                        "progress_per_min": round(rate * 60, 5),
                        "planned_per_min": round(60 / t.duration_s, 5),
                        "rate_ratio": round(ratio, 3),
                        **basis,
                    },
                )
            )
    return out


@analysis("stalled_agents", "agents holding a task that have gone silent (no heartbeat or progress)")
async def stalled_agents(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    now = engine.clock.now()
    hb = engine.config.intervals.heartbeat_s
    for a in sorted(s.agents.values(), key=lambda a: a.id):
        if a.status in (AgentStatus.FAILED, AgentStatus.RETIRED):
            continue
        last = engine.telemetry.liveness.get(a.id, a.last_heartbeat)
        silent = now - last if last is not None else 0.0
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
    for w in _active(s, only):
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


@analysis("reallocation", "capacity one workflow holds idle that another waits for")
async def reallocation(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    spare: list[tuple[str, int]] = []
    need: list[tuple[str, int]] = []
    for w in _active(s, only):
        used = s.in_use(w.id)
        nready = sum(1 for k in s.ready.get(w.id, ()) if s.tasks[k].status is TaskStatus.PENDING)
        free = w.allocation.agents - used.agents
        if w.status is WorkflowStatus.PAUSED and w.allocation.agents > 0:
            spare.append((w.id, w.allocation.agents))
        elif w.status is WorkflowStatus.RUNNING and free > 0 and nready == 0:
            spare.append((w.id, free))
        elif w.status is WorkflowStatus.RUNNING and nready > 0 and free <= 0:
            need.append((w.id, nready))
    for (donor, n), (taker, m) in zip(
        sorted(spare, key=lambda x: -x[1]), sorted(need, key=lambda x: -s.band_rank(x[0])), strict=False
    ):
        k = min(n, m)
        out.append(
            Finding(
                "reallocation",
                "medium",
                f"{donor}->{taker}",
                f"move {k} agent slot(s) from {donor} (unused) to {taker} ({m} ready task(s) waiting)",
                {
                    "donor": donor,
                    "donor_unused_slots": n,
                    "taker": taker,
                    "taker_ready": m,
                    "command": f'/resource-manager reallocate \'{{"from_workflow": "{donor}", "to_workflow": "{taker}", "agents": {k}}}\'',
                },
            )
        )
    ready = _ready_by_spec(s, only)
    for a in sorted(s.live_agents(), key=lambda a: a.id):
        if a.status is AgentStatus.IDLE and not any(sp in ready for sp in a.specializations):
            pool = s.pools.get(a.pool)
            in_pool = sum(1 for b in s.live_agents() if b.pool == a.pool)
            if pool is not None and in_pool > pool.min_size:
                out.append(
                    Finding(
                        "reallocation",
                        "low",
                        a.id,
                        f"{a.id} ({a.pool}) is idle with no matching ready work",
                        {
                            "pool": a.pool,
                            "specializations": a.specializations,
                            "pool_live": in_pool,
                            "pool_min": pool.min_size,
                        },
                    )
                )
    for donor, n in spare:
        if not need:
            out.append(
                Finding("reallocation", "info", donor, f"{donor} holds {n} unused agent slot(s)", {"unused_slots": n})
            )
    return out


def _over(points: list[tuple[float, float]]) -> dict[str, Any]:
    vals = [v for _, v in points]
    if not vals:
        return {"samples": 0}
    return {"samples": len(vals), "mean": round(statistics.fmean(vals), 2), "peak": round(max(vals), 2)}


@windowed("utilisation", "CPU, memory and agents in use against capacity, per workflow and system")
async def utilisation(engine: Engine, only: set[str] | None = None, window_s: float | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    cap = engine.config.capacity
    th = engine.config.thresholds
    util = engine.utilisation()
    tel = engine.telemetry
    if window_s is not None:  # over the window: the samples in it, not the last one
        start = engine.clock.now() - window_s
        over = {m: _over(tel.get(f"{m}_pct").since(start)) for m in ("cpu", "memory", "agents")}
        util = {m: over[m].get("mean", 0.0) for m in over}
        peak = {m: over[m].get("peak", 0.0) for m in over}
        sev = "info"
        if peak["cpu"] >= th.exhaustion or peak["memory"] >= th.exhaustion:
            sev = "high" if util["cpu"] < th.exhaustion and util["memory"] < th.exhaustion else "critical"
        elif util["cpu"] >= th.cpu_warning or util["memory"] >= th.memory_warning:
            sev = "high"
        out.append(
            Finding(
                "utilisation",
                sev,
                "system",
                f"over the last {window_s:g}s: cpu mean {util['cpu']:.1f}% (peak {peak['cpu']:.1f}%), "
                f"memory mean {util['memory']:.1f}% (peak {peak['memory']:.1f}%), "
                f"agents mean {util['agents']:.1f}% ({over['cpu']['samples']} samples)",
                {"window_s": window_s, "from": round(start, 3), **{f"{m}_pct": over[m] for m in over}},
            )
        )
        return out + (await utilisation(engine, only, None))[1:]  # per workflow: what they hold now
    sev = "info"
    if util["cpu"] >= th.exhaustion or util["memory"] >= th.exhaustion:
        sev = "critical"
    elif util["cpu"] >= th.cpu_warning or util["memory"] >= th.memory_warning or util["agents"] >= th.agents_critical:
        sev = "high"
    out.append(
        Finding(
            "utilisation",
            sev,
            "system",
            f"system at cpu {util['cpu']:.1f}%, memory {util['memory']:.1f}%, agents {util['agents']:.1f}%",
            {
                **{f"{k}_pct": v for k, v in util.items()},
                "cpu_samples": len(tel.get("cpu_pct").points),
                "capacity": cap.model_dump(),
                "live_agents": len(s.live_agents()),
            },
        )
    )
    for w in sorted(_active(s, only), key=lambda w: -w.priority):
        used = s.in_use(w.id)
        a = w.allocation
        share = used.agents / a.agents if a.agents else 0.0
        out.append(
            Finding(
                "utilisation",
                "info",
                w.id,
                f"{w.id} ({w.band.value}, {w.status.value}) uses {used.agents}/{a.agents} agents, "
                f"{used.cpu_cores:.1f}/{a.cpu_cores:.1f} cores, {used.memory_gb:.1f}/{a.memory_gb:.1f} GB",
                {
                    "in_use": used.model_dump(),
                    "allocation": a.model_dump(),
                    "agent_share": round(share, 3),
                    "guarantee": w.guarantee.model_dump() if w.guarantee else None,
                },
            )
        )
    return out


@analysis("pool_capacity", "agents per pool against pool limits and the global agent capacity")
async def pool_capacity(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    cap = engine.config.capacity.agents
    live_total = len(s.live_agents())
    for name, p in sorted(s.pools.items()):
        members = [a for a in s.agents.values() if a.pool == name]
        live = [a for a in members if a.status not in (AgentStatus.FAILED, AgentStatus.RETIRED)]
        idle = [a.id for a in live if a.status is AgentStatus.IDLE]
        failed = [a.id for a in members if a.status is AgentStatus.FAILED]
        can_add = max(0, min(p.max_size - len(live), cap - live_total))
        sev = "high" if len(live) < p.min_size else "medium" if failed else "info"
        out.append(
            Finding(
                "pool_capacity",
                sev,
                f"pool:{name}",
                f"pool {name}: {len(live)} live ({len(idle)} idle), {len(failed)} failed, min {p.min_size}, max {p.max_size}; can add {can_add}",
                {
                    "live": len(live),
                    "idle": idle,
                    "failed": failed,
                    "min_size": p.min_size,
                    "max_size": p.max_size,
                    "can_add": can_add,
                    "specializations": p.specializations,
                },
            )
        )
    out.append(
        Finding(
            "pool_capacity",
            "high" if live_total >= cap else "info",
            "agents",
            f"{live_total} of {cap} agent slots used",
            {"live": live_total, "capacity": cap},
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
    for w in _active(s, only):
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
    for w in sorted(_active(s, only), key=lambda w: -w.priority):
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


@analysis("network", "unreachable agents, how long they have been silent and what they hold")
async def network(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    now = engine.clock.now()
    lost = [a for a in s.agents.values() if a.status is AgentStatus.UNREACHABLE]
    for a in sorted(lost, key=lambda a: a.id):
        silent = now - engine.telemetry.liveness.get(a.id, a.last_heartbeat or now)
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


@analysis("state_consistency", "invariants between agents, tasks and workflows in the projection")
async def state_consistency(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    problems: list[dict[str, Any]] = []
    s = engine.state
    for a in s.agents.values():
        if a.current_task:
            t = s.tasks.get(a.current_task)
            if t is None or t.agent != a.id or t.status not in (TaskStatus.RUNNING, TaskStatus.PAUSED):
                problems.append({"agent": a.id, "problem": f"holds {a.current_task} which is not running on it"})
    for t in s.tasks.values():
        if only is not None and t.workflow not in only:
            continue
        if t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
            holder = s.agents.get(t.agent or "")
            if holder is None or holder.current_task != t.id:
                problems.append({"task": t.id, "problem": f"{t.status.value} but agent {t.agent} does not hold it"})
            elif holder.status in (AgentStatus.FAILED, AgentStatus.RETIRED):
                problems.append(
                    {"task": t.id, "problem": f"{t.status.value} on {holder.status.value} agent {holder.id}"}
                )
        if t.workflow not in s.workflows:
            problems.append({"task": t.id, "problem": "belongs to no workflow"})
        if not 0.0 <= t.context.progress <= 1.0:
            problems.append({"task": t.id, "problem": f"progress {t.context.progress} out of range"})
    for w in s.workflows.values():
        if only is not None and w.id not in only:
            continue
        left = sum(1 for k in w.tasks if s.tasks[k].status is not TaskStatus.COMPLETED)
        if w.status is WorkflowStatus.COMPLETED and left:
            problems.append({"workflow": w.id, "problem": f"completed with {left} task(s) not completed"})
        if s.wf_left.get(w.id, left) != left:
            problems.append({"workflow": w.id, "problem": f"counter says {s.wf_left.get(w.id)} left, tasks say {left}"})
    frozen = sorted(w.id for w in s.workflows.values() if w.frozen)
    return [
        Finding(
            "state_consistency",
            "critical" if problems else "info",
            "projection",
            f"{len(problems)} inconsistency(ies) in {len(s.agents)} agents, {len(s.tasks)} tasks, {len(s.workflows)} live workflows",
            {"problems": problems[:20], "state_hash": s.state_hash(), "seq": s.seq, "frozen_workflows": frozen},
        )
    ]


@analysis("checkpoint_integrity", "every checkpoint's stored snapshot against its recorded hash")
async def checkpoint_integrity(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    ok: list[int] = []
    bad: dict[int, str] = {}
    for cp_id in sorted(engine.state.checkpoints):
        try:
            await engine.verified_checkpoint(cp_id)
            ok.append(cp_id)
        except EngineError as exc:
            bad[cp_id] = exc.message
    latest = max(ok) if ok else None
    cp = engine.state.checkpoints.get(latest) if latest else None
    sev = "critical" if bad and not ok else "high" if bad else "medium" if not ok else "info"
    return [
        Finding(
            "checkpoint_integrity",
            sev,
            "checkpoints",
            f"{len(ok)} checkpoint(s) verify, {len(bad)} fail"
            + (f"; latest verified #{latest} at seq {cp.seq}" if cp else "; no restore point"),
            {
                "verified": ok,
                "failed": {str(k): v for k, v in bad.items()},
                "latest_verified": latest,
                "events_since_latest": engine.state.seq - cp.seq if cp else None,
            },
        )
    ]


async def replay_state(engine: Engine, exclude: Collection[int] = ()) -> tuple[State | None, int, int | None]:
    """The state the stored log gives: latest verified checkpoint + replay after it.
    ``exclude``: checkpoints not to start from (a verify by replay found them differing
    from the log: their hash matches a drifted projection). Returns (state, events
    replayed, checkpoint used); no store -> (None, 0, None)."""
    if engine.store is None:
        return None, 0, None
    await engine.flush()
    state = State(EVENTS.folds)
    since = 0
    used = None
    for cp_id in sorted(engine.state.checkpoints, reverse=True):
        if cp_id in exclude:
            continue
        try:
            snap = await engine.verified_checkpoint(cp_id)
        except EngineError:
            continue
        state = State.from_snapshot(EVENTS.folds, snap)
        since = snap["seq"]
        used = cp_id
        break
    n = 0
    async for ev in engine.store.iter_events(since):
        state.apply(ev)
        n += 1
    return state, n, used


def diff_segments(a: State, b: State, only: set[str] | None = None) -> list[str]:
    """Which workflows, tasks and agents differ between two states."""
    out: list[str] = []
    for wid in sorted(set(a.finished) | set(b.finished)):
        if (only is None or wid in only) and wid not in a.workflows and wid not in b.workflows:
            fa, fb = a.finished.get(wid), b.finished.get(wid)
            if (fa.model_dump() if fa else None) != (fb.model_dump() if fb else None):
                out.append(f"workflow:{wid}")
    for wid in sorted(set(a.workflows) | set(b.workflows)):
        if only is not None and wid not in only:
            continue
        wa, wb = a.workflows.get(wid), b.workflows.get(wid)
        if (wa.model_dump() if wa else None) != (wb.model_dump() if wb else None):
            out.append(f"workflow:{wid}")
        keys = set(wa.tasks if wa else []) | set(wb.tasks if wb else [])
        for k in sorted(keys):
            ta, tb = a.tasks.get(k), b.tasks.get(k)
            if (ta.model_dump() if ta else None) != (tb.model_dump() if tb else None):
                out.append(f"task:{k}")
    if only is None:
        for aid in sorted(set(a.agents) | set(b.agents)):
            x, y = a.agents.get(aid), b.agents.get(aid)
            if (x.model_dump() if x else None) != (y.model_dump() if y else None):
                out.append(f"agent:{aid}")
    return out


@analysis("log_replay", "the in-memory state against the state rebuilt from the stored log")
async def log_replay(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    rebuilt, n, cp = await replay_state(engine)
    if rebuilt is None:
        return [Finding("log_replay", "low", "log", "no stored log to replay (in-memory engine)", {"store": None})]
    segs = diff_segments(engine.state, rebuilt, only)
    same = rebuilt.state_hash() == engine.state.state_hash()
    return [
        Finding(
            "log_replay",
            "critical" if segs else "info",
            "log",
            f"replay of {n} event(s) after checkpoint {cp} "
            + ("matches the live state" if same and not segs else f"differs in {len(segs)} segment(s)"),
            {
                "replayed_events": n,
                "from_checkpoint": cp,
                "live_hash": engine.state.state_hash(),
                "replayed_hash": rebuilt.state_hash(),
                "differing_segments": segs[:30],
            },
        )
    ]


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


@analysis("conflicts", "allocations and guarantees that over-commit the capacity")
async def conflicts(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    cap = engine.config.capacity
    act = [w for w in s.workflows.values() if w.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED)]
    tot = {
        "cpu_cores": sum(w.allocation.cpu_cores for w in act),
        "memory_gb": sum(w.allocation.memory_gb for w in act),
        "agents": sum(w.allocation.agents for w in act),
    }
    capd = {"cpu_cores": cap.cpu_cores, "memory_gb": cap.memory_gb, "agents": float(cap.agents)}
    for k, v in tot.items():
        if v > capd[k]:
            out.append(
                Finding(
                    "conflicts",
                    "medium",
                    f"allocation:{k}",
                    f"allocations total {v:g} {k}, over the capacity {capd[k]:g}",
                    {"total": v, "capacity": capd[k], "workflows": {w.id: getattr(w.allocation, k) for w in act}},
                )
            )
    g = [w for w in act if w.guarantee is not None]
    gc = sum(w.guarantee.cpu_cores for w in g if w.guarantee)
    gm = sum(w.guarantee.memory_gb for w in g if w.guarantee)
    if g:
        out.append(
            Finding(
                "conflicts",
                "high" if gc > cap.cpu_cores or gm > cap.memory_gb else "info",
                "guarantees",
                f"{len(g)} guarantee(s) reserve {gc:g} cores / {gm:g} GB of {cap.cpu_cores:g} / {cap.memory_gb:g}",
                {"guarantees": {w.id: w.guarantee.model_dump() for w in g if w.guarantee}},
            )
        )
    if not out:
        out.append(Finding("conflicts", "info", "allocation", "no over-commitment", {"totals": tot, "capacity": capd}))
    return out


# -- choosing analyses ----------------------------------------------------------------

FOCUS_WORDS: list[tuple[str, list[str]]] = [
    ("leak", ["resource_leaks"]),
    ("spinning", ["cpu_spinning"]),
    ("deadlock", ["stalled_agents", "dependency_chains"]),
    ("stall", ["stalled_agents"]),
    ("bottleneck", ["bottlenecks"]),
    ("contention", ["bottlenecks", "conflicts"]),
    ("conflict", ["conflicts"]),
    ("realloc", ["reallocation"]),
    ("waste", ["reallocation", "utilisation"]),
    ("allocation", ["utilisation", "reallocation"]),
    ("optimi", ["reallocation", "bottlenecks"]),
    ("scaling", ["pool_capacity"]),
    ("available_agents", ["pool_capacity"]),
    ("capacity", ["pool_capacity", "utilisation"]),
    ("process_health", ["agent_health", "stalled_agents"]),
    ("health", ["agent_health"]),
    ("exhaustion", ["utilisation", "resource_leaks"]),
    ("memory", ["utilisation", "resource_leaks"]),
    ("cpu", ["utilisation", "cpu_spinning"]),
    ("communication", ["network"]),
    ("network", ["network"]),
    ("partition", ["network"]),
    ("connectivity", ["network"]),
    ("bandwidth", ["network"]),
    ("mesh", ["network"]),
    ("latency", ["network", "performance_trend"]),
    ("fault_tolerance", ["network", "agent_health"]),
    ("critical_path", ["critical_paths"]),
    ("dependency", ["dependency_chains"]),
    ("failure", ["agent_health", "failures"]),
    ("root_cause", ["agent_health", "failures"]),
    ("event", ["coordination_overhead"]),
    ("coordination", ["coordination_overhead"]),
    ("synchron", ["state_consistency", "log_replay"]),
    ("corruption", ["state_consistency", "log_replay"]),
    ("consistency", ["state_consistency"]),
    ("transaction", ["log_replay"]),
    ("history", ["log_replay"]),
    ("reconstruction", ["log_replay"]),
    ("audit", ["state_consistency", "log_replay"]),
    ("checkpoint", ["checkpoint_integrity"]),
    ("rollback", ["checkpoint_integrity"]),
    ("recovery", ["checkpoint_integrity"]),
    ("backup", ["checkpoint_integrity"]),
    ("throughput", ["performance_trend"]),
    ("response", ["performance_trend"]),
    ("trend", ["performance_trend"]),
    ("regression", ["performance_trend"]),
    ("degradation", ["performance_trend"]),
    ("efficien", ["performance_trend", "coordination_overhead"]),
    ("io_", ["bottlenecks"]),
]


def choose(words: list[str], default: list[str]) -> list[str]:
    """Analyses named by focus/scope words (in first-seen order), else ``default``."""
    out: list[str] = []
    for w in words:
        lw = w.lower()
        if lw in ANALYSES and lw not in out:
            out.append(lw)
            continue
        for key, names in FOCUS_WORDS:
            if key in lw:
                for n in names:
                    if n not in out:
                        out.append(n)
    return out or list(default)


async def run_analyses(
    engine: Engine, names: list[str], only: set[str] | None = None, window_s: float | None = None
) -> list[Finding]:
    """The named analyses; those over time compute over ``window_s`` when one is given."""
    out: list[Finding] = []
    for n in names:
        fn = WINDOWED.get(n)
        out.extend(await (fn(engine, only, window_s) if fn is not None else ANALYSES[n](engine, only)))
    return out


def report(findings: list[Finding], analyses: list[str]) -> dict[str, Any]:
    """Findings sorted by severity with counts: what analysis operations return."""
    ordered = sorted(findings, key=lambda f: (-SEVERITY_RANK.get(f.severity, 0), f.analysis, f.subject))
    counts: dict[str, int] = {}
    for f in ordered:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    worst = ordered[0].severity if ordered else "info"
    return {"analyses": analyses, "findings": [f.as_dict() for f in ordered], "counts": counts, "worst": worst}
