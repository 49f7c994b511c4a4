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
from itertools import chain
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


async def retrying(
    attempt: Callable[[], Awaitable[None]],
    path: str,
    rollback: Callable[[], Awaitable[None]],
    on_wait: Callable[[], Callable[[StorageError, float], None] | None],
) -> None:
    """Run one transaction's ``attempt``. A full disk, a read-only file system or an
    I/O error raise StorageError (nothing of it committed); another process's lock
    is waited for (``on_wait()`` is told) up to LOCK_WAIT_S, then StorageError."""
    start = time.monotonic()
    while True:
        try:
            await attempt()
            return
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


PARAMS_PER_STATEMENT = 999
"""Values bound to one statement at most: SQLite's default limit before 3.32 (newer
ones 32,766; a build or a connection may set it lower, :meth:`RowInsert.run` reads it)."""
ROWS_PER_TAIL_STATEMENT = 16
"""Rows of one statement for what is left after the full statements (then one by one):
three statement texts per table, so the connection's statement cache keeps them all."""


class RowInsert:
    """An INSERT of many rows, several rows per statement (``VALUES (..), (..), ..``).

    The rows stored are the ones ``executemany`` of the one-row statement would store,
    in the same order (so with the same rowids), in the caller's transaction; it costs
    less because SQLite runs one statement (one step, reset and Python call) per up to
    :data:`PARAMS_PER_STATEMENT` values instead of one per row: 9% of writing the events
    of the real event mix, 30% of writing metric samples (bench/event_pipeline.py)."""

    def __init__(self, head: str, width: int) -> None:
        """``head``: the statement up to ``VALUES`` (``"INSERT INTO t(a, b)"``); ``width``: values per row."""
        one = "(" + ",".join("?" * width) + ")"
        self.width = width
        self.sizes = [n for n in (PARAMS_PER_STATEMENT // width, ROWS_PER_TAIL_STATEMENT) if n > 1] + [1]
        self.sql = {n: f"{head} VALUES {','.join([one] * n)}" for n in self.sizes}

    def run(self, conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (each of ``width`` values) on ``conn`` (no transaction of its own).
        A row of another width is refused before anything is written (sqlite3.ProgrammingError,
        as executemany's): in a statement of several rows, a short row and a long one would
        otherwise shift the values between them into the wrong columns. A connection that
        binds fewer values than :data:`PARAMS_PER_STATEMENT` gets the statements that fit it."""
        done, total = 0, len(rows)
        widths = set(map(len, rows))
        if widths - {self.width}:
            raise sqlite3.ProgrammingError(f"rows of {sorted(widths)} values, each should have {self.width}")
        sizes = self.sizes
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        if limit < PARAMS_PER_STATEMENT:  # else 'too many SQL variables' on every commit
            sizes = [n for n in sizes if n == 1 or n * self.width <= limit]
        for n in sizes:
            whole = (total - done) // n * n
            if not whole:
                continue
            if n == 1:
                conn.executemany(self.sql[1], rows[done:] if done else rows)
            else:
                conn.executemany(
                    self.sql[n], [tuple(chain.from_iterable(rows[k : k + n])) for k in range(done, done + whole, n)]
                )
            done += whole


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
