"""What a resource-exhaustion plan is credited with releasing: agent slots in use, not
idle agents retired (an idle agent holds no slot the agents utilisation counts), and a
basis an operator can read (no Python repr of a dict)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from core.commands import run_command
from core.config import Config
from core.incidents.kinds.resource_exhaustion import released_credit
from core.incidents.record import PlanRecord, StepRun
from core.models import AgentStatus
from core.session import open_sim


async def test_retiring_idle_agents_releases_no_agent_slot_in_use(tmp_path: Path) -> None:
    engine = await open_sim(tmp_path / "ops.db", demo=True)
    try:
        await engine.advance(600)
        s = engine.state
        idle = [a.id for a in s.live_agents() if a.status is AgentStatus.IDLE and not a.current_task]
        assert idle, "the demo fleet has idle agents after 10 minutes"
        before = engine.utilisation()["agents"]
        resp = await run_command(
            engine, """/coordination-hub emergency-cleanup '{"actions": ["idle_process_termination"]}'"""
        )
        assert resp["status"] == "success", resp
        retired = resp["result"]["actions"]["retired_idle_agents"]
        assert retired and all(s.agents[a].status is AgentStatus.RETIRED for a in retired)
        assert engine.utilisation()["agents"] == before, "idle agents held no slot in use"
        rec = resp["result"]["resource_recovery"]
        assert rec["agents"] == 0 and rec["agents_retired"] == len(retired)
    finally:
        await engine.close()


def _ctx(*results: dict[str, Any]) -> Any:
    rec = PlanRecord("PLAN-0001")
    for i, r in enumerate(results):
        rec.steps[i] = StepRun(i, "/x", "destructive", 0.0, {"resource_recovery": r}, ok=True)
    return SimpleNamespace(engine=SimpleNamespace(config=Config()), record=rec)


def test_the_credit_counts_slots_released_and_says_its_basis_in_words() -> None:
    cleanup = {
        "memory": 6.2,
        "agents": 0,
        "agents_retired": 6,
        "basis": {
            "memory_gb": "simulated (the simulated runtime's cache model)",
            "agents": "none in use (the agents retired were idle)",
            "capacity": {"cpu_cores": "default", "memory_gb": "default"},
        },
    }
    realloc = {"cpu": 20.0, "memory": 15.0, "agents": 2, "basis": "simulated"}
    credit = released_credit(_ctx(realloc, cleanup), {"cpu": 60.0, "memory": 50.0, "agents": 60.0})
    assert credit.figures["released_pct"]["agents"] == 10.0  # 2 of 20 slots, the retired 6 not counted
    assert credit.basis == "without what the plan's steps released, cpu would be at or over 75% now"
    bases = credit.figures["released_basis"]
    assert all(isinstance(b, str) and "{" not in b and "': " not in b for b in bases), bases
    assert "simulated" in bases
    assert "memory_gb: simulated (the simulated runtime's cache model)" in bases
    assert "capacity: cpu_cores default, memory_gb default" in bases


async def test_an_agents_recovery_target_is_met_by_a_share_of_capacity_not_a_count(tmp_path: Path) -> None:
    """A target is a percent: the agents retired are compared as a share of the agent
    capacity, not as their count (3 agents retired of 20 is 15%, not '3%')."""
    engine = await open_sim(tmp_path / "ops.db", demo=True)
    try:
        await engine.advance(600)
        resp = await run_command(
            engine,
            "/coordination-hub emergency-cleanup "
            """'{"actions": ["idle_process_termination"], "resource_recovery_target": {"agents": "10_percent"}}'""",
        )
        assert resp["status"] == "success", resp
        k = len(resp["result"]["actions"]["retired_idle_agents"])
        assert k > 0
        share = round(100.0 * k / engine.config.capacity.agents, 2)
        target = resp["result"]["targets"]["agents"]
        assert target["recovered_pct"] == share, (k, target)  # main: k
        assert target["met"] is (share >= 10.0)
    finally:
        await engine.close()
