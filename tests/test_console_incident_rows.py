"""The incidents pane at 80x24 keeps what an operator must act on: an open incident's
row says its severity and where it stands (to approve, recovering) before its type,
which is long (PERFORMANCE_DEGRADATION_DETECTED) and is what the pane cuts."""

from __future__ import annotations

import pytest

from tests.console_support import came_true, drill_until_plan, make_app, settle
from tests.test_console_decisions import MANUAL


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
