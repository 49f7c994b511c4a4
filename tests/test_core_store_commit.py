"""A group commit is one call on aiosqlite's thread: whole, or nothing and no open transaction."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from functools import partial
from pathlib import Path

import pytest

from core import store_metrics
from core.events import GENESIS_HASH, EventRow
from core.session import open_sim
from core.store import Store
from core.store_commit import ROWS_PER_STATEMENT as FULL
from core.store_commit import RowInsert, on_connection_thread, transaction
from core.store_metrics import BUCKET_S, SampleRow, by_series, pack_rows, samples_of
from tests.conftest import run_python


def _rows(first: int, n: int) -> list[EventRow]:
    return [(s, float(s), "NOTE", "test", "s", "me", "{}", GENESIS_HASH, f"{s:064x}") for s in range(first, first + n)]


async def test_a_function_runs_on_the_connections_own_thread(db_path: Path) -> None:
    """Fails when an aiosqlite upgrade removes the private ``_execute``/``_conn`` it relies on."""
    store = await Store.open(db_path)
    try:
        ident, one = await on_connection_thread(
            store.connection, lambda conn: (threading.get_ident(), conn.execute("SELECT 1").fetchone()[0])
        )
    finally:
        await store.close()
    assert one == 1 and ident != threading.get_ident()


async def test_a_commit_cut_by_an_error_stores_nothing_and_leaves_no_transaction(db_path: Path) -> None:
    store = await Store.open(db_path)
    try:
        await store.append(_rows(1, 3))
        with pytest.raises(sqlite3.IntegrityError):  # the batch's last row takes a seq that is stored
            await store.append([*_rows(4, 5), _rows(2, 1)[0]])
        assert not store.connection.in_transaction
        assert await store.count_events() == 3
        await store.append(_rows(4, 2))  # the connection goes on
        assert await store.count_events() == 5

        def cut(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", _rows(6, 2))
            raise RuntimeError("cut")

        # The transaction itself rolls back (an abandoned await has no caller to do it).
        with pytest.raises(RuntimeError, match="cut"):
            await on_connection_thread(store.connection, partial(transaction, statements=cut))
        assert not store.connection.in_transaction
        assert await store.count_events() == 5
    finally:
        await store.close()


async def test_a_cancelled_commit_completes_whole_and_leaves_the_connection_usable(db_path: Path) -> None:
    store = await Store.open(db_path)
    gate = threading.Event()
    try:
        # Hold the connection's thread so the cancellation lands while the commit waits there.
        held = asyncio.ensure_future(on_connection_thread(store.connection, lambda conn: gate.wait(10)))
        commit = store.append(_rows(1, 4))
        assert not commit.cancel()  # refused: nobody abandons it

        async def caller() -> None:
            await commit

        append = asyncio.ensure_future(caller())
        await asyncio.sleep(0)  # the caller waits on the commit
        append.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not append.done()  # the cancelled caller is let go only once the commit settled
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await append
        assert commit.done() and commit.exception() is None
        assert await held
        assert await store.count_events() == 4  # queued after it: the abandoned commit ran whole
        assert not store.connection.in_transaction
        await store.append(_rows(5, 1))
        assert await store.count_events() == 5
    finally:
        gate.set()
        await store.close()


async def test_a_flush_gets_its_commit_back_in_two_loop_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection's thread settles the commit with one loop callback and the flush
    wakes in the next pass: no task, future chain or shield between (those took five)."""
    eng = await open_sim(tmp_path / "p.db")
    loop = asyncio.get_running_loop()
    passes = 0
    real = loop._run_once  # type: ignore[attr-defined]

    def counted() -> None:
        nonlocal passes
        passes += 1
        real()

    try:
        eng.set_setting("probe", 1)
        monkeypatch.setattr(loop, "_run_once", counted)
        await eng.flush()
        monkeypatch.undo()
        assert passes <= 2
        assert eng.store is not None and await eng.store.count_events() == eng.state.seq
    finally:
        monkeypatch.undo()
        await eng.close()


async def test_a_refused_commit_reaches_its_cancelled_caller_as_refused(db_path: Path) -> None:
    """The failing case of the cancellation: the caller is let go once the commit settled,
    and what it finds is the refusal (nothing stored), not a commit."""
    store = await Store.open(db_path)
    try:
        await store.append(_rows(1, 2))
        commit = store.append(_rows(2, 1))  # seq 2 is stored: refused

        async def caller() -> None:
            await commit

        task = asyncio.ensure_future(caller())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert isinstance(commit.exception(), sqlite3.IntegrityError)
        assert await store.count_events() == 2
    finally:
        await store.close()


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, FULL - 1, FULL, FULL + 1, FULL * 2 + 16 * 3 + 5])
def test_a_multi_row_insert_stores_what_executemany_stores(n: int) -> None:
    """Rows several per statement: the same rows, values, types and rowids, in order."""
    con = sqlite3.connect(":memory:")
    for t in ("a", "b"):
        con.execute(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, x TEXT, y REAL, z INTEGER)")
    rows = [(f"r{i}", i / 3, None if i % 7 else i) for i in range(n)]
    con.executemany("INSERT INTO a(x, y, z) VALUES (?,?,?)", rows)
    RowInsert("INSERT INTO b(x, y, z)", 3).run(con, rows)
    query = "SELECT id, x, typeof(x), y, typeof(y), z, typeof(z) FROM {} ORDER BY id"
    assert con.execute(query.format("b")).fetchall() == con.execute(query.format("a")).fetchall()
    assert len(con.execute(query.format("b")).fetchall()) == n


@pytest.mark.parametrize("n", [FULL, FULL + 16, FULL + 3])  # the bad row last in a full, a 16-row, a 1-row statement
async def test_a_batch_whose_last_row_fails_stores_nothing_of_it(db_path: Path, n: int) -> None:
    store = await Store.open(db_path)
    try:
        await store.append(_rows(1, 3))
        with pytest.raises(sqlite3.IntegrityError):
            await store.append([*_rows(4, n - 1), _rows(2, 1)[0]])
        assert await store.count_events() == 3
        assert not store.connection.in_transaction
    finally:
        await store.close()


async def test_events_and_samples_are_stored_as_one_row_statements_store_them(db_path: Path) -> None:
    """The store's rows are the bytes a one-row-per-statement executemany writes."""
    rows = [
        (s, s / 7, "NOTE", "test", "s", "me", f'{{"i":{s},"t":"é"}}', GENESIS_HASH, f"{s:064x}") for s in range(1, 300)
    ]
    samples = [(i / 3, "load", "agent_1" if i % 2 else "system", i * 1.5) for i in range(500)]
    store = await Store.open(db_path)
    try:
        await store.append(rows, metrics=by_series(samples))
    finally:
        await store.close()
    con = sqlite3.connect(db_path)
    plain = sqlite3.connect(":memory:")
    try:
        plain.execute("CREATE TABLE events(seq, ts, type, component, scope, actor, data, prev_hash, hash)")
        plain.execute("CREATE TABLE metrics(id INTEGER PRIMARY KEY, series, ts, value, earlier)")
        plain.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", rows)
        series = dict(con.execute("SELECT name || '/' || subject, id FROM metric_series").fetchall())
        packed = [
            r for (n, s), flat in by_series(samples).items() for r in pack_rows(series[f"{n}/{s}"], flat, BUCKET_S)
        ]
        assert 2 < len(packed) < len(samples)
        plain.executemany("INSERT INTO metrics(series, ts, value, earlier) VALUES (?,?,?,?)", packed)
        ev = "SELECT seq, ts, type, component, scope, actor, CAST(data AS BLOB), typeof(data), hash FROM events ORDER BY seq"
        ms = "SELECT id, series, ts, value, earlier, typeof(ts) FROM metrics ORDER BY id"
        assert con.execute(ev).fetchall() == plain.execute(ev).fetchall()
        assert con.execute(ms).fetchall() == plain.execute(ms).fetchall()
    finally:
        con.close()
        plain.close()


async def test_a_checkpoint_whose_last_history_entry_fails_stores_nothing(db_path: Path) -> None:
    """A checkpoint is one transaction (one call on the connection's thread): its row, the
    highest id given and its history entries are stored together or not at all."""
    store = await Store.open(db_path)
    try:
        await store.connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON snapshot_history WHEN NEW.key = 'bad' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        first = await store.save_checkpoint(1, 1.0, "manual", "", None, "{}", "h1", [("finished", "a", "{}", "ha")])
        with pytest.raises(sqlite3.IntegrityError, match="refused"):
            await store.save_checkpoint(
                2, 2.0, "manual", "", None, "{}", "h2", [("finished", "b", "{}", "hb"), ("finished", "bad", "{}", "hx")]
            )
        assert not store.connection.in_transaction
        assert [r["id"] for r in await store.list_checkpoints()] == [first]
        assert await store.meta("checkpoint_id_high") == str(first)
        assert await store.history_kept() == {"finished": {"a": "ha"}}
        again = await store.save_checkpoint(2, 2.0, "manual", "", None, "{}", "h2", [("finished", "b", "{}", "hb")])
        assert again == first + 1
        assert await store.history_kept() == {"finished": {"a": "ha", "b": "hb"}}
    finally:
        await store.close()


async def test_a_write_is_one_call_on_the_connections_thread(db_path: Path) -> None:
    """A checkpoint, a meta value, samples: each transaction is one queued call, not one per statement."""
    store = await Store.open(db_path)
    calls = 0
    real = store.connection._execute

    async def counted(fn):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await real(fn)

    store.connection._execute = counted  # type: ignore[method-assign]
    try:
        await store.save_checkpoint(1, 1.0, "manual", "", None, "{}", "h1", [("finished", "a", "{}", "ha")])
        await store.set_meta("k", "v")
        await store.add_metrics([(1.0, "load", "system", 0.5)])
        assert calls == 3
    finally:
        store.connection._execute = real  # type: ignore[method-assign]
        await store.close()


_KILLED_AFTER_COMMIT = """
import asyncio, os, signal, sys
from core.events import GENESIS_HASH
from core.store import Store
from core.store_metrics import by_series

async def main():
    store = await Store.open(sys.argv[1])
    rows = [(s, float(s), "NOTE", "test", "s", "me", "{}", GENESIS_HASH, f"{s:064x}") for s in range(1, 301)]
    samples = [(float(i), "load", "system", i / 2) for i in range(200)]
    await store.append(rows, metrics=by_series(samples))
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no close: the WAL is all there is

asyncio.run(main())
"""


def test_what_a_commit_acknowledged_survives_the_process_killed_after_it(db_path: Path) -> None:
    """Rows written several per statement, and samples, are on disk once append returns."""
    done = run_python(_KILLED_AFTER_COMMIT, str(db_path))
    assert done.returncode == -9 and done.stdout.strip() == "committed", done.stderr
    con = sqlite3.connect(db_path)
    try:
        assert con.execute("SELECT count(*), min(seq), max(seq) FROM events").fetchone() == (300, 1, 300)
        stored = [p for r in con.execute("SELECT ts, value, earlier FROM metrics ORDER BY id") for p in samples_of(*r)]
        assert stored == [(float(i), i / 2) for i in range(200)]
    finally:
        con.close()


def test_a_row_of_another_width_is_refused_before_anything_is_written() -> None:
    """A short row and a long one in one multi-row statement would add up to the right count."""
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (a, b, c)")
    rows: list[tuple[int, ...]] = [(i, i, i) for i in range(40)]
    rows[3], rows[4] = (1, 2), (1, 2, 3, 4)
    with pytest.raises(sqlite3.ProgrammingError, match="each should have 3"):
        RowInsert("INSERT INTO t(a, b, c)", 3).run(con, rows)
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)


@pytest.mark.parametrize("limit", [9, 100, 200, 999])
async def test_a_connection_allowing_fewer_bound_values_stores_the_same_rows(db_path: Path, limit: int) -> None:
    """A SQLite built (or a connection set) with a lower SQLITE_LIMIT_VARIABLE_NUMBER than a
    full statement needs (999: SQLite before 3.32) takes statements of as many rows as fit,
    down to one: the same rows stored."""
    rows = [(s, s / 7, "NOTE", "test", "s", "me", "{}", GENESIS_HASH, f"{s:064x}") for s in range(1, 300)]
    samples = [(i / 3, "load", "system", i * 1.5) for i in range(500)]
    store = await Store.open(db_path)
    try:
        await on_connection_thread(
            store.connection, lambda conn: conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
        )
        await store.append(rows, metrics=by_series(samples))
        await store.append([], metrics=by_series(samples))  # samples alone, their own transaction
    finally:
        await store.close()
    con = sqlite3.connect(db_path)
    try:
        stored = con.execute("SELECT seq, ts, type, component, scope, actor, data, prev_hash, hash FROM events")
        assert stored.fetchall() == rows
        stored = [p for r in con.execute("SELECT ts, value, earlier FROM metrics ORDER BY id") for p in samples_of(*r)]
        assert stored == [(t, v) for t, _, _, v in samples] * 2
    finally:
        con.close()


@pytest.mark.parametrize("with_events", [True, False])
async def test_samples_retried_after_a_lock_keep_to_series_that_exist(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, with_events: bool
) -> None:
    """A write given up to another process's lock is rolled back and tried again: the
    series ids its first try made are gone with it, so the retry makes them again
    instead of storing samples under ids no series has."""

    real = store_metrics._INSERT_SAMPLES
    tries = []

    class LockedOnce:
        def run(self, conn: sqlite3.Connection, rows: list[SampleRow]) -> None:
            tries.append(len(rows))  # the series of these rows were made in this transaction
            if len(tries) == 1:
                raise sqlite3.OperationalError("database is locked")
            real.run(conn, rows)

    monkeypatch.setattr(store_metrics, "_INSERT_SAMPLES", LockedOnce())
    samples = [(i / 2, "load", "system", float(i)) for i in range(5)]
    store = await Store.open(db_path)
    try:
        await store.append(_rows(1, 3) if with_events else [], metrics=by_series(samples))
        assert tries == [1, 1], "the five samples of one series in one row, each try"
        assert await store.metric_table.read("load") == [(t, v) for t, _, _, v in samples]
    finally:
        await store.close()
    con = sqlite3.connect(db_path)
    try:
        orphans = con.execute("SELECT count(*) FROM metrics WHERE series NOT IN (SELECT id FROM metric_series)")
        assert orphans.fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM events").fetchone() == ((3,) if with_events else (0,))
    finally:
        con.close()


def test_rows_per_statement_follow_the_connections_limit() -> None:
    """Full statements where the limit allows, SQLite's old 999 values' worth where that is
    the limit, single rows when not even one row's values fit twice."""
    events = RowInsert("INSERT INTO events(a, b, c, d, e, f, g, h, i)", 9)
    assert events.sizes(32766) == [FULL, 16, 1]
    assert events.sizes(999) == [111, 16, 1]
    assert events.sizes(100) == [11, 1]
    assert events.sizes(17) == [1]
    assert events.sizes(1) == [1]  # a row does not fit: executemany's own error, one row at a time
