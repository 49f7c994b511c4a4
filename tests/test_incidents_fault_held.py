"""One incident per ongoing fault: after an incident's plan fails, its detector keeps
finding the same fault at every check. It opened a new incident each time (the
console: INC-0005..INC-0024, one every five simulated minutes, each failing the same
way). The repeat is now held on the failed incident (noted there once) until an
operator acts; a different fault of the same kind still opens its own incident, and a
re-plan reopens the held one."""

from __future__ import annotations

from pathlib import Path

from core.config import Config
from core.incidents import decisions
from core.incidents.detectors import Finding
from core.incidents.drills import Drill
from core.incidents.manager import STILL_DETECTED, IncidentManager, finding_of
from core.models import WorkflowStatus
from core.session import open_sim

from .conftest import drill_until
from .test_incidents_catalogue import LIMIT_S, TOY, _toy_drill


def _of_kind(drill: Drill) -> list[str]:
    return sorted(i.id for i in drill.engine.state.incidents.values() if i.scenario == TOY)


async def _failed_toy(tmp_path: Path) -> Drill:
    """The toy kind's incident failed (its plan lost the step that resumes), the fault
    still there: the workflow stays paused."""
    drill = await _toy_drill(tmp_path)
    eng = drill.engine
    await drill_until(drill, lambda: drill.plan() is not None, "a plan for the incident", LIMIT_S)
    plan = drill.plan()
    assert plan is not None
    decisions.edit(eng, plan.id, [st.command for st in plan.steps if "resume" not in st.command], actor="tester")
    decisions.approve(eng, plan.id, actor="tester")
    inc = drill.incident()
    assert inc is not None
    await drill_until(drill, lambda: eng.state.incidents[inc.id].status == "failed", "the incident failed", LIMIT_S)
    return drill


async def test_the_fault_of_a_failed_incident_does_not_open_an_incident_at_every_check(tmp_path: Path) -> None:
    drill = await _failed_toy(tmp_path)
    eng = drill.engine
    try:
        inc = drill.incident()
        assert inc is not None
        samples = int(LIMIT_S / eng.config.intervals.sample_s)
        for _ in range(samples):
            await drill.step()
        assert eng.state.workflows[drill.fault["paused"]].status is WorkflowStatus.PAUSED, "the fault goes on"
        assert _of_kind(drill) == [inc.id], "no new incident for the same fault"
        held = eng.state.incidents[inc.id]
        assert held.status == "failed"
        assert [n.action for n in held.notes].count(STILL_DETECTED) == 1
        # A different fault of the kind: another workflow stalls.
        other = sorted(
            w.id
            for w in eng.state.workflows.values()
            if w.status is WorkflowStatus.RUNNING and w.id != drill.fault["paused"]
        )[0]
        eng.pause_workflow(other, actor="drill", reason="toy-fault")
        await drill_until(drill, lambda: len(_of_kind(drill)) == 2, "an incident for the new fault", LIMIT_S)
        new = eng.state.incidents[_of_kind(drill)[1]]
        assert other in new.affected_workflows and new.status in ("open", "recovering")
    finally:
        await eng.close()


async def test_a_replan_reopens_the_held_incident_and_no_other_opens(tmp_path: Path) -> None:
    drill = await _failed_toy(tmp_path)
    eng = drill.engine
    try:
        inc = drill.incident()
        assert inc is not None
        await drill.step()
        drill.manager.replan(inc.id, actor="tester")
        assert eng.state.incidents[inc.id].status in ("open", "recovering")
        for _ in range(5):
            await drill.step()
        assert _of_kind(drill) == [inc.id]
    finally:
        await eng.close()


async def test_a_data_integrity_fault_is_the_same_subject_as_the_failed_incident_recorded_on_it(
    tmp_path: Path,
) -> None:
    """The reported storm's kind: the subject read back from the incident equals the
    repeat's (its bad rows and checkpoints), and other damage is another subject."""
    eng = await open_sim(tmp_path / "di.db", Config(), seed=0, demo=True)
    try:
        mgr = IncidentManager(eng, scenarios=["data-integrity"])
        (d,) = mgr.detectors

        def found(seqs: list[int], cps: list[int]) -> Finding:
            ev = {"bad_seqs": seqs, "bad_checkpoints": cps, "projection_differs_in": []}
            return Finding("data-integrity", "DATA_INTEGRITY_ALERT", "coordination", "x", "critical", {}, ev, [])

        inc_id = mgr.open_incident(found([7, 9], [2]))
        recorded = finding_of(eng.state.incidents[inc_id])
        assert d.subject(recorded) == d.subject(found([9, 7], [2]))
        assert d.subject(recorded) != d.subject(found([7, 9, 11], [2]))
        assert d.subject(recorded) != d.subject(found([7, 9], []))
    finally:
        await eng.close()
