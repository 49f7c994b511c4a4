"""Snapshot tests: fixed seed, paused clock, temp database, fixed terminal sizes.

Regenerate with ``pytest tests/test_console_snapshots.py --snapshot-update`` and look
at the SVGs in tests/__snapshots__ before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Config
from tests.console_support import BUSY_S, came_true, make_app, reads_pending
from tests.console_support import settle as settle_app
from tui.screens.checkpoints import CheckpointsScreen
from tui.screens.help import HelpScreen
from tui.screens.modals import ConfirmScreen
from tui.screens.result import ResultScreen

MANUAL = Config.model_validate(
    {"approval": {"auto": [], "manual": ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"]}}
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "snap.db"


async def settle(app, pilot, seconds: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    """The header names the host's pid; a fixed one keeps the screens comparable."""
    await app.link_opened()
    app.link.host_pid = 4242
    await settle_app(app, pilot, seconds)


async def _on_screen(pilot, kind: type) -> None:  # type: ignore[no-untyped-def]
    """Wait until the console shows a screen of ``kind``, then settle it."""
    assert await came_true(pilot, lambda: isinstance(pilot.app.screen, kind), BUSY_S)
    await settle(pilot.app, pilot)


def main_screen(seconds: float):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot.app, pilot, seconds)

    return run_before


@pytest.mark.slow
def test_main_80x24(snap_compare, db):
    assert snap_compare(make_app(db), terminal_size=(80, 24), run_before=main_screen(900))


@pytest.mark.slow
def test_main_160x48(snap_compare, db):
    assert snap_compare(make_app(db), terminal_size=(160, 48), run_before=main_screen(900))


async def _open(pilot, pane: str, option: str) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    ol = app.query_one(pane)
    ol.focus()
    ol.highlighted = [o.id for o in ol.options].index(option)
    await pilot.press("enter")
    assert await came_true(pilot, lambda: app.screen is not app.screen_stack[0], BUSY_S)
    screen = app.screen
    # Its recent events (and a finished workflow's archive) are read by workers.
    assert await came_true(pilot, lambda: bool(screen.events) and not reads_pending(app, screen), BUSY_S)
    await settle(app, pilot)
    screen.redraw()
    await pilot.pause()


@pytest.mark.slow
def test_workflow_screen(snap_compare, db):
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot.app, pilot, 900)
        await pilot.app.host.engine.checkpoint("manual", "snapshot test")
        await settle(pilot.app, pilot)
        await _open(pilot, "#workflows", "wf:workflow_001")

    assert snap_compare(make_app(db), terminal_size=(120, 40), run_before=run_before)


@pytest.mark.slow
def test_agent_screen(snap_compare, db):
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot.app, pilot, 900)
        await _open(pilot, "#pools", "agent:agent_001")

    assert snap_compare(make_app(db), terminal_size=(120, 40), run_before=run_before)


async def _until_plan(pilot) -> None:  # type: ignore[no-untyped-def]
    from tui import operator

    app = pilot.app
    await app.link_opened()
    eng = app.host.engine
    res = await app.link.send(operator.drill_command("resource-exhaustion"))
    assert res["status"] == "success", res
    for _ in range(1000):
        await app.host.advance(5.0)
        if any(p.state == "proposed" for p in eng.state.plans.values()):
            break
    await settle(app, pilot)


@pytest.mark.slow
def test_incident_screen(snap_compare, db):
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await _until_plan(pilot)
        inc = sorted(pilot.app.host.engine.state.incidents)[0]
        await _open(pilot, "#incidents", f"incident:{inc}")
        # The "new incident" toast is still up or already gone depending on the machine's load.
        pilot.app.clear_notifications()
        assert await came_true(pilot, lambda: not pilot.app.screen.query("Toast"), BUSY_S)
        await settle(pilot.app, pilot)

    assert snap_compare(make_app(db, config=MANUAL), terminal_size=(120, 40), run_before=run_before)


@pytest.mark.slow
def test_main_with_plan_waiting(snap_compare, db):
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await _until_plan(pilot)

    assert snap_compare(make_app(db, config=MANUAL), terminal_size=(120, 40), run_before=run_before)


@pytest.mark.slow
def test_checkpoints_screen(snap_compare, db):
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app = pilot.app
        await settle(app, pilot, 300)
        await app.host.engine.checkpoint("manual", "before the release")
        await settle(app, pilot, 300)
        await pilot.press("b")
        await _on_screen(pilot, CheckpointsScreen)

    assert snap_compare(make_app(db), terminal_size=(120, 30), run_before=run_before)


@pytest.mark.slow
def test_confirmation_modal(snap_compare, db):
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app = pilot.app
        await settle(app, pilot, 300)
        cp = await app.host.engine.checkpoint("manual", "before the release")
        await settle(app, pilot, 300)
        app.request_rollback(cp)
        await _on_screen(pilot, ConfirmScreen)

    assert snap_compare(make_app(db), terminal_size=(100, 30), run_before=run_before)


@pytest.mark.slow
def test_help_screen(snap_compare, db):
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot.app, pilot)
        await pilot.press("question_mark")
        await _on_screen(pilot, HelpScreen)

    assert snap_compare(make_app(db), terminal_size=(120, 40), run_before=run_before)


@pytest.mark.slow
def test_result_screen_80x24(snap_compare, db):
    """`:/resource-manager status` at 80 columns: the table fits, the rest is named."""

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app = pilot.app
        await settle(app, pilot, 300)
        await pilot.press("colon", *"/resource-manager status", "enter")
        await _on_screen(pilot, ResultScreen)

    assert snap_compare(make_app(db), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.slow
def test_workflow_cancel_dialog_160x48(snap_compare, db):
    """X: the dialog lists the workflow; its buttons say Keep running / Cancel workflow."""

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app = pilot.app
        await settle(app, pilot, 300)
        wl = app.workflows_pane
        wl.focus()
        wl.highlighted = [o.id for o in wl.options].index("wf:workflow_003")
        await pilot.press("X")
        await _on_screen(pilot, ConfirmScreen)

    assert snap_compare(make_app(db), terminal_size=(160, 48), run_before=run_before)
