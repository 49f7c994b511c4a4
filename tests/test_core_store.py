"""The SQLite store: WAL, append-only triggers, group commit, clear errors for bad files."""

from __future__ import annotations

import itertools
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from core.engine import Engine
from core.session import open_sim
from core.store import EVENT_COLUMNS, SCHEMA_VERSION, StorageError, Store, StoreError, row_hash_ok

from .store_support import as_commit


async def test_wal_mode_and_schema_version(db_path: Path) -> None:
    store = await Store.open(db_path)
    await store.close()
    with closing(sqlite3.connect(db_path)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


async def test_event_log_refuses_update_and_delete(db_path: Path) -> None:
    eng = await open_sim(db_path, demo=True)
    await eng.close()
    with closing(sqlite3.connect(db_path)) as con:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("UPDATE events SET type='X' WHERE seq=1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("DELETE FROM events WHERE seq=1")


async def test_each_row_chains_to_the_previous(db_path: Path) -> None:
    eng = await open_sim(db_path, demo=True)
    await eng.advance(300)
    await eng.close()
    with closing(sqlite3.connect(db_path)) as con:
        rows = con.execute("SELECT seq, prev_hash, hash FROM events ORDER BY seq").fetchall()
    assert rows[0][1] == "0" * 64
    for (s1, _, h1), (s2, p2, _) in itertools.pairwise(rows):
        assert s2 == s1 + 1 and p2 == h1


async def test_group_commit_batches_many_events_per_write(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eng = await open_sim(db_path, demo=True)
    calls: list[int] = []
    real = eng.store.append  # type: ignore[union-attr]

    async def counting(rows, *rest, **named):  # type: ignore[no-untyped-def]
        calls.append(len(rows))
        await real(rows, *rest, **named)

    monkeypatch.setattr(eng.store, "append", as_commit(counting))
    before = eng.state.seq
    await eng.advance(3600)
    await eng.close()
    written = eng.state.seq - before
    assert written > 500
    assert sum(calls) == written
    assert len(calls) * 20 < written, f"{len(calls)} writes for {written} events"


async def test_a_refused_commit_keeps_its_rows_and_the_chain_goes_on_unbroken(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused commit keeps its rows for the next one with the chain's head where the
    last commit left it, a unit taken back after it drops its own rows, and the next
    commit writes one unbroken chain."""
    eng = await open_sim(db_path)
    assert eng.store is not None
    eng.create_pool("p", ["x"], 0, 4)
    await eng.flush()
    head, committed = eng.head_hash, eng.state.seq
    real = eng.store.append
    refusals = [StorageError("full", str(db_path), "disk full")]

    async def refusing(rows, *rest, **named):  # type: ignore[no-untyped-def]
        if refusals:
            raise refusals.pop()
        await real(rows, *rest, **named)

    monkeypatch.setattr(eng.store, "append", as_commit(refusing))
    try:
        eng.add_agent("p")
        before_unit = eng.state.seq
        unit = eng.log.begin_unit()
        eng.add_agent("p")
        with pytest.raises(StorageError):
            await eng.flush()
        assert (eng.unflushed, eng.head_hash) == (eng.state.seq - committed, head)  # kept, nothing told
        assert eng.log.end_unit(unit, keep=False) is True  # nothing of it was committed: taken back
        assert (eng.state.seq, eng.unflushed, eng.head_hash) == (before_unit, before_unit - committed, head)
        eng.add_agent("p")
        await eng.flush()
        last = eng.state.seq
    finally:
        await eng.close()  # also when an assertion fails: its thread would keep the run alive
    with closing(sqlite3.connect(db_path)) as con:
        rows = con.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == list(range(1, last + 1))
    assert rows[-1][8] != head and all(row_hash_ok(*r) for r in rows)
    for a, b in itertools.pairwise(rows):
        assert b[7] == a[8]


async def test_not_an_sqlite_file(tmp_path: Path) -> None:
    p = tmp_path / "notes.db"
    p.write_text("hello, this is not a database")
    with pytest.raises(StoreError, match="not an opsdeck database"):
        await Store.open(p)
    assert p.read_text() == "hello, this is not a database"


async def test_another_programs_database(tmp_path: Path) -> None:
    p = tmp_path / "other.db"
    with closing(sqlite3.connect(p)) as con:
        con.execute("CREATE TABLE customers(id INTEGER)")
        con.commit()
    with pytest.raises(StoreError, match="not an opsdeck database"):
        await Store.open(p)


async def test_newer_schema_is_refused(db_path: Path) -> None:
    await (await Store.open(db_path)).close()  # create it, then reopen: a leaked connection raced the checks
    store = await Store.open(db_path)
    await store.close()
    with closing(sqlite3.connect(db_path)) as con:
        con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        con.commit()
    with pytest.raises(StoreError, match="newer opsdeck"):
        await Store.open(db_path)


async def test_damaged_file(db_path: Path) -> None:
    eng = await open_sim(db_path, demo=True)
    await eng.advance(600)
    await eng.close()
    data = bytearray(db_path.read_bytes())
    for i in range(4096, len(data), 97):
        data[i] = 0xFF
    db_path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"damaged|not an opsdeck"):
        eng2 = await Engine.open(db_path)
        await eng2.close()


async def test_metrics_live_outside_the_chain_with_retention(db_path: Path) -> None:
    eng = await open_sim(db_path, demo=True)
    await eng.advance(120)
    await eng.close()
    store = await Store.open(db_path)
    cpu = await store.metrics("cpu_pct", "system")
    assert len(cpu) == 120 // 5
    removed = await store.prune_metrics(before=60.0)
    assert removed > 0
    assert all(t >= 60.0 for t, _ in await store.metrics("cpu_pct", "system"))
    await store.close()


@pytest.mark.slow
def test_many_processes_create_the_same_database_at_once(db_path: Path) -> None:
    """opsdeck processes racing to create one file: one migrates, the rest wait and use it."""
    import subprocess
    import sys
    import time

    from .conftest import REPO

    start = time.time() + 1.5
    code = (
        "import asyncio, sys, time\n"
        "from core.store import Store\n"
        f"time.sleep(max(0.0, {start!r} - time.time()))\n"
        "async def m():\n"
        "    s = await Store.open(sys.argv[1])\n"
        "    await s.close()\n"
        "asyncio.run(m())\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(db_path)], cwd=REPO, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [e for e in errors if e][:1]
    with closing(sqlite3.connect(db_path)) as con:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert con.execute("PRAGMA application_id").fetchone()[0] != 0


async def test_metric_samples_are_written_in_one_transaction(db_path: Path) -> None:
    """The connection autocommits: a batch of samples must be wrapped, or each row is
    its own commit (what made a run with a store spend most of its time committing)."""
    store = await Store.open(db_path)
    seen: list[str] = []
    await store.connection._execute(store.connection._conn.set_trace_callback, seen.append)  # type: ignore[attr-defined]
    try:
        await store.add_metrics([(float(i), "cpu_pct", "system", 1.0) for i in range(50)])
    finally:
        await store.connection._execute(store.connection._conn.set_trace_callback, None)  # type: ignore[attr-defined]
        await store.close()
    stmts = [s.split()[0].upper() for s in seen]
    assert stmts[0] == "BEGIN" and stmts[-1] == "COMMIT" and stmts.count("BEGIN") == 1, seen[:5]
    assert len(await _metric_count(db_path)) == 50


async def _metric_count(db: Path) -> list[tuple[float, float]]:
    store = await Store.open(db)
    try:
        return await store.metrics("cpu_pct", "system")
    finally:
        await store.close()
