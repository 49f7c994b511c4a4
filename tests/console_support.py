"""Shared set-up for the console tests: a deterministic app over a temp database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.config import Config
from tui.app import OpsdeckApp

SEED = 7


def make_app(db: Path, *, readonly: bool = False, demo: bool = True, config: Config | None = None) -> OpsdeckApp:
    """speed=0: the clock is paused, tests advance it themselves."""
    return OpsdeckApp(db=db, config=config or Config(), demo=demo, seed=SEED, speed=0, readonly=readonly)


BUSY_S = 30.0
"""How long a console test waits for a state before it fails: a loaded machine is slow,
a state that never comes fails the test rather than being drawn half-way."""


def reads_pending(app: OpsdeckApp, node: object) -> bool:
    """Whether a worker run by ``node`` has not finished: its answer (a thread worker's
    call_from_thread) is not applied yet."""
    return any(w.node is node and not w.is_finished for w in app.workers)


def log_at_head(app: OpsdeckApp) -> bool:
    """Whether the event log pane shows the engine's head as the store holds it: every
    event committed and known to the pane (its height grown to them), the rows on screen
    read, their progress counts fetched (the filter's run included), the end in view when
    it follows, and no read of the pane's under way."""
    link, log = app.link, app.log_pane
    if link is None:
        return False
    head = link.state.seq
    return (
        link.committed_seq == head
        and log.head == head
        and log.db_head == head
        and log.virtual_size.height == log.count
        and log.visible_ready()
        and log.folds_ready()
        and (not log.follow or log.scroll_y == log.max_scroll_y)
        and not reads_pending(app, log)
    )


def log_state(app: OpsdeckApp) -> str:
    """What :func:`log_at_head` looked at, for the message of a test that gave up waiting."""
    link, log = app.link, app.log_pane
    if link is None:
        return "no link"
    return (
        f"state seq {link.state.seq}, committed {link.committed_seq}, pane head {log.head}, "
        f"pane db_head {log.db_head}, rows read {log.visible_ready()}, counts {log.folds_ready()}, "
        f"follow {log.follow} at {log.scroll_y} of {log.max_scroll_y}, reads pending {reads_pending(app, log)}"
    )


async def settle(app: OpsdeckApp, pilot, seconds: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    """Advance the simulation, then wait until every pane shows where it ended: the event
    log at the head (:func:`log_at_head`), the lists and the header redrawn from the state."""
    link = await app.link_opened()
    if seconds:
        await app.host.advance(seconds)
    app.refresh_panes()
    app.log_pane.tick(link.committed_seq)  # what the refresh timer does, without waiting for its turn
    assert await came_true(pilot, lambda: log_at_head(app), BUSY_S), log_state(app)
    app.refresh_panes()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    # Still so once the redraw is laid out (a layout can move the pane's end).
    assert await came_true(pilot, lambda: log_at_head(app), BUSY_S), log_state(app)


def local_app(tmp_path: Path, workflow_text: str, config: Config | None = None) -> OpsdeckApp:
    """A console at real speed hosting the workflow on real agent processes (local runtime)."""
    from core.host.host import Host
    from core.workflow_file import parse_workflow_text

    wf = parse_workflow_text(workflow_text)
    cfg = config or Config()

    async def host():  # type: ignore[no-untyped-def]
        return await Host.open_local(tmp_path / "c.db", wf, wf.specs(tmp_path), cfg)

    return OpsdeckApp(tmp_path / "c.db", cfg, speed=1.0, host_factory=host)


async def came_true(pilot, cond, timeout: float = BUSY_S) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``cond()`` came true within ``timeout`` s, the pilot pausing between checks
    (Textual handles its messages and draws a frame). Returns a bool for the caller's
    ``assert ..., message`` (conftest's wait_for and until raise their own)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if cond():
            return True
        await pilot.pause(0.02)
    return bool(cond())


async def confirm(app: OpsdeckApp, pilot, *keys: str, timeout: float = BUSY_S) -> None:  # type: ignore[no-untyped-def]
    """Press ``keys`` (what asks, if the test has not asked already), wait for the
    confirmation dialog and confirm it: tab to its confirming button, enter."""
    from tui.screens.modals import ConfirmScreen

    if keys:
        await pilot.press(*keys)
    assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout), f"no dialog after {keys}"
    await pilot.press("tab", "enter")


async def palette_search(app: OpsdeckApp, pilot, text: str, want: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Open the command palette, type ``text`` and wait until its search has answered with
    ``want`` in the first hit (one keystroke is one search: a fixed wait can read an earlier
    one's hits); returns the first line of each hit."""
    from textual.command import CommandList, CommandPalette

    await pilot.press("ctrl+p")
    assert await came_true(pilot, lambda: isinstance(app.screen, CommandPalette), BUSY_S)
    palette = app.screen
    await pilot.press(*text)
    await pilot.pause()

    def hits() -> list[str]:
        return [str(o.prompt).splitlines()[0] for o in palette.query_one(CommandList).options]

    def answered() -> bool:
        return not reads_pending(app, palette) and bool(hits()) and want in hits()[0]

    assert await came_true(pilot, answered, BUSY_S), hits()
    return hits()


async def start_drill(app: OpsdeckApp, pilot, name: str, via: str = "key") -> None:  # type: ignore[no-untyped-def]
    """Start a drill as an operator would and wait until the host runs it: by its key (D),
    the scenario chosen from the list, or (via="palette") by typing "Drill: NAME" in the
    command palette (one keystroke at a time, each a search and a redraw: about 4 s of CPU)."""
    from textual.widgets import OptionList

    from tui.screens.modals import ChooseScreen, ConfirmScreen

    await app.link_opened()
    if via == "palette":
        await palette_search(app, pilot, f"Drill: {name}", name)
        await pilot.press("enter")
    else:
        await pilot.press("D")
        assert await came_true(pilot, lambda: isinstance(app.screen, ChooseScreen))
        options = app.screen.query_one(OptionList)
        names = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert options.highlighted == 0 and name in names, names
        await pilot.press(*["down"] * names.index(name), "enter")
    assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    assert f"'{name}'" in app.screen.title_text, app.screen.title_text
    await pilot.press("tab", "enter")
    assert await came_true(pilot, lambda: app.host.drill is not None and app.host.drill.name == name)


async def drill_until_plan(  # type: ignore[no-untyped-def]
    app: OpsdeckApp, pilot, name: str = "resource-exhaustion", limit_s: float = 4000.0, via: str = "key"
) -> str:
    """Start a drill (start_drill), then run the clock until its plan waits for approval;
    returns the plan id."""
    await start_drill(app, pilot, name, via)
    eng = app.host.engine
    end = eng.clock.now() + limit_s
    while eng.clock.now() < end:
        await app.host.advance(5.0)
        waiting = [pid for pid, p in eng.state.plans.items() if p.state == "proposed"]
        if waiting:
            # The console's link holds the plan as proposed too (a pressed key acts on it).
            pid = waiting[0]
            assert await came_true(pilot, lambda pid=pid: app.link is not None and pid in app.link.state.plans, BUSY_S)
            app.refresh_panes()
            await pilot.pause()
            return pid
    raise AssertionError(f"drill {name}: no plan proposed within {limit_s}s")
