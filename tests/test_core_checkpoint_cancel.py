"""A checkpoint cancelled or refused mid-way: its row and its CHECKPOINT_CREATED both or neither.

The store writes on aiosqlite's thread: an await abandoned while the checkpoint's
commit is being written leaves that write running, and it commits. The row and its
event are one transaction (the row waits in the log for its event's commit), so no
cut leaves a row that no CHECKPOINT_CREATED names, nor an event naming no row. Each
store call a checkpoint makes is a point where the task is cancelled here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from core.commands import run_command
from core.engine import Engine
from core.session import open_sim
from core.store import Store, StoreError
from core.store_commit import Commit
from core.store_errors import StorageError
from core.store_tables import CheckpointRow

from .store_support import as_commit, checkpoint_rows, verified


@asynccontextmanager
async def _flushed_demo(db: Path) -> AsyncIterator[tuple[Engine, Store]]:
    """A demo engine on ``db`` and its store, all it wrote on opening committed; closed on leaving."""
    eng = await open_sim(db, demo=True)
    store = eng.store
    assert store is not None
    try:
        await eng.flush()
        yield eng, store
    finally:
        await eng.close()


CALLS = ("append", "add_metrics", "history_kept", "next_checkpoint_id")
"""The store calls a checkpoint awaits (its flush first, the kept entries and the next id,
then the commit of its row with its event)."""


def _cancel_at(eng: Engine, n: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``n``-th of the store calls in CALLS (from 0) cancels the task awaiting it, as
    its work is handed to the store's thread; the calls made, in order."""
    store = eng.store
    assert store is not None
    made: list[str] = []
    for name in CALLS:
        real: Callable[..., Awaitable[Any]] = getattr(store, name)

        def wrapper(*a: Any, _real: Callable[..., Awaitable[Any]] = real, _name: str = name, **k: Any) -> Any:
            made.append(_name)
            if len(made) - 1 == n:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()  # delivered at the call's first wait: its work is queued by then
            return _real(*a, **k)

        monkeypatch.setattr(store, name, wrapper)
    return made


@pytest.mark.parametrize("via", ["engine", "command"])
async def test_a_checkpoint_cancelled_at_each_store_call_leaves_row_and_event_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    """Directly, and inside a command (whose unit is taken back when it is cancelled:
    an event not yet committed would go with it, its row staying)."""
    db = tmp_path / "c.db"
    eng = await open_sim(db, demo=True)
    await eng.advance(30)
    await eng.close()
    n = 0
    stored: list[bool] = []  # per cancelled round: whether its row (and so its event) is there
    while True:
        eng = await open_sim(db)  # a new engine: its first checkpoint reads the kept entries
        try:
            eng.set_setting("probe", n)  # something for the checkpoint's flush to commit
            with monkeypatch.context() as m:
                made = _cancel_at(eng, n, m)
                before = set(eng.state.checkpoints)
                cp = asyncio.ensure_future(
                    eng.checkpoint("manual", label=f"round {n}")
                    if via == "engine"
                    else run_command(eng, f'/coordination-hub save-state \'{{"label": "round {n}"}}\'')
                )
                try:
                    await cp
                    cancelled = False
                except asyncio.CancelledError:
                    cancelled = True
            assert cancelled == (n < len(made)), (n, made)
            await eng.flush()  # what the engine emitted, committed
            assert eng.store is not None  # its own connection: read after any write left running
            in_store = sorted(r["id"] for r in await eng.store.list_checkpoints())
            assert in_store == sorted(eng.state.checkpoints), (n, made)
            if cancelled:
                stored.append(set(in_store) != before)
        finally:
            await eng.close()
        again = await open_sim(db)
        try:
            assert sorted(again.state.checkpoints) == await checkpoint_rows(db), (n, made)
        finally:
            await again.close()
        if not cancelled:
            break
        n += 1
    assert {"append", "history_kept", "next_checkpoint_id"} <= set(made) and n == len(made), "each one was cut"
    at_commit = len(made) - 1
    assert made[at_commit] == "append" and made.count("append") == 2, made  # its flush first, then its commit
    # Cut before its commit: neither; cut at its commit (written all the same): both.
    assert stored == [i >= at_commit for i in range(n)], (made, stored)
    report = await verified(db)
    assert report.ok, report.as_dict()


def _refusing_checkpoints(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """While the flag is set, the storage refuses a commit that holds a checkpoint's row
    (the disk is full); the flag, to clear."""
    real_append = store.append
    refusing = [True]

    async def append(*a: Any, **k: Any) -> None:
        if refusing[0] and k.get("checkpoints"):
            raise StorageError("full", str(store.path), f"{store.path}: the disk is full")
        await real_append(*a, **k)

    monkeypatch.setattr(store, "append", as_commit(append))
    return refusing


async def test_a_command_whose_checkpoint_commit_is_refused_is_taken_back_row_and_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The storage refuses the commit of the row with its CHECKPOINT_CREATED: the command
    is answered STORAGE_FULL and taken back, and neither is written by a later commit
    (the row went back with the event it waited for)."""
    db = tmp_path / "r.db"
    async with _flushed_demo(db) as (eng, store):
        before = sorted(r["id"] for r in await store.list_checkpoints())
        assert before == sorted(eng.state.checkpoints)
        refusing = _refusing_checkpoints(store, monkeypatch)
        res = await run_command(eng, '/coordination-hub save-state \'{"label": "refused"}\'')
        assert res["status"] == "error" and res["error"]["code"] == "STORAGE_FULL", res
        assert res["error"]["details"]["taken_back"] is True, res
        assert sorted(eng.state.checkpoints) == before and eng.log.checkpoint_rows == []
        refusing[0] = False
        eng.set_setting("probe", 1)
        await eng.flush()
        assert sorted(r["id"] for r in await store.list_checkpoints()) == before == sorted(eng.state.checkpoints)
        after = await eng.checkpoint("manual", label="after")  # the id taken back is skipped, never given twice
        assert after > max(before, default=0) + 1
        assert (
            sorted(r["id"] for r in await store.list_checkpoints()) == [*before, after] == sorted(eng.state.checkpoints)
        )
    report = await verified(db)
    assert report.ok and report.checkpoints_unrecorded == [], report.as_dict()


async def test_a_checkpoint_whose_commit_is_refused_keeps_row_and_event_for_the_next_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a command (an automatic checkpoint) the refused row and event stay held
    together: the next commit that goes through writes both, with the next id after it."""
    db = tmp_path / "h.db"
    async with _flushed_demo(db) as (eng, store):
        before = sorted(r["id"] for r in await store.list_checkpoints())
        refusing = _refusing_checkpoints(store, monkeypatch)
        with pytest.raises(StorageError):
            await eng.checkpoint("auto", label="held")
        held = sorted(set(eng.state.checkpoints) - set(before))
        assert len(held) == 1 and sorted(r["id"] for r in await store.list_checkpoints()) == before
        refusing[0] = False
        await eng.flush()
        assert sorted(r["id"] for r in await store.list_checkpoints()) == before + held == sorted(eng.state.checkpoints)
        after = await eng.checkpoint("auto", label="next")
        assert after == held[0] + 1
    again = await open_sim(db)
    try:
        assert sorted(again.state.checkpoints) == await checkpoint_rows(db) == [*before, *held, after]
    finally:
        await again.close()
    report = await verified(db)
    assert report.ok and report.checkpoints_unrecorded == [], report.as_dict()


async def test_a_checkpoint_cancelled_while_its_refused_commit_settles_ends_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task is cancelled while its commit is being written, and the storage refuses
    it: nothing was written, and the task ends cancelled as it was asked to (not with the
    storage's error: a drill cancelled at that point would end 'failed: disk full')."""
    db = tmp_path / "x.db"
    async with _flushed_demo(db) as (eng, store):
        before = sorted(r["id"] for r in await store.list_checkpoints())
        real_append = store.append

        async def refused() -> None:
            await asyncio.sleep(0)  # the checkpoint's task waits on this write meanwhile
            raise StorageError("full", str(db), f"{db}: the disk is full")

        def append(*a: Any, **k: Any) -> Any:
            if not k.get("checkpoints"):
                return real_append(*a, **k)
            task = asyncio.current_task()  # the flush's: it calls this to hand the write over
            assert task is not None
            task.cancel()  # delivered while it waits on the write
            return Commit().follow(refused())

        monkeypatch.setattr(store, "append", append)
        cp = asyncio.ensure_future(eng.checkpoint("manual", label="refused"))
        await asyncio.wait({cp})
        assert cp.cancelled(), cp.exception()
        assert sorted(r["id"] for r in await store.list_checkpoints()) == before
        monkeypatch.setattr(store, "append", real_append)
        await eng.flush()  # held together: both now
        assert sorted(r["id"] for r in await store.list_checkpoints()) == sorted(eng.state.checkpoints)


async def test_a_checkpoint_row_naming_an_id_given_before_is_refused_and_nothing_written(tmp_path: Path) -> None:
    """The engine counts ids on from the one it read: a row naming an id at or below the
    highest ever given (another writer's, or a counting error) is refused with its batch."""
    db = tmp_path / "i.db"
    async with _flushed_demo(db) as (eng, store):
        first = await eng.checkpoint("manual", label="first")
        seq = eng.state.seq
        rows = await store.list_checkpoints()
        row = CheckpointRow(first, seq, 1.0, "manual", "again", None, "{}", "h")
        with pytest.raises(StoreError, match=f"checkpoint {first} cannot be stored"):
            await store.append([], [("wf-x", seq, "completed", "{}")], checkpoints=[row])
        assert await store.list_checkpoints() == rows
        assert await store.archived("wf-x", seq) is None, "its batch was not written"
