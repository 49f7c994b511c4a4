"""Finished workflows' records are stored zlib-compressed (schema 7); records stored as
text by older databases are read as before."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from core.clock import VirtualClock
from core.engine import Engine
from core.store import Store
from core.store_reads import archive_blob
from core.store_schema import SCHEMA_VERSION

from .store_support import agents_only_config, migrated_on_open, start_pool_workflow, stored_schema_version


async def test_a_finished_workflow_is_stored_compressed_and_read_back_whole(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    clock = VirtualClock()
    eng = await Engine.open(db, config=agents_only_config(5), clock=clock)
    try:
        tasks = [{"id": f"t{i}", "specialization": "x", "duration_s": 0, "cpu": 0, "memory_gb": 0} for i in range(200)]
        start_pool_workflow(eng, clock, 5, tasks)
        await eng.advance(5.0)
        await eng.flush()
        assert eng.state.status_of("w").value == "completed"
        record = await eng.log.archived("w")
    finally:
        await eng.close()
    assert record is not None and len(record["tasks"]) == 200 and record["workflow"]["id"] == "w"
    con = sqlite3.connect(db)
    try:
        (stored,) = con.execute("SELECT record FROM archive WHERE workflow = 'w'").fetchone()
    finally:
        con.close()
    text = json.dumps(record, separators=(",", ":"))
    assert isinstance(stored, bytes) and len(stored) * 10 < len(text), "stored compressed"
    again = await Engine.open(db, config=agents_only_config(5), clock=VirtualClock())
    try:
        assert await again.log.archived("w") == record
    finally:
        await again.close()


async def test_a_schema_6_record_stored_as_text_is_read_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "v6.db"
    store = await Store.open(db)
    await store.close()
    record = {"workflow": {"id": "old"}, "tasks": [{"id": "old/t0"}]}
    con = sqlite3.connect(db)
    con.execute("INSERT INTO archive VALUES ('old', 7, 'completed', ?)", (json.dumps(record),))
    con.execute("INSERT INTO archive VALUES ('bad', 8, 'completed', ?)", (archive_blob("{}")[:-3],))
    con.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    store = await migrated_on_open(db)
    try:
        assert await store.archived("old", 7) == record
        with pytest.raises(ValueError, match="does not decompress"):
            await store.archived("bad", 8)
        assert await store.archived("old", 8) is None
    finally:
        await store.close()
    assert stored_schema_version(db) == str(SCHEMA_VERSION)
