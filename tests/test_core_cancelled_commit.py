"""A flush cancelled mid-commit neither loses nor repeats rows.

aiosqlite runs the transaction in its own thread, so a cancelled await can leave the
commit running (or done). Before the fix the connection was left inside a
transaction ("cannot start a transaction within a transaction") or the committed rows
were retried (UNIQUE constraint failed: events.seq), wedging the engine for good.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.session import open_sim
from core.store import Store

from .store_support import verified


async def test_a_cancelled_flush_commits_once_and_the_engine_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    eng = await open_sim(db, demo=True)
    seen: list[int] = []
    eng.subscribe(lambda ev: seen.append(ev.seq))
    try:
        for i in range(5):
            await eng.advance(30)
            eng.set_setting("probe", i)
            flush = asyncio.ensure_future(eng.flush())
            for _ in range(i + 1):  # cut it at a different point each round
                await asyncio.sleep(0)
            flush.cancel()
            try:
                await flush
            except asyncio.CancelledError:
                pass
            eng.set_setting("after", i)
            await eng.flush()
            store = await Store.open(db, readonly=True)
            try:
                head, _ = await store.head()
            finally:
                await store.close()
            assert head == eng.state.seq and eng.unflushed == 0
        assert len(seen) == len(set(seen)), "every committed event is published once"
    finally:
        await eng.close()
    report = await verified(db)
    assert report.ok, report.as_dict()
