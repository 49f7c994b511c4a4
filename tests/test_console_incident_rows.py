"""The incidents pane at 80x24 keeps what an operator must act on: an open incident's
row says its severity and where it stands (to approve, recovering) before its type,
which is long (PERFORMANCE_DEGRADATION_DETECTED) and is what the pane cuts."""

from __future__ import annotations

import pytest

from tests.console_support import came_true, drill_until_plan, make_app, settle
from tests.test_console_decisions import MANUAL
from tui import operator


@pytest.mark.slow
async def test_80x24_an_open_incident_row_shows_severity_and_stage(tmp_path):  # type: ignore[no-untyped-def]
    app = make_app(tmp_path / "s.db", config=MANUAL)
    async with app.run_test(size=(80, 24)) as pilot:
        await drill_until_plan(app, pilot)
        await settle(app, pilot, 60)
        pane = app.incidents_pane
        inc = next(iter(app.link.state.incidents))

        def row() -> str:
            lines = [pane.render_line(y).text for y in range(pane.size.height)]
            return next((ln for ln in lines if inc in ln), "")

        assert await came_true(pilot, lambda: inc in row()), [pane.render_line(y).text for y in range(3)]
        shown = row().strip()
        assert "critical" in shown and "to approve" in shown, shown


def _row(app, key: str) -> str:  # type: ignore[no-untyped-def]
    pane = app.incidents_pane
    lines = [pane.render_line(y).text for y in range(pane.size.height)]
    return next((ln.strip() for ln in lines if key in ln), "")


async def test_a_rolled_back_plan_row_counts_the_steps_that_ran(tmp_path):  # type: ignore[no-untyped-def]
    """A plan whose third step failed was rolled back: its two analyses ran. The row says
    so ('rolled back  2/3 steps, step 3 failed'), not '0/3 steps' because the steps that
    ran are marked rolled back."""
    app = make_app(tmp_path / "s.db")
    async with app.run_test(size=(140, 44)) as pilot:
        pid = await drill_until_plan(app, pilot)
        link = app.link
        ran = [st.command for st in link.state.plans[pid].steps if st.state == "completed"]
        assert len(ran) == 2, [st.state for st in link.state.plans[pid].steps]
        # A workflow that never existed: the step fails (one whose workflow ended since
        # the draft would be skipped and the plan would go on).
        res = await link.send(operator.edit_command(pid, [*ran, "/coordination-hub pause workflow_999"]))
        assert res["status"] == "success", res
        await settle(app, pilot)
        assert await came_true(pilot, lambda: f"{pid}  proposed   2/3 steps" in _row(app, f"plan {pid}"))
        assert "failed" not in _row(app, f"plan {pid}")
        assert (await link.send(f"/incident approve {pid}"))["status"] == "success"
        await settle(app, pilot, 10)
        plan = link.state.plans[pid]
        assert plan.state == "rolled_back" and [st.state for st in plan.steps][2] == "failed"
        assert await came_true(pilot, lambda: "rolled back" in _row(app, f"plan {pid}")), _row(app, f"plan {pid}")
        assert "2/3 steps, step 3 failed" in _row(app, f"plan {pid}"), _row(app, f"plan {pid}")
        # Its incident failed and waits for a replan or a note: the header says so beside
        # the incidents being handled (none), and stops once it is resolved with a note.
        inc = plan.incident_id
        assert link.state.incidents[inc].status == "failed"
        app.header_pane.refresh()
        assert "incidents 0  1 failed" in app.header_pane.render().plain, app.header_pane.render().plain
        assert (await link.send(f'/incident resolve {inc} \'{{"note": "fixed by hand"}}\''))["status"] == "success"
        assert await came_true(pilot, lambda: link.state.incidents[inc].status == "resolved")
        app.header_pane.refresh()
        assert "failed" not in app.header_pane.render().plain.splitlines()[1]
