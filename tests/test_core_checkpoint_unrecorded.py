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

from .store_support import checkpoint_rows, verified


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

        monkeypatch.setattr(store, "append", append)
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
