"""A new database (``Store.open`` of a missing path, ``store_schema.build_new``): built
aside complete and linked into place; the file this call built is not checked again,
any other file is; a SIGKILL at any step leaves no database or an empty one that opens."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core import store as store_module
from core.anchor import anchor_path, read_anchor
from core.events import GENESIS_HASH
from core.session import open_sim
from core.store import SCHEMA_VERSION, Store, StoreError
from core.store_clean import CleanRecord, clean_path
from core.store_schema import APPLICATION_ID, build_new

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths ``quick_check`` ran on at open (a spy on Store.integrity)."""
    ran: list[str] = []
    real = Store.integrity

    async def spy(self: Store, quick: bool = False) -> list[tuple[str, str]]:
        ran.append(self.path)
        return await real(self, quick)

    monkeypatch.setattr(Store, "integrity", spy)
    return ran


def _schema(db: Path) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(db)
    try:
        return sorted(con.execute("SELECT type, name, sql FROM sqlite_master").fetchall())
    finally:
        con.close()


def _corrupt_first_table_page(db: Path) -> None:
    """The events table's root page overwritten in place (the size kept)."""
    con = sqlite3.connect(db)
    size = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name='events'").fetchone()[0]
    con.close()
    with open(db, "r+b") as fh:
        fh.seek((root - 1) * size)
        fh.write(b"\xff" * size)


async def test_a_new_database_is_whole_anchored_and_not_checked_again(tmp_path: Path, checks: list[str]) -> None:
    db = tmp_path / "n.db"
    store = await Store.open(db)
    try:
        assert checks == []  # built by this call, unchanged since: no quick_check
        assert store.checked_at is not None and store.anchored
        assert await store.meta("schema_version") == str(SCHEMA_VERSION)
        assert await store.count_events() == 0
        assert (db.stat().st_mode & 0o777) == 0o600
        assert read_anchor(db) == (0, GENESIS_HASH)
    finally:
        await store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["n.db", anchor_path(db).name, clean_path(db).name])
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # set at birth
        assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    finally:
        con.close()


async def test_a_new_database_has_the_schema_a_migration_from_empty_makes(tmp_path: Path) -> None:
    """build_new writes the migrations out in one transaction: the same tables as the
    migration path (an existing empty SQLite file opened) makes."""
    new, migrated = tmp_path / "new.db", tmp_path / "migrated.db"
    await (await Store.open(new)).close()
    con = sqlite3.connect(migrated)
    con.execute("CREATE TABLE x (a)")
    con.execute("DROP TABLE x")  # a whole SQLite file with no tables: opened, it is migrated from 0
    con.close()
    await (await Store.open(migrated)).close()
    assert _schema(new) == _schema(migrated)


async def test_an_existing_damaged_file_is_still_checked_and_refused(tmp_path: Path, checks: list[str]) -> None:
    db = tmp_path / "d.db"
    await (await Store.open(db)).close()
    clean_path(db).unlink()
    _corrupt_first_table_page(db)
    with pytest.raises(StoreError, match="the database is damaged"):
        await Store.open(db)
    assert checks == [str(db)]


async def test_a_file_another_process_linked_first_is_checked(
    tmp_path: Path, checks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes creating the same path: the one that lost the race opens the other's
    file and checks it (here damaged), as any file it did not build."""
    theirs = tmp_path / "theirs.db"
    await (await Store.open(theirs)).close()
    _corrupt_first_table_page(theirs)
    db = tmp_path / "r.db"
    real_build = store_module.build_new

    def build_then_lose_race(path: Path) -> None:
        real_build(path)
        shutil.copy(theirs, db)  # the other process's file arrives while ours is built

    monkeypatch.setattr(store_module, "build_new", build_then_lose_race)
    with pytest.raises(StoreError, match="the database is damaged"):
        await Store.open(db)
    assert checks == [str(db)]
    assert not list(tmp_path.glob(".r.db.creating*"))  # ours was removed


async def test_a_new_database_changed_before_its_open_is_checked(
    tmp_path: Path, checks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record of the file as built holds only while nothing wrote to it: damage
    written between the link and the open's check is found."""
    db = tmp_path / "c.db"
    real_check = store_module.check_file

    def damage_then_check(fp: Path) -> None:
        _corrupt_first_table_page(fp)
        real_check(fp)

    monkeypatch.setattr(store_module, "check_file", damage_then_check)
    with pytest.raises(StoreError, match="the database is damaged"):
        await Store.open(db)
    assert checks == [str(db)]


_KILL_AT = """
import asyncio, os, signal, sys
from core import store
from core.anchor import AnchorWriter
point, db = sys.argv[1], sys.argv[2]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "built":
    real_build = store.build_new
    store.build_new = lambda p: (real_build(p), die())
elif point == "anchored":
    real_write = AnchorWriter.write
    AnchorWriter.write = lambda self, seq, h: (real_write(self, seq, h), die())
elif point == "linked":
    real_link = os.link
    os.link = lambda a, b: (real_link(a, b), die())

async def main():
    s = await store.Store.open(db)
    die()

asyncio.run(main())
"""


@pytest.mark.parametrize("point", ["built", "anchored", "linked", "opened"])
async def test_sigkill_during_creation_leaves_no_database_or_an_empty_one_that_opens(
    tmp_path: Path, point: str
) -> None:
    db = tmp_path / "k.db"
    p = subprocess.run([sys.executable, "-c", _KILL_AT, point, str(db)], cwd=ROOT, capture_output=True, timeout=60)
    assert p.returncode == -9, p.stderr.decode()
    if point in ("built", "anchored"):
        assert not db.exists()  # killed before the link: no database
    else:
        assert db.exists()
    eng = await open_sim(db, seed=1)  # the engine's open: file checks, schema, chain and anchor
    try:
        assert eng.state.seq == 0
    finally:
        await eng.close()


async def test_the_clean_close_record_is_written_without_an_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record's loss or tearing costs only a check (test_core_store_clean: a damaged
    record means a check): its write syncs nothing; the database's close synced the file."""
    db = tmp_path / "s.db"
    store = await Store.open(db)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    await store.close()
    assert synced == []
    assert CleanRecord.decode(clean_path(db).read_bytes()) is not None


@pytest.mark.parametrize("exc", [sqlite3.OperationalError("database or disk is full"), OSError(28, "No space")])
async def test_a_full_disk_while_building_says_so_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    db = tmp_path / "f.db"

    def full(path: Path) -> None:
        path.write_bytes(b"partial")
        raise exc

    monkeypatch.setattr(store_module, "build_new", full)
    with pytest.raises(StoreError, match="the disk holding the database is full"):
        await Store.open(db)
    assert list(tmp_path.iterdir()) == []


async def test_a_creator_that_lost_the_race_leaves_the_winners_anchor_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes creating the same path: the loser saw no file, wrote its anchor, then
    failed its link. The winner already holds its anchor open and commits on: its next
    commit must reach the anchor file beside the database (the loser's seq 0 only lags
    it until then), not a file the loser unlinked."""
    db = tmp_path / "w.db"
    store = await Store.open(db)  # the winner
    try:
        await store.append([(s, float(s), "NOTE", "test", "s", "me", "{}", GENESIS_HASH, f"{s:064x}") for s in (1, 2)])
        assert read_anchor(db) == (2, f"{2:064x}")
        tmp = tmp_path / ".w.db.creating-loser"
        build_new(tmp)
        with monkeypatch.context() as m:
            m.setattr(Path, "exists", lambda self: False)  # it looked before the winner's link
            assert store_module._link_new(tmp, db) is None  # its link refused: the winner's file is used
        tmp.unlink()
        await store.append([(3, 3.0, "NOTE", "test", "s", "me", "{}", GENESIS_HASH, f"{3:064x}")])
        assert read_anchor(db) == (3, f"{3:064x}")  # main: (0, GENESIS_HASH), the winner writing an unlinked file
    finally:
        await store.close()
