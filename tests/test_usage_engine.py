"""Usage accounting in the engine (simulated runtime): sums per task/agent/workflow/pool,
budgets' warning and breach, rate-limit holds, and replay to the same state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.models import TaskStatus
from core.runtimes.sim import SimRuntime
from core.usage.models import Budget, RateLimitReport, UsageReport


def _engine(agents: int = 2) -> tuple[Engine, SimRuntime]:
    clock = VirtualClock()
    rt = SimRuntime(clock, seed=1)
    eng = Engine(config=Config(), clock=clock, runtime=rt)
    eng.create_pool("p", ["x"], 0, 20)
    for _ in range(agents):
        eng.add_agent("p")
    return eng, rt


def _wf(wf_id: str, n: int = 2, duration: float = 100) -> dict[str, Any]:
    tasks = [{"id": f"t{i}", "specialization": "x", "duration_s": duration} for i in range(n)]
    return {"id": wf_id, "priority": 50, "phases": [{"name": "p1", "tasks": tasks}]}


def _report(inp: int, out: int, cost: float = 0.0, **kw: Any) -> UsageReport:
    return UsageReport(input_tokens=inp, output_tokens=out, cost_usd=cost, **kw)


def _running(eng: Engine) -> list[tuple[str, str, int]]:
    return sorted((t.agent or "", t.id, t.attempts) for t in eng.state.tasks.values() if t.status is TaskStatus.RUNNING)


async def test_reports_are_totals_summed_once_per_task_agent_workflow_and_pool() -> None:
    eng, _ = _engine()
    eng.create_workflow(_wf("w"))
    eng.start_workflow("w")
    await eng.advance(1)
    (a1, k1, n1), (a2, k2, n2) = _running(eng)
    usage_events: list[str] = []
    eng.subscribe(lambda ev: usage_events.append(ev.type) if ev.type == "TASK_USAGE" else None)
    eng.spend.record(a1, k1, n1, _report(100, 10, 0.5))
    eng.spend.record(a1, k1, n1, _report(100, 10, 0.5))  # the same totals again: nothing new
    eng.spend.record(a1, k1, n1, _report(150, 20, 0.75))
    eng.spend.record(a2, k2, n2, _report(1000, 100, 1.0))
    led = eng.state.usage
    assert led.tasks[k1].total.tokens == 170 and led.tasks[k1].total.cost_usd == 0.75
    assert led.workflows["w"].tokens == 1270 and led.workflows["w"].cost_usd == 1.75
    assert led.pools["p"].tokens == 1270 and led.agents[a2].tokens == 1100
    assert len(usage_events) == 3, "a report with nothing new records nothing"


async def test_budget_warns_at_its_share_then_breaches_once(tmp_path: Path) -> None:
    eng, _ = _engine()
    eng.create_workflow(_wf("w"))
    eng.start_workflow("w")
    await eng.advance(1)
    seen: list[str] = []
    eng.subscribe(lambda ev: seen.append(ev.type) if ev.type.startswith("BUDGET_") else None)
    eng.spend.set_budget("workflow", "w", Budget(tokens=1000), warn_share=0.5)
    (a1, k1, n1), _ = _running(eng)
    eng.spend.record(a1, k1, n1, _report(300, 0))
    assert seen == ["BUDGET_SET"], "under the warning share: nothing raised"
    eng.spend.record(a1, k1, n1, _report(600, 0))
    eng.spend.record(a1, k1, n1, _report(700, 0))
    assert seen == ["BUDGET_SET", "BUDGET_WARNING"], "the warning is raised once"
    eng.spend.record(a1, k1, n1, _report(1000, 5))
    eng.spend.record(a1, k1, n1, _report(1200, 5))
    assert seen[-1] == "BUDGET_EXCEEDED" and seen.count("BUDGET_EXCEEDED") == 1
    st = eng.state.usage.budget_of("workflow", "w")
    assert st is not None and st.exceeded
    eng.spend.set_budget("workflow", "w", Budget(tokens=5000))
    st = eng.state.usage.budget_of("workflow", "w")
    assert st is not None and not st.exceeded and not st.warned, "a raised budget starts over"


async def test_a_rate_limited_pool_holds_until_reset_and_the_task_is_not_failed() -> None:
    eng, _rt = _engine(agents=2)
    eng.create_workflow(_wf("w", n=4, duration=50))
    eng.start_workflow("w")
    await eng.advance(1)
    (a1, k1, n1), _ = _running(eng)
    now = eng.clock.now()
    eng.spend.record(
        a1, k1, n1, _report(10, 1, rate_limit=RateLimitReport(source="opsdeck", reason="429", reset_at=now + 300))
    )
    assert "p" in eng.state.usage.holds
    eng.task_failed(a1, k1, "exit status 1")
    t = eng.state.tasks[k1]
    assert t.status is TaskStatus.PENDING, "held, not failed"
    assigned: list[float] = []
    eng.subscribe(lambda ev: assigned.append(ev.ts) if ev.type == "TASK_ASSIGNED" else None)
    await eng.advance(250)
    assert not assigned, "no dispatch to the held pool before its reset"
    await eng.advance(100)
    assert assigned and min(assigned) >= now + 300
    assert len(_running(eng)) == 1, "after the reset the hold lets one agent work"
    eng.spend.release_pool("p", None)
    await eng.advance(1)
    assert len(_running(eng)) == 2 and "p" not in eng.state.usage.holds


async def test_a_failure_without_a_rate_limit_still_fails() -> None:
    eng, _ = _engine(agents=1)
    eng.create_workflow(_wf("w", n=1))
    eng.start_workflow("w")
    await eng.advance(1)
    ((a1, k1, _n1),) = _running(eng)
    eng.task_failed(a1, k1, "exit status 1")
    assert not eng.state.usage.holds
    assert eng.state.tasks[k1].status is TaskStatus.PENDING and eng.state.tasks[k1].attempts == 1


async def test_usage_replays_to_the_same_state(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    clock = VirtualClock()
    rt = SimRuntime(clock, seed=1)
    eng = await Engine.open(db, config=Config(), clock=clock, runtime=rt)
    eng.create_pool("p", ["x"], 0, 20)
    eng.add_agent("p")
    eng.create_workflow(_wf("w", n=1))
    eng.start_workflow("w")
    await eng.advance(1)
    ((a1, k1, n1),) = _running(eng)
    eng.spend.set_budget("pool", "p", Budget(cost_usd=2.0))
    eng.spend.record(a1, k1, n1, _report(10, 1, 2.5))
    h = eng.state.state_hash()
    assert eng.state.usage.budget_of("pool", "p").exceeded  # type: ignore[union-attr]
    await eng.close()
    again = await Engine.open(db, config=Config(), clock=VirtualClock())
    try:
        assert again.state.state_hash() == h
        assert again.state.usage.pools["p"].cost_usd == 2.5
    finally:
        await again.close()
