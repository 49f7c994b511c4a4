"""Recovered resources as measured, never as reserved.

An action that pauses or stops tasks reports what their processes were using just
before (psutil on the local and Ray runtimes, the model on the simulated one) and
what they use once the action took effect: a SIGSTOPped process frees its CPU and
keeps its memory; a stopped one frees both. The reservations the scheduler counts
are reported beside it, labelled ``reserved``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ..models import TaskStatus
from ..runtimes.sampler import TaskMeasure
from .context import Context

SETTLE_S = 10.0
"""How long (wall clock) an action waits for the processes it signalled to be stopped or gone."""


@dataclass(frozen=True)
class Probe:
    """One task's processes measured before an action."""

    task: str
    agent: str
    before: TaskMeasure | None


def probe(ctx: Context, keys: list[str]) -> list[Probe]:
    """Measure the processes of ``keys`` (running or paused tasks) now."""
    rt = ctx.engine.runtime
    out = []
    for k in sorted(keys):
        t = ctx.state.tasks.get(k)
        if t is None or t.agent is None or t.status not in (TaskStatus.RUNNING, TaskStatus.PAUSED):
            continue
        out.append(Probe(k, t.agent, rt.measure_task(t.agent, k) if rt is not None else None))
    return out


def _want_gone(ctx: Context, p: Probe) -> bool:
    """The action took the task off its agent: its processes must end."""
    t = ctx.state.tasks.get(p.task)
    return t is None or t.agent != p.agent or t.status not in (TaskStatus.RUNNING, TaskStatus.PAUSED)


def _settled(ctx: Context, p: Probe, a: TaskMeasure | None) -> bool:
    if _want_gone(ctx, p):
        return a is None
    t = ctx.state.tasks.get(p.task)
    if t is not None and t.status is TaskStatus.PAUSED:
        return a is None or a.stopped
    return True


async def settle(ctx: Context, probes: list[Probe], timeout_s: float = SETTLE_S) -> dict[str, TaskMeasure | None]:
    """Measure the probed processes again once each is stopped (paused task) or gone
    (task taken off its agent), waiting at most ``timeout_s`` for real processes."""
    rt = ctx.engine.runtime
    live = [p for p in probes if p.before is not None]
    if rt is None or not live:
        return {}
    deadline = time.monotonic() + timeout_s
    while True:
        after = {
            p.task: rt.measure_task(p.agent, p.task, p.before.pid, p.before.create_time)  # type: ignore[union-attr]
            for p in live
        }
        real = any(p.before is not None and p.before.basis == "measured" for p in live)
        if not real or time.monotonic() >= deadline or all(_settled(ctx, p, after[p.task]) for p in live):
            return after
        await asyncio.sleep(0.05)


def _row(m: TaskMeasure) -> dict[str, Any]:
    return {
        "cpu_pct": m.cpu_pct,
        "rss_mb": m.rss_mb,
        "processes": m.processes,
        "state": "stopped" if m.stopped else "running",
    }


def recovered(ctx: Context, probes: list[Probe], after: dict[str, TaskMeasure | None]) -> dict[str, Any]:
    """What the probed processes no longer use: CPU of those now stopped or gone, memory
    of those gone (or whatever RSS they gave back), with each process's figures."""
    cap = ctx.engine.config.capacity
    cpu = rss = 0.0
    rows = []
    bases = set()
    for p in probes:
        b = p.before
        if b is None:
            rows.append({"task": p.task, "agent": p.agent, "measured": False, "why": "no process to measure"})
            continue
        bases.add(b.basis)
        a = after.get(p.task)
        freed_cpu = b.cpu_pct if a is None or a.stopped else 0.0
        freed_rss = b.rss_mb if a is None else max(0.0, b.rss_mb - a.rss_mb)
        cpu += freed_cpu
        rss += freed_rss
        rows.append(
            {
                "task": p.task,
                "agent": p.agent,
                "pid": b.pid,
                "before": _row(b),
                "after": _row(a) if a is not None else "gone",
                "freed": {"cpu_pct": round(freed_cpu, 2), "rss_mb": round(freed_rss, 2)},
            }
        )
    basis = "not measured" if not bases else bases.pop() if len(bases) == 1 else "mixed: " + ", ".join(sorted(bases))
    cores = cpu / 100.0
    gb = rss / 1024.0
    return {
        "basis": basis,
        "cpu_cores": round(cores, 3),
        "memory_mb": round(rss, 1),
        "memory_gb": round(gb, 3),
        "cpu": round(cores / cap.cpu_cores * 100.0, 2),
        "memory": round(gb / cap.memory_gb * 100.0, 2),
        "capacity": {"cpu_cores": cap.cpu_cores, "memory_gb": cap.memory_gb, "basis": cap.bases},
        "agents": sum(1 for p in probes if _want_gone(ctx, p)),
        "processes": rows,
    }
