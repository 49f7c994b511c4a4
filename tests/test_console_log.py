"""The event log: a row cursor with Enter opening the event whole; a filter that counts
the same for stored and live rows; unknown severities and types refused."""

from __future__ import annotations

import json

import pytest

from core.events import Event
from tests.console_support import BUSY_S, came_true, make_app, reads_pending, settle
from tui.log_source import FilterError, LogFilter
from tui.screens.event import EventScreen


def _ev(seq: int, data: dict) -> Event:
    return Event(seq=seq, ts=0.0, type="TASK_COMPLETED", component="agent", scope="execution", data=data)


def test_wf_filter_is_exact_or_an_explicit_prefix():
    exact = LogFilter.parse("wf:workflow_001")
    assert exact.matches(_ev(1, {"workflow_id": "workflow_001"}))
    assert exact.matches(_ev(2, {"task": "workflow_001/build_1"}))
    assert not exact.matches(_ev(3, {"workflow_id": "workflow_001_r2"}))
    assert not exact.matches(_ev(4, {"task": "workflow_001_r2/build_1"}))
    prefix = LogFilter.parse("wf:workflow_001*")
    assert prefix.matches(_ev(5, {"workflow_id": "workflow_001_r2"}))
    assert not prefix.matches(_ev(6, {"workflow_id": "migration_workflow_001"}))


def test_unknown_severity_is_refused_with_the_valid_ones():
    try:
        LogFilter.parse("sev:bogus")
    except FilterError as exc:
        assert "critical, high, medium, low, info" in str(exc)
    else:
        raise AssertionError("sev:bogus was accepted")


@pytest.mark.slow
async def test_stored_and_live_rows_match_the_same_and_bad_filters_change_nothing(tmp_path):
    app = make_app(tmp_path / "l.db")
    async with app.run_test(size=(140, 42)) as pilot:
        await app.link_opened()
        eng = app.host.engine
        for _ in range(12):
            await settle(app, pilot, 600)
            if any("workflow_001_r" in w for w in eng.state.workflows):
                break
        assert any("workflow_001_r" in w for w in eng.state.workflows), "the demo resubmitted no workflow"
        log = app.log_pane
        log.apply_filter("wf:workflow_001")
        assert await came_true(pilot, lambda: log.matches is not None)
        # Events arrive live (not yet read from the store) ...
        await app.host.advance(600)
        assert await came_true(pilot, lambda: log.head == eng.state.seq and not reads_pending(app, log), BUSY_S)
        live_count = log.count
        # ... then re-applying the same filter reads them from the store: the same count.
        await eng.flush()
        app._log_tick()
        log.apply_filter("wf:workflow_001")
        # The filter is set at once; its run over the store is a worker: wait for its answer.
        assert await came_true(
            pilot, lambda: log.filter.workflow == "workflow_001" and not reads_pending(app, log), BUSY_S
        )
        assert log.matches is not None
        assert log.count == live_count
        stored = log.source.read_seqs(list(log.matches))
        assert all(LogFilter.parse("wf:workflow_001").matches(e) for e in stored)
        assert not any(
            '"workflow_001_r' in json.dumps(e.data)
            and '"workflow_001"' not in json.dumps(e.data)
            and '"workflow_001/' not in json.dumps(e.data)
            for e in stored
        )
        # The title and the toast say the same thing.
        assert log.count_text() in log.border_title and log.count_text() in log.filter_summary()
        assert "wf:workflow_001" in log.filter_summary() and "wf:workflow_001" in log.border_subtitle
        # An unknown type is refused; the filter in force stays.
        before = (log.filter, log.count)
        await pilot.press("slash", *"type:NOPE", "enter")
        assert await came_true(pilot, lambda: any("NOPE" in n.message for n in app._notifications))
        assert (log.filter, log.count) == before
        assert app.filter_input.display  # still open to fix
        await pilot.press("escape")


@pytest.mark.slow
async def test_enter_on_a_log_row_opens_the_whole_event(tmp_path):
    app = make_app(tmp_path / "l.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 300)
        log = app.log_pane
        log.focus()
        await pilot.press("up", "up")
        assert log.cursor is not None
        await settle(app, pilot)
        want = log._event(log.seq_at(log.cursor))
        assert want is not None
        await pilot.press("enter")
        assert await came_true(pilot, lambda: isinstance(app.screen, EventScreen))
        assert app.screen.event.seq == want.seq
        assert app.screen.event.data == want.data
        await pilot.press("escape")
        assert await came_true(pilot, lambda: app.screen is app.screen_stack[0])


def test_saved_filters_expand_and_unknown_names_are_refused():
    saved = {"failures": "type:TASK_FAILED sev:high"}
    flt = LogFilter.parse("@failures wf:workflow_001", saved)
    assert (flt.type, flt.severity, flt.workflow) == ("TASK_FAILED", "high", "workflow_001")
    try:
        LogFilter.parse("@nope", saved)
    except FilterError as exc:
        assert "@failures" in str(exc)
    else:
        raise AssertionError("@nope was accepted")


@pytest.mark.slow
async def test_saved_filter_from_the_config_applies_in_the_console(tmp_path):
    from core.config import Config

    cfg = Config.model_validate({"console": {"filters": {"progress": "type:TASK_PROGRESS"}}})
    app = make_app(tmp_path / "l.db", config=cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 120)
        await pilot.press("slash", *"@progress", "enter")
        log = app.log_pane
        assert await came_true(pilot, lambda: log.matches is not None and log.filter.type == "TASK_PROGRESS")
        got = log.source.read_seqs(list(log.matches))
        assert got and all(e.type == "TASK_PROGRESS" for e in got)
