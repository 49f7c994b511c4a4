"""When a host answers: a change after its commit; a query (a command that changed
nothing) at once, its COMMAND_EXECUTED record committed by the next commit.

Each test reads the database file with its own sqlite3 connection: what is there is
what a crash would leave."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.config import Config
from core.host.host import Host

from .conftest import until

QUERY = "/resource-manager status"
SCALE = '/resource-manager scale \'{"pool": "p", "size": 2}\''


def head(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
    finally:
        con.close()


def committed(db: Path, type_: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM events WHERE type=?", (type_,)).fetchone()[0])
    finally:
        con.close()


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    h = await Host.open_sim(tmp_path / "q.db", Config(), create=True, speed=0)  # no pacing loop runs
    h.engine.create_pool("p", ["x"], 0, 4)
    await h.engine.flush()
    try:
        yield h
    finally:
        await h.close()


async def test_a_query_is_answered_before_its_record_which_the_next_commit_takes(host: Host) -> None:
    db = host.db
    before = committed(db, "COMMAND_EXECUTED")
    for _ in range(3):
        resp = await host.execute(QUERY, actor="q")
        assert resp["status"] == "success"
    # Three records held, none committed yet: a later query does not commit an earlier one's.
    assert host.engine.unflushed == 3 and not host.engine.holds_changes
    assert committed(db, "COMMAND_EXECUTED") == before
    # The host commits them itself, with no pacing loop and no further command.
    await until(lambda: committed(db, "COMMAND_EXECUTED") == before + 3, "the queries' records")
    assert host.engine.unflushed == 0


async def test_a_change_is_committed_before_its_answer_even_after_queries(host: Host) -> None:
    db = host.db
    before = committed(db, "COMMAND_EXECUTED")
    await host.execute(QUERY, actor="q")
    seq = host.engine.state.seq
    resp = await host.execute(SCALE, actor="s")
    assert resp["status"] == "success" and resp["result"]["added"]
    assert host.engine.state.seq > seq + 1  # the pool's new agents and the record
    assert host.engine.unflushed == 0 and head(db) == host.engine.state.seq
    assert committed(db, "COMMAND_EXECUTED") == before + 2  # the held query record went with it


async def test_a_query_does_not_answer_over_held_changes(host: Host) -> None:
    """The case that must not skip the commit: a change emitted outside a command (a
    runtime's fact, a tick) is held when the query starts; the answer shows it, so it
    is committed first."""
    db = host.db
    host.engine.set_setting("probe", {"v": 1}, actor="test")
    assert host.engine.holds_changes
    n = committed(db, "SETTING_CHANGED")
    resp = await host.execute(QUERY, actor="q")
    assert resp["status"] == "success"
    assert host.engine.unflushed == 0
    assert committed(db, "SETTING_CHANGED") == n + 1


async def test_closing_commits_a_held_query_record(tmp_path: Path) -> None:
    h = await Host.open_sim(tmp_path / "c.db", Config(), create=True, speed=0)
    before = committed(h.db, "COMMAND_EXECUTED")
    await h.execute(QUERY, actor="q")
    await h.close()
    assert committed(h.db, "COMMAND_EXECUTED") == before + 1
