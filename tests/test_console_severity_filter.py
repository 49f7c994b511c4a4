"""``sev:X`` means X or worse, the same in SQL (stored rows) and in Python (live rows):
sev:high finds a critical incident's detection and a plan's failure, not info rows."""

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
    for sev, want in (
        ("critical", {1}),
        ("high", {1, 3, 5, 6, 7}),
        ("medium", {1, 3, 4, 5, 6, 7}),
        ("info", {1, 2, 3, 4, 5, 6, 7}),
    ):
        flt = LogFilter.parse(f"sev:{sev}")
        assert set(src.filter_seqs(flt, 10)) == want, sev
        assert {e.seq for e in evs if flt.matches(e)} == want, sev
    src.close()
