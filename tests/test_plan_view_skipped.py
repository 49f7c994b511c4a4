"""A skipped step (its command never sent: every target had ended when it was due) is
not shown as a step that ran: the decision dialogs list it under its own heading, the
reject dialog does not count it among the steps that ran, and the step table says it
was not sent instead of showing its reason as a result."""

from __future__ import annotations

from core.incident_models import Plan, PlanState, PlanStep
from core.projection import State
from tui.plan_view import decision_detail, step_table

STATUS = "/resource-manager status"
WHITE = lambda _n: "white"  # noqa: E731


def _plan(*states: PlanState) -> Plan:
    steps = []
    for i, st in enumerate(states):
        step = PlanStep(index=i, command=STATUS, title=f"step {i + 1}", state=st)
        if st is PlanState.SKIPPED:
            step.result = {"summary": "skipped: workflow w1 is cancelled: nothing left for it to act on"}
        elif st is PlanState.COMPLETED:
            step.result = {"summary": "done it"}
        steps.append(step)
    return Plan(id="PLAN-1", incident_id="INC-1", scenario="toy", title="t", steps=steps)


def _said(part: object) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(part)
    return " ".join(console.export_text().split())


def test_a_skipped_step_is_listed_apart_from_the_steps_that_ran() -> None:
    plan = _plan(PlanState.COMPLETED, PlanState.SKIPPED, PlanState.PROPOSED)
    text = _said(decision_detail(State({}), plan, "reject", WHITE, now=0.0))
    ran, _, skipped = text.partition("Skipped (not sent")
    assert skipped, text
    assert "step 2" in skipped and "step 2" not in ran.partition("Already ran")[2], text
    assert "step 1" in ran.partition("Already ran")[2], "the completed step is still under what ran"
    assert "the 1 that already ran stay as they are" in text, "the skipped step is not counted as run"


def test_without_a_skipped_step_there_is_no_skipped_heading() -> None:
    plan = _plan(PlanState.COMPLETED, PlanState.PROPOSED)
    assert "Skipped (not sent" not in _said(decision_detail(State({}), plan, "approve", WHITE, now=0.0))


def test_the_step_table_says_a_skipped_step_was_not_sent() -> None:
    text = _said(step_table(State({}), _plan(PlanState.COMPLETED, PlanState.SKIPPED), WHITE))
    assert "not sent: skipped: workflow w1 is cancelled" in text, text
    assert "result: skipped" not in text
    assert "result: done it" in text, "a completed step still shows its result"
