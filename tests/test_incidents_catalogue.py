"""The incident-kind catalogue: a sixth kind added through the catalogue alone (in
this test) is detected, planned, validated and drilled by the same manager,
executor and drill code as the five built-in kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config import Config
from core.engine import Engine
from core.events import Event
from core.incidents import decisions
from core.incidents.catalogue import Catalogue, DrillSpec, IncidentKind, UnknownKind
from core.incidents.detectors import Detector, Finding
from core.incidents.drills import Drill, DrillError, start_drill
from core.incidents.kinds import CATALOGUE, GATES, SCENARIOS
from core.incidents.manager import IncidentManager
from core.incidents.playbooks import PlanDraft, StepDraft, cmd
from core.incidents.record import Credit
from core.incidents.validation import GateCtx, Verdict
from core.models import WorkflowStatus
from core.session import open_sim

from .conftest import drill_until

TOY = "stalled-workflow"


class StalledDetector(Detector):
    """A workflow paused for reason ``toy-fault`` is still paused."""

    scenario = TOY

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.paused: set[str] = set()
        engine.observe(self._on_event)

    def _on_event(self, ev: Event) -> None:
        if ev.type == "WORKFLOW_PAUSED" and ev.data.get("reason") == "toy-fault":
            self.paused.add(ev.data["workflow_id"])

    def check(self, now: float) -> Finding | None:
        s = self.engine.state
        stalled = sorted(w for w in self.paused if s.workflows[w].status is WorkflowStatus.PAUSED)
        if not stalled:
            return None
        data = {"workflows": stalled}
        return Finding(self.scenario, "WORKFLOW_STALLED", "coordination", "workflow", "high", data, {}, stalled)


def playbook(engine: Engine, f: Finding) -> PlanDraft:
    steps = [StepDraft(cmd("coordination-hub", "get-status"), "look")]
    steps += [StepDraft(cmd("coordination-hub", "resume", workflow=w), f"resume {w}") for w in f.affected_workflows]
    return PlanDraft(title=f"resume {len(f.affected_workflows)} workflow(s)", strategy="resume", steps=steps)


async def resumed(ctx: GateCtx) -> Verdict:
    """Every stalled workflow runs again; credited when the plan resumed it."""
    s = ctx.engine.state
    wfs = ctx.incident.affected_workflows
    waiting = [w for w in wfs if s.workflows[w].status is WorkflowStatus.PAUSED]
    if waiting:
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {"reason": f"still paused: {', '.join(waiting)}"}
        return "wait", {"paused": waiting}
    by_plan = {e.data["workflow_id"] for e in ctx.record.caused("WORKFLOW_RESUMED")}
    if not set(wfs) <= by_plan:
        credit = Credit(False, "resumed, but not by a step of the plan")
        return "pass", {"credited": False, "credit": credit.as_dict()}
    took = ctx.now - ctx.recovery_started()
    credit = Credit(True, "the plan resumed every stalled workflow")
    return "pass", {"recovery_time_s": round(took, 1), "credited": True, "credit": credit.as_dict()}


async def inject(drill: Drill) -> dict[str, Any]:
    wf = sorted(w.id for w in drill.engine.state.workflows.values() if w.status is WorkflowStatus.RUNNING)[0]
    drill.engine.pause_workflow(wf, actor="drill", reason="toy-fault")
    return {"paused": wf}


async def confirm(drill: Drill) -> dict[str, Any]:
    status = drill.engine.state.workflows[drill.fault["paused"]].status
    return {"confirmed": status is WorkflowStatus.PAUSED, "status": status.value}


TOY_KIND = IncidentKind(
    name=TOY,
    detector=StalledDetector,
    playbook=playbook,
    criterion="workflow_resumed",
    gate=resumed,
    window=lambda engine: 10 * engine.config.intervals.sample_s,
    drill=DrillSpec(inject, confirm),
)


async def _toy_drill(tmp_path: Path) -> Drill:
    eng = await open_sim(tmp_path / "toy.db", Config(), seed=0, demo=True)
    cat = CATALOGUE.with_kind(TOY_KIND)
    mgr = IncidentManager(eng, approve_mode="manual", scenarios=[TOY], catalogue=cat)
    return start_drill(eng, TOY, manager=mgr)


LIMIT_S = 3600.0
"""How much simulated time a wait on a drill may take."""


async def test_a_toy_kind_is_detected_planned_validated_and_drilled(tmp_path: Path) -> None:
    drill = await _toy_drill(tmp_path)
    eng = drill.engine
    try:
        await drill_until(drill, lambda: drill.plan() is not None, "a plan for the incident", LIMIT_S)
        inc = drill.incident()
        assert inc is not None and inc.scenario == TOY and inc.criteria == ["workflow_resumed"]
        wf = drill.fault["paused"]
        assert eng.state.workflows[wf].status is WorkflowStatus.PAUSED, "the drill's fault is real"
        plan = drill.plan()
        assert plan is not None and any(f"resume {wf}" in st.command for st in plan.steps)
        decisions.approve(eng, plan.id, actor="tester")
        rep = await drill.run(3600.0)
        assert rep["validated"], {k: rep[k] for k in ("status", "reason", "plan_state", "invariants")}
        assert eng.state.workflows[wf].status is not WorkflowStatus.PAUSED
        assert eng.state.incidents[inc.id].status == "resolved"
    finally:
        await eng.close()


async def test_a_toy_plan_without_its_acting_step_is_not_validated(tmp_path: Path) -> None:
    drill = await _toy_drill(tmp_path)
    eng = drill.engine
    try:
        await drill_until(drill, lambda: drill.plan() is not None, "a plan for the incident", LIMIT_S)
        plan = drill.plan()
        assert plan is not None
        keep = [st.command for st in plan.steps if "resume" not in st.command]
        decisions.edit(eng, plan.id, keep, actor="tester")
        decisions.approve(eng, plan.id, actor="tester")
        rep = await drill.run(3600.0)
        assert not rep["validated"]
        inc = drill.incident()
        assert inc is not None and inc.status == "failed"
        assert eng.state.workflows[drill.fault["paused"]].status is WorkflowStatus.PAUSED
    finally:
        await eng.close()


def test_the_catalogue_lists_each_kind_once_and_names_what_it_lacks() -> None:
    assert len(SCENARIOS) == 7 and len(set(SCENARIOS)) == 7
    assert {k.criterion for k in CATALOGUE} <= set(GATES)
    assert "resumption_done" in GATES, "shared gates stay available to every plan"
    with pytest.raises(ValueError, match="listed twice"):
        CATALOGUE.with_kind(CATALOGUE.get("agent-cascade"))
    with pytest.raises(UnknownKind, match="meteor-strike"):
        CATALOGUE.get("meteor-strike")
    assert TOY not in CATALOGUE, "with_kind leaves the shipped catalogue as it is"
    assert TOY in CATALOGUE.with_kind(TOY_KIND)
    assert isinstance(CATALOGUE.with_kind(TOY_KIND), Catalogue)


async def test_a_kind_not_in_the_catalogue_cannot_be_drilled(tmp_path: Path) -> None:
    eng = await open_sim(tmp_path / "x.db", Config(), seed=0, demo=True)
    try:
        with pytest.raises(DrillError, match="unknown drill"):
            start_drill(eng, TOY)
    finally:
        await eng.close()
