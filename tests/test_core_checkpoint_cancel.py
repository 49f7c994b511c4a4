"""A checkpoint cancelled mid-way: its row and its CHECKPOINT_CREATED both or neither.

The store writes on aiosqlite's thread: an await abandoned while the checkpoint's row
is being written leaves that write running, and it commits. Before the fix the task
stopped there: a row in the checkpoints table that no CHECKPOINT_CREATED names (the
engine never lists it, and the history entries it wrote were not marked as kept).
Each store call a checkpoint makes is a point where the task is cancelled here.
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
from core.store import Store
from core.store_errors import StorageError

from .store_support import checkpoint_rows, verified


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


CALLS = ("append", "add_metrics", "history_kept", "save_checkpoint")
"""The store calls a checkpoint awaits (its flush first, the kept entries, the row)."""


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
    assert {"append", "history_kept", "save_checkpoint"} <= set(made) and n == len(made), "each one was cut"
    at_save = made.index("save_checkpoint")
    # Cut before the save: neither; cut at the save (its row written all the same) or after: both.
    assert stored == [i >= at_save for i in range(n)], (made, stored)
    report = await verified(db)
    assert report.ok, report.as_dict()


async def test_a_checkpoint_whose_event_commit_is_refused_keeps_its_event_for_the_next_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row is committed, then the storage refuses the commit of its CHECKPOINT_CREATED
    (the disk filled in between): the command is answered STORAGE_FULL saying its events
    are held, not that it was taken back, and the event is committed with the next commit
    that goes through. Taking the command back would leave a row no event names."""
    db = tmp_path / "r.db"
    async with _flushed_demo(db) as (eng, store):
        real_save, real_append = store.save_checkpoint, store.append
        refusing = [False]

        async def save(*a: Any, **k: Any) -> int:
            cp: int = await real_save(*a, **k)
            refusing[0] = True  # the disk fills right after the row
            return cp

        async def append(*a: Any, **k: Any) -> None:
            if refusing[0]:
                raise StorageError("full", str(db), f"{db}: the disk is full")
            await real_append(*a, **k)

        monkeypatch.setattr(store, "save_checkpoint", save)
        monkeypatch.setattr(store, "append", append)
        res = await run_command(eng, '/coordination-hub save-state \'{"label": "refused"}\'')
        assert res["status"] == "error" and res["error"]["code"] == "STORAGE_FULL", res
        assert res["error"]["details"]["taken_back"] is False, res
        in_store = sorted(r["id"] for r in await store.list_checkpoints())
        assert in_store == sorted(eng.state.checkpoints), "the event is held, not taken back"
        refusing[0] = False
        await eng.flush()
    again = await open_sim(db)
    try:
        assert sorted(again.state.checkpoints) == await checkpoint_rows(db)
    finally:
        await again.close()


async def test_a_checkpoint_cancelled_while_its_refused_save_settles_ends_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task is cancelled while its row is being written, and the storage refuses the
    write: nothing was recorded, and the task ends cancelled as it was asked to (it ended
    with the storage's error: the cancellation was lost, and a drill cancelled at that
    point ended 'failed: disk full' instead)."""
    db = tmp_path / "x.db"
    async with _flushed_demo(db) as (eng, store):
        before = sorted(r["id"] for r in await store.list_checkpoints())

        async def refused() -> int:
            await asyncio.sleep(0)  # the checkpoint's task waits on this write meanwhile
            raise StorageError("full", str(db), f"{db}: the disk is full")

        def save(*a: Any, **k: Any) -> Any:
            task = asyncio.current_task()  # the checkpoint's: it calls this to hand the write over
            assert task is not None
            task.cancel()  # delivered while it waits on the write
            return refused()

        monkeypatch.setattr(store, "save_checkpoint", save)
        cp = asyncio.ensure_future(eng.checkpoint("manual", label="refused"))
        await asyncio.wait({cp})
        assert cp.cancelled(), cp.exception()
        assert sorted(r["id"] for r in await store.list_checkpoints()) == before == sorted(eng.state.checkpoints)
