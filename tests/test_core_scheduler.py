"""The scheduler: bands first, dependencies, allocations, guarantees, pause."""

from __future__ import annotations

from typing import Any

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.models import Resources
from core.runtimes.sim import SimRuntime


def _engine(agents: int = 2, specs: tuple[str, ...] = ("x",)) -> tuple[Engine, SimRuntime]:
    clock = VirtualClock()
    rt = SimRuntime(clock, seed=1)
    eng = Engine(config=Config(), clock=clock, runtime=rt)
    eng.create_pool("p", list(specs), 0, 20)
    for _ in range(agents):
        eng.add_agent("p")
    return eng, rt


def _wf(
    wf_id: str,
    priority: int,
    n: int = 2,
    spec: str = "x",
    duration: float = 100,
    deps: list[str] | None = None,
    alloc: dict[str, Any] | None = None,
    chain: bool = False,
) -> dict[str, Any]:
    tasks = []
    for i in range(n):
        t: dict[str, Any] = {
            "id": f"t{i}",
            "specialization": spec,
            "duration_s": duration,
            "cpu": 1.0,
            "memory_gb": 1.0,
        }
        if chain and i:
            t["depends_on"] = [f"t{i - 1}"]
        tasks.append(t)
    return {
        "id": wf_id,
        "priority": priority,
        "depends_on": deps or [],
        "allocation": alloc or {"cpu_cores": 4, "memory_gb": 8, "agents": 4},
        "phases": [{"name": "p1", "tasks": tasks}],
    }


async def test_highest_band_first_then_oldest() -> None:
    eng, _ = _engine(agents=1)
    eng.create_workflow(_wf("low", 10, n=1))
    eng.create_workflow(_wf("high_old", 75, n=1))
    eng.create_workflow(_wf("critical", 95, n=1))
    eng.create_workflow(_wf("high_new", 80, n=1))
    for w in ("low", "high_old", "critical", "high_new"):
        eng.start_workflow(w)
    order: list[str] = []
    eng.subscribe(lambda ev: order.append(ev.data["workflow_id"]) if ev.type == "TASK_ASSIGNED" else None)
    await eng.advance(1000)
    # Same band HIGH: the older workflow goes first even though its priority is lower.
    assert order == ["critical", "high_old", "high_new", "low"]


async def test_dependencies_within_and_between_workflows() -> None:
    eng, _ = _engine(agents=3)
    eng.create_workflow(_wf("a", 50, n=3, chain=True))
    eng.create_workflow(_wf("b", 90, n=1, deps=["a"]))
    eng.start_workflow("b")
    eng.start_workflow("a")
    done: list[tuple[float, str]] = []
    eng.subscribe(lambda ev: done.append((ev.ts, ev.data["task"])) if ev.type == "TASK_COMPLETED" else None)
    await eng.advance(1000)
    assert [k for _, k in done] == ["a/t0", "a/t1", "a/t2", "b/t0"]
    assert eng.state.status_of("b").value == "completed"
    # b waited for a although its priority is higher.
    assert done[-1][0] >= 400


async def test_allocation_caps_concurrency() -> None:
    eng, _ = _engine(agents=6)
    eng.create_workflow(_wf("w", 50, n=6, alloc={"cpu_cores": 2, "memory_gb": 8, "agents": 4}))
    eng.start_workflow("w")
    await eng.advance(1)
    assert eng.state.in_use("w").agents == 2  # two 1-core tasks fill 2 cores


async def test_guarantee_is_never_taken_by_a_lower_band() -> None:
    eng, _ = _engine(agents=10)
    eng.config.capacity.cpu_cores = 4
    eng.create_workflow(_wf("crit", 95, n=1, duration=10, alloc={"cpu_cores": 3, "memory_gb": 8, "agents": 3}))
    eng.create_workflow(_wf("low", 10, n=6, duration=500, alloc={"cpu_cores": 4, "memory_gb": 8, "agents": 6}))
    eng.start_workflow("crit")
    eng.start_workflow("low")
    eng.reserve("crit", Resources(cpu_cores=3, memory_gb=3, agents=3))
    await eng.advance(50)
    # crit's single task finished; its unused guarantee (3 cores) is still reserved while it runs.
    assert eng.state.status_of("crit").value == "completed"
    await eng.advance(1)
    # Released on completion: now low may use all 4 cores.
    assert eng.state.in_use("low").cpu_cores == 4
    eng2, _ = _engine(agents=10)
    eng2.config.capacity.cpu_cores = 4
    eng2.create_workflow(
        _wf("crit", 95, n=2, chain=True, duration=100, alloc={"cpu_cores": 3, "memory_gb": 8, "agents": 3})
    )
    eng2.create_workflow(_wf("low", 10, n=6, duration=500, alloc={"cpu_cores": 4, "memory_gb": 8, "agents": 6}))
    eng2.reserve("crit", Resources(cpu_cores=3, memory_gb=3, agents=3))
    eng2.start_workflow("crit")
    eng2.start_workflow("low")
    await eng2.advance(10)
    assert eng2.state.in_use("crit").cpu_cores == 1
    assert eng2.state.in_use("low").cpu_cores == 1  # 4 - 1 used - 2 still reserved


async def test_pause_stops_dispatch_and_pauses_running_tasks() -> None:
    eng, rt = _engine(agents=2)
    eng.create_workflow(_wf("w", 50, n=4, duration=100))
    eng.start_workflow("w")
    await eng.advance(50)
    paused = eng.pause_workflow("w")
    assert len(paused) == 2
    assert all(not rt.agents[eng.state.tasks[k].agent].task.running for k in paused)  # type: ignore[index,union-attr]
    await eng.advance(1000)
    assert all(eng.state.tasks[k].status.value == "paused" for k in paused)
    assert eng.state.status_of("w").value == "paused"
    eng.resume_workflow("w")
    await eng.advance(1000)
    assert eng.state.status_of("w").value == "completed"


async def test_failed_agent_task_goes_to_another_agent_with_its_context() -> None:
    eng, rt = _engine(agents=2)
    eng.create_workflow(_wf("w", 50, n=1, duration=300))
    eng.start_workflow("w")
    await eng.advance(100)
    t = eng.state.tasks["w/t0"]
    first = t.agent
    assert t.context.progress > 0.05
    progress = t.context.progress
    rt.fail_agent(first)  # type: ignore[arg-type]
    await eng.advance(1)
    assert t.agent != first and t.status.value == "running"
    assert t.context.progress == progress
    await eng.advance(300 * (1 - progress) + 5)
    assert t.status.value == "completed"
