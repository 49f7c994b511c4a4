"""A checkpoint row no CHECKPOINT_CREATED records (the process ended after the row
committed, before its event did) is never listed nor restored to: verify names it
(not as damage), cleanup-checkpoints removes it with the others and says how many
such rows it removed."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from core.commands import run_command
from core.events import canonical_json
from core.session import open_sim
from core.store_errors import StorageError

from .store_support import as_commit, checkpoint_rows, verified


async def test_a_row_no_event_records_is_removed_by_cleanup_and_said(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    eng = await open_sim(db, demo=True)
    try:
        await eng.advance(60)
        recorded = await eng.checkpoint()
        await eng.advance(60)
        await eng.flush()
        # What a process ending between the row's commit and its event's leaves.
        assert eng.store is not None
        text = canonical_json(eng.state.snapshot())
        changes = eng.state.history.changes(await eng.store.history_kept())
        digest = hashlib.sha256(text.encode()).hexdigest()
        orphan = await eng.store.save_checkpoint(
            eng.state.seq, eng.clock.now(), "auto", "", None, text, digest, changes
        )
    finally:
        await eng.close()
    assert orphan in await checkpoint_rows(db)
    before = await verified(db)
    assert before.checkpoints_unrecorded == [orphan] and recorded in before.checkpoints_ok, before.as_dict()
    assert before.ok, "not damage: said, not a fault"
    again = await open_sim(db)
    try:
        assert recorded in again.state.checkpoints and orphan not in again.state.checkpoints
        res = await run_command(again, "/workflow-recovery cleanup-checkpoints")
        assert res["status"] == "success", res
        assert res["result"]["unrecorded"] == [orphan] and res["result"]["removed"] == [orphan], res
        assert "1 of them rows no event recorded" in res["result"]["summary"], res
        assert recorded in again.state.checkpoints, "a recorded, verified checkpoint stays"
        await again.flush()
    finally:
        await again.close()
    rows = await checkpoint_rows(db)
    assert orphan not in rows and recorded in rows
    report = await verified(db)
    assert report.ok and report.checkpoints_unrecorded == [], report.as_dict()


async def test_cleanup_with_every_row_recorded_removes_none_of_them(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    eng = await open_sim(db, demo=True)
    try:
        ids = [await eng.checkpoint() for _ in range(2)]
        res = await run_command(eng, "/workflow-recovery cleanup-checkpoints")
        assert res["status"] == "success", res
        assert res["result"]["unrecorded"] == [] and res["result"]["removed"] == [], res
        assert "rows no event recorded" not in res["result"]["summary"]
        await eng.flush()
    finally:
        await eng.close()
    assert set(ids) <= set(await checkpoint_rows(db))


async def test_a_checkpoint_still_being_taken_is_not_unrecorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The must-not: cleanup runs while another checkpoint's row is being committed with
    its event and its task has not yet resumed (an automatic or a plan's checkpoint, not
    a command). That row is not unrecorded: its event is committed with it, and removing
    it would leave a CHECKPOINT_CREATED naming a row that is gone."""
    db = tmp_path / "r.db"
    eng = await open_sim(db, demo=True)
    store = eng.store
    assert store is not None
    try:
        await eng.advance(60)
        real_append = store.append
        committed, resume = asyncio.Event(), asyncio.Event()

        async def append(*a: Any, **k: Any) -> None:
            await real_append(*a, **k)
            if k.get("checkpoints"):
                committed.set()  # the row and its event are in the store; the checkpoint's task is not back yet
                await resume.wait()

        monkeypatch.setattr(store, "append", as_commit(append))
        taking = asyncio.ensure_future(eng.checkpoint(kind="auto"))
        await committed.wait()
        cleanup = asyncio.ensure_future(run_command(eng, "/workflow-recovery cleanup-checkpoints '{\"keep\": 10}'"))
        for _ in range(50):  # the cleanup gets as far as it can before the checkpoint goes on
            await asyncio.sleep(0)
        resume.set()
        cp = await taking
        res = await cleanup
        assert res["status"] == "success", res
        await eng.flush()
        assert cp in eng.state.checkpoints and cp not in res["result"]["removed"], res
        assert sorted(r["id"] for r in await store.list_checkpoints()) == sorted(eng.state.checkpoints), res
    finally:
        await eng.close()


def _refused_once_when_let(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, asyncio.Event, list[bool]]:
    """The storage refuses the commit of a checkpoint's row (the disk is full) once it is
    let to answer, while the flag says so; (entered: the commit is being written, let:
    answer it, the flag)."""
    real_append = store.append
    entered, let, refusing = asyncio.Event(), asyncio.Event(), [True]

    async def append(*a: Any, **k: Any) -> None:
        if k.get("checkpoints") and refusing[0]:
            entered.set()
            await let.wait()
            raise StorageError("full", str(store.path), f"{store.path}: the disk is full")
        await real_append(*a, **k)

    monkeypatch.setattr(store, "append", as_commit(append))
    return entered, let, refusing


async def _cleanup_while_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refuse_again: bool) -> None:
    """An automatic checkpoint's commit is being written (and is then refused) while
    cleanup-checkpoints looks at the checkpoints; the storage is back for the next commit
    or still full (``refuse_again``)."""
    db = tmp_path / "r.db"
    eng = await open_sim(db, demo=True)
    store = eng.store
    assert store is not None
    entered, let, refusing = _refused_once_when_let(store, monkeypatch)
    refusing[0] = False
    try:
        await eng.advance(60)
        await eng.flush()
        refusing[0] = True
        taking = asyncio.ensure_future(eng.checkpoint(kind="auto"))
        await entered.wait()
        (held,) = set(eng.state.checkpoints) - set(await checkpoint_rows(db))
        looked: list[int] = []
        real_load = eng.checkpoints.load

        async def load(cp_id: int) -> Any:
            looked.append(cp_id)
            return await real_load(cp_id)

        monkeypatch.setattr(eng.checkpoints, "load", load)
        cleanup = asyncio.ensure_future(run_command(eng, "/workflow-recovery cleanup-checkpoints '{\"keep\": 100}'"))
        while held not in looked and not cleanup.done():  # the cleanup is at the held checkpoint
            await asyncio.sleep(0.01)
        refusing[0] = refuse_again
        let.set()
        with pytest.raises(StorageError):
            await taking  # its commit was refused: the row and its event are held together
        res = await cleanup
        if refuse_again:  # the held commit cannot go through: the cleanup is refused, removes nothing
            assert res["status"] == "error" and res["error"]["code"] == "STORAGE_FULL", res
            refusing[0] = False
        else:
            assert res["status"] == "success", res
            assert held not in res["result"]["removed"] and held not in res["result"]["corrupt"], res
        await eng.flush()
        assert held in eng.state.checkpoints, "the held checkpoint is listed, not pruned"
        assert await checkpoint_rows(db) == sorted(eng.state.checkpoints), "the engine's checkpoints are the rows"
    finally:
        refusing[0] = False
        await eng.close()
    report = await verified(db)
    assert report.ok and report.checkpoints_unrecorded == [], report.as_dict()


async def test_cleanup_during_a_refused_checkpoint_commit_keeps_the_held_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The must-not: the cleanup looked for the held checkpoint's row while its commit
    was being written, found none (it was then refused) and pruned it as corrupt; the
    next commit wrote that row after all, and the log said it was removed."""
    await _cleanup_while_refused(tmp_path, monkeypatch, refuse_again=False)


async def test_cleanup_while_the_storage_still_refuses_is_refused_and_removes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _cleanup_while_refused(tmp_path, monkeypatch, refuse_again=True)
