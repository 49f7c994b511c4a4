"""The event log reads as sentences: time, severity mark, type and the catalogue's
summary; raw event lines on a toggle (v); TASK_PROGRESS left out and counted on the task
row that ends its run, shown on a toggle (P); ``sev:high`` in the console finds a
critical detection and a plan's abort, never an info event; times are written one way."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from core import timefmt
from core.config import Config
from core.event_types import severity_of
from core.events import Event, Severity
from tests.console_support import came_true, drill_until_plan, make_app, settle
from tui import operator
from tui.widgets.event_log import EventLog

MANUAL = Config.model_validate(
    {"approval": {"auto": [], "manual": ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"]}}
)
CLOCK = re.compile(r"^\d\d:\d\d:\d\d ")


def _events(db: Path) -> list[Event]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT seq, ts, type, component, scope, actor, data FROM events ORDER BY seq").fetchall()
    return [
        Event(seq=r[0], ts=r[1], type=r[2], component=r[3], scope=r[4], actor=r[5], data=json.loads(r[6])) for r in rows
    ]


def _rows(log: EventLog) -> list[str]:
    return [t for t in (log.render_line(y).text.rstrip() for y in range(log.size.height)) if t]


def _folded_by_python(events: list[Event], seq: int, task: str) -> int:
    """Progress of ``task`` since its last start before ``seq``: counted without SQL."""
    before = [e for e in events if e.seq < seq and e.data.get("task") == task]
    start = max((e.seq for e in before if e.type == "TASK_STARTED"), default=0)
    return sum(1 for e in before if e.type == "TASK_PROGRESS" and e.seq > start)


@pytest.mark.slow
async def test_rows_read_as_sentences_progress_folds_and_both_toggles(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    app = make_app(db)
    async with app.run_test(size=(140, 42)) as pilot:
        await settle(app, pilot, 900)
        eng = app.host.engine
        await eng.flush()
        events = _events(db)
        progress = {e.seq for e in events if e.type == "TASK_PROGRESS"}
        assert progress, "the demo reported no progress in 15 minutes"
        log = app.log_pane
        # By default progress is left out: every other event is a row, the title counts the folded ones.
        assert await came_true(pilot, lambda: log.count + len(progress) == eng.state.seq, 10)
        assert log.matches is not None and not progress & set(log.matches)
        assert f"{len(progress):,} progress folded" in log.border_title
        await settle(app, pilot)
        rows = _rows(log)
        assert rows and all(CLOCK.match(r) for r in rows), rows
        assert not any('{"' in r or ":agent:execution:" in r for r in rows), rows

        # Task rows that end a run: the summary in words, and the progress they fold, counted right.
        await pilot.press("slash", *"type:TASK_COMPLETED", "enter")
        assert await came_true(pilot, lambda: log.filter.type == "TASK_COMPLETED" and log.count > 0)
        await settle(app, pilot)
        assert await came_true(pilot, log.folds_ready, 10)
        log.refresh()
        await pilot.pause()
        assert await came_true(pilot, log.visible_ready)
        rows = _rows(log)
        done = {e.seq: e for e in events if e.type == "TASK_COMPLETED"}
        top = int(log.scroll_offset.y)
        checked = 0
        for i, text in enumerate(rows):
            ev = done[log.seq_at(top + i)]
            agent, task = ev.data["agent"], ev.data["task"]
            assert text.startswith(timefmt.clock(ev.ts)) and "TASK_COMPLETED" in text
            m = re.search(rf"{agent} finished {re.escape(task)} in (\S+)", text)
            assert m and m.group(1) == timefmt.between(ev.ts - ev.data["duration_s"], ev.ts), text
            n = _folded_by_python(events, ev.seq, task)
            assert log.folds[ev.seq] == n
            assert (f"· {n} progress" in text) == (n > 0), text
            checked += n > 0
        assert checked, "no finished task on screen folded any progress"

        # v: raw event lines (and back); the detail screen has the line whatever the view.
        await pilot.press("v")
        assert await came_true(pilot, lambda: log.raw and "raw lines" in log.border_title and log.visible_ready())
        raw = _rows(log)
        assert raw and all(":agent:execution:{" in r and "TASK_COMPLETED" in r for r in raw), raw
        await pilot.press("v")
        assert await came_true(pilot, lambda: not log.raw)

        # P: progress events as rows of their own; P again folds them back.
        await pilot.press("slash", "enter")
        assert await came_true(pilot, lambda: not log.filter.active and log.count + len(progress) == eng.state.seq)
        await pilot.press("P")
        assert await came_true(pilot, lambda: log.filter.progress and log.count == eng.state.seq)
        assert progress <= set(log.matches if log.matches is not None else range(1, log.count + 1))
        await pilot.press("P")
        assert await came_true(pilot, lambda: not log.filter.progress and log.count + len(progress) == eng.state.seq)


@pytest.mark.slow
async def test_sev_high_matches_a_critical_incident_and_a_plan_abort_not_info(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    app = make_app(db, config=MANUAL)
    async with app.run_test(size=(140, 42)) as pilot:
        pid = await drill_until_plan(app, pilot)
        res = await app.link.send(operator.plan_command("abort_plan", pid, reason="test"))
        assert res["status"] == "success", res
        eng = app.host.engine
        await eng.flush()
        await settle(app, pilot)
        events = _events(db)
        critical = [e.seq for e in events if e.type == "RESOURCE_EXHAUSTION"]
        aborted = [e.seq for e in events if e.type == "PLAN_ABORTED"]
        info = [e.seq for e in events if severity_of(e) is Severity.INFO]
        assert critical and aborted and info
        assert severity_of(next(e for e in events if e.seq == critical[0])) is Severity.CRITICAL
        log = app.log_pane
        await pilot.press("slash", *"sev:high", "enter")
        assert await came_true(pilot, lambda: log.filter.severity == "high" and log.matches is not None)
        await settle(app, pilot)
        got = set(log.matches or [])
        assert set(critical) <= got and set(aborted) <= got
        assert not got & set(info)
        by_seq = {e.seq: e for e in events}
        assert all(severity_of(by_seq[s]).at_least("high") for s in got if s in by_seq)
        rows = _rows(log)
        assert rows and all(re.match(r"^\d\d:\d\d:\d\d (CRIT|HIGH) ", r) for r in rows), rows
        # The toasts of the whole drill wrote times one way: no t=NNNs, no "3m 20s".
        said = [n.message for n in app._notifications]
        assert not any(re.search(r"\bt=\d|\d+m \d\ds|\d+(\.\d+)?s simulated", m) for m in said), said


def test_the_catalogue_grades_failures_recorded_by_routine_types() -> None:
    def ev(type_: str, data: dict) -> Event:
        return Event(1, 0.0, type_, "c", "s", data)

    failed = ev("INCIDENT_RESOLVED", {"incident_id": "I", "status": "failed", "outcome": {"validated": False}})
    ok = ev("INCIDENT_RESOLVED", {"incident_id": "I", "status": "resolved", "outcome": {"validated": True}})
    assert severity_of(failed) is Severity.HIGH and severity_of(ok) is Severity.INFO
    nv = ev("PLAN_COMPLETED", {"plan_id": "P", "outcome": {"validated": False, "reason": "recovered without the plan"}})
    assert severity_of(nv) is Severity.HIGH
    assert severity_of(ev("PLAN_COMPLETED", {"plan_id": "P", "outcome": {"validated": True}})) is Severity.INFO
    missed = ev(
        "SETTING_CHANGED", {"key": "drill", "value": {"name": "x", "status": "ended", "outcome": "not_detected"}}
    )
    assert severity_of(missed) is Severity.HIGH
    other = ev("SETTING_CHANGED", {"key": "other", "value": {"outcome": "not_detected"}})
    assert severity_of(other) is Severity.INFO
    from core.event_types import summarise

    assert "NOT VALIDATED" in summarise(nv) and "NOT DETECTED" in summarise(missed)
    done = ev("TASK_COMPLETED", {"task": "w/t", "agent": "a", "duration_s": 200})
    assert summarise(done) == "a finished w/t in 3m20s"
