"""Budgets and rate limits on the local runtime, with examples/fake_agent.py as the agents:
a breach pauses the workflow's processes (state T) and opens the usage incident, the
operator's approval raises the budget and resumes them; under budget nothing happens;
a rate-limited pool starts nothing before its reset and resumes in stages after it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from core.config import Config
from core.incidents import decisions
from core.incidents.manager import IncidentManager
from core.models import TaskStatus
from core.runtimes.local import open_local
from core.workflow_file import parse_workflow_text
from tests.conftest import until
from tests.local_harness import PY, Recorder, group_members, header, task_toml, wf_status, workflow_toml

REPO = Path(__file__).resolve().parents[1]
AGENT = str(REPO / "examples" / "fake_agent.py")


def _task(tid: str, *args: str) -> str:
    return task_toml(tid, [PY, AGENT, *args], "shell", cpu=0.1, memory_gb=0.1)


def _workflow(wid: str, priority: int, tasks: str, budget: dict[str, int | float] | None = None) -> str:
    return workflow_toml(
        wid,
        tasks,
        phase="work",
        priority=priority,
        allocation={"cpu_cores": 2, "memory_gb": 2, "agents": 2},
        **({"budget": budget} if budget else {}),
    )


POOL3 = """
[[pools]]
name = "workers"
specializations = ["shell"]
size = 3
"""


async def _open(tmp: Path, text: str, **usage: Any) -> tuple[Any, Any, Recorder, IncidentManager]:
    wf = parse_workflow_text(text, "fleet.toml")
    cfg = Config.model_validate({"usage": usage}) if usage else Config()
    rec = Recorder()
    engine, runtime = await open_local(tmp / "fleet.db", wf, wf.specs(tmp), config=cfg, subscriber=rec)
    return engine, runtime, rec, IncidentManager(engine, approve_mode="manual")


def _procs(engine: Any, runtime: Any, wid: str) -> list[psutil.Process]:
    out = []
    for k in engine.state.workflows[wid].tasks:
        t = engine.state.tasks[k]
        if t.agent and t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
            pgid = runtime.task_pgid(t.agent)
            if pgid:
                out += group_members(pgid)
    return out


def _states(procs: list[psutil.Process]) -> set[str]:
    out = set()
    for p in procs:
        try:
            out.add(p.status())
        except psutil.Error:
            out.add("gone")
    return out


async def pumped(engine: Any, mgr: IncidentManager, cond: Callable[[], Any], what: Any, timeout: float) -> None:
    """conftest's ``until``, each check after what the console does each cycle: the
    incident manager pumps, the engine flushes."""

    async def cycle() -> None:
        await mgr.pump()
        await engine.flush()

    await until(cond, what, timeout, poll=0.1, step=cycle)


async def until_paused(engine: Any, mgr: IncidentManager, procs: list[psutil.Process], timeout: float) -> None:
    """Until every process of ``procs`` is stopped (T)."""
    await pumped(
        engine,
        mgr,
        lambda: _states(procs) == {psutil.STATUS_STOPPED},
        lambda: f"stopped (T): {_states(procs)}",
        timeout,
    )


async def until_resumed(engine: Any, mgr: IncidentManager, procs: list[psutil.Process], timeout: float) -> None:
    """Until no process of ``procs`` is stopped."""
    await pumped(
        engine, mgr, lambda: psutil.STATUS_STOPPED not in _states(procs), lambda: f"resumed: {_states(procs)}", timeout
    )


@pytest.mark.slow
async def test_a_budget_breach_pauses_the_processes_and_the_approved_raise_resumes_them(tmp_path: Path) -> None:
    spend = ("--format", "opsdeck", "--turns", "200", "--interval", "0.5", "--input-tokens", "300")
    frugal = _task("c", "--format", "claude", "--turns", "2", "--interval", "0.1")
    text = (
        header(pools=POOL3)
        + _workflow("runaway", 30, _task("a", *spend) + _task("b", *spend), {"tokens": 4000, "warn_share": 0.5})
        + _workflow("frugal", 20, frugal, {"tokens": 1000000})
    )
    engine, runtime, rec, mgr = await _open(tmp_path, text, hold_s=2.0)
    try:
        await pumped(engine, mgr, lambda: mgr.open_for("usage-exhaustion") is not None, "a usage incident", 60)
        inc = mgr.open_for("usage-exhaustion")
        assert inc is not None and inc.affected_workflows == ["runaway"]
        assert rec.of("BUDGET_WARNING") and rec.of("BUDGET_EXCEEDED")
        assert engine.state.usage.workflows["runaway"].tokens >= 4000
        procs = _procs(engine, runtime, "runaway")
        assert procs and psutil.STATUS_STOPPED not in _states(procs), "nothing is paused before the approval"
        decisions.approve(engine, inc.plans[-1], actor="tester")
        await until_paused(engine, mgr, procs, 30)
        paused_at = time.monotonic()
        assert engine.state.workflows["runaway"].status.value == "paused"
        await until_resumed(engine, mgr, procs, 30)
        assert time.monotonic() - paused_at >= 1.0, "the raise waits until spending has stopped for the hold period"
        st = engine.state.usage.budget_of("workflow", "runaway")
        assert st is not None and st.budget.tokens is not None and st.budget.tokens > 4000 and not st.exceeded
        raised = [e for e in rec.of("BUDGET_SET") if e.actor.startswith("plan:")]
        assert raised and raised[-1].data["budget"]["tokens"] == st.budget.tokens
        assert engine.state.workflows["runaway"].status.value == "running"
        # Under its budget, the frugal workflow raised nothing and was never paused.
        await pumped(
            engine,
            mgr,
            lambda: wf_status(engine, "frugal") == "completed",
            lambda: (
                "the frugal workflow completed",
                wf_status(engine, "frugal"),
                [(t.id, t.status, t.attempts, t.context.last_output[-3:]) for t in engine.state.tasks.values()],
                [(a.id, a.status, a.current_task) for a in engine.state.agents.values()],
            ),
            30,
        )
        frugal_alerts = [
            e for e in rec.events if e.type in ("BUDGET_WARNING", "BUDGET_EXCEEDED") and e.data["name"] == "frugal"
        ]
        assert not frugal_alerts
        assert not [e for e in rec.of("TASK_PAUSED") if e.data["task"].startswith("frugal/")]
        assert engine.state.usage.workflows["frugal"].tokens == 2 * 1200
    finally:
        await runtime.shutdown()
        await engine.close()


@pytest.mark.slow
async def test_a_rate_limited_pool_starts_nothing_until_its_reset_then_resumes_in_stages(tmp_path: Path) -> None:
    limited = ("--format", "claude", "--turns", "1", "--interval", "0.1", "--rate-limit-on-attempt", "1")
    work = ("--format", "codex", "--turns", "2", "--interval", "0.2")
    tasks = _task("first", *limited, "--reset-in", "8") + "".join(_task(f"w{i}", *work) for i in range(4))
    engine, runtime, rec, mgr = await _open(tmp_path, header() + _workflow("fleet", 50, tasks), hold_s=2.0)
    mgr.approve_mode = "auto"
    try:
        await pumped(engine, mgr, lambda: rec.of("POOL_RATE_LIMITED"), "a rate limit recorded", 60)
        hold = rec.of("POOL_RATE_LIMITED")[0]
        reset_at = hold.data["reset_at"]
        assert hold.data["pool"] == "workers" and hold.data["source"] == "claude"
        assert reset_at > hold.ts + 3, "the reset time the agent reported (epoch after the pipe)"
        await pumped(
            engine,
            mgr,
            lambda: wf_status(engine, "fleet") == "completed",
            lambda: f"the workflow completed; last assignments: {rec.of('TASK_ASSIGNED')[-3:]}",
            90,
        )
        first = engine.state.any_workflow("fleet")
        assert first is not None
        after = [e for e in rec.of("TASK_ASSIGNED") if e.ts > hold.ts]
        assert after and min(e.ts for e in after) >= reset_at, (
            "nothing was dispatched to the held pool before its reset"
        )
        assert not [e for e in rec.of("TASK_FAILED") if e.data["task"] == "fleet/first"], "held, not failed"
        requeued = [e for e in rec.of("TASK_REASSIGNED") if e.data["reason"] == "rate_limited"]
        assert [e.data["task"] for e in requeued] == ["fleet/first"]
        # Resumed in stages after the reset: half the pool, then the hold lifted (the second stage
        # comes a hold period after the first, which may be after the workflow's last task).
        await pumped(
            engine,
            mgr,
            lambda: len(rec.of("POOL_HOLD_CHANGED")) >= 2,
            lambda: f"two hold changes: {rec.of('POOL_HOLD_CHANGED')}",
            60,
        )
        changes = rec.of("POOL_HOLD_CHANGED")
        assert [c.data["agents_allowed"] for c in changes] == [1, None]
        assert changes[-1].ts >= reset_at
        inc = next(i for i in engine.state.incidents.values() if i.scenario == "rate-limit")
        assert inc.status == "resolved" and inc.outcome.validated is True
    finally:
        await runtime.shutdown()
        await engine.close()


@pytest.mark.slow
async def test_a_run_still_going_after_its_limit_is_paused_until_the_reset(tmp_path: Path) -> None:
    limited = ("--format", "opsdeck", "--turns", "2", "--interval", "0.2", "--rate-limit-on-attempt", "1")
    tasks = _task("waits", *limited, "--reset-in", "6", "--wait-for-reset")
    engine, runtime, rec, mgr = await _open(tmp_path, header() + _workflow("fleet", 50, tasks))
    try:
        await pumped(engine, mgr, lambda: rec.of("POOL_RATE_LIMITED"), "a rate limit recorded", 60)
        reset_at = rec.of("POOL_RATE_LIMITED")[0].data["reset_at"]
        procs = _procs(engine, runtime, "fleet")
        assert procs
        await until_paused(engine, mgr, procs, 10)
        assert engine.state.tasks["fleet/waits"].status is TaskStatus.PAUSED and time.time() < reset_at
        await until_resumed(engine, mgr, procs, 30)
        assert time.time() >= reset_at - 0.5, "resumed at its pool's reset, not before"
        await pumped(engine, mgr, lambda: wf_status(engine, "fleet") == "completed", "the workflow completed", 30)
        t = engine.state.any_workflow("fleet")
        assert t is not None and not rec.of("TASK_FAILED") and not rec.of("TASK_REASSIGNED")
        resumed = [e for e in rec.of("TASK_RESUMED") if e.data.get("reason") == "rate_limit_reset"]
        assert len(resumed) == 1 and resumed[0].ts >= reset_at
    finally:
        await runtime.shutdown()
        await engine.close()
