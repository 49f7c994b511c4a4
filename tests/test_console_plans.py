"""Pilot tests of the approval queue: a drill started from the palette, its plan
approved, rejected, edited (invalid then valid JSON) or aborted with rollback."""

from __future__ import annotations

import json

import pytest
from textual.widgets import TextArea

from core.config import Config
from tests.console_support import drill_until_plan, make_app, wait_for
from tui.screens.confirm import ConfirmScreen
from tui.screens.plan_edit import PlanEditScreen

# Every step waits for the operator, so the plan sits in the approval queue.
MANUAL = Config.model_validate(
    {"approval": {"auto": [], "manual": ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"]}}
)


@pytest.mark.slow
async def test_approve_plan_after_cancel(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(120, 40)) as pilot:
        pid = await drill_until_plan(app, pilot)
        eng = app.host.engine
        await pilot.press("a")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("enter")  # Cancel is focused: nothing happens
        await pilot.pause(0.2)
        assert eng.state.plans[pid].state == "proposed"
        await pilot.press("a")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("tab", "enter")
        assert await wait_for(pilot, lambda: eng.state.plans[pid].state != "proposed")
        assert eng.state.plans[pid].decided_by == "operator"
        for _ in range(60):  # the executor runs the approved steps as the clock moves
            await app.host.advance(5.0)
        assert eng.state.plans[pid].state in ("executing", "completed")
        assert any(st.state == "completed" for st in eng.state.plans[pid].steps)


@pytest.mark.slow
async def test_reject_plan(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(120, 40)) as pilot:
        pid = await drill_until_plan(app, pilot)
        eng = app.host.engine
        await pilot.press("d")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("tab", "enter")
        assert await wait_for(pilot, lambda: eng.state.plans[pid].state == "rejected")
        assert all(st.state == "rejected" for st in eng.state.plans[pid].steps)


@pytest.mark.slow
async def test_edit_plan_invalid_then_valid(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(120, 40)) as pilot:
        pid = await drill_until_plan(app, pilot)
        eng = app.host.engine
        before = [st.command for st in eng.state.plans[pid].steps]
        seq = eng.state.seq
        await pilot.press("e")
        assert await wait_for(pilot, lambda: isinstance(app.screen, PlanEditScreen))
        ta = app.screen.query_one(TextArea)
        assert json.loads(ta.text) == before
        ta.text = '["/resource-manager emergency-analysis", '  # not JSON
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PlanEditScreen)
        err = str(app.screen.query_one("#edit-error").render())
        assert "invalid JSON" in err and "nothing was changed" in err
        ta.text = json.dumps(["/resource-manager no-such-operation"])  # JSON, but not a command
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PlanEditScreen)
        assert "INVALID_PLAN_EDIT" in str(app.screen.query_one("#edit-error").render())
        assert [st.command for st in eng.state.plans[pid].steps] == before
        assert eng.state.seq == seq
        ta.text = json.dumps(before[:2], indent=2)
        await pilot.press("ctrl+s")
        assert await wait_for(pilot, lambda: not isinstance(app.screen, PlanEditScreen))
        plan = eng.state.plans[pid]
        assert [st.command for st in plan.steps] == before[:2]
        assert plan.edited_by == ["operator"]


@pytest.mark.slow
async def test_abort_plan_rolls_back(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(120, 40)) as pilot:
        pid = await drill_until_plan(app, pilot)
        eng = app.host.engine
        await pilot.press("a")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("tab", "enter")
        assert await wait_for(pilot, lambda: eng.state.plans[pid].state != "proposed")
        for _ in range(12):
            await app.host.advance(5.0)
        await pilot.press("K")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("tab", "enter")
        assert await wait_for(pilot, lambda: eng.state.plans[pid].state in ("rolled_back", "failed"))
        assert (
            any(ev_type == "PLAN_ABORTED" for ev_type in eng.state.observed)
            or eng.state.plans[pid].state == "rolled_back"
        )
