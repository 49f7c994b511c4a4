"""Operations on resources: pools and agents, allocations, guarantees, limits, settings.

Each operation checks first and then changes: a refused one raises
:class:`~core.engine.EngineError` and emits nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..event_types import (
    AGENT_ALLOCATED,
    AGENT_DEALLOCATED,
    POOL_CREATED,
    RESOURCE_ALLOCATED,
    RESOURCE_LIMITED,
    RESOURCE_RESERVED,
    SETTING_CHANGED,
    TASK_LIMITED,
)
from ..models import TERMINAL_WORKFLOW, Resources, TaskStatus
from ..runtimes import NotApplicable
from ..runtimes.limits import cpu_limits
from .log import EngineError

if TYPE_CHECKING:
    from .contract import EngineCore


class ResourceOps:
    """The resource operations of one engine."""

    def __init__(self, engine: EngineCore) -> None:
        self.engine = engine

    # -- pools and agents ---------------------------------------------------------------
    def create_pool(self, name: str, specializations: list[str], min_size: int = 0, max_size: int = 20) -> None:
        e = self.engine
        if name in e.state.pools:
            raise EngineError("POOL_EXISTS", f"pool {name!r} exists")
        e.emit(
            POOL_CREATED,
            "resource",
            "agents",
            {"pool": {"name": name, "specializations": specializations, "min_size": min_size, "max_size": max_size}},
        )

    def next_agent_id(self) -> str:
        agents = self.engine.state.agents
        n = len(agents) + 1
        while f"agent_{n:03d}" in agents:
            n += 1
        return f"agent_{n:03d}"

    def add_agent(
        self, pool: str, specializations: list[str] | None = None, agent_id: str | None = None, actor: str | None = None
    ) -> str:
        e = self.engine
        p = e.state.pools.get(pool)
        if p is None:
            raise EngineError("POOL_NOT_FOUND", f"no pool {pool!r}", {"known": sorted(e.state.pools)})
        live = list(e.state.live_agents())
        if len(live) >= e.config.capacity.agents:
            raise EngineError("RESOURCE_EXHAUSTED", f"agent capacity {e.config.capacity.agents} reached")
        in_pool = sum(1 for a in live if a.pool == pool)
        if in_pool >= p.max_size:
            raise EngineError("RESOURCE_EXHAUSTED", f"pool {pool!r} is at its maximum size {p.max_size}")
        aid = agent_id or self.next_agent_id()
        if aid in e.state.agents:
            raise EngineError("AGENT_EXISTS", f"agent {aid!r} exists")
        e.emit(
            AGENT_ALLOCATED,
            "resource",
            "agents",
            {"agent": aid, "pool": pool, "specializations": specializations or list(p.specializations)},
            actor=actor,
        )
        e.telemetry.liveness[aid] = e.clock.now()
        if e.runtime is not None:
            e.runtime.spawn_agent(e.state.agents[aid])
        e.request_dispatch()
        return aid

    def retire_agent(self, agent_id: str, actor: str | None = None) -> None:
        e = self.engine
        a = e.state.agents.get(agent_id)
        if a is None:
            raise EngineError("AGENT_NOT_FOUND", f"no agent {agent_id!r}")
        if a.current_task:
            e.release_task(a.current_task, reason="agent_retired", actor=actor)
        e.emit(AGENT_DEALLOCATED, "resource", "agents", {"agent": agent_id, "pool": a.pool}, actor=actor)
        if e.runtime is not None:
            e.runtime.retire_agent(agent_id)

    # -- allocations ----------------------------------------------------------------------
    def set_allocation(self, wf_id: str, alloc: Resources, actor: str | None = None, base: bool = False) -> Resources:
        e = self.engine
        before = e.workflows.changeable(wf_id).allocation.model_copy()
        e.emit(
            RESOURCE_ALLOCATED,
            "resource",
            "allocation",
            {"workflow_id": wf_id, "allocation": alloc.model_dump(), "previous": before.model_dump(), "base": base},
            actor=actor,
        )
        e.request_dispatch()
        return before

    def reserve(self, wf_id: str, guarantee: Resources | None, actor: str | None = None) -> None:
        e = self.engine
        e.workflows.changeable(wf_id)
        cap = e.config.capacity
        if guarantee is not None:
            others = [
                w.guarantee
                for w in e.state.workflows.values()
                if w.id != wf_id and w.guarantee is not None and w.status not in TERMINAL_WORKFLOW
            ]
            cpu = guarantee.cpu_cores + sum(g.cpu_cores for g in others)
            mem = guarantee.memory_gb + sum(g.memory_gb for g in others)
            if cpu > cap.cpu_cores or mem > cap.memory_gb:
                raise EngineError(
                    "RESOURCE_EXHAUSTED",
                    f"guarantees would total {cpu:g} cores / {mem:g} GB, over the capacity {cap.cpu_cores:g} / {cap.memory_gb:g}",
                )
        e.emit(
            RESOURCE_RESERVED,
            "resource",
            "allocation",
            {"workflow_id": wf_id, "guarantee": guarantee.model_dump() if guarantee else None},
            actor=actor,
        )
        e.request_dispatch()

    def set_stage_limit(self, wf_id: str, limit: Resources | None, actor: str | None = None) -> None:
        e = self.engine
        e.workflows.changeable(wf_id)
        e.emit(
            RESOURCE_LIMITED,
            "resource",
            "allocation",
            {"workflow_id": wf_id, "limit": limit.model_dump() if limit else None},
            actor=actor,
        )
        e.request_dispatch()

    def cpu_limits(self, wf_id: str, task_id: str) -> dict[str, float | int]:
        """The CPU limits a running task of ``wf_id`` should have under its allocation
        now (``runtimes.limits.cpu_limits``)."""
        state = self.engine.state
        wf = state.workflows[wf_id]
        t = state.tasks[task_id]
        running = max(len(state.running_by_wf.get(wf_id, ())), 1)
        return cpu_limits(
            wf.band.value,
            wf.allocation.cpu_cores,
            wf.base_allocation.cpu_cores,
            wf.guarantee is not None,
            running,
            t.cpu,
        )

    async def relimit_workflow(self, wf_id: str) -> dict[str, Any]:
        """Bring the OS limits of ``wf_id``'s running tasks in line with its allocation
        and guarantee now, on runtimes whose tasks are processes; elsewhere say so."""
        e = self.engine
        e.workflows.live(wf_id)
        rt = e.runtime
        if rt is None:
            return {
                "applies": False,
                "runtime": None,
                "reason": "no runtime runs the tasks: only the allocation changed",
            }
        targets = [
            (t.agent, t.id, self.cpu_limits(wf_id, t.id))
            for key in sorted(e.state.running_by_wf.get(wf_id, ()))
            if (t := e.state.tasks[key]).agent and t.status is TaskStatus.RUNNING
        ]
        try:
            results = await rt.relimit(targets)
        except NotApplicable as exc:
            return {"applies": False, "runtime": rt.name, "reason": f"{exc}: only the allocation changed"}
        for r in results:
            if r.get("applied") and r.get("changed"):  # read back: a limit that already held is no change
                e.emit(
                    TASK_LIMITED,
                    "resource",
                    "allocation",
                    {
                        "task": r["task"],
                        "agent": r["agent"],
                        "workflow_id": wf_id,
                        "applied": r["applied"],
                        "mechanism": r.get("mechanism"),
                    },
                )
        return {
            "applies": True,
            "runtime": rt.name,
            "tasks": results,
            "relimited": sum(1 for r in results if r.get("applied") and r.get("changed")),
            "unchanged": sorted(r["task"] for r in results if r.get("applied") and not r.get("changed")),
            "failed": sum(1 for r in results if r.get("errors")),
        }

    def set_setting(self, key: str, value: Any, actor: str | None = None) -> None:
        self.engine.emit(SETTING_CHANGED, "system", "settings", {"key": key, "value": value}, actor=actor)
