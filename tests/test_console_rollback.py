"""Rollback shows per workflow before -> after (status, phase, progress), computed by the
host from the checkpoint it restores (confirm dialog) and measured (result dialog)."""

from __future__ import annotations

import sqlite3

import pytest
from rich.console import Console

from core.commands.executor import run_command
from core.commands.workflow_recovery.restores import brief
from tests.console_support import came_true, make_app, settle
from tui.screens.checkpoints import CheckpointsScreen
from tui.screens.modals import ConfirmScreen


def shown(app) -> str:  # type: ignore[no-untyped-def]
    """The open dialog's detail as plain text, wide enough that no row wraps."""
    console = Console(width=220, record=True, color_system=None)
    console.print(app.screen.detail)
    return console.export_text()


def row_line(text: str, wf: str) -> str:
    return next(line for line in text.splitlines() if line.split() and line.split()[0] == wf)


def pct(p: float) -> str:
    return f"{p * 100:.0f}%"


@pytest.mark.slow
async def test_rollback_dialogs_show_each_workflow_before_and_after(tmp_path):
    db = tmp_path / "c.db"
    app = make_app(db)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot, 120)
        eng = app.host.engine
        cp = await eng.checkpoint("manual", "before")
        at_cp = {w: brief(eng.state, w) for w in eng.state.all_workflow_ids()}
        await settle(app, pilot, 900)
        now = {w: brief(eng.state, w) for w in eng.state.all_workflow_ids()}
        moved = sorted(w for w in now if now[w] != at_cp.get(w))
        assert moved, "the clock moved: some workflow progressed since the checkpoint"
        await pilot.press("b")
        assert await came_true(pilot, lambda: isinstance(app.screen, CheckpointsScreen))
        ol = app.screen.query_one("OptionList")
        assert await came_true(pilot, lambda: str(cp) in [o.id for o in ol.options])
        ol.highlighted = [o.id for o in ol.options].index(str(cp))
        await pilot.press("enter")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        text = shown(app)
        assert "state_hash" not in text and "→" in text
        for w in moved:  # each changed workflow: now -> as it was at the checkpoint
            line = row_line(text, w)
            b, a = now[w], at_cp[w]
            assert b is not None and a is not None
            assert pct(b.progress) in line and pct(a.progress) in line, line
            if b.status != a.status:
                assert f"{b.status} → {a.status}" in line, line
            if b.phase != a.phase:
                assert f"{b.phase or '—'} → {a.phase or '—'}" in line, line
        assert f"{len(moved)} of " in text
        await pilot.press("tab", "enter")  # Roll back
        assert await came_true(
            pilot, lambda: isinstance(app.screen, ConfirmScreen) and "Rolled back" in app.screen.title_text
        )
        after = {w: brief(eng.state, w) for w in eng.state.all_workflow_ids()}
        assert all(after[w] == at_cp[w] for w in moved)  # the preview said what the rollback did
        result = shown(app)
        for w in moved:
            line = row_line(result, w)
            assert pct(now[w].progress) in line and pct(after[w].progress) in line, line
        await pilot.press("enter")  # Close
        assert await came_true(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        with sqlite3.connect(db) as con:
            assert con.execute("SELECT count(*) FROM events WHERE type='STATE_RESTORED'").fetchone()[0] == 1


@pytest.mark.slow
async def test_rollback_preview_changes_nothing_and_refuses_unknown_checkpoint(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 120)
        eng = app.host.engine
        cp = await eng.checkpoint("manual", "before")
        await settle(app, pilot, 600)

        def work():  # type: ignore[no-untyped-def]
            s = eng.state
            return {w: brief(s, w) for w in s.all_workflow_ids()}, {k: t.status for k, t in s.tasks.items()}

        h = work()
        res = await run_command(eng, f"/workflow-recovery rollback-preview '{{\"checkpoint\": {cp}}}'")
        assert res["status"] == "success" and res["result"]["rows"]
        assert work() == h
        bad = await run_command(eng, "/workflow-recovery rollback-preview '{\"checkpoint\": 9999}'")
        assert bad["status"] == "error" and bad["error"]["code"] == "CHECKPOINT_NOT_FOUND"
        assert work() == h
