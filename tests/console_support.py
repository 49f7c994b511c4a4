"""Shared set-up for the console tests: a deterministic app over a temp database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.config import Config
from tui.app import OpsdeckApp
from tui.widgets.event_log import EventLog

SEED = 7


def make_app(db: Path, *, readonly: bool = False, demo: bool = True, config: Config | None = None) -> OpsdeckApp:
    """speed=0: the clock is paused, tests advance it themselves."""
    return OpsdeckApp(db=db, config=config or Config(), demo=demo, seed=SEED, speed=0, readonly=readonly)


async def settle(app: OpsdeckApp, pilot, seconds: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    """Advance the simulation, flush, redraw panes, and wait for the event log's window."""
    await app.link_opened()
    if seconds:
        await app.host.advance(seconds)
    app.refresh_panes()
    log = app.query_one(EventLog)
    log.tick()
    for _ in range(100):
        await pilot.pause(0.02)
        if log.visible_ready():
            break
    await pilot.pause(0.05)


async def wait_for(pilot, cond, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if cond():
            return True
        await pilot.pause(0.02)
    return bool(cond())


async def drill_until_plan(app: OpsdeckApp, pilot, name: str = "resource-exhaustion", limit_s: float = 4000.0) -> str:  # type: ignore[no-untyped-def]
    """Start a drill from the palette as an operator would, then run the clock until its
    plan waits for approval; returns the plan id."""
    from tui.screens.confirm import ConfirmScreen

    await app.link_opened()
    eng = app.host.engine
    await pilot.press("ctrl+p")
    await pilot.pause(0.2)
    await pilot.press(*f"Drill: {name}")
    await pilot.pause(0.4)
    await pilot.press("enter")
    assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("tab", "enter")
    assert await wait_for(pilot, lambda: app.host.drill is not None)
    end = eng.clock.now() + limit_s
    while eng.clock.now() < end:
        await app.host.advance(5.0)
        waiting = [pid for pid, p in eng.state.plans.items() if p.state == "proposed"]
        if waiting:
            app.refresh_panes()
            await pilot.pause(0.1)
            return waiting[0]
    raise AssertionError(f"drill {name}: no plan proposed within {limit_s}s")
