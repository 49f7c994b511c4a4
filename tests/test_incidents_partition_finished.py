"""A network partition whose held tasks' workflows end before validation concludes.
A cancelled workflow leaves the live state (its tasks go to the archive); the gate took
any held task no longer live for one run on a reachable agent, so a plan whose moved
tasks never ran (their workflows cancelled while they waited) was validated. The
archive says what happened: a task that ran counts, one whose workflow ended without
running it is not judged, and the credit says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.commands import run_command
from core.config import Config
from core.event_types import NETWORK_RECOVERY_COMPLETED
from core.events import Event
from core.incident_models import Incident
from core.incidents import decisions
from core.incidents.drills import Drill, start_drill
from core.incidents.merge import PartitionEvidence
from core.models import AgentStatus, TaskStatus
from core.session import open_sim

from .conftest import drill_until, waits_for_operator
from .test_incidents_cascade_finished import _to_end

LIMIT_S = 4 * 3600.0
"""How much simulated time a wait on the drill may take."""


def _incident(drill: Drill) -> Incident:
    inc = drill.incident()
    assert inc is not None
    return inc


async def _moved(tmp_path: Path) -> tuple[Drill, list[Event], dict[str, str]]:
    """The demo's partition, its plan approved and the held tasks moved off the cut-off
    agents while the partition holds; the held tasks by workflow."""
    eng = await open_sim(tmp_path / "np.db", Config(), seed=0, demo=True)
    drill = start_drill(eng, "network-partition", approve="manual")
    seen: list[Event] = []
    eng.observe(seen.append)
    await drill_until(drill, lambda: waits_for_operator(drill.plan()), "the plan waiting for approval", LIMIT_S)
    ev = _incident(drill).evidence.of(PartitionEvidence)
    held = sorted(ev.agent_marks[a][0] for a in ev.unreachable if a in ev.agent_marks and ev.agent_marks[a][0])
    assert len(held) >= 2
    plan = drill.plan()
    assert plan is not None
    decisions.approve(eng, plan.id, actor="tester")
    cut = set(ev.unreachable)

    def moved() -> bool:
        return all(eng.state.tasks[t].agent not in cut for t in held)

    await drill_until(drill, moved, "the held tasks moved off the cut-off agents", LIMIT_S)
    assert all(eng.state.agents[a].status is AgentStatus.UNREACHABLE for a in cut), "the partition holds"
    return drill, seen, {t: eng.state.tasks[t].workflow for t in held}


async def _cancel(drill: Drill, workflows: set[str]) -> None:
    for w in sorted(workflows):
        res = await run_command(drill.engine, f"/coordination-hub cancel {w}", actor="tester")
        assert res["status"] == "success", res
    assert not workflows & set(drill.engine.state.workflows)


def _credit(inc: Incident) -> dict[str, Any]:
    assert inc.outcome.validations is not None, inc.outcome
    credit = inc.outcome.validations["network_recovered"]["credit"]
    assert isinstance(credit, dict)
    return credit


async def test_moved_tasks_whose_workflows_were_cancelled_before_running_are_not_judged(tmp_path: Path) -> None:
    """Every held task moved by the plan, its workflow cancelled before it ran: none ran
    on a reachable agent, so the plan is not credited (main: validated, 'all running or
    done on reachable agents before the heal'); the basis names the workflows."""
    drill, seen, held = await _moved(tmp_path)
    eng = drill.engine
    try:
        pending = [t for t in held if eng.state.tasks[t].status is TaskStatus.PENDING]
        assert pending, "a moved task waits for an agent"
        await _cancel(drill, {held[t] for t in pending})
        inc = await _to_end(drill)
        assert inc.status == "resolved", inc.outcome
        assert inc.outcome.validated is False and inc.outcome.result == "recovered_without_plan", inc.outcome
        credit = _credit(inc)
        assert credit["credited"] is False
        assert sorted(credit["not_judged"]) == sorted(pending)
        assert credit["basis"].startswith("not judged:") or "not judged:" in credit["basis"], credit["basis"]
        for t in pending:
            assert f"workflow {held[t]} cancelled before validation" in credit["basis"], credit["basis"]
        if len(pending) == len(held):
            assert not [e for e in seen if e.type == NETWORK_RECOVERY_COMPLETED]
    finally:
        await eng.close()


async def test_moved_tasks_that_ran_before_their_workflows_were_cancelled_still_count(tmp_path: Path) -> None:
    """Must not lose credit: the held tasks ran on reachable agents before the partition
    healed, then their workflows were cancelled: the plan is validated."""
    drill, seen, held = await _moved(tmp_path)
    eng = drill.engine
    try:
        cut = set(_incident(drill).evidence.of(PartitionEvidence).unreachable)

        def all_running() -> bool:
            return all(
                (t := eng.state.tasks.get(k)) is not None
                and t.status in (TaskStatus.RUNNING, TaskStatus.COMPLETED)
                and t.agent not in cut
                for k in held
            )

        await drill_until(drill, all_running, "the moved tasks running on reachable agents", LIMIT_S)
        await drill.step()  # the gate sees them running while the partition holds
        assert any(eng.state.agents[a].status is AgentStatus.UNREACHABLE for a in cut), "the partition holds"
        await _cancel(drill, set(held.values()))
        inc = await _to_end(drill)
        assert inc.status == "resolved" and inc.outcome.result == "validated", inc.outcome
        credit = _credit(inc)
        assert credit["credited"] is True and "not_judged" not in credit
        assert len([e for e in seen if e.type == NETWORK_RECOVERY_COMPLETED]) == 1
    finally:
        await eng.close()
