"""A verb without --create does not tell the operator to pass it: `opsdeck events` on a
missing database said '(pass --create to make a new one)', and --create is refused by
events (an unrecognised argument). The verbs that have --create still say it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _opsdeck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsdeck", *args], capture_output=True, text=True, timeout=60, env={**os.environ}
    )


def test_events_on_a_missing_database_names_no_flag_it_lacks(tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    r = _opsdeck("events", "--db", str(db))
    assert r.returncode != 0 and "no such database" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "--create" not in r.stderr, r.stderr
    assert not db.exists()


def test_exec_on_a_missing_database_still_offers_create(tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    r = _opsdeck("exec", "--db", str(db), "/host status")
    assert r.returncode != 0 and "pass --create" in r.stderr, r.stderr
    assert not db.exists()
