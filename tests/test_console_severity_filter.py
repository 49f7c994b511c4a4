"""``sev:X`` means X or worse, the same in SQL (stored rows) and in Python (live rows):
sev:high finds a critical incident's detection and a plan's failure, an incident that
ended failed, a plan NOT VALIDATED and a drill not detected, not info rows (nor the same
types recording a success)."""

from __future__ import annotations

import json
import sqlite3

from core.events import Event
from tui.log_source import LogFilter, LogSource

ROWS = [
    (1, "RESOURCE_EXHAUSTION", {"severity": "critical", "incident_id": "INC-0001"}),
    (2, "TASK_PROGRESS", {"task": "w/t", "progress": 0.5}),
    (3, "SYSTEM_ERROR", {"error": "x"}),
    (4, "TASK_FAILED", {"task": "w/t"}),
    (5, "WORKFLOW_STARTED", {"workflow_id": "w", "severity": "high"}),
    (6, "PLAN_ABORTED", {"plan_id": "PLAN-0001"}),
    (7, "PLAN_STEP_FAILED", {"plan_id": "PLAN-0001", "step": 2}),
    (8, "INCIDENT_RESOLVED", {"incident_id": "INC-0001", "status": "failed", "outcome": {"validated": False}}),
    (9, "INCIDENT_RESOLVED", {"incident_id": "INC-0002", "status": "resolved", "outcome": {"validated": True}}),
    (10, "PLAN_COMPLETED", {"plan_id": "PLAN-0002", "outcome": {"validated": False, "result": "not_validated"}}),
    (11, "PLAN_COMPLETED", {"plan_id": "PLAN-0003", "outcome": {"validated": True}}),
    (12, "SETTING_CHANGED", {"key": "drill", "value": {"name": "x", "status": "ended", "outcome": "not_detected"}}),
    (13, "SETTING_CHANGED", {"key": "drill", "value": {"name": "x", "status": "ended", "outcome": "resolved"}}),
    (14, "PLAN_COMPLETED", {"plan_id": "PLAN-0004", "outcome": {"validated": 0}}),  # not a JSON false
]


def _db(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "log.db"
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, ts REAL, type TEXT, component TEXT, scope TEXT, actor TEXT, data TEXT)"
    )
    for seq, t, d in ROWS:
        con.execute(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?)", (seq, float(seq), t, "c", "s", "engine", json.dumps(d))
        )
    con.commit()
    con.close()
    return path


def test_sev_means_x_or_worse_in_sql_and_python(tmp_path):
    src = LogSource(_db(tmp_path))
    evs = [Event(seq=s, ts=float(s), type=t, component="c", scope="s", data=d) for s, t, d in ROWS]
    high = {1, 3, 5, 6, 7, 8, 10, 12}
    for sev, want in (
        ("critical", {1}),
        ("high", high),
        ("medium", high | {4}),
        ("info", set(range(1, 15)) - {2}),  # progress folds into its task unless asked for
    ):
        flt = LogFilter.parse(f"sev:{sev}")
        assert set(src.filter_seqs(flt, 100)) == want, sev
        assert {e.seq for e in evs if flt.matches(e)} == want, sev
    shown = LogFilter.parse("sev:info", progress=True)
    assert set(src.filter_seqs(shown, 100)) == set(range(1, 15)) == {e.seq for e in evs if shown.matches(e)}
    src.close()


def test_default_view_read_from_the_type_index_matches_the_table_scan(tmp_path):
    """The default view (progress folded, nothing typed) is every seq but TASK_PROGRESS's,
    read from the (type, seq) index; the same seqs as the general query, at any ``upto``,
    with progress rows first, last, in runs and alone."""
    path = tmp_path / "log.db"
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, ts REAL, type TEXT, component TEXT, scope TEXT, actor TEXT, data TEXT)"
    )
    con.execute("CREATE INDEX events_type ON events(type, seq)")
    progress = {1, 2, 5, 9, 10, 11, 20}
    for seq in range(1, 21):
        t = "TASK_PROGRESS" if seq in progress else "TASK_STARTED"
        con.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?)", (seq, float(seq), t, "c", "s", "engine", "{}"))
    con.commit()
    con.close()
    src = LogSource(path)
    flt = LogFilter()
    for upto in (0, 1, 3, 5, 8, 11, 19, 20, 100):
        want = [s for s in range(1, min(upto, 20) + 1) if s not in progress]
        assert list(src.filter_seqs(flt, upto)) == want, upto
    assert list(src.filter_seqs(LogFilter.parse("sev:info"), 100)) == [s for s in range(1, 21) if s not in progress]
    src.close()


def test_default_view_is_right_on_a_log_with_gaps(tmp_path):
    """A damaged log can miss rows (a gap) or start past 1: the default view lists only
    the seqs stored, the same as the general query, and the index's ranges still serve
    a log without a gap."""
    path = tmp_path / "gaps.db"
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, ts REAL, type TEXT, component TEXT, scope TEXT, actor TEXT, data TEXT)"
    )
    con.execute("CREATE INDEX events_type ON events(type, seq)")
    progress = {4, 5, 9, 16, 20}
    stored = [s for s in range(3, 21) if s not in (7, 8, 15)]  # starts at 3; 7, 8 and 15 missing
    for seq in stored:
        t = "TASK_PROGRESS" if seq in progress else "TASK_STARTED"
        con.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?)", (seq, float(seq), t, "c", "s", "engine", "{}"))
    con.commit()
    con.close()
    src = LogSource(path)
    calls: list[int] = []
    real = src._all_but
    src._all_but = lambda type_, upto: (calls.append(upto), real(type_, upto))[1]  # type: ignore[method-assign]
    for upto in (0, 2, 3, 6, 7, 8, 14, 15, 16, 20, 100):
        want = [s for s in stored if s <= upto and s not in progress]
        assert list(src.filter_seqs(LogFilter(), upto)) == want, upto
        # sev: of the mildest severity is every event: the same shortcut, the same seqs.
        assert list(src.filter_seqs(LogFilter.parse("sev:info"), upto)) == want, upto
    assert len(calls) == 2 * 11
    src.close()
    assert not LogFilter.parse("sev:info").by_severity and LogFilter.parse("sev:low").by_severity
