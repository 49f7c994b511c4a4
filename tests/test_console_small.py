"""80x24 works: the footer shows only keys that fit whole (Help always among them), the
event log's columns stay apart and aligned (time, mark, type, summary), and types too
long for their column keep the word that tells them apart."""

from __future__ import annotations

import re

import pytest
from rich.text import Text
from textual.widgets._footer import FooterKey

from core.event_types import EVENTS
from tests.console_support import came_true, drill_until_plan, make_app, settle
from tests.test_console_decisions import MANUAL
from tui.widgets.header_gauges import Part, fit_parts
from tui.widgets.log_rows import fit_type, type_width


def test_every_type_fits_its_column_distinctly() -> None:
    for width in (80, 100, 110, 140, 200):
        tw = type_width(width)
        fitted = {n: fit_type(n, tw) for n in EVENTS.names()}
        assert all(len(v) <= tw for v in fitted.values())
        assert len(set(fitted.values())) == len(fitted), width
    assert fit_type("EMERGENCY_RESPONSE_ACTIVATED", 18).endswith("…ACTIVATED")
    assert fit_type("TASK_STARTED", 18) == "TASK_STARTED"


def test_the_status_line_leaves_out_what_matters_least_whole() -> None:
    parts = [
        Part(9, Text("clock")),
        Part(2, Text("seq 1")),
        Part(7, Text("drill x")),
        Part(3, Text("at 1"), glued=True),
    ]
    sep = Text(" | ")
    assert fit_parts(parts, 80, sep).plain == "clock | seq 1 | drill x at 1"
    assert fit_parts(parts, 22, sep).plain == "clock | drill x at 1"
    assert fit_parts(parts, 16, sep).plain == "clock | drill x"
    assert fit_parts(parts, 3, sep).plain == "clock"  # the part that matters most stays, cropped by the pane
    said = [Part(9, Text("clock")), Part(8, Text("1 plan(s) await approval"), glued=True, short=Text("1 to approve"))]
    assert fit_parts(said, 40, sep).plain == "clock 1 plan(s) await approval"
    assert fit_parts(said, 20, sep).plain == "clock 1 to approve"


def _footer_ok(app) -> list[str]:  # type: ignore[no-untyped-def]
    """What is wrong with the footer as laid out now (empty: nothing)."""
    keys = [k for k in app.screen.query(FooterKey) if k.display]
    width = app.size.width
    bad = [f"{k.description!r} ends at {k.region.right} > {width}" for k in keys if k.region.right > width]
    shown = {k.action for k in keys}
    if "help" not in shown:
        bad.append(f"no Help key among {sorted(shown)}")
    bad += [f"{k.description!r} cut" for k in keys if k.description not in str(k.render())]
    return bad


@pytest.mark.slow
async def test_80x24_footer_fits_and_log_columns_align(tmp_path):
    app = make_app(tmp_path / "s.db", config=MANUAL)
    async with app.run_test(size=(80, 24)) as pilot:
        await drill_until_plan(app, pilot)
        await settle(app, pilot, 60)
        # The status line keeps what needs the operator, whole: incidents, the plan awaiting, the drill.
        status = app.header_pane.render().plain.split("\n")[1]
        assert len(status) <= 80, status
        for what in ("incidents 1", "1 to approve", "drill resource-exhaustion"):
            assert what in status, (what, status)
        for pane in (app.incidents_pane, app.workflows_pane, app.pools_pane, app.log_pane):
            pane.focus()
            assert await came_true(pilot, lambda: not _footer_ok(app)), (pane.id, _footer_ok(app))
        log = app.log_pane
        width = log.scrollable_content_region.width
        tw = type_width(width)
        col = len("00:00:00 ") + len("C ")  # the type column starts after the time and the mark
        await settle(app, pilot)
        rows = [log.render_line(y).text for y in range(log.size.height)]
        rows = [r for r in rows if r.strip()]
        assert len(rows) >= 3, rows
        for r in rows:
            assert re.match(r"^\d\d:\d\d:\d\d [CHML ] ", r), r
            name = r[col : col + tw].rstrip()
            assert r[col + tw] == " " and r[col + tw + 1] != " ", f"type and summary run together: {r!r}"
            assert name in {fit_type(n, tw) for n in EVENTS.names()}, r


@pytest.mark.slow
async def test_80x24_approve_dialog_is_whole_on_screen(tmp_path):
    """A long plan's approve dialog at 80x24: its title and its buttons on screen, the
    detail scrolling between them; toasts up before it opened are cleared off it."""
    from textual.widgets import Button, Label

    from tui.screens.modals import ConfirmScreen

    app = make_app(tmp_path / "s.db", config=MANUAL)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await drill_until_plan(app, pilot)
        app.notify("a toast that would sit over the dialog")
        await pilot.press("a")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        screen = app.screen
        assert await came_true(pilot, lambda: screen.query_one("#confirm-title", Label).region.height > 0)
        title = screen.query_one("#confirm-title", Label).region
        buttons = [b.region for b in screen.query(Button)]
        assert title.y >= 0 and title.height > 0
        assert buttons and all(b.bottom <= 24 and b.height > 0 for b in buttons), buttons
        scroll = screen.query_one("#confirm-scroll")
        assert scroll.max_scroll_y > 0, "the detail is longer than the room: it scrolls"
        assert not list(app._notifications)
