"""One meaning of "a step still to run" (:attr:`PlanStep.to_run`): proposed or approved,
its command not sent. A step waiting on its gate has sent its command; a rejected or
rolled-back one never runs again. Every view of the console reads the same property."""

from __future__ import annotations

from core.incident_models import Plan, PlanState, PlanStep
from core.projection import State
from tui.plan_view import analysis_block, decision_detail, lines_of, plan_section, preview

STATUS = "/resource-manager status"


def _plan(*states: PlanState) -> Plan:
    steps = [PlanStep(index=i, command=STATUS, title=f"step {i}", state=st) for i, st in enumerate(states)]
    return Plan(id="PLAN-1", incident_id="INC-1", scenario="toy", title="t", steps=steps)


def _said(part: object) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(part)
    return console.export_text()


def test_to_run_is_proposed_or_approved_only() -> None:
    still = {st for st in PlanState if PlanStep(index=0, command=STATUS, state=st).to_run}
    assert still == {PlanState.PROPOSED, PlanState.APPROVED}


def test_a_step_waiting_on_its_gate_is_not_still_to_run() -> None:
    s = State({})
    plan = _plan(PlanState.COMPLETED, PlanState.EXECUTING, PlanState.APPROVED)
    assert [x.index for x in preview(s, plan)] == [3], "only the approved step is still to run"
    text = " ".join(_said(decision_detail(s, plan, "abort", lambda _n: "white", now=0.0)).split())
    assert "none of its 1 step(s) still to run will run" in text, text
    assert "executing" in _said(analysis_block(plan, lambda _n: "white")), "a step sent shows with what ran"
    # The editor: only the step still to run can change.
    assert [x.ran for x in lines_of(plan)] == ["completed", "executing", None]


def test_no_step_still_to_run_no_effects_note() -> None:
    s = State({})
    for states in ((PlanState.COMPLETED, PlanState.EXECUTING), (PlanState.REJECTED, PlanState.ROLLED_BACK)):
        plan = _plan(*states)
        assert preview(s, plan) == []
        assert "as drafted" not in "".join(_said(p) for p in plan_section(s, plan, lambda _n: "white"))
    assert "as drafted" in "".join(_said(p) for p in plan_section(s, _plan(PlanState.PROPOSED), lambda _n: "white"))
