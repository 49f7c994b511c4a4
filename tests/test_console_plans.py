"""Pilot tests of the approval queue: a drill started from the palette or its key, its plan
approved, rejected or aborted with rollback (the editor: test_console_plan_editor)."""

from __future__ import annotations

import pytest

from core.config import Config
from tests.console_support import came_true, confirm, drill_until_plan, make_app
from tui.screens.modals import ConfirmScreen

# Every step waits for the operator, so the plan sits in the approval queue.
MANUAL = Config.model_validate(
    {"approval": {"auto": [], "manual": ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"]}}
)


@pytest.mark.slow
async def test_approve_plan_after_cancel(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(120, 40)) as pilot:
        pid = await drill_until_plan(app, pilot, via="palette")
        eng = app.host.engine
        await pilot.press("a")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("enter")  # Cancel is focused: nothing happens
        assert await came_true(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert eng.state.plans[pid].state == "proposed"
        await confirm(app, pilot, "a")
        assert await came_true(pilot, lambda: eng.state.plans[pid].state != "proposed")
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
        await confirm(app, pilot, "d")
        assert await came_true(pilot, lambda: eng.state.plans[pid].state == "rejected")
        assert all(st.state == "rejected" for st in eng.state.plans[pid].steps)


@pytest.mark.slow
async def test_abort_plan_rolls_back(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(120, 40)) as pilot:
        pid = await drill_until_plan(app, pilot)
        eng = app.host.engine
        await confirm(app, pilot, "a")
        assert await came_true(pilot, lambda: eng.state.plans[pid].state != "proposed")
        for _ in range(12):
            await app.host.advance(5.0)
        await confirm(app, pilot, "K")
        assert await came_true(pilot, lambda: eng.state.plans[pid].state in ("rolled_back", "failed"))
        assert (
            any(ev_type == "PLAN_ABORTED" for ev_type in eng.state.observed)
            or eng.state.plans[pid].state == "rolled_back"
        )
