"""Analyses of resources: leaks, CPU spinning, utilisation, pool capacity, reallocation, over-commitment."""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from ...engine import Engine
from ...event_types import (
    TASK_PROGRESS,
)
from ...models import AgentStatus, TaskStatus, WorkflowStatus
from .findings import AnalysisSet, Finding, active_workflows, lsq_slope, rate_slope
from .flow import _ready_by_spec

DECLARED = AnalysisSet()
analysis = DECLARED.analysis
windowed = DECLARED.windowed


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
        rate = rate_slope(pts) * 60.0  # MB per minute
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
        slope = lsq_slope(sysm) * 60.0
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


@analysis("reallocation", "capacity one workflow holds idle that another waits for")
async def reallocation(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    s = engine.state
    spare: list[tuple[str, int]] = []
    need: list[tuple[str, int]] = []
    for w in active_workflows(s, only):
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
    for w in sorted(active_workflows(s, only), key=lambda w: -w.priority):
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
