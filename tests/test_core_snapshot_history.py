"""Snapshots hold live state: finished workflows and checkpoint records are kept beside the
checkpoints (``snapshot_history``), named in the hashed snapshot by a count and a digest."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from core.clock import VirtualClock
from core.commands import run_command
from core.engine import Engine
from core.projection import State
from core.runtimes.sim import SimRuntime
from core.store import Store, StoreError
from core.verify import verify_store

from .test_core_hot_state import AGENTS, _config, _spec


async def _engine(db: Path) -> Engine:
    clock = VirtualClock()
    eng = await Engine.open(db, config=_config(), clock=clock)
    eng.attach_runtime(SimRuntime(clock, heartbeat_s=1e9, sample_s=1e9))
    eng.auto_checkpoints = False
    if not eng.state.pools:
        eng.create_pool("p", ["x"], 0, AGENTS)
        for _ in range(AGENTS):
            eng.add_agent("p")
    return eng


async def _finish(eng: Engine, names: list[str]) -> None:
    for name in names:
        eng.create_workflow(_spec(name, 2))
        eng.start_workflow(name)
    await eng.advance(600)
    assert all(n in eng.state.finished for n in names)


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as con:
        return list(con.execute(sql).fetchall())


def _write(db: Path, sql: str, args: tuple[object, ...]) -> None:
    """One statement committed from outside the store (a tampered entry); the connection
    is closed even when the statement fails."""
    with closing(sqlite3.connect(db)) as con:
        con.execute(sql, args)
        con.commit()


async def _verify(db: Path) -> None:
    store = await Store.open(db)
    try:
        rep = await verify_store(store)
    finally:
        await store.close()
    assert rep.ok, rep.as_dict()


async def test_a_snapshot_does_not_grow_with_finished_history_and_reopens_to_the_same_hash(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    eng = await _engine(db)
    sizes = []
    for batch in range(4):
        await _finish(eng, [f"w{batch}-{i}" for i in range(10)])
        await eng.checkpoint("manual", f"after batch {batch}")
        sizes.append(len(_rows(db, "SELECT state FROM checkpoints ORDER BY id DESC LIMIT 1")[0][0]))  # type: ignore[arg-type]
    before = eng.state.state_hash()
    finished = {k: v.model_dump() for k, v in eng.state.finished.items()}
    await eng.close()
    # 10 then 40 finished workflows: the stored snapshot stays the same size within a few
    # counters' digits; each finished summary is kept once beside it.
    assert len(finished) == 40
    assert max(sizes) - min(sizes) < 200, sizes
    kept = _rows(db, "SELECT part, count(*) FROM snapshot_history GROUP BY part ORDER BY part")
    assert kept == [("checkpoints", 3), ("finished", 40)]
    again = await _engine(db)
    try:
        assert again.state.state_hash() == before
        assert {k: v.model_dump() for k, v in again.state.finished.items()} == finished
        assert [c.label for c in again.state.checkpoints.values()] == [f"after batch {b}" for b in range(4)]
    finally:
        await again.close()
    await _verify(db)


async def test_a_changed_kept_entry_is_refused_at_open_and_named_by_verify(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    eng = await _engine(db)
    await _finish(eng, ["a", "b"])
    cp = await eng.checkpoint("manual", "two finished")
    await eng.close()
    entry = json.loads(str(_rows(db, "SELECT entry FROM snapshot_history WHERE key='a'")[0][0]))
    entry["status"] = "failed"
    _write(db, "UPDATE snapshot_history SET entry=? WHERE key='a'", (json.dumps(entry),))
    with pytest.raises(StoreError, match=f"checkpoint {cp}: the finished entries kept beside it do not match"):
        await Engine.open(db)
    store = await Store.open(db, readonly=True)
    try:
        rep = await verify_store(store)
    finally:
        await store.close()
    assert rep.first_bad_seq is None and list(rep.checkpoints_bad) == [cp], rep.as_dict()
    assert "finished entries kept beside it" in rep.checkpoints_bad[cp]
    # A reader uses the newest good checkpoint: here none, so it replays the log from the start.
    reader = await Engine.open(db, readonly=True)
    try:
        assert reader.state.finished["a"].status.value == "completed"
    finally:
        await reader.close()


@pytest.mark.parametrize("change", ["another seq", "not a record"])
async def test_a_changed_kept_checkpoint_record_is_refused_at_open(tmp_path: Path, change: str) -> None:
    """An open hashes each kept entry once, as it loads it: a changed checkpoint record is
    named by the digest check whether or not it still loads as a record."""
    db = tmp_path / "c.db"
    eng = await _engine(db)
    await _finish(eng, ["a"])
    first = await eng.checkpoint("manual", "first")
    cp = await eng.checkpoint("manual", "second")
    await eng.close()
    key = str(first)
    entry = json.loads(
        str(_rows(db, f"SELECT entry FROM snapshot_history WHERE part='checkpoints' AND key='{key}'")[0][0])
    )
    text = json.dumps({**entry, "seq": entry["seq"] + 1}) if change == "another seq" else '{"seq": "x"}'
    _write(db, "UPDATE snapshot_history SET entry=? WHERE part='checkpoints' AND key=?", (text, key))
    with pytest.raises(StoreError, match=f"checkpoint {cp}: the checkpoints entries kept beside it do not match"):
        await Engine.open(db)


async def test_rollback_to_a_compact_checkpoint_restores_a_finished_workflow(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    eng = await _engine(db)
    await _finish(eng, ["done"])
    eng.create_workflow(_spec("late", 2))
    cp = await eng.checkpoint("manual", "done finished, late pending")
    eng.start_workflow("late")
    await eng.advance(600)
    assert "late" in eng.state.finished
    r = await run_command(eng, f"/workflow-recovery rollback '{{\"checkpoint\": {cp}}}'")
    assert r["status"] == "success", r
    assert "done" in eng.state.finished and eng.state.finished["done"].status.value == "completed"
    assert "late" in eng.state.workflows and "late" not in eng.state.finished
    after = eng.state.state_hash()
    await eng.close()
    again = await _engine(db)
    try:
        assert again.state.state_hash() == after
    finally:
        await again.close()
    await _verify(db)


async def test_a_store_of_whole_snapshots_opens_verifies_and_then_keeps_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Snapshots written before the history parts left them (finished and checkpoint
    records whole) keep their text, open, verify; the next checkpoint keeps every entry."""
    db = tmp_path / "old.db"
    old = State.snapshot
    with monkeypatch.context() as m:
        m.setattr(State, "snapshot", lambda self, **_: old(self, full=True))
        eng = await _engine(db)
        await _finish(eng, ["x", "y", "z"])
        await eng.checkpoint("manual", "whole")
        await eng.close()
    whole = _rows(db, "SELECT state FROM checkpoints")
    assert all('"finished":{' in str(s[0]) for s in whole)
    assert _rows(db, "SELECT count(*) FROM snapshot_history") == [(0,)]
    eng = await _engine(db)
    assert sorted(eng.state.finished) == ["x", "y", "z"]
    await _finish(eng, ["w"])
    await eng.checkpoint("manual", "compact")
    h = eng.state.state_hash()
    await eng.close()
    assert _rows(db, "SELECT state FROM checkpoints")[: len(whole)] == whole
    assert _rows(db, "SELECT count(*) FROM snapshot_history WHERE part='finished'") == [(4,)]
    again = await _engine(db)
    try:
        assert again.state.state_hash() == h and sorted(again.state.finished) == ["w", "x", "y", "z"]
    finally:
        await again.close()
    await _verify(db)


def test_a_parts_digest_is_the_stored_formula_however_it_is_taken() -> None:
    """Stored snapshots hold digests over ``key\\nhash\\n`` lines in key order: the cached
    lines of a checkpoint's digest, an open's check and verify's agree with that formula
    (a changed line would leave every stored checkpoint unverifiable)."""
    import hashlib

    from core.models import Checkpoint
    from core.projection_history import HistoryCache, digest_of, entry_text, text_hash

    records = {
        i: Checkpoint(id=i, seq=i * 10, ts=float(i), kind="auto", label=f"l{i}", state_hash="ab" * 32)
        for i in (2, 10, 1)
    }
    want = hashlib.sha256(
        b"".join(f"{k}\n{text_hash(entry_text(records[int(k)]))}\n".encode() for k in sorted(map(str, records)))
    ).hexdigest()
    cache = HistoryCache()
    taken = cache.digest("checkpoints", {str(k): v for k, v in records.items()})
    assert taken == {"count": 3, "sha256": want}
    assert digest_of((k, cache.parts["checkpoints"][k].hash) for k in sorted(cache.parts["checkpoints"])) == taken
    loaded = HistoryCache()
    loaded.load({"checkpoints": {str(k): entry_text(v) for k, v in records.items()}})
    assert loaded.loaded_problem({"finished_digest": digest_of([]), "checkpoints_digest": taken}) is None
    assert loaded.loaded_problem({"finished_digest": digest_of([]), "checkpoints_digest": {**taken, "count": 2}})
