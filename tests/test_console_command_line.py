"""The ``:`` command line: completion from the registry, inline parser errors that apply
nothing, a command that runs, and read-only refusal of commands that change state."""

from __future__ import annotations

import sqlite3

import pytest
from textual.widgets import Input, Static

from core.models import WorkflowStatus
from tests.console_support import came_true, make_app, settle
from tui.command_line import candidates, complete, normalise
from tui.screens.result import ResultScreen


def test_completion_of_components_operations_and_fields():
    assert complete("/reso") == "/resource-manager"
    assert complete("/coordination-hub pa") == "/coordination-hub pause"
    done = complete("/resource-manager allocate '{\"cp")
    assert done is not None and done.startswith("/resource-manager allocate '{\"cpu") and done.endswith('":')
    assert complete("not a command") is None
    # The seed's form, the k9s form without a slash, and a doubled slash all complete.
    assert complete("/resource-manager st") == "/resource-manager status"
    assert complete("resource-manager st") == "/resource-manager status"
    assert complete("//resource-manager st") == "/resource-manager status"
    assert normalise("//incident list") == "/incident list" == normalise("incident list")
    many = candidates("/resource-manager a")
    assert len(many) > 1 and all(m.startswith("/resource-manager a") for m in many)


@pytest.mark.slow
async def test_parser_error_inline_then_command_runs(tmp_path):
    db = tmp_path / "c.db"
    app = make_app(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 60)
        eng = app.host.engine
        await pilot.press("colon")
        cl = app.command_line
        assert cl.display and app.focused is cl.query_one(Input)
        await pilot.press(*"coordination-hub pause workflow_003 '{bad", "enter")
        err = cl.query_one("#cmd-error", Static)
        assert await came_true(pilot, lambda: err.display and "column" in str(err.render()))
        assert "nothing was applied" in str(err.render())
        assert eng.state.status_of("workflow_003") is WorkflowStatus.RUNNING
        inp = cl.query_one(Input)
        inp.value = "/coordination-hub pause workflow_003"
        await pilot.press("enter")
        assert await came_true(pilot, lambda: eng.state.status_of("workflow_003") is WorkflowStatus.PAUSED)
        assert await came_true(pilot, lambda: not cl.display)
        await eng.flush()
        with sqlite3.connect(db) as con:
            row = con.execute(
                "SELECT actor, data FROM events WHERE type='COMMAND_EXECUTED' ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        assert row[0] == "operator" and "pause workflow_003" in row[1]


@pytest.mark.slow
async def test_tab_completes_in_the_line(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("colon", *"workflow-rec", "tab")
        assert app.command_line.query_one(Input).value == "/workflow-recovery"


@pytest.mark.slow
async def test_readonly_refuses_mutating_slash_command(tmp_path):
    db = tmp_path / "c.db"
    writer = make_app(db)
    async with writer.run_test(size=(100, 30)) as pilot:
        await settle(writer, pilot, 120)
    app = make_app(db, readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        eng = app.link
        seq = eng.state.seq
        await pilot.press("colon", *"coordination-hub pause workflow_003", "enter")
        err = app.command_line.query_one("#cmd-error", Static)
        assert await came_true(pilot, lambda: err.display and "READ_ONLY" in str(err.render()))
        assert eng.state.status_of("workflow_003") is WorkflowStatus.RUNNING
        # Reading is allowed in a read-only console.
        app.command_line.query_one(Input).value = "/coordination-hub get-status"
        await pilot.press("enter")
        assert await came_true(pilot, lambda: not app.command_line.display)
        assert eng.state.seq == seq


def _screen_text(app) -> str:  # type: ignore[no-untyped-def]
    from rich.console import Console

    con = Console(width=160, record=True, color_system=None)
    con.print(app.screen.body)
    return con.export_text()


@pytest.mark.slow
async def test_seed_form_tab_then_enter_shows_the_result_table(tmp_path):
    """`:` then the seed's `/resource-manager st`, Tab, Enter: a result screen whose table
    lists every workflow of the state with its allocation; esc closes it."""
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(140, 42)) as pilot:
        await settle(app, pilot, 120)
        eng = app.host.engine
        await pilot.press("colon", *"/resource-manager st", "tab")
        assert app.command_line.input.value == "/resource-manager status"
        await pilot.press("enter")
        assert await came_true(pilot, lambda: isinstance(app.screen, ResultScreen))
        text = _screen_text(app)
        assert "workflows (6)" in text
        for wf in eng.state.workflows.values():
            line = next(ln for ln in text.splitlines() if ln.startswith(wf.id + " "))
            assert wf.status.value in line and f"{wf.allocation.agents}" in line.split()
        assert f"{eng.config.capacity.agents}" in text
        await pilot.press("escape")
        assert await came_true(pilot, lambda: app.screen is app.screen_stack[0])
        # History: the line remembers the command; up brings it back.
        await pilot.press("colon", "up")
        assert app.command_line.input.value == "/resource-manager status"


@pytest.mark.slow
async def test_incident_list_and_rerun_refresh_the_result(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 30)
        await pilot.press("colon", *"incident list", "enter")
        assert await came_true(pilot, lambda: isinstance(app.screen, ResultScreen))
        first = app.screen.response["metrics"]["seq"]
        await app.host.advance(60)
        await app.host.engine.flush()
        await pilot.press("r")
        assert await came_true(pilot, lambda: app.screen.runs == 2)
        assert app.screen.response["metrics"]["seq"] > first
        assert "run 2" in app.screen.title_text()


@pytest.mark.slow
async def test_wrong_case_is_corrected_by_tab(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        seq = app.host.engine.state.seq
        await pilot.press("colon", *"/Resource-Manager status", "enter")
        err = app.command_line.query_one("#cmd-error", Static)
        assert await came_true(
            pilot, lambda: err.display and "did you mean: /resource-manager status" in str(err.render())
        )
        await pilot.press("tab")
        assert app.command_line.input.value == "/resource-manager status"
        await pilot.press("enter")
        assert await came_true(pilot, lambda: isinstance(app.screen, ResultScreen))
        assert app.screen.ok
        # A read-only command recorded as executed, nothing else changed: only COMMAND_EXECUTED events.
        await app.host.engine.flush()
        with sqlite3.connect(tmp_path / "c.db") as con:
            mine = [t for (t,) in con.execute("SELECT type FROM events WHERE seq > ? AND actor = 'operator'", (seq,))]
        assert mine and set(mine) == {"COMMAND_EXECUTED"}, mine
