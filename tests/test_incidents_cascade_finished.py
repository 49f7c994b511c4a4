"""An agent cascade whose interrupted tasks' workflows finish before validation
concludes. A finished workflow leaves the live state (its tasks go to the archive),
so the criterion that looked for the tasks only there waited its whole window (two
simulated hours) and failed the plan. The archive says who ran each task: work the
plan's agents ran is credited to the plan, work other agents ran is not, and a task
whose workflow ended without running it again is not judged, and the basis says so.

The plan is approved while the workflows are live (a step of the plan refuses a
finished workflow); the workflows then finish while the criterion does not look: the
engine runs, the incident manager is not pumped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.commands import run_command
from core.config import Config
from core.event_types import RECOVERY_VALIDATION_COMPLETED
from core.events import Event
from core.incident_models import Incident
from core.incidents import decisions
from core.incidents.drills import Drill, start_drill
from core.models import TaskStatus
from core.session import open_sim

from .conftest import drill_until, waits_for_operator
from .test_incidents_cascade_credit import _taken_up_by_survivors

LIMIT_S = 4 * 3600.0
"""How much simulated time a wait on the drill may take."""


def _incident(drill: Drill) -> Incident:
    inc = drill.incident()
    assert inc is not None
    return inc


async def _to_approval(tmp_path: Path) -> tuple[Drill, list[Event], list[str], set[str]]:
    """The demo's cascade, its plan waiting for the operator; the interrupted tasks and their workflows."""
    eng = await open_sim(tmp_path / "ac.db", Config(), seed=0, demo=True)
    drill = start_drill(eng, "agent-cascade", approve="manual")
    seen: list[Event] = []
    eng.observe(seen.append)
    await drill_until(drill, lambda: waits_for_operator(drill.plan()), "the plan waiting for approval", LIMIT_S)
    keys = sorted(_incident(drill).evidence.model_dump()["progress_at_failure"])
    assert len(keys) >= 2
    wfs = {eng.state.tasks[k].workflow for k in keys}
    assert wfs <= set(eng.state.workflows), "the interrupted tasks' workflows are live at detection"
    return drill, seen, keys, wfs


async def _approve_to_validation(drill: Drill) -> None:
    """Approve the plan and run it to its validating step (the step waits on its criterion)."""
    plan = drill.plan()
    assert plan is not None
    decisions.approve(drill.engine, plan.id, actor="tester")

    def validating() -> bool:
        p = drill.plan()
        return p is not None and any(st.gate == "cascade_recovered" and st.state == "executing" for st in p.steps)

    await drill_until(drill, validating, "the plan's step validating", LIMIT_S)
    assert _incident(drill).status == "recovering"


async def _finish_unwatched(drill: Drill, wfs: set[str]) -> None:
    """Run the engine (not the incident manager) until the workflows have left the live state."""
    eng = drill.engine
    end = eng.clock.now() + LIMIT_S
    while wfs & set(eng.state.workflows):
        assert eng.clock.now() < end, "the workflows never finished"
        await eng.advance(eng.config.intervals.sample_s)


async def _to_end(drill: Drill) -> Incident:
    eng = drill.engine
    inc_id = _incident(drill).id
    await drill_until(
        drill, lambda: eng.state.incidents[inc_id].status in ("resolved", "failed"), "the incident ended", LIMIT_S
    )
    return _incident(drill)


def _credit(inc: Incident) -> dict[str, Any]:
    assert inc.outcome.validations is not None, inc.outcome
    credit = inc.outcome.validations["cascade_recovered"]["credit"]
    assert isinstance(credit, dict)
    return credit


async def test_work_other_agents_ran_is_not_the_plans_when_its_workflows_finish_first(tmp_path: Path) -> None:
    """Survivors took up every interrupted task before the operator approved, and the
    workflows completed before validation concluded: the plan is not credited, and
    validation does not wait its window for tasks that left the live state."""
    drill, seen, keys, wfs = await _to_approval(tmp_path)
    eng = drill.engine
    try:
        end = eng.clock.now() + LIMIT_S
        while not await _taken_up_by_survivors(drill, keys):
            assert eng.clock.now() < end, "survivors never took up the interrupted tasks"
            await drill.step()
        assert wfs <= set(eng.state.workflows), "the workflows are live when the plan is approved"
        await _approve_to_validation(drill)
        await _finish_unwatched(drill, wfs)
        assert {eng.state.status_of(w) for w in wfs} == {TaskStatus.COMPLETED.value}
        finished_at = eng.clock.now()
        inc = await _to_end(drill)
        # main: failed two simulated hours later ("replacements or resumptions missing")
        assert inc.status == "resolved", inc.outcome
        assert inc.outcome.result == "recovered_without_plan" and inc.outcome.validated is False
        assert inc.resolved_at is not None and inc.resolved_at - finished_at < 600
        credit = _credit(inc)
        assert credit["credited"] is False and credit["plan_agents"]
        assert credit["on_plan_agents"] == [] and credit["on_survivors"] == keys
        assert "not_judged" not in credit
        assert not [e for e in seen if e.type == RECOVERY_VALIDATION_COMPLETED]
    finally:
        await eng.close()


async def test_work_the_plans_agents_ran_is_the_plans_when_its_workflows_finish_first(tmp_path: Path) -> None:
    """The plan's agents took up the interrupted work; its workflows completed before
    validation concluded: the archive shows who ran it, and the plan is validated."""
    drill, seen, keys, wfs = await _to_approval(tmp_path)
    eng = drill.engine
    try:
        await _approve_to_validation(drill)
        await _finish_unwatched(drill, wfs)
        inc = await _to_end(drill)
        assert inc.status == "resolved" and inc.outcome.result == "validated", inc.outcome  # main: failed
        credit = _credit(inc)
        assert credit["credited"] is True and credit["on_plan_agents"] == keys
        archived = {t.id: t for t in await eng.tasks_with_archive()}
        assert {archived[k].status for k in keys} == {TaskStatus.COMPLETED}
        assert {archived[k].agent for k in keys} <= set(credit["plan_agents"])
        done = [e for e in seen if e.type == RECOVERY_VALIDATION_COMPLETED]
        assert len(done) == 1 and done[0].data["tasks_resumed"] == len(keys)
        # Timed to the start of the runs that completed the tasks, not to when validation looked.
        started = max(archived[k].started_at or 0.0 for k in keys)
        assert inc.outcome.recovery_time_s is not None and inc.outcome.recovery_time_s <= started - inc.detected_at
        assert f"{len(keys)} task(s) completed before the check saw them run" in done[0].data["recovery_time_basis"]
    finally:
        await eng.close()


@pytest.mark.parametrize("record_kept", [True, False], ids=["archived", "record_gone"])
async def test_work_whose_workflows_were_cancelled_is_not_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record_kept: bool
) -> None:
    """The operator cancels the interrupted tasks' workflows as the plan's agents take
    them up: none of the tasks runs again. The plan neither fails nor is credited, and
    the basis names the workflows (and, without their archive record, says so)."""
    drill, seen, keys, wfs = await _to_approval(tmp_path)
    eng = drill.engine
    try:
        await _approve_to_validation(drill)
        for w in sorted(wfs):
            res = await run_command(eng, f"/coordination-hub cancel {w}", actor="tester")
            assert res["status"] == "success", res
        assert not wfs & set(eng.state.workflows)
        if not record_kept:

            async def no_record(wf_id: str) -> None:
                return None

            monkeypatch.setattr(eng, "archived", no_record)
        inc = await _to_end(drill)
        assert inc.status == "resolved", inc.outcome  # main: failed two simulated hours later
        assert inc.outcome.validated is False and inc.outcome.result != "validated"
        credit = _credit(inc)
        assert credit["credited"] is False and credit["on_plan_agents"] == [] and credit["on_survivors"] == []
        assert sorted(credit["not_judged"]) == keys
        assert credit["basis"].startswith("not judged:"), credit["basis"]
        for w in wfs:
            if record_kept:
                assert f"workflow {w} cancelled before validation" in credit["basis"], credit["basis"]
            else:
                assert w in credit["basis"] and "cancelled" not in credit["basis"], credit["basis"]
        if not record_kept:
            assert "finished before validation and the archive has no record of it" in credit["basis"]
        assert not [e for e in seen if e.type == RECOVERY_VALIDATION_COMPLETED]
    finally:
        await eng.close()
