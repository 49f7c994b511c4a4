"""A group commit is one call on aiosqlite's thread: whole, or nothing and no open transaction."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from functools import partial
from pathlib import Path

import pytest

from core.events import GENESIS_HASH, EventRow
from core.store import Store
from core.store_commit import on_connection_thread, transaction


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
        append = asyncio.ensure_future(store.append(_rows(1, 4)))
        await asyncio.sleep(0)  # the append runs up to its one queued call
        append.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await append
        assert await held
        assert await store.count_events() == 4  # queued after it: the abandoned commit ran whole
        assert not store.connection.in_transaction
        await store.append(_rows(5, 1))
        assert await store.count_events() == 5
    finally:
        gate.set()
        await store.close()
