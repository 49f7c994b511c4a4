"""Helpers for tests that damage a stored event log behind the store's back, that
check what a store holds afterwards, and that set up the runs whose stores they check."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.host.host import Host
from core.runtimes.sim import SimRuntime
from core.store import Store
from core.store_commit import Commit
from core.store_errors import StorageError
from core.verify import VerifyReport, verify_store

from .conftest import until


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


def agents_only_config(agents: int) -> Config:
    """A config in which only the agent count limits (capacity and workflow limits alike),
    so a run's pace is set by its agents, never by cpu or memory."""
    cfg = Config()
    cfg.capacity.agents = cfg.workflow_limits.agents = agents
    cfg.capacity.cpu_cores = cfg.workflow_limits.cpu_cores = 1e9
    cfg.capacity.memory_gb = cfg.workflow_limits.memory_gb = 1e9
    return cfg


def start_pool_workflow(
    eng: Engine, clock: VirtualClock, agents: int, tasks: list[dict[str, Any]], *, seed: int = 0
) -> None:
    """Start workflow ``w`` (one phase of ``tasks``) on pool ``p`` of ``agents`` agents of
    specialization ``x``, on a sim runtime that neither beats nor samples on its own."""
    eng.attach_runtime(SimRuntime(clock, seed=seed, heartbeat_s=1e9, sample_s=1e9))
    eng.create_pool("p", ["x"], 0, agents)
    for _ in range(agents):
        eng.add_agent("p")
    eng.create_workflow(
        {
            "id": "w",
            "priority": 50,
            "allocation": {"cpu_cores": 1e6, "memory_gb": 1e6, "agents": agents},
            "phases": [{"name": "all", "tasks": tasks}],
        }
    )
    eng.start_workflow("w")


async def migrated_on_open(db: Path) -> Store:
    """The store on ``db`` (written by an older schema), after a read-only open is refused
    as needing migration: opened writable, which migrates it."""
    with pytest.raises(Exception, match="needs migrating"):
        await Store.open(db, readonly=True)
    return await Store.open(db)


def stored_schema_version(db: Path) -> object:
    """The schema version ``db``'s meta table records, as stored (text)."""
    ((version,),) = rows_of(db, "SELECT value FROM meta WHERE key='schema_version'")
    return version


def rows_of(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """The rows ``sql`` reads from ``db`` on a connection of its own, closed again: what
    is stored, read behind the store's back."""
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def stored_head(db: Path) -> int:
    """The last seq the log in ``db`` holds (0: none), read behind the store's back."""
    ((head,),) = rows_of(db, "SELECT COALESCE(MAX(seq), 0) FROM events")
    return int(head)


def as_commit(double: Callable[..., Awaitable[None]]) -> Callable[..., Commit]:
    """A double of ``Store.append`` written as a coroutine function, made to return what
    the store's own does: a Commit, settled as the double's work settles (the engine
    awaits the Commit ``append`` returns, and only a Commit keeps a cancelled caller
    waiting for the outcome)."""

    def append(*a: Any, **k: Any) -> Commit:
        return Commit().follow(double(*a, **k))

    return append


def refuse_commits(eng: Engine, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The engine's store refuses every commit (a full disk) while the returned flag is set."""
    store = eng.store
    assert store is not None
    real = store.append
    full = [True]

    async def append(*a: Any, **k: Any) -> None:
        if full[0]:
            raise StorageError("full", str(store.path), f"{store.path}: the disk is full")
        await real(*a, **k)

    monkeypatch.setattr(store, "append", as_commit(append))
    return full


async def commit_waiting_for_lock(host: Host) -> asyncio.Task[bool]:
    """The host's commit, started while another program holds the database's lock (the
    caller's ``BEGIN EXCLUSIVE``): once the host says it waits for it."""

    async def commit() -> bool:
        async with host.lock:
            return await host.commit()

    waiting = asyncio.create_task(commit())
    await until(lambda: host.status()["storage"]["state"] == "locked", "the commit to wait for the lock", 30)
    return waiting


def series_rows(db: Path, name: str) -> list[tuple[float, float, bytes | None]]:
    """The metrics rows (ts, value, earlier) of series ``name``, in the order written."""
    return rows_of(
        db,
        "SELECT m.ts, m.value, m.earlier FROM metrics m JOIN metric_series s ON s.id = m.series "
        "WHERE s.name = ? ORDER BY m.id",
        name,
    )
