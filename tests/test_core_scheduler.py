"""The scheduler: bands first, dependencies, allocations, guarantees, pause."""

from __future__ import annotations

from typing import Any

import pytest

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


def _many_workflows(eng: Engine, n: int, seed: int) -> None:
    import random

    rng = random.Random(seed)
    for i in range(n):
        spec = _wf(f"m{i:04d}", rng.choice([10, 45, 75, 95]), n=rng.randint(1, 4), duration=rng.choice([10, 30, 60]))
        spec["phases"][0]["tasks"][0]["cpu"] = rng.choice([0.5, 1.0, 2.0])
        eng.create_workflow(spec)
        eng.start_workflow(f"m{i:04d}")


@pytest.mark.slow
async def test_the_dispatch_queue_decides_as_the_full_scan(monkeypatch: Any) -> None:
    """Every dispatch of a busy run (300 workflows of four bands on 6 agents, pauses,
    allocation changes, a guarantee, a failed agent) assigns exactly what the scan
    over every workflow (the scheduler before its queue) assigns, in the same order."""
    import core.engine.bridge as bridge
    from bench.dispatch_reference import scan_dispatch

    real = bridge.dispatch
    assigned: list[int] = []

    def both(state: Any, capacity: Any, now: float) -> list[tuple[str, str]]:
        out = real(state, capacity, now)
        assert out == scan_dispatch(state, capacity, now)
        assigned.append(len(out))
        return out

    monkeypatch.setattr(bridge, "dispatch", both)
    eng, rt = _engine(agents=6)
    _many_workflows(eng, 300, seed=4)
    await eng.advance(200)
    paused = sorted(eng.state.active)[0]
    eng.pause_workflow(paused)
    eng.set_allocation(sorted(eng.state.active)[1], Resources(cpu_cores=1, memory_gb=1, agents=1))
    eng.reserve(sorted(eng.state.active)[2], Resources(cpu_cores=2, memory_gb=2, agents=2))
    rt.fail_agent(sorted(eng.state.agents)[0])
    await eng.advance(2000)
    eng.resume_workflow(paused)
    await eng.advance(30_000)
    assert sum(assigned) > 300 and len(assigned) > 100
    assert not eng.state.active  # all ran to the end


async def test_dispatch_stops_when_the_agents_are_used(monkeypatch: Any) -> None:
    """With every agent busy, dispatch looks at no workflow: it returns before reading
    the queue (the scan visited each of them on every dispatch)."""
    from core.scheduler import dispatch

    eng, _ = _engine(agents=2)
    _many_workflows(eng, 50, seed=1)
    await eng.advance(1)
    assert sum(1 for a in eng.state.agents.values() if a.current_task) == 2

    class Counting(list):  # type: ignore[type-arg]
        reads = 0

        def __iter__(self):  # type: ignore[no-untyped-def]
            Counting.reads += 1
            return super().__iter__()

    eng.state.dispatch_order = Counting(eng.state.dispatch_order)
    assert dispatch(eng.state, eng.config.capacity, eng.clock.now()) == []
    assert Counting.reads == 0
    eng.add_agent("p")  # one idle agent: the queue is read, and the highest band gets it
    out = dispatch(eng.state, eng.config.capacity, eng.clock.now())
    assert Counting.reads == 1 and len(out) == 1
    top = eng.state.dispatch_order[0][0]
    assert -eng.state.band_rank(out[0][0].split("/")[0]) == top or not eng.state.ready.get(out[0][0].split("/")[0])


async def test_dispatch_runs_once_per_instant_not_once_per_finished_task(monkeypatch: Any) -> None:
    """Tasks finishing at the same simulated instant are followed by one dispatch that
    fills every agent they freed (what keeps bench/event_pipeline's mix at one dispatch
    per ~54 events), and no finish is left without a dispatch: the workflow runs to the end."""
    import core.engine.bridge as bridge

    real = bridge.dispatch
    assigned: list[int] = []

    def counted(state: Any, capacity: Any, now: float) -> list[tuple[str, str]]:
        out = real(state, capacity, now)
        assigned.append(len(out))
        return out

    monkeypatch.setattr(bridge, "dispatch", counted)
    eng, _ = _engine(agents=4)
    done: list[str] = []
    eng.subscribe(lambda ev: done.append(ev.type) if ev.type.endswith("_COMPLETED") else None)
    eng.create_workflow(_wf("w", 50, n=40, duration=0))
    eng.start_workflow("w")
    await eng.advance(10)
    assert done.count("TASK_COMPLETED") == 40 and done.count("WORKFLOW_COMPLETED") == 1
    assert [n for n in assigned if n] == [4] * 10  # every dispatch that assigns fills all four agents
    assert len(assigned) <= 12


async def test_an_agent_of_several_specializations_is_assigned_once() -> None:
    """An idle agent offered in two pools (specializations x and y) is assigned once, though
    ready tasks of both wait, and the next x task goes to another agent; agents of one
    specialization each get a task of their own."""
    from core.scheduler import dispatch

    eng, _ = _engine(agents=1, specs=("x", "y"))  # its agent: the lowest id, popped first
    eng.create_pool("q", ["x"], 0, 20)
    eng.add_agent("q")
    wf = _wf("both", 50, n=3)
    wf["phases"][0]["tasks"][1]["specialization"] = "y"
    eng.create_workflow(wf)
    eng.emit("WORKFLOW_STARTED", "coordination", "workflow", {"workflow_id": "both", "priority": 50, "band": "normal"})
    out = dispatch(eng.state, eng.config.capacity, eng.clock.now())
    assert out == [("both/t0", min(eng.state.agents)), ("both/t2", max(eng.state.agents))]

    single, _ = _engine(agents=3)
    single.create_workflow(_wf("many", 50, n=5))
    single.emit(
        "WORKFLOW_STARTED", "coordination", "workflow", {"workflow_id": "many", "priority": 50, "band": "normal"}
    )
    out = dispatch(single.state, single.config.capacity, single.clock.now())
    assert sorted(a for _, a in out) == sorted(single.state.agents) and len({k for k, _ in out}) == 3


async def test_an_agent_in_two_pools_beside_an_agent_in_none_is_assigned_once() -> None:
    """An idle agent of no specialization is offered in no pool: beside one offered in two,
    the pools hold as many entries as there are idle agents, yet one agent is in both."""
    from core.scheduler import dispatch

    clock = VirtualClock()
    eng = Engine(config=Config(), clock=clock, runtime=SimRuntime(clock, seed=1))
    eng.create_pool("none", [], 0, 20)
    eng.add_agent("none")
    eng.create_pool("xy", ["x", "y"], 0, 20)
    eng.add_agent("xy")
    wf = _wf("both", 50, n=2)
    wf["phases"][0]["tasks"][1]["specialization"] = "y"
    eng.create_workflow(wf)
    eng.emit("WORKFLOW_STARTED", "coordination", "workflow", {"workflow_id": "both", "priority": 50, "band": "normal"})
    xy = next(a.id for a in eng.state.agents.values() if a.pool == "xy")
    assert dispatch(eng.state, eng.config.capacity, eng.clock.now()) == [("both/t0", xy)]
