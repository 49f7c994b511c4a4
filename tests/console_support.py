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
    eng = await app.engine_opened()
    if seconds:
        await eng.advance(seconds)
    await eng.flush()
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
