"""Pilot tests: the decision keys act on the plan that awaits the decision.

Two incidents, two plans in different states (one rejected, one proposed): whatever
row is highlighted, ``a``/``d``/``K`` and a click on the footer's "Approve plan" open
their dialog on the plan that awaits them, never on the finished one; with nothing
awaiting, no dialog opens and nothing is recorded. ``i`` brings the next plan awaiting
approval into view.
"""

from __future__ import annotations

import pytest
from textual.widgets._footer import FooterKey

from core.config import Config
from core.event_types import EVENTS
from core.incident_models import Incident, Plan, PlanState
from core.projection import State
from tests.console_support import BUSY_S, came_true, drill_until_plan, make_app
from tui import awaiting
from tui.screens.modals import ConfirmScreen

MANUAL = Config.model_validate(
    {"approval": {"auto": [], "manual": ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"]}}
)


async def _two_incidents(app, pilot):  # type: ignore[no-untyped-def]
    """INC-0001 with its plan rejected, INC-0002 with its plan proposed."""
    await app.link_opened()
    eng = app.host.engine
    first = await drill_until_plan(app, pilot, "resource-exhaustion")
    assert (await app.link.send(f"/incident reject {first}"))["status"] == "success"
    assert await came_true(pilot, lambda: app.host.drill is not None and app.host.drill.done)
    second = await drill_until_plan(app, pilot, "agent-cascade")
    assert eng.state.plans[first].state == "rejected"
    assert eng.state.plans[second].state == "proposed"
    assert eng.state.plans[first].incident_id != eng.state.plans[second].incident_id
    return first, second


def _highlight(app, row: str) -> None:  # type: ignore[no-untyped-def]
    app.refresh_panes()
    assert app.incidents_pane.show_row(row), row


async def _dialog_plan(app, pilot, key: str) -> str:  # type: ignore[no-untyped-def]
    await pilot.press(key)
    assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    title = app.screen.title_text
    await pilot.press("escape")
    assert await came_true(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
    return title


@pytest.mark.slow
async def test_keys_target_the_awaiting_plan(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(140, 44)) as pilot:
        first, second = await _two_incidents(app, pilot)
        eng = app.host.engine
        _highlight(app, f"plan:{first}")  # the finished plan is highlighted
        for key in ("a", "d", "K"):
            title = await _dialog_plan(app, pilot, key)
            assert second in title and first not in title, (key, title)
        # The footer's "Approve plan", clicked, goes the same way.
        _highlight(app, f"plan:{first}")
        fk = next(k for k in app.query(FooterKey) if k.action == "approve")
        await pilot.click(fk)
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert second in app.screen.title_text
        await pilot.press("tab", "enter")  # approve it
        assert await came_true(pilot, lambda: eng.state.plans[second].state != "proposed")
        assert eng.state.plans[first].state == "rejected"  # untouched


@pytest.mark.slow
async def test_nothing_awaits_nothing_happens(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(140, 44)) as pilot:
        first, second = await _two_incidents(app, pilot)
        eng = app.host.engine
        assert (await app.link.send(f"/incident reject {second}"))["status"] == "success"
        _highlight(app, f"plan:{second}")
        seq = eng.state.seq
        for key in ("a", "d", "e", "K"):
            before = {n.identity for n in app._notifications}
            await pilot.press(key)
            # The key answered with its "no plan" toast ...
            assert await came_true(
                pilot,
                lambda before=before: any(
                    n.title.endswith(": no plan") and n.identity not in before for n in app._notifications
                ),
                BUSY_S,
            ), key
            assert app.screen is app.screen_stack[0], key  # no dialog on a finished plan
        assert eng.state.seq == seq
        assert {eng.state.plans[p].state for p in (first, second)} == {"rejected"}


@pytest.mark.slow
async def test_next_decision_key_brings_the_plan_into_view(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(140, 44)) as pilot:
        _, second = await _two_incidents(app, pilot)
        app.workflows_pane.focus()
        await pilot.press("i")
        assert await came_true(pilot, lambda: app.incidents_pane.selected_id == f"plan:{second}")
        assert app.focused is app.incidents_pane
        pane = app.incidents_pane
        row = pane.highlighted
        assert row is not None and pane.scroll_y <= row < pane.scroll_y + pane.scrollable_content_region.height


def test_target_order_and_finished_plans():
    """The queue: critical before high, then oldest; a finished plan is never a target."""

    s = State(EVENTS.folds)
    for iid, sev in (("INC-1", "high"), ("INC-2", "critical"), ("INC-3", "critical")):
        s.incidents[iid] = Incident(id=iid, scenario="toy", type="TOY", severity=sev, detected_at=0.0)
    for pid, iid, state, at in (
        ("P1", "INC-1", PlanState.PROPOSED, 10.0),
        ("P2", "INC-2", PlanState.PROPOSED, 30.0),
        ("P3", "INC-3", PlanState.PROPOSED, 20.0),
        ("P4", "INC-3", PlanState.COMPLETED, 5.0),
        ("P5", "INC-1", PlanState.EXECUTING, 40.0),
    ):
        s.plans[pid] = Plan(id=pid, incident_id=iid, scenario="toy", title=pid, steps=[], state=state, created_at=at)
    assert awaiting.awaiting(s, "approve") == ["P3", "P2", "P1"]
    t = awaiting.target(s, "approve", "P4")
    assert t.plan == "P3" and "P4 is completed" in t.note
    assert awaiting.target(s, "approve", "P1").plan == "P1"
    assert awaiting.target(s, "abort_plan", "P4").plan == "P3"
    assert awaiting.target(s, "abort_plan", "P5").plan == "P5"
    assert awaiting.next_decision(s, "P3") == "P2"
    assert awaiting.next_decision(s, "P1") == "P3"
    for p in s.plans.values():
        p.state = PlanState.REJECTED
    none = awaiting.target(s, "approve", "P1")
    assert none.plan is None and "nothing was done" in none.note
