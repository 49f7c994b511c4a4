"""Every slash command of the seed document runs for real against the demo fleet.

Each scenario starts from a fresh demo fleet that has run ten simulated minutes,
with the scenario's failure set up in the simulated runtime (failed agents, a
partition, a load spike, a degradation). The scenario's event lines are injected
and its commands run in document order. Each command must succeed and have an
observable effect: a change of state beyond the command counter, or findings with
evidence. At the end the log, replayed from scratch, rebuilds the same state.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from core.commands import REGISTRY, run_command
from core.event_types import EVENTS
from core.events import parse_line
from core.models import AgentStatus, TaskStatus, WorkflowStatus
from core.projection import State
from core.session import open_sim

from .commands_seed import SeedItem, seed_items

SCENARIOS = [
    "System Resource Exhaustion During Peak Load",
    "Agent Pool Failure with Workflow Dependency Chain",
    "Gradual Performance Degradation in Large-Scale Workflow",
    "State Synchronization Failure with Data Corruption Risk",
    "Distributed Communication Failure in Multi-Agent Coordination",
]
IGNORED_KEYS = {"seq", "clock", "commands_executed"}


def test_seed_has_every_scenario_and_its_commands() -> None:
    items = seed_items()
    commands = [i for i in items if i.kind == "command"]
    assert {i.scenario for i in items} == set(SCENARIOS)
    assert len(commands) >= 25
    for c in commands:
        spec = (
            REGISTRY.lookup(" ".join(c.text.split()[:2]))
            if not c.text.startswith("/subagents")
            else REGISTRY.lookup("subagents")
        )
        assert spec is not None, f"seed line {c.line}: {c.text.splitlines()[0]} is not in the registry"


async def _setup(engine: Any, scenario: str) -> None:
    rt = engine.runtime
    if scenario.startswith("System Resource"):
        rt.load_spike(3.0, 5.0, 900.0)
        rt.leak("agent_002", 2.0)
        await engine.advance(120)
    elif scenario.startswith("Agent Pool"):
        for a in ("agent_005", "agent_007", "agent_012"):
            rt.fail_agent(a, "cascade failure")
    elif scenario.startswith("Gradual Performance"):
        rt.degrade(0.0005)
        await engine.advance(600)
    elif scenario.startswith("State Synchronization"):
        await engine.checkpoint("manual", "before the scenario")
        await engine.advance(60)
    elif scenario.startswith("Distributed Communication"):
        rt.partition(["agent_003", "agent_008", "agent_011"])
        await engine.advance(150)


def _changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {k for k in after if k not in IGNORED_KEYS and before.get(k) != after.get(k)}


def _has_evidence(result: dict[str, Any]) -> bool:
    fs = result.get("findings") or []
    return bool(fs) and all(f.get("evidence") for f in fs)


def _check_specific(op: str, resp: dict[str, Any], engine: Any) -> None:
    """The seed's key operations, each checked against the state it must have changed."""
    s = engine.state
    r = resp["result"]
    if op == "emergency-reallocation":
        assert s.status_of("workflow_003") is WorkflowStatus.PAUSED
        pause = r["actions"][0]
        paused = pause["workflows"]["workflow_003"]["paused_tasks"]
        assert paused, "workflow_003 had running tasks"
        for k in paused:  # paused, not stopped: each keeps its agent, and the agent its task
            assert s.tasks[k].status is TaskStatus.PAUSED and s.tasks[k].agent
            assert engine.runtime.has_task(s.tasks[k].agent)
        assert (
            s.workflows["workflow_001"].guarantee is not None and s.workflows["workflow_001"].guarantee.cpu_cores == 4
        )
        assert s.workflows["workflow_002"].allocation.agents < s.workflows["workflow_002"].base_allocation.agents
        rec = pause["resource_recovery"]
        assert rec["basis"] == "simulated" and rec["agents"] == 0
        # a stopped process frees its CPU and keeps its memory
        assert rec["cpu_cores"] == pytest.approx(sum(s.tasks[k].cpu for k in paused), abs=1e-3)
        assert rec["memory_mb"] == 0
        assert pause["expected_recovery"] == {"cpu": 25, "memory": 30, "agents": 5, "basis": "operator's expectation"}
    elif op == "emergency-cleanup":
        assert r["actions"]["retired_idle_agents"] or r["resource_recovery"]["memory_gb"] > 0
        for name, pool in s.pools.items():
            assert sum(1 for a in s.live_agents() if a.pool == name) >= pool.min_size
    elif op == "gradual-resumption":
        res = s.resumptions[r["resumption"]]
        first = res.steps[0].limit
        assert first is not None and first.agents == 2  # conservative = half of workflow_003's 3 agents, rounded up
        assert s.status_of("workflow_003") is WorkflowStatus.RUNNING
        assert s.workflows["workflow_003"].stage_limit is not None
    elif op == "execute-dependency-recovery":
        reps = r["actions"][0]["replacements"]
        assert set(reps) == {"agent_005", "agent_007", "agent_012"}
        for failed, new in reps.items():
            assert s.agents[new].specializations == s.agents[failed].specializations
            assert s.agents[new].pool == "emergency_agents"
    elif op == "transfer-context":
        for a in ("agent_015", "agent_016", "agent_017"):
            assert a in s.agents and s.agents[a].status is not AgentStatus.FAILED
    elif op == "emergency-data-protection":
        assert s.workflows["migration_workflow_001"].frozen
        assert s.checkpoints[r["checkpoint"]].kind == "emergency"
    elif op == "execute-data-recovery":
        assert r["verified"] and r["workflows"] == ["migration_workflow_001"]
        assert not s.workflows["migration_workflow_001"].frozen
        assert r["replayed_events"] > 0


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_seed_scenario_commands_run_for_real(scenario: str, tmp_path: Path) -> None:
    items: list[SeedItem] = [i for i in seed_items() if i.scenario == scenario]
    engine = await open_sim(tmp_path / "seed.db", demo=True)
    try:
        await engine.advance(600)
        await _setup(engine, scenario)
        ran = 0
        for item in items:
            if item.kind == "event":
                engine.inject(parse_line(item.text))
                continue
            before = copy.deepcopy(engine.state.snapshot())
            resp = await run_command(engine, item.text, actor="seed-test")
            where = f"seed line {item.line}: {item.text.splitlines()[0]}"
            assert resp["status"] == "success", f"{where}: {resp}"
            assert resp["operation"].startswith("/")
            result = resp["result"]
            changed = _changed(before, engine.state.snapshot())
            assert changed or _has_evidence(result), f"{where}: no state change and no findings with evidence"
            assert engine.state.commands_executed == before["commands_executed"] + 1
            op = resp["operation"].split()[1]
            _check_specific(op, resp, engine)
            ran += 1
            await engine.advance(30)
        assert ran == sum(1 for i in items if i.kind == "command")
        # The log alone rebuilds the same state: every command was recorded.
        await engine.flush()
        replayed = State(EVENTS.folds)
        async for ev in engine.store.iter_events(0):  # type: ignore[union-attr]
            replayed.apply(ev)
        assert replayed.state_hash() == engine.state.state_hash()
        recorded = [e async for e in engine.store.iter_events(0) if e.type == "COMMAND_EXECUTED"]  # type: ignore[union-attr]
        assert len(recorded) == ran and all(e.actor == "seed-test" for e in recorded)
    finally:
        await engine.close()


async def test_gradual_resumption_waits_for_stable_utilisation(tmp_path: Path) -> None:
    """A later stage is applied only after utilisation held under the safe threshold."""
    engine = await open_sim(tmp_path / "r.db", demo=True)
    try:
        await engine.advance(600)
        await run_command(engine, "/coordination-hub pause workflow_003")
        engine.runtime.load_spike(8.0, 0.0, 300.0)  # type: ignore[union-attr]
        resp = await run_command(
            engine,
            """/workflow-recovery gradual-resumption '{"safety_checks": "standard",
          "stages": [{"stage": 1, "action": "resume_paused_workflow", "workflow": "workflow_003", "resource_limit": "conservative"},
                     {"stage": 2, "action": "lift_limits", "workflow": "workflow_003"}]}'""",
        )
        assert resp["status"] == "success", resp
        rid = resp["result"]["resumption"]
        await engine.advance(240)
        r = engine.state.resumptions[rid]
        assert r.next_step == 1 and r.status == "active", "no step while the spike keeps CPU over the threshold"
        await engine.advance(900)
        r = engine.state.resumptions[rid]
        assert r.status == "completed"
        stamps = [a.at for a in r.applied]
        assert stamps[1] >= 300.0 + 600.0 + r.hold_s - engine.config.intervals.sample_s
        assert engine.state.workflows["workflow_003"].stage_limit is None
    finally:
        await engine.close()
