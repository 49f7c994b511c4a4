"""Finished workflows opened from a compact checkpoint stay their stored text until read,
and hash, snapshot and replay exactly as built records do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.engine import Engine
from core.lazy_records import LazyRecords
from core.models import FinishedWorkflow, WorkflowStatus
from core.projection_history import HistoryCache, entry_text

from .test_core_snapshot_history import _engine, _finish, _verify


def _count(db: Path, sql: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


async def test_open_keeps_finished_summaries_as_text_until_read_and_hashes_the_same(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    eng = await _engine(db)
    await _finish(eng, [f"w{i}" for i in range(6)])
    await eng.checkpoint("manual", "six finished")
    before = eng.state.state_hash()
    summaries = {k: v.model_dump() for k, v in eng.state.finished.items()}
    await eng.close()
    kept = _count(db, "SELECT count(*) FROM snapshot_history")

    again = await _engine(db)
    try:
        finished = again.state.finished
        assert isinstance(finished, LazyRecords)
        assert finished.unbuilt() == 6
        # The hash, a checkpoint and membership need no record built.
        assert again.state.state_hash() == before
        await again.checkpoint("manual", "nothing changed")
        after_cp = again.state.state_hash()
        assert "w3" in finished and "nope" not in finished and len(finished) == 6
        assert finished.unbuilt() == 6
        # Reading builds each record once, the same summary that was stored.
        assert finished["w3"].model_dump() == summaries["w3"]
        assert finished["w3"] is finished["w3"]
        assert finished.unbuilt() == 5
        assert finished.get("nope") is None
        assert {k: v.model_dump() for k, v in finished.items()} == summaries
        assert again.state.state_hash() == after_cp  # built records hash as their stored text
    finally:
        await again.close()
    # Nothing was rewritten beside the checkpoints for the built records (only the new
    # checkpoint's own record was added).
    assert _count(db, "SELECT count(*) FROM snapshot_history") == kept + 1
    await _verify(db)


def _summary(wf_id: str, status: WorkflowStatus) -> FinishedWorkflow:
    return FinishedWorkflow.model_validate(
        {
            "id": wf_id,
            "name": wf_id,
            "priority": 50,
            "band": "MEDIUM",
            "status": status.value,
            "allocation": {"cpu_cores": 1, "memory_gb": 1, "agents": 1},
            "finished_seq": 7,
        }
    )


def test_a_replaced_record_is_hashed_again_and_an_unread_one_is_not() -> None:
    texts = {k: entry_text(_summary(k, WorkflowStatus.COMPLETED)) for k in ("a", "b")}
    cache = HistoryCache()
    lazy, _ = cache.load({"finished": texts})
    eager = {k: FinishedWorkflow.model_validate_json(t) for k, t in texts.items()}
    assert cache.digest("finished", lazy) == HistoryCache().digest("finished", eager)
    # A record replaced under the same key must change the digest (not pass as its stored text).
    lazy["a"] = _summary("a", WorkflowStatus.FAILED)
    eager["a"] = _summary("a", WorkflowStatus.FAILED)
    assert cache.digest("finished", lazy) == HistoryCache().digest("finished", eager)
    assert cache.digest("finished", lazy) != HistoryCache().digest(
        "finished", {k: FinishedWorkflow.model_validate_json(t) for k, t in texts.items()}
    )
    assert lazy.unbuilt() == 1
    # Removed, then put back as it was: hashed from the record, same digest as the text's.
    del lazy["b"]
    assert "b" not in lazy and cache.digest("finished", lazy) == HistoryCache().digest("finished", {"a": eager["a"]})
    lazy["b"] = eager["b"]
    assert cache.digest("finished", lazy) == HistoryCache().digest("finished", eager)
    changes = cache.changes({"finished": {"a": "old", "b": "old"}})
    assert sorted((part, key) for part, key, _, _ in changes) == [("finished", "a"), ("finished", "b")]


async def test_a_reader_without_a_good_checkpoint_builds_records_by_replay(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    eng = await _engine(db)
    await _finish(eng, ["a"])
    await eng.close()  # no checkpoint taken: open replays the log, finished records are built
    again = await Engine.open(db, readonly=True)
    try:
        assert not isinstance(again.state.finished, LazyRecords)
        assert again.state.finished["a"].status is WorkflowStatus.COMPLETED
    finally:
        await again.close()
