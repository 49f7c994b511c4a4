"""Staged resumption from the console: hold it, then advance a stage by hand."""

from __future__ import annotations

import pytest

from core.models import WorkflowStatus
from tests.console_support import came_true, confirm, make_app, settle
from tui.screens.modals import ConfirmScreen

PLAN = (
    '/workflow-recovery gradual-resumption \'{"hold": 600, "stages": ['
    '{"stage": 1, "action": "resume_paused_workflow", "workflow": "workflow_003", "resource_limit": "conservative"},'
    '{"stage": 2, "action": "lift_limits", "workflow": "workflow_003"}]}\''
)


@pytest.mark.slow
async def test_hold_then_advance_a_staged_resumption(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 120)
        eng = app.host.engine
        eng.pause_workflow("workflow_003", actor="operator")
        res = await app.link.send(PLAN)
        assert res["status"] == "success", res
        rid = next(iter(eng.state.resumptions))
        r = eng.state.resumptions[rid]
        first = r.next_step
        await settle(app, pilot)
        app.incidents_pane.focus()
        await pilot.press("h")
        assert await came_true(pilot, lambda: eng.state.resumptions[rid].held is True)
        await pilot.press("n")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("enter")  # Cancel
        assert await came_true(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert eng.state.resumptions[rid].next_step == first
        await confirm(app, pilot, "n")
        assert await came_true(pilot, lambda: eng.state.resumptions[rid].next_step == first + 1)
        step = eng.state.resumptions[rid].steps[first]
        if step.resume:
            assert eng.state.status_of("workflow_003") is WorkflowStatus.RUNNING
        assert eng.state.resumptions[rid].applied[-1].step == first
