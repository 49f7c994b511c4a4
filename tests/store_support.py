"""Helpers for tests that damage a stored event log behind the store's back."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def tamper(db: Path, seq: int, change: str = "ts = ts + 1") -> None:
    """Change a committed row's content behind the store's back (its hash then fails).

    ``change`` is the SET clause applied to row ``seq``; the default moves its timestamp."""
    con = sqlite3.connect(db)
    try:
        con.execute("DROP TRIGGER IF EXISTS events_no_update")
        con.execute(f"UPDATE events SET {change} WHERE seq = ?", (seq,))
        con.commit()
    finally:
        con.close()
