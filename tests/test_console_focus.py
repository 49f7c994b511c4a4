"""Pilot tests: focus is predictable. Closing each modal returns focus to the pane that
had it; keys meant for another pane never stop the event log following; the
highlighted row of an unfocused pane keeps a visible highlight."""

from __future__ import annotations

import pytest

from core.config import Config
from tests.console_support import came_true, drill_until_plan, make_app, settle

MANUAL = Config.model_validate(
    {"approval": {"auto": [], "manual": ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"]}}
)

# key that opens a modal -> key that closes it
MODALS = [
    ("question_mark", "escape"),
    ("a", "escape"),
    ("d", "escape"),
    ("K", "escape"),
    ("D", "escape"),
    ("e", "escape"),
    ("p", "escape"),
    ("ctrl+p", "escape"),
]


@pytest.mark.slow
async def test_focus_returns_after_each_modal(tmp_path):
    """Every modal once, the panes taking turns (each pane opens two or three of them):
    the focus a modal returns is the screen's, the same path whichever pane had it."""
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(140, 44)) as pilot:
        await drill_until_plan(app, pilot)
        panes = (app.incidents_pane, app.workflows_pane, app.pools_pane)
        for i, (open_key, close_key) in enumerate(MODALS):
            pane = panes[i % len(panes)]
            pane.focus()
            assert await came_true(pilot, lambda pane=pane: app.focused is pane)
            await pilot.press(open_key)
            assert await came_true(pilot, lambda: app.screen is not app.screen_stack[0]), open_key
            await pilot.press(close_key)
            assert await came_true(pilot, lambda: app.screen is app.screen_stack[0]), open_key
            assert await came_true(pilot, lambda pane=pane: app.focused is pane), (pane.id, open_key, app.focused)


@pytest.mark.slow
async def test_focus_returns_after_command_line_and_filter(tmp_path):
    """From each pane the command line and the filter, opened and escaped, give the focus
    back; a command run (its result closed) and a filter applied do too, typed from one pane
    each (typing is a redraw per key)."""
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(140, 44)) as pilot:
        await settle(app, pilot, 60)
        panes = (app.incidents_pane, app.workflows_pane, app.pools_pane)
        for pane in panes:
            pane.focus()
            await pilot.press("colon")
            assert await came_true(pilot, lambda: app.command_line.display)
            await pilot.press("escape")
            assert await came_true(pilot, lambda: not app.command_line.display)
            assert app.focused is pane, ("command line", pane.id, app.focused)
            await pilot.press("slash")
            assert await came_true(pilot, lambda: app.filter_input.display)
            await pilot.press("escape")
            assert app.focused is pane, ("filter esc", pane.id, app.focused)
        pane = panes[0]
        pane.focus()
        await pilot.press("colon", *"/coordination-hub get-status", "enter")  # runs, shows its result
        assert await came_true(pilot, lambda: app.screen is not app.screen_stack[0])
        await pilot.press("escape")
        assert await came_true(pilot, lambda: app.screen is app.screen_stack[0])
        assert app.focused is pane, ("command result", pane.id, app.focused)
        pane = panes[2]
        pane.focus()
        await pilot.press("slash", *"type:TASK_COMPLETED", "enter")
        assert await came_true(pilot, lambda: not app.filter_input.display)
        assert app.focused is pane, ("filter applied", pane.id, app.focused)
        await pilot.press("slash", "enter")  # clears it
        assert await came_true(pilot, lambda: not app.filter_input.display)
        assert app.focused is pane, ("filter cleared", pane.id, app.focused)


@pytest.mark.slow
async def test_arrows_in_other_panes_keep_the_log_following(tmp_path):
    app = make_app(tmp_path / "c.db", config=MANUAL)
    async with app.run_test(size=(140, 44)) as pilot:
        await settle(app, pilot, 300)
        log = app.log_pane
        assert log.follow
        for pane in (app.incidents_pane, app.workflows_pane, app.pools_pane):
            pane.focus()
            await pilot.press("up", "up", "pageup", "home", "down")
            await settle(app, pilot, 30)
            assert log.follow, pane.id
        # Closing a modal does not hand the arrows to the log.
        app.workflows_pane.focus()
        await pilot.press("question_mark")
        assert await came_true(pilot, lambda: app.screen is not app.screen_stack[0])
        await pilot.press("escape")
        assert await came_true(pilot, lambda: app.screen is app.screen_stack[0])
        await pilot.press("up", "up", "pageup")
        await settle(app, pilot, 30)
        assert log.follow
        # The log itself, scrolled up, stops following: the case that must stop it.
        log.focus()
        await pilot.press("pageup")
        assert await came_true(pilot, lambda: not log.follow)
