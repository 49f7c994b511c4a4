"""Only rows the store committed are counted as committed.

While a commit waits for another program's lock, its batch is neither in the log nor in
the engine's next batch (``engine.unflushed``): the link's committed head (what the
console's log pane reads up to) and the metrics' event figures leave it out until the
commit returns, then count it; ``/host status`` counts what is held now.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import core.store as store_module
from core.config import Config
from core.host.door import start_counting
from core.host.host import Host
from core.host.link import EmbeddedLink

from .store_support import commit_waiting_for_lock, refuse_commits, stored_head
from .test_metrics_collector import scrape


@pytest.mark.parametrize("counting", [False, True])
async def test_a_batch_waiting_for_a_lock_is_not_counted_as_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counting: bool
) -> None:
    """counting: the metrics' head comes from the event counts (a scraped host), else
    from the engine. Either way the batch waiting for the lock and what is emitted
    meanwhile are uncommitted until the commit returns."""
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 20)  # each try gives up after 20 ms, not 5 s
    db = tmp_path / "c.db"
    host = await Host.open_sim(db, Config(), create=True, speed=0)
    link = EmbeddedLink(host)
    eng = host.engine
    other = sqlite3.connect(db, isolation_level=None)
    try:
        if counting:
            await start_counting(eng)
        async with host.lock:
            assert await host.commit()
        base = eng.state.seq
        assert link.committed_seq == base == stored_head(db)
        other.execute("BEGIN EXCLUSIVE")
        for i in range(3):
            eng.set_setting("probe", i)
        waiting = await commit_waiting_for_lock(host)
        eng.set_setting("probe", 3)  # emitted while the batch waits: the next batch
        assert eng.state.seq == base + 4
        assert stored_head(db) == base
        assert link.committed_seq == base, "the waiting batch is not committed"
        m = scrape(eng)
        assert m["opsdeck_events_total"][()] == base
        assert m["opsdeck_events_unflushed"][()] == 4
        assert host.status()["storage"]["held_events"] == 4, "the batch waiting and the event since"
        assert not waiting.done()

        other.execute("ROLLBACK")
        assert await asyncio.wait_for(waiting, 60), "committed once the lock is released"
        assert stored_head(db) == base + 3
        assert link.committed_seq == base + 3, "the batch that waited is committed, the later event is not"
        m = scrape(eng)
        assert (m["opsdeck_events_total"][()], m["opsdeck_events_unflushed"][()]) == (base + 3, 1)
        async with host.lock:
            assert await host.commit()
        assert link.committed_seq == base + 4 == stored_head(db)
        m = scrape(eng)
        assert (m["opsdeck_events_total"][()], m["opsdeck_events_unflushed"][()]) == (base + 4, 0)
    finally:
        other.close()
        await link.close()


async def test_the_status_counts_the_events_held_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the storage refuses writes, ``/host status`` counts the events held now
    (what the runtime emitted since the last try too), not those of the last refusal;
    once a commit goes through it counts none and the log holds them all."""
    db = tmp_path / "s.db"
    host = await Host.open_sim(db, Config(), create=True, speed=0)
    eng = host.engine
    full = refuse_commits(eng, monkeypatch)
    try:
        for i in range(2):
            eng.set_setting("probe", i)
        async with host.lock:
            assert not await host.commit()
        assert host.status()["storage"]["held_events"] == 2
        eng.set_setting("probe", 2)  # after the refusal, before the next try
        status = host.status()["storage"]
        assert (status["state"], status["held_events"]) == ("full", 3)
        assert eng.committed_seq == eng.state.seq - 3 == stored_head(db)
        full[0] = False
        async with host.lock:
            assert await host.commit()
        assert host.status()["storage"]["held_events"] == 0
        assert eng.committed_seq == eng.state.seq == stored_head(db)
    finally:
        full[0] = False
        await host.close()
