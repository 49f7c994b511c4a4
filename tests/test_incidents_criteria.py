"""Validation belongs to the incident: its criterion is fixed when it opens, so a plan
edited down to analyses, or rejected, never ends validated; the network-partition
plan acts (moves work, adds replacements) and its buffered reports merge exactly once."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.config import Config
from core.engine import Engine
from core.incident_models import Plan
from core.incidents import decisions
from core.incidents.drills import Drill, start_drill
from core.incidents.kinds import CATALOGUE, SCENARIOS
from core.incidents.merge import PartitionEvidence
from core.models import AgentStatus, TaskStatus
from core.session import open_sim

from .conftest import REPO, drill_until, opsdeck_cmd, waits_for_operator

BUDGET_S = 4 * 3600.0


async def _drill(tmp_path: Path, name: str) -> Drill:
    eng = await open_sim(tmp_path / f"{name}.db", Config(), seed=0, demo=True)
    return start_drill(eng, name, approve="manual")


async def _run_until_decision(drill: Drill) -> Plan:
    def due() -> bool:
        if waits_for_operator(drill.plan()):
            return True
        assert not drill.done, "the drill ended with no plan waiting for a decision"
        return False

    await drill_until(drill, due, "the plan's next step waiting for manual approval", BUDGET_S)
    plan = drill.plan()
    assert plan is not None
    return plan


async def _finish(drill: Drill) -> dict[str, Any]:
    await drill_until(drill, lambda: drill.done, lambda: f"the drill done (outcome {drill.outcome})", BUDGET_S)
    return await drill.report()


@pytest.mark.slow
@pytest.mark.parametrize("name", SCENARIOS)
async def test_a_plan_edited_down_to_analyses_is_not_validated(name: str, tmp_path: Path) -> None:
    drill = await _drill(tmp_path, name)
    try:
        plan = await _run_until_decision(drill)
        inc = drill.incident()
        assert inc is not None and inc.criteria == [CATALOGUE.get(name).criterion] and inc.validation_window_s > 0
        ran = [st.command for st in plan.steps if st.state == "completed"]
        decisions.edit(drill.engine, plan.id, ran + ["/resource-manager status"], actor="tester")
        decisions.approve(drill.engine, plan.id, actor="tester")
        rep = await _finish(drill)
        inc = drill.incident()
        assert inc is not None
        assert inc.criteria == [CATALOGUE.get(name).criterion], "an edit keeps the incident's criteria"
        assert not rep["validated"]
        assert inc.outcome.validated is False and inc.outcome.result != "validated"
        assert CATALOGUE.get(name).criterion in inc.outcome.reason
        if inc.status == "resolved":
            # The fault's work ended on its own within the window (rate-limit: the pool's
            # workflows completed): resolved, the plan not credited.
            assert inc.outcome.result == "recovered_without_plan"
            assert inc.outcome.recovery_time_s is None
        else:
            assert inc.status == "failed"
            assert drill.engine.state.plans[plan.id].state in ("rolled_back", "failed")
    finally:
        await drill.engine.close()


@pytest.mark.parametrize("name", SCENARIOS)
async def test_a_rejected_plan_is_not_validated(name: str, tmp_path: Path) -> None:
    drill = await _drill(tmp_path, name)
    try:
        plan = await _run_until_decision(drill)
        decisions.reject(drill.engine, plan.id, actor="tester", reason="not this")
        rep = await _finish(drill)
        assert not rep["validated"] and rep["plan_state"] == "rejected"
        inc = drill.incident()
        assert inc is not None and inc.status == "open"
        manual = [st for st in drill.engine.state.plans[plan.id].steps if st.approval == "manual"]
        assert manual and all(st.state == "rejected" for st in manual), "nothing that waits for an operator ran"
    finally:
        await drill.engine.close()


@pytest.mark.slow
def test_rejecting_the_partition_plan_from_stdin_fails_the_drill() -> None:
    p = subprocess.run(
        opsdeck_cmd("drill", "network-partition", "--approve", "manual", "--quiet"),
        input="/incident reject PLAN-0001\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
    assert "NOT VALIDATED" in p.stdout
    assert not [ln for ln in p.stdout.splitlines() if ln.startswith("NETWORK_RECOVERY_COMPLETED:")]


def _completions(eng: Engine) -> dict[str, int]:
    out: dict[str, int] = {}
    eng.subscribe(
        lambda ev: (
            out.__setitem__(ev.data["task"], out.get(ev.data["task"], 0) + 1) if ev.type == "TASK_COMPLETED" else None
        )
    )
    return out


@pytest.mark.slow
async def test_partition_plan_moves_work_and_merges_exactly_once(tmp_path: Path) -> None:
    drill = await _drill(tmp_path, "network-partition")
    eng = drill.engine
    done = _completions(eng)
    try:
        plan = await _run_until_decision(drill)
        inc = drill.incident()
        assert inc is not None
        cut = inc.evidence.of(PartitionEvidence).unreachable
        held = {a: eng.state.agents[a].current_task for a in cut if eng.state.agents[a].current_task}
        assert held, "the cut-off agents hold work"
        agents_before = len(eng.state.live_agents())
        decisions.approve(eng, plan.id, actor="tester")
        # The acting steps ran: the held tasks are off the cut-off agents, on reachable
        # ones or queued with their progress, while the partition still holds.
        await drill_until(
            drill,
            lambda: all(eng.state.tasks[t].agent != a for a, t in held.items()),
            "the held tasks off the cut-off agents",
            600,
        )
        assert all(eng.state.agents[a].status is AgentStatus.UNREACHABLE for a in cut)
        for t in held.values():
            task = eng.state.tasks[t]
            assert task.status is TaskStatus.COMPLETED or task.agent not in cut
        assert len(eng.state.live_agents()) > agents_before - len(cut), "replacement agents were added"
        merged: list[Any] = []
        eng.subscribe(lambda ev: merged.append(ev.data) if ev.type == "PARTITION_MERGED" else None)
        rep = await _finish(drill)
        assert rep["validated"], rep
        assert all(eng.state.agents[a].status is not AgentStatus.UNREACHABLE for a in cut)
        assert {m["agent"] for m in merged} <= set(cut) and merged, (
            "the cut-off agents' buffered work went through the merge"
        )
        assert all(n == 1 for n in done.values()), {k: n for k, n in done.items() if n > 1}
        for a in cut:
            assert eng.state.agents[a].applied_seq > 0
    finally:
        await eng.close()


async def test_buffered_reports_of_a_moved_task_merge_by_the_crdt_rules(tmp_path: Path) -> None:
    """The isolated agent finishes a task the engine moved away: on reconnection the
    merged result is one completion, and the moved copy stops."""
    eng = await open_sim(tmp_path / "m.db", Config(), seed=0, demo=True)
    try:
        await eng.advance(600)
        rt = eng.runtime
        a = sorted(x.id for x in eng.state.agents.values() if x.status is AgentStatus.BUSY)[0]
        key = eng.state.agents[a].current_task
        assert key is not None
        done = _completions(eng)
        rt.partition([a])  # type: ignore[union-attr]
        end = eng.clock.now() + 600
        while eng.state.agents[a].status is not AgentStatus.UNREACHABLE:
            assert eng.clock.now() < end
            await eng.advance(5)
        eng.release_task(key, reason="agent_unreachable")
        assert eng.state.tasks[key].agent is None
        # The isolated copy keeps working (the stop cannot reach it) until it finishes.
        end = eng.clock.now() + 3 * 3600
        while not any(b.kind == "finished" and b.task_id == key for b in rt.agents[a].buffer):  # type: ignore[union-attr]
            assert eng.clock.now() < end
            await eng.advance(30)
        rt.heal([a])  # type: ignore[union-attr]
        await eng.advance(5)
        assert eng.state.tasks[key].status is TaskStatus.COMPLETED
        assert done.get(key) == 1
        assert eng.state.agents[a].status is not AgentStatus.UNREACHABLE
    finally:
        await eng.close()
