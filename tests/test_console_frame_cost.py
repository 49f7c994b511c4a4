"""What a frame redraws under the live console: the same cells for less work.

The lists' rows and the header are drawn by rich (tui/strips.py) instead of Textual's
visual pipeline: every cell (character, colour, attributes) must be what Textual draws.
A changed row repaints that row, a changed border title its border row; the refresh
timer draws one thing per tick (a list, the header, the log); the console's young
collections stay short and never run inside a frame of the main screen."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from core.collector import CONSOLE_GEN0
from tests.console_support import BUSY_S, came_true, make_app, settle
from tui.app import LISTS, PANE_TICKS, TICKS, OpsdeckApp
from tui.screens.main import MainScreen
from tui.widgets.event_log import EventLog
from tui.widgets.header_gauges import HeaderGauges
from tui.widgets.live_list import LiveList


def cells(strip: Strip) -> list[tuple[str, Any]]:
    """(character, style with its metadata) per cell, and where each segment ends: the
    segments decide how a screenshot groups its text."""
    return [(ch, seg.style, i == len(seg.text) - 1) for seg in strip for i, ch in enumerate(seg.text)]


def lists(app: OpsdeckApp) -> list[LiveList]:
    return [app.pools_pane, app.workflows_pane, app.incidents_pane]


async def test_rows_and_header_are_the_cells_textual_draws(tmp_path: Path) -> None:
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot, 900)
        compared = 0
        for pane in lists(app):
            for component in ("", "option-list--option-highlighted", "option-list--option-disabled"):
                style = pane.get_visual_style("option-list--option", *([component] if component else []))
                for opt in pane.options:
                    pane._option_render_cache.clear()
                    ours = pane._row_render(opt, style)
                    pane._option_render_cache.clear()
                    theirs = OptionList._get_option_render(pane, opt, style)
                    assert [cells(s) for s in ours] == [cells(s) for s in theirs], opt.id
                    compared += 1
        assert compared >= 3 * 20
        header = app.header_pane
        width = header.size.width
        header.refresh()
        ours_h = header.render_lines(Region(0, 0, width, 2))
        drawn = HeaderGauges.render_line
        try:
            HeaderGauges.render_line = Widget.render_line  # type: ignore[method-assign]
            header.refresh()
            theirs_h = header.render_lines(Region(0, 0, width, 2))
        finally:
            HeaderGauges.render_line = drawn  # type: ignore[method-assign]
        assert [cells(s) for s in ours_h] == [cells(s) for s in theirs_h]
        assert "⏱" in ours_h[1].text


async def test_a_row_of_two_lines_is_drawn_by_textual(tmp_path: Path) -> None:
    """The case the rich path must not take: a prompt with a newline is two lines."""
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        pane = app.workflows_pane
        pane.add_option(Option(Text("first line\nsecond line"), id="two"))  # taken at once: nothing to wait for
        opt = pane.get_option("two")
        style = pane.get_visual_style("option-list--option")
        strips = pane._row_render(opt, style)
        assert [s.text.rstrip() for s in strips] == ["first line", "second line"]


def count_rows(widget: Widget, calls: list[int]) -> None:
    real = widget.render_line

    def counted(y: int) -> Strip:
        calls.append(y)
        return real(y)

    widget.render_line = counted  # type: ignore[method-assign]


async def test_a_changed_row_repaints_that_row_and_a_title_its_border(tmp_path: Path) -> None:
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot, 600)
        app._stop.set()  # the refresh timers stand still: only what the test changes is drawn
        await pilot.pause()  # what an earlier tick queued is handled and drawn (pause ends with a frame)
        pools = app.pools_pane
        rows = pools.rows(app.link)  # type: ignore[arg-type]
        agent = next(i for i, r in enumerate(rows) if not r[2])
        calls: list[int] = []
        count_rows(pools, calls)
        changed = [
            (oid, Text(p.plain.replace(p.plain[:3], "XYZ", 1)) if i == agent else p, d)
            for i, (oid, p, d) in enumerate(rows)
        ]
        pools.sync(changed)
        assert await came_true(pilot, lambda: bool(calls), BUSY_S), "the changed row was not drawn"
        await pilot.pause()  # and whatever else the change queued, drawn in the frame pause ends with
        assert set(calls) == {agent - int(pools.scroll_offset.y)}, calls  # that row only (one frame or two)
        assert pools.get_option(rows[agent][0]).prompt.plain.startswith("XYZ")
        # The same rows again: nothing to draw.
        calls.clear()
        pools.sync(changed)
        await pilot.pause()  # nothing to wait for but the frame: the list handles what was queued, then one is drawn
        assert calls == []
        # The event log's title changes: its rows are not drawn again, the title shows.
        log = app.query_one(EventLog)
        calls.clear()
        count_rows(log, calls)
        refreshed: list[tuple[Region, ...]] = []
        real_refresh = log.refresh
        log.refresh = lambda *r, **k: (refreshed.append(r), real_refresh(*r, **k))[1]  # type: ignore[method-assign]
        log.border_text.title("Event-log-title-42")
        await pilot.pause()  # the log handles what was queued, then a frame is drawn
        assert calls == []
        assert log.border_title == "Event-log-title-42"
        assert refreshed == [(Region(-1, -1, log.outer_size.width, 1),)]
        refreshed.clear()
        log.border_text.title("Event-log-title-42")  # unchanged: no repaint at all
        assert refreshed == []


async def test_the_timer_draws_one_thing_per_tick(tmp_path: Path) -> None:
    """Each tick draws exactly what TICKS names for it: the event log's growth, the header,
    one list, the header's seq only when the log's head moved, nothing on the free tick."""
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        drawn: list[str] = []
        for pane in lists(app):
            pane.refresh_from = lambda link, p=pane: drawn.append(str(p.id))  # type: ignore[method-assign]
        real_log_tick = app._log_tick
        app._log_tick = lambda: (drawn.append("log"), real_log_tick())[1]  # type: ignore[method-assign]
        header = app.header_pane
        real_header_refresh = header.refresh
        header.refresh = lambda *r, **k: (drawn.append("header"), real_header_refresh(*r, **k))[1]  # type: ignore[method-assign]
        app._pane_step = 0
        for tick in range(2 * PANE_TICKS):  # each step of TICKS twice
            step = TICKS[tick % PANE_TICKS]
            moved = app.log_pane.head != header._drawn_seq  # what the seq step looks at
            drawn.clear()
            app._tick_panes()
            if step == "seq":
                assert drawn == (["header"] if moved else []), (tick, step)
            else:
                assert drawn == ([step] if step else []), (tick, step)
        assert {s for s in TICKS if s} == {"log", "seq", "header", *LISTS}  # every kind was stepped through
        header.refresh = real_header_refresh  # type: ignore[method-assign]
        drawn.clear()
        app.refresh_panes()  # after an operator's action: every list at once
        assert sorted(drawn) == sorted(LISTS)


async def test_the_console_collects_young_objects_in_small_batches(tmp_path: Path) -> None:
    app = make_app(tmp_path / "c.db")
    before = gc.get_threshold()
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(app, pilot)
            assert gc.get_threshold()[0] <= CONSOLE_GEN0
    finally:
        gc.set_threshold(*before)


async def test_the_main_screen_draws_its_frames_with_the_collector_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tui/screens/main.py wraps Textual's private frame method (Screen._on_timer_update):
    a Textual that no longer draws through it fails here, not silently."""
    inside: list[bool] = []
    wrapped = MainScreen._on_timer_update

    def frame(screen: MainScreen) -> None:
        inside.append(True)
        try:
            wrapped(screen)
        finally:
            inside.pop()

    monkeypatch.setattr(MainScreen, "_on_timer_update", frame)
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, MainScreen)
        header = app.header_pane
        seen: list[tuple[bool, bool]] = []
        real = header.render_line
        header.render_line = lambda y: (seen.append((bool(inside), gc.isenabled())), real(y))[1]  # type: ignore[method-assign]
        header.refresh()
        assert await came_true(pilot, lambda: bool(seen))
        header.render_line = real  # type: ignore[method-assign]
        assert all(within for within, _ in seen), "a frame was drawn outside MainScreen._on_timer_update"
        assert not any(enabled for _, enabled in seen)  # drawn inside the frame, the collector paused
        assert gc.isenabled()  # and running again after it


async def test_the_header_shows_its_logs_head_and_redraws_only_when_it_moves(tmp_path: Path) -> None:
    """The header is given the event log pane and whether the console is read-only (no
    lookup on the app): its seq is that pane's head, redrawn on the tick after it moves."""
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        app._stop.set()  # the refresh timers stand still: only what the test changes is drawn
        header, log = app.header_pane, app.log_pane
        assert header.event_log is log and header.readonly is False

        def shown() -> str:
            header.refresh()
            return "\n".join(s.text for s in header.render_lines(Region(0, 0, header.size.width, 2)))

        assert f"seq {log.head:,}" in shown() and "READ-ONLY" not in shown()
        refreshed: list[int] = []
        real_refresh = header.refresh
        header.refresh = lambda *r, **k: (refreshed.append(1), real_refresh(*r, **k))[1]  # type: ignore[method-assign]
        header.follow_log()
        assert refreshed == []  # the head shown is the log's: nothing to redraw
        log.head += 7
        header.follow_log()
        assert refreshed == [1]
        header.refresh = real_refresh  # type: ignore[method-assign]
        assert f"seq {log.head:,}" in shown()
        header.readonly = True
        assert "READ-ONLY" in shown()


async def test_a_task_row_is_not_kept_drawn_without_its_count_when_counting_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log keeps a task row drawn before its progress count is known (redrawn when
    the count comes); a count that cannot be read must not leave the row cached without
    it: the row and its count are cached both or neither, and the next repaint asks again."""
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot, 900)
        await app.host.engine.flush()
        app._stop.set()  # the refresh timers stand still: only what the test changes is drawn
        log = app.log_pane
        log.tick(app.host.engine.state.seq)
        log.apply_filter("type:TASK_COMPLETED")

        def shown() -> list[int]:
            top = int(log.scroll_offset.y)
            return [log.seq_at(i) for i in range(top, min(top + log.size.height, log.count))]

        def completions() -> bool:
            evs = [log._event(s) for s in shown()]
            return bool(evs) and all(e is not None and e.type == "TASK_COMPLETED" for e in evs)

        assert await came_true(pilot, completions, 10)
        assert await came_true(pilot, log.folds_ready, 10)
        rows = shown()

        source = log.source
        assert source is not None
        real = source.progress_folded
        asked: list[list[tuple[int, str]]] = []

        def failing(rows: list[tuple[int, str]]) -> dict[int, int]:
            asked.append(rows)
            raise OSError("disk I/O error")

        monkeypatch.setattr(source, "progress_folded", failing)
        log.folds.clear()
        log.lines.clear()
        log.refresh()
        repaints: list[int] = []
        real_refresh = log.refresh
        log.refresh = lambda *r, **k: (repaints.append(1), real_refresh(*r, **k))[1]  # type: ignore[method-assign]
        assert await came_true(pilot, lambda: bool(asked) and not log._folding)  # the failed count came back
        await pilot.pause()
        log.refresh = real_refresh  # type: ignore[method-assign]
        assert {s for s, _ in asked[0]} == set(rows)
        assert not any(s in log.lines for s in rows)  # neither the row nor its count
        assert repaints == [] and len(asked) == 1  # asked again on the next repaint, not in a loop

        monkeypatch.setattr(source, "progress_folded", real)
        log.refresh()
        assert await came_true(pilot, log.folds_ready, 10)
        assert all(s in log.folds for s in rows)  # both: each row drawn again with its count
        for y, seq in enumerate(rows):
            n = log.folds[seq]
            assert (f"· {n} progress" in log.render_line(y).text) == (n > 0)
