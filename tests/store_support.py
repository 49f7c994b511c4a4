"""Helpers for tests that damage a stored event log behind the store's back, and
that check what a store holds afterwards."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.store import Store
from core.verify import VerifyReport, verify_store


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


async def verified(db: Path) -> VerifyReport:
    """What verification (``opsdeck verify``) finds in ``db``, the store opened read-only
    and closed again."""
    store = await Store.open(db, readonly=True)
    try:
        return await verify_store(store)
    finally:
        await store.close()


async def checkpoint_rows(db: Path) -> list[int]:
    """The ids of the checkpoint rows in ``db``, whether or not an event records them."""
    store = await Store.open(db, readonly=True)
    try:
        return sorted(r["id"] for r in await store.list_checkpoints())
    finally:
        await store.close()
