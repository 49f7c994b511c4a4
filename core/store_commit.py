"""A write transaction (a group commit, a checkpoint, ...) as one round trip to the connection's thread.

aiosqlite runs each awaited statement on its own thread: a queue put, a thread
wakeup and a future resolved back on the event loop, per statement. A commit of
BEGIN, the inserts and COMMIT awaited one by one paid that four or five times;
:func:`transaction` runs them all in one call on that thread. Because the whole
transaction is one call, an abandoned await cannot leave the connection inside a
transaction: the call still ends in COMMIT or ROLLBACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import aiosqlite

from .store_errors import StorageError, classify

T = TypeVar("T")

LOCK_WAIT_S = 60.0
"""How long a write keeps retrying against another process's lock before it gives up (for now)."""

Statements = Callable[[sqlite3.Connection], None]
"""Statements of one transaction, run on the connection's thread (no await inside)."""


async def on_connection_thread(db: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(connection)`` on aiosqlite's thread, in its queue order with the awaited statements.

    aiosqlite has no public way to run a function there: this is the one place that
    uses its private ``_execute`` and ``_conn`` (the version is pinned in pyproject;
    tests/test_core_store_commit.py fails if an upgrade removes them)."""
    result: T = await db._execute(lambda: fn(db._conn))
    return result


class Commit(asyncio.Future[None]):
    """A transaction's outcome that no caller's cancellation cancels.

    A task awaiting it that is cancelled gets its CancelledError once the transaction
    settled (``Task.cancel`` finds the awaited future refusing), so it still learns
    whether its rows were committed: what ``asyncio.shield`` around a task gave, without
    the task and the shield's callbacks (two loop passes a commit)."""

    def cancel(self, msg: Any = None) -> bool:
        return False

    def follow(self, work: Awaitable[None]) -> Commit:
        """Settle as ``work`` (run in a task) settles."""
        task = asyncio.ensure_future(work)

        def settle(done: asyncio.Future[None]) -> None:
            if done.cancelled():
                asyncio.Future.cancel(self)
            elif (error := done.exception()) is not None:
                self.set_exception(error)
            else:
                self.set_result(None)

        task.add_done_callback(settle)
        return self

    @staticmethod
    def failed(error: BaseException) -> Commit:
        """A Commit refused before it was tried."""
        done = Commit()
        done.set_exception(error)
        return done


def commit_soon(
    db: aiosqlite.Connection,
    statements: Statements,
    refused: Callable[[Exception], Awaitable[None]],
    committed: Callable[[], None],
) -> Commit:
    """:func:`transaction` of ``statements`` queued on aiosqlite's thread now. That thread
    settles the Commit with one ``call_soon_threadsafe`` (``committed()`` first), no task
    or future chain between; a failed attempt (rolled back) goes on as ``refused(error)``
    in a task, which commits or raises. Private ``_tx`` as in :func:`on_connection_thread`."""
    if not db._running:
        return Commit.failed(ValueError("Connection closed"))
    done = Commit()
    loop = asyncio.get_running_loop()
    conn = db._conn

    def settled(error: BaseException | None) -> None:
        if error is None:
            committed()
            done.set_result(None)
        elif isinstance(error, Exception):
            done.follow(refused(error))
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            transaction(conn, statements)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, raised there
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody left to tell
            loop.call_soon_threadsafe(settled, error)

    db._tx.put_nowait((None, run))
    return done


async def retrying(
    db: aiosqlite.Connection,
    statements: Statements,
    path: str,
    rollback: Callable[[], Awaitable[None]],
    on_wait: Callable[[], Callable[[StorageError, float], None] | None],
    failed: Exception | None = None,
) -> None:
    """Run :func:`transaction` of ``statements`` on the connection's thread, one round trip
    (``failed``: a first attempt was made and failed so). A full disk, a read-only file system or an I/O error raise StorageError (nothing
    of it committed); another process's lock is waited for (``on_wait()`` is told) up to
    LOCK_WAIT_S, then StorageError."""
    start = time.monotonic()
    while True:
        try:
            if failed is None:
                await on_connection_thread(db, partial(transaction, statements=statements))
                return
            exc, failed = failed, None
            raise exc
        except Exception as exc:
            await rollback()
            err = classify(exc, path)
            if err is None:
                raise
            waited = time.monotonic() - start
            if err.kind != "locked" or waited >= LOCK_WAIT_S:
                raise err from None
            told = on_wait()
            if told is not None:
                told(err, waited)
            await asyncio.sleep(0.2)


def transaction(conn: sqlite3.Connection, statements: Statements) -> None:
    """BEGIN IMMEDIATE, ``statements``, COMMIT; on any error ROLLBACK (if SQLite did not
    already, as after a full disk) and the error raised as is for the caller to classify."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        statements(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


ROWS_PER_STATEMENT = 256
"""Rows of one statement at most, when the connection binds that many values (SQLite
3.32 and later bind 32,766 by default; older ones 999, a build or a connection may set
fewer: :meth:`RowInsert.run` reads the limit and takes as many rows as fit). Against
999 values' worth (111 rows of events) it cost 2% less CPU to insert and commit the
events of bench/event_pipeline.py in its batches; 1,024 cost more (more rows left to
the tail statements)."""
ROWS_PER_TAIL_STATEMENT = 16
"""Rows of one statement for what is left after the full statements (then one by one):
three statement texts per table and connection limit, so the connection's statement cache keeps them all."""


class RowInsert:
    """An INSERT of many rows, several rows per statement (``VALUES (..), (..), ..``).

    The rows stored are the ones ``executemany`` of the one-row statement would store,
    in the same order (so with the same rowids), in the caller's transaction; it costs
    less because SQLite runs one statement (one step, reset and Python call) per up to
    :data:`ROWS_PER_STATEMENT` rows instead of one per row: 9% of writing the events
    of the real event mix, 30% of writing metric samples (bench/event_pipeline.py)."""

    def __init__(self, head: str, width: int) -> None:
        """``head``: the statement up to ``VALUES`` (``"INSERT INTO t(a, b)"``); ``width``: values per row."""
        self.head = head
        self.width = width
        self.one = "(" + ",".join("?" * width) + ")"
        self.sql: dict[int, str] = {}
        """Statement texts by rows, made as a connection's limit first asks for them."""

    def sizes(self, limit: int) -> list[int]:
        """Rows per statement, biggest first, for a connection binding up to ``limit`` values."""
        full = max(1, min(ROWS_PER_STATEMENT, limit // self.width))
        return sorted({full, min(ROWS_PER_TAIL_STATEMENT, full), 1}, reverse=True)

    def statement(self, n: int) -> str:
        sql = self.sql.get(n)
        if sql is None:
            sql = self.sql[n] = f"{self.head} VALUES {','.join([self.one] * n)}"
        return sql

    def run(self, conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (each of ``width`` values) on ``conn`` (no transaction of its own).
        A row of another width is refused before anything is written (sqlite3.ProgrammingError,
        as executemany's): in a statement of several rows, a short row and a long one would
        otherwise shift the values between them into the wrong columns. A connection that
        binds fewer values than a full statement needs gets the statements that fit it."""
        done, total = 0, len(rows)
        widths = set(map(len, rows))
        if widths - {self.width}:
            raise sqlite3.ProgrammingError(f"rows of {sorted(widths)} values, each should have {self.width}")
        for n in self.sizes(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)):
            whole = (total - done) // n * n
            if not whole:
                continue
            if n == 1:
                conn.executemany(self.statement(1), rows[done:] if done else rows)
            else:
                conn.executemany(self.statement(n), _flat(rows, done, done + whole, n))
            done += whole


def _flat(rows: Sequence[Sequence[Any]], start: int, end: int, n: int) -> list[list[Any]]:
    """``rows[start:end]`` as the values of statements of ``n`` rows each, one list per statement."""
    out: list[list[Any]] = []
    for k in range(start, end, n):
        values: list[Any] = []
        add = values.extend
        for row in rows[k : k + n]:
            add(row)
        out.append(values)
    return out


def series_ids(
    conn: sqlite3.Connection, known: dict[tuple[str, str], int], keys: set[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """``known`` (name, subject) -> series id with ``keys`` added: read when empty, new ones made."""
    if not known:
        found = conn.execute("SELECT id, name, subject FROM metric_series").fetchall()
        known = {(r[1], r[2]): int(r[0]) for r in found}
    new = [k for k in keys if k not in known]
    if new:
        conn.executemany("INSERT OR IGNORE INTO metric_series(name, subject) VALUES (?, ?)", new)
        for name, subject in new:
            row = conn.execute("SELECT id FROM metric_series WHERE name=? AND subject=?", (name, subject)).fetchone()
            assert row is not None, "a series inserted in this transaction is there"
            known[(name, subject)] = int(row[0])
    return known
