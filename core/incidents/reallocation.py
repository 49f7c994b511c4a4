"""Which workflows give way when resources run out: the reallocation the
resource-exhaustion playbook proposes (pause and reduce by priority band, keep critical
paths, guarantee the highest-priority CRITICAL workflow what it holds)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models import BAND_RANK, Band, TaskStatus, WorkflowStatus

if TYPE_CHECKING:
    from ..engine import Engine


def reallocation(engine: Engine) -> dict[str, Any]:
    """Which workflows to pause, reduce and guarantee so that every resource falls
    under the safe threshold: lowest bands give way first; critical paths are kept;
    the highest-priority CRITICAL workflow gets a guarantee of what it holds."""
    s = engine.state
    cap = engine.config.capacity
    safe = engine.config.thresholds.safe / 100.0
    u = engine.utilisation()
    need_cpu = u["cpu"] / 100.0 * cap.cpu_cores - safe * cap.cpu_cores
    need_mem = u["memory"] / 100.0 * cap.memory_gb - safe * cap.memory_gb
    running = [w for w in s.workflows.values() if w.status is WorkflowStatus.RUNNING]
    running.sort(key=lambda w: (BAND_RANK[w.band], w.priority, w.id))
    pause: list[dict[str, Any]] = []
    reduce: list[dict[str, Any]] = []
    freed_cpu = freed_mem = 0.0
    freed_agents = 0

    def enough() -> bool:
        return freed_cpu >= need_cpu and freed_mem >= need_mem

    for w in running:
        if enough() or w.band is not Band.LOW:
            continue
        use = s.in_use(w.id)
        pause.append(
            {
                "workflow": w.id,
                "priority": w.priority,
                "band": w.band.value,
                "cpu": round(use.cpu_cores, 2),
                "memory_gb": round(use.memory_gb, 2),
                "agents": use.agents,
            }
        )
        freed_cpu += use.cpu_cores
        freed_mem += use.memory_gb
        freed_agents += use.agents
    for w in running:
        if enough() or w.band in (Band.LOW, Band.CRITICAL) or len(running) < 2:
            continue
        path = set(s.critical_path(w.id))
        keep = [
            s.tasks[k] for k in s.running_by_wf.get(w.id, ()) if k in path and s.tasks[k].status is TaskStatus.RUNNING
        ]
        use = s.in_use(w.id)
        kept_cpu = sum(t.cpu for t in keep)
        kept_mem = sum(t.memory_gb for t in keep)
        r_agents = max(0, w.allocation.agents - max(len(keep), 1))
        r_mem = max(0.0, w.allocation.memory_gb - max(kept_mem, 1.0))
        r_cpu = max(0.0, w.allocation.cpu_cores - max(kept_cpu, 0.5))
        if r_agents == 0 and r_mem <= 0:
            continue
        reduce.append(
            {
                "workflow": w.id,
                "priority": w.priority,
                "band": w.band.value,
                "reduction": {"agents": r_agents, "memory_gb": round(r_mem, 1), "cpu": round(r_cpu, 1)},
                "critical_path": sorted(path)[:5],
                "kept_tasks": sorted(t.id for t in keep),
            }
        )
        freed_cpu += use.cpu_cores - kept_cpu
        freed_mem += use.memory_gb - kept_mem
        freed_agents += use.agents - len(keep)
    crit = [w for w in running if w.band is Band.CRITICAL]
    guarantee = None
    if crit:
        top = max(crit, key=lambda w: (w.priority, w.id))
        use = s.in_use(top.id)
        guarantee = {
            "workflow": top.id,
            "priority": top.priority,
            "cpu": round(max(use.cpu_cores, min(top.allocation.cpu_cores, cap.cpu_cores * safe / 2)), 1),
            "memory_gb": round(max(use.memory_gb, min(top.allocation.memory_gb, cap.memory_gb * safe / 2)), 1),
        }
    return {
        "need": {"cpu_cores": round(max(need_cpu, 0.0), 2), "memory_gb": round(max(need_mem, 0.0), 2)},
        "pause": pause,
        "reduce": reduce,
        "guarantee": guarantee,
        "projected_recovery": {
            "cpu_cores": round(freed_cpu, 2),
            "memory_gb": round(freed_mem, 2),
            "agents": freed_agents,
        },
    }
