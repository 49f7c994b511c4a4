"""The processes table (which agent host processes a run owns): the rows of hosts
started together are written in one transaction, all of them or none."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from core.store import Store
from core.store_errors import StorageError


async def test_a_pools_rows_are_one_transaction(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "p.db")
    writes = 0
    real = store.process_table._write

    async def counted(statements: Any) -> None:
        nonlocal writes
        writes += 1
        await real(statements)

    store.process_table._write = counted
    try:
        saves = [(f"agent_{i:03d}", 1000 + i, 1.5 + i, {"address": f"/r/agent_{i:03d}.sock"}) for i in range(1, 21)]
        await store.apply_processes(saves, [])
        assert writes == 1
        assert sorted(await store.processes()) == sorted(saves)
        await store.apply_processes([("agent_001", 2001, 9.5, {})], ["agent_002", "agent_003"])
        assert writes == 2
        rows = {r[0]: r for r in await store.processes()}
        assert len(rows) == 18 and rows["agent_001"] == ("agent_001", 2001, 9.5, {}) and "agent_002" not in rows
    finally:
        await store.close()


async def test_a_batch_that_fails_changes_no_row(tmp_path: Path) -> None:
    """The case that must not half-succeed: a row refused by the table (no pid) after a
    good one; neither the good row nor the batch's deletion is kept."""
    store = await Store.open(tmp_path / "p.db")
    try:
        await store.apply_processes([("agent_001", 1001, 1.5, {})], [])
        bad: Any = None
        with pytest.raises((sqlite3.IntegrityError, StorageError)):
            await store.apply_processes([("agent_002", 1002, 2.5, {}), ("agent_003", bad, 3.5, {})], ["agent_001"])
        assert await store.processes() == [("agent_001", 1001, 1.5, {})]
    finally:
        await store.close()
