"""What workflows hold and may hold: the figures allocation, balancing and the emergency share."""

from __future__ import annotations

from typing import Any

from ...models import Resources, TaskStatus
from ...scheduler import dispatch
from ..context import Context
from ..responses import CommandError


def held(ctx: Context, wf_ids: list[str] | None = None) -> dict[str, float]:
    """Resources running tasks hold now (all workflows, or the listed ones)."""
    s = ctx.state
    ids = wf_ids if wf_ids is not None else list(s.workflows)
    cpu = mem = 0.0
    n = 0
    for w in ids:
        u = s.in_use(w)
        cpu += u.cpu_cores
        mem += u.memory_gb
        n += u.agents
    return {"cpu_cores": round(cpu, 3), "memory_gb": round(mem, 3), "agents": n}


def recovery(ctx: Context, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the scheduler's reservations dropped by (basis ``reserved``: not what the
    processes used; see :mod:`core.commands.measured` for that)."""
    cap = ctx.engine.config.capacity
    cores = before["cpu_cores"] - after["cpu_cores"]
    gb = before["memory_gb"] - after["memory_gb"]
    return {
        "cpu": round(cores / cap.cpu_cores * 100.0, 2),
        "memory": round(gb / cap.memory_gb * 100.0, 2),
        "agents": int(before["agents"] - after["agents"]),
        "cpu_cores": round(cores, 3),
        "memory_gb": round(gb, 3),
        "basis": "reserved",
    }


def runnable_now(ctx: Context) -> int:
    """How many tasks the scheduler would start at this instant (a pure query)."""
    return len(dispatch(ctx.state, ctx.engine.config.capacity, ctx.now))


def check_limits(ctx: Context, wid: str, r: Resources) -> None:
    lim = ctx.engine.config.workflow_limits
    if r.cpu_cores > lim.cpu_cores or r.memory_gb > lim.memory_gb or r.agents > lim.agents:
        raise CommandError(
            "RESOURCE_LIMIT",
            f"{wid}: {r.model_dump()} exceeds the per-workflow limit "
            f"{lim.cpu_cores:g} cores / {lim.memory_gb:g} GB / {lim.agents} agents",
            {"workflow_id": wid},
        )


def shed(ctx: Context, wid: str, alloc: Resources, keep_critical: bool) -> dict[str, Any]:
    """Release running tasks of ``wid`` until it fits ``alloc``, critical path last."""
    s = ctx.state
    critical = set(s.critical_path(wid)) if keep_critical else set()
    running = [s.tasks[k] for k in sorted(s.running_by_wf.get(wid, ())) if s.tasks[k].status is TaskStatus.RUNNING]
    order = sorted((t for t in running if t.id not in critical), key=lambda t: (t.context.progress, t.id))
    released: list[str] = []

    def over() -> bool:
        u = s.in_use(wid)
        return u.agents > alloc.agents or u.cpu_cores > alloc.cpu_cores + 1e-9 or u.memory_gb > alloc.memory_gb + 1e-9

    while over() and order:
        t = order.pop(0)
        ctx.engine.release_task(t.id, reason="allocation_reduced", actor=ctx.actor)
        released.append(t.id)
    kept = sorted(k for k in critical if s.tasks[k].status is TaskStatus.RUNNING)
    return {"released_tasks": released, "kept_on_critical_path": kept, "still_over_allocation": over()}


async def live_limits(ctx: Context, workflows: list[str]) -> dict[str, Any]:
    """Re-limit the running processes of ``workflows`` to their allocation now (where
    the runtime runs OS processes) and summarise what each mechanism applied."""
    per = {w: await ctx.engine.relimit_workflow(w) for w in workflows}
    applies = any(r["applies"] for r in per.values())
    if not applies:
        reason = next(iter(per.values()))["reason"] if per else "no running task to re-limit"
        return {"applies": False, "reason": reason, "summary": f"running tasks not re-limited ({reason})"}
    done = sum(r["relimited"] for r in per.values())
    failed = sum(r["failed"] for r in per.values())
    unchanged = sorted(k for r in per.values() for k in r.get("unchanged", ()))
    mechs = sorted({k for r in per.values() for t in r["tasks"] if t.get("changed") for k in t.get("applied", {})})
    return {
        "applies": True,
        "workflows": per,
        "relimited": done,
        "unchanged": unchanged,
        "failed": failed,
        "mechanisms": mechs,
        "summary": f"{done} running task(s) re-limited, read back ({', '.join(mechs) or 'none'})"
        + (f", {len(unchanged)} already at that limit" if unchanged else "")
        + (f", {failed} failed" if failed else ""),
    }
