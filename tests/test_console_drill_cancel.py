"""Pilot tests: a running drill shows in the header and ``C`` (or the palette, or
``/host drill cancel``) cancels it: its fault is never injected, the slot is free for
the next drill; with no drill running, nothing happens."""

from __future__ import annotations

import sqlite3

import pytest

from tests.console_support import came_true, make_app, palette_search
from tui.screens.modals import ConfirmScreen


def _types(db, type_: str) -> int:  # type: ignore[no-untyped-def]
    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT count(*) FROM events WHERE type=?", (type_,)).fetchone()[0])


@pytest.mark.slow
async def test_cancel_drill_key_before_its_fault(tmp_path):
    db = tmp_path / "c.db"
    app = make_app(db)
    async with app.run_test(size=(160, 40)) as pilot:
        await app.link_opened()
        host = app.host
        res = await app.link.send("/host drill performance-degradation")
        assert res["status"] == "success"
        app.refresh_panes()
        assert await came_true(pilot, lambda: "drill performance-degradation" in str(app.header_pane.render()))
        inject_at = host.drill.inject_at
        await pilot.press("C")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "never is" in str(app.screen.detail)
        await pilot.press("tab", "enter")
        assert await came_true(pilot, lambda: host.drill.done)
        assert host.engine.state.settings["drill"]["status"] == "cancelled"
        await host.advance(inject_at - host.engine.clock.now() + 600)
        await host.engine.flush()
        assert _types(db, "DRILL_FAULT_INJECTED") == 0
        assert not host.engine.state.incidents
        app.refresh_panes()
        assert await came_true(pilot, lambda: "drill performance-degradation" not in str(app.header_pane.render()))
        # The slot is free: the next drill arms.
        assert (await app.link.send("/host drill agent-cascade"))["status"] == "success"
        assert host.drill.name == "agent-cascade" and not host.drill.done


async def test_cancel_drill_with_none_running_changes_nothing(tmp_path):
    db = tmp_path / "c.db"
    app = make_app(db)
    async with app.run_test(size=(160, 40)) as pilot:
        await app.link_opened()
        eng = app.host.engine
        await eng.flush()
        seq = eng.state.seq
        await pilot.press("C")
        assert await came_true(pilot, lambda: any("no drill is running" in n.message for n in app._notifications))
        assert app.screen is app.screen_stack[0]  # no dialog
        await eng.flush()
        assert eng.state.seq == seq
        res = await app.link.send("/host drill cancel")
        assert res["status"] == "error" and res["error"]["code"] == "NO_DRILL"
        assert "drill" not in eng.state.settings


@pytest.mark.slow
async def test_cancel_drill_after_its_fault_keeps_the_incident(tmp_path):
    """Cancelled after the cascade's first failure: the failures still to come are dropped."""
    db = tmp_path / "c.db"
    app = make_app(db)
    async with app.run_test(size=(160, 40)):
        await app.link_opened()
        host = app.host
        eng = host.engine
        await host.advance(120)
        assert (await app.link.send("/host drill agent-cascade"))["status"] == "success"
        await host.advance(host.drill.inject_at - eng.clock.now() + 1)
        assert host.drill.injected
        victims = host.drill.fault["fail_agents"]
        failed = lambda: [a for a in victims if eng.state.agents[a].status.value == "failed"]  # noqa: E731
        assert len(failed()) == 1
        res = await app.link.send("/host drill cancel")
        assert res["status"] == "success" and "injected at" in res["result"]["summary"]
        await host.advance(eng.config.supervision.window_s)
        assert len(failed()) == 1  # the rest of the cascade never came
        assert eng.state.settings["drill"]["status"] == "cancelled"


@pytest.mark.slow
async def test_cancel_drill_from_the_palette(tmp_path):
    """The palette's "Cancel drill" asks as the key does, and only a confirmation cancels."""
    db = tmp_path / "c.db"
    app = make_app(db)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.link_opened()
        host = app.host
        assert (await app.link.send("/host drill resource-exhaustion"))["status"] == "success"

        async def palette_cancel() -> None:
            await palette_search(app, pilot, "Cancel drill", "Cancel drill")
            await pilot.press("enter")
            assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))

        await palette_cancel()
        await pilot.press("escape")  # kept: the drill still runs
        assert await came_true(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert not host.drill.done and host.engine.state.settings["drill"]["status"] != "cancelled"
        await palette_cancel()
        await pilot.press("tab", "enter")
        assert await came_true(pilot, lambda: host.drill.done)
        assert host.engine.state.settings["drill"]["status"] == "cancelled"
