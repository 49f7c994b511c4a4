"""Pilot tests of the plan editor: one step per line as typed, Tab completion, each
line checked as it is typed, Save refused while a line is invalid, and a save that
reaches the host as one ``/incident edit`` command."""

from __future__ import annotations

import pytest

from tests.console_support import BUSY_S, came_true, drill_until_plan, make_app
from tests.test_console_plans import MANUAL
from tui.screens.plan_edit import PlanEditScreen
from tui.widgets.step_editor import StepRow, StepsEditor


def rows(app) -> list[StepRow]:  # type: ignore[no-untyped-def]
    return app.screen.query_one(StepsEditor).rows


@pytest.mark.slow
async def test_editor_round_trip_and_invalid_line_refused(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(120, 40)) as pilot:
        pid = await drill_until_plan(app, pilot)
        eng = app.host.engine
        before = [st.command for st in eng.state.plans[pid].steps]
        await pilot.press("e")
        assert await came_true(pilot, lambda: isinstance(app.screen, PlanEditScreen) and len(rows(app)) == len(before))
        # One line per step, exactly the command text (no JSON list, no escaped quotes).
        assert [r.text for r in rows(app)] == before
        assert all(r.error is None for r in rows(app))

        # An invalid line: its error is shown under it, Save is refused, the plan is unchanged.
        last = rows(app)[-1]
        last.input.focus()
        last.input.load_text("/resource-manager no-such-operation")
        assert await came_true(pilot, lambda: last.error is not None)
        assert "no-such-operation" in last.error and last.error_text.display
        seq = eng.state.seq
        await pilot.press("ctrl+s")
        assert await came_true(
            pilot, lambda: "nothing was saved" in str(app.screen.query_one("#edit-error").render()), BUSY_S
        )
        assert isinstance(app.screen, PlanEditScreen)
        assert [st.command for st in eng.state.plans[pid].steps] == before
        assert eng.state.seq == seq and eng.state.plans[pid].edited_by == []

        # Fix it by typing with completion: the line is replaced by a status check.
        last.input.load_text("")
        await pilot.press(*"/coordination-hub list-w", "tab")
        assert await came_true(pilot, lambda: last.text == "/coordination-hub list-workflows")
        assert await came_true(pilot, lambda: last.error is None)
        # Enter at the end adds a step on a new line; backspace on the empty line joins it up again.
        await pilot.press("end", "enter")
        assert await came_true(pilot, lambda: len(rows(app)) == len(before) + 1)
        await pilot.press("backspace")
        assert await came_true(pilot, lambda: len(rows(app)) == len(before))
        # Drop the first step: its line emptied is not a step.
        rows(app)[0].input.load_text("")
        await pilot.press("ctrl+s")
        assert await came_true(pilot, lambda: not isinstance(app.screen, PlanEditScreen))
        want = before[1:-1] + ["/coordination-hub list-workflows"]
        plan = eng.state.plans[pid]
        assert [st.command for st in plan.steps] == want
        assert plan.edited_by == ["operator"] and plan.state.value == "proposed"


@pytest.mark.slow
async def test_editor_cancel_and_a_save_the_host_refuses_change_nothing(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(80, 24)) as pilot:
        pid = await drill_until_plan(app, pilot)
        eng = app.host.engine
        before = [st.command for st in eng.state.plans[pid].steps]
        seq = eng.state.seq
        await pilot.press("e")
        assert await came_true(pilot, lambda: isinstance(app.screen, PlanEditScreen) and len(rows(app)) == len(before))
        rows(app)[0].input.load_text("/coordination-hub list-workflows")
        await pilot.press("escape")
        assert await came_true(pilot, lambda: not isinstance(app.screen, PlanEditScreen))
        assert [st.command for st in eng.state.plans[pid].steps] == before and eng.state.seq == seq

        # Another operator approves the plan while the editor is open: the host refuses the
        # save (only a proposed plan can be edited); the editor stays open and says so.
        await pilot.press("e")
        assert await came_true(pilot, lambda: isinstance(app.screen, PlanEditScreen) and len(rows(app)) == len(before))
        rows(app)[-1].input.load_text("/coordination-hub list-workflows")
        res = await app.link.send(f"/incident approve {pid}")  # as from another console
        assert res["status"] == "success"
        await pilot.press("ctrl+s")
        assert await came_true(
            pilot, lambda: "nothing was saved" in str(app.screen.query_one("#edit-error").render()), BUSY_S
        )
        assert isinstance(app.screen, PlanEditScreen)
        said = str(app.screen.query_one("#edit-error").render())
        assert "INVALID_STATE" in said and "nothing was saved" in said
        assert [st.command for st in eng.state.plans[pid].steps] == before
        assert eng.state.plans[pid].edited_by == []
