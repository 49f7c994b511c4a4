"""Opening skips ``PRAGMA quick_check`` only on a file a clean close left untouched
(``core/store_clean.py``): damage written after the close, a crash, a copy, an old
check or a damaged record each make the open check the file again."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import store_clean
from core.private import write_private
from core.session import open_sim
from core.store import Store, StoreError
from core.store_clean import CLEAN_CHECK_MAX_AGE_S, CleanRecord, clean_path

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths ``quick_check`` ran on at open (a spy on Store.integrity)."""
    ran: list[str] = []  # cleared by _closed_clean: its first open checks the new file
    real = Store.integrity

    async def spy(self: Store, quick: bool = False) -> list[tuple[str, str]]:
        ran.append(self.path)
        return await real(self, quick)

    monkeypatch.setattr(Store, "integrity", spy)
    return ran


async def _closed_clean(tmp_path: Path, checks: list[str]) -> Path:
    db = tmp_path / "c.db"
    eng = await open_sim(db, demo=True, seed=3)
    await eng.advance(600)
    await eng.close()
    checks.clear()
    assert clean_path(db).exists() and not Path(f"{db}-wal").exists()
    assert not list(tmp_path.glob(".c.db.creating*"))  # the record of the file built aside went with it
    return db


async def _reopen(db: Path) -> None:
    store = await Store.open(db)
    assert not clean_path(db).exists()  # read and deleted first: a crash from here leaves none
    await store.close()


def _after_clock_tick(db: Path) -> None:
    """Wait until the file system's clock is past the database's ctime (timestamps are
    coarse: a write in the same tick as the close would leave it unchanged)."""
    probe = db.parent / "probe"
    while True:
        probe.write_bytes(b"x")
        if probe.stat().st_ctime_ns > db.stat().st_ctime_ns:
            return


def _corrupt_events_page(db: Path) -> None:
    """A leaf page of the events table overwritten in place (the size kept)."""
    con = sqlite3.connect(db)
    size = con.execute("PRAGMA page_size").fetchone()[0]
    pages = [r[0] for r in con.execute("SELECT pageno FROM dbstat WHERE name='events' AND pagetype='leaf'")]
    con.close()
    assert len(pages) > 2
    with open(db, "r+b") as fh:
        fh.seek((pages[len(pages) // 2] - 1) * size)
        fh.write(b"\xff" * 16)


async def test_an_untouched_reopen_is_not_checked_and_stays_clean(tmp_path: Path, checks: list[str]) -> None:
    db = await _closed_clean(tmp_path, checks)
    for _ in range(2):
        await _reopen(db)
    assert checks == []
    assert clean_path(db).exists() and clean_path(db).stat().st_mode & 0o777 == 0o600


async def test_damage_written_after_a_clean_close_is_refused(tmp_path: Path, checks: list[str]) -> None:
    db = await _closed_clean(tmp_path, checks)
    size = db.stat().st_size
    _after_clock_tick(db)
    _corrupt_events_page(db)
    assert db.stat().st_size == size
    with pytest.raises(StoreError, match=r"the database is damaged: table events: .*Nothing was changed"):
        await Store.open(db)
    assert checks == [str(db)]
    assert not clean_path(db).exists()


CRASH = """
import asyncio, os, sys
sys.path.insert(0, sys.argv[2])
from core.store import Store
async def main():
    await Store.open(sys.argv[1])
    os._exit(0)
asyncio.run(main())
"""


async def test_a_crash_after_open_leaves_the_next_open_checking(tmp_path: Path, checks: list[str]) -> None:
    db = await _closed_clean(tmp_path, checks)
    subprocess.run([sys.executable, "-c", CRASH, str(db), str(ROOT)], check=True, timeout=60)
    assert not clean_path(db).exists()
    await _reopen(db)
    assert checks == [str(db)]


async def test_a_copy_of_a_clean_database_is_checked(tmp_path: Path, checks: list[str]) -> None:
    db = await _closed_clean(tmp_path, checks)
    copy = tmp_path / "copy.db"
    for suffix in ("", ".head", ".clean"):
        shutil.copy2(f"{db}{suffix}", f"{copy}{suffix}")  # size and mtime kept: another inode
    await _reopen(copy)
    assert checks == [str(copy)]


@pytest.mark.parametrize(("age_s", "checked"), [(CLEAN_CHECK_MAX_AGE_S + 60, True), (3600, False)])
async def test_a_check_older_than_the_bound_is_run_again(
    tmp_path: Path, checks: list[str], age_s: float, checked: bool
) -> None:
    db = await _closed_clean(tmp_path, checks)
    record = CleanRecord.decode(clean_path(db).read_bytes())
    assert record is not None
    write_private(clean_path(db), dataclasses.replace(record, checked_at=time.time() - age_s).encode())
    await _reopen(db)
    assert checks == ([str(db)] if checked else [])


@pytest.mark.parametrize("raw", [b"", b"garbage\n", b"x" * 5000, None])
async def test_a_damaged_record_means_a_check_not_an_error(
    tmp_path: Path, checks: list[str], raw: bytes | None
) -> None:
    db = await _closed_clean(tmp_path, checks)
    if raw is None:  # a field changed, its checksum not
        good = clean_path(db).read_bytes()
        record = CleanRecord.decode(good)
        assert record is not None
        raw = dataclasses.replace(record, size=record.size + 1).encode()[:-9] + good[-9:]
    write_private(clean_path(db), raw)
    await _reopen(db)
    assert checks == [str(db)]
    assert CleanRecord.decode(clean_path(db).read_bytes()) is not None  # a clean close left a new one


async def test_wal_content_beside_the_file_is_checked(tmp_path: Path, checks: list[str]) -> None:
    db = await _closed_clean(tmp_path, checks)
    other = sqlite3.connect(db)  # another connection holds the WAL past our close
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("INSERT INTO meta(key, value) VALUES('bench', '1')")
    other.commit()
    assert os.path.getsize(f"{db}-wal") > 0
    await _reopen(db)
    other.close()
    assert checks == [str(db)]


@dataclasses.dataclass(frozen=True)
class _Coarse:
    """The fields of a stat the record reads, with timestamps in whole seconds."""

    st_dev: int
    st_ino: int
    st_size: int
    st_atime_ns: int
    st_mtime_ns: int
    st_ctime_ns: int


def _coarse_file_system(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.stat`` of ``db`` answers as a file system whose timestamps are whole seconds
    would (this kernel gives a write after a stat a fine-grained ctime: the racy case
    cannot be met on it)."""
    real = os.stat

    def stat(path: object, *args: object, **kw: object) -> object:
        st = real(path, *args, **kw)  # type: ignore[arg-type]
        if os.fspath(path) != str(db):  # type: ignore[call-overload]
            return st
        second = 1_000_000_000
        t = [x // second * second for x in (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)]
        return _Coarse(st.st_dev, st.st_ino, st.st_size, *t)

    monkeypatch.setattr(os, "stat", stat)


async def test_a_write_in_the_same_clock_tick_as_the_close_is_seen(
    tmp_path: Path, checks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Git's racily clean file: damage written, the size kept, within the same tick of a
    coarse clock as the clean close left the record (main: mtime and ctime as recorded, the
    open skipped the check). The must-not: without the write the record still spares the check."""
    db = await _closed_clean(tmp_path, checks)
    size = db.stat().st_size
    for _ in range(20):  # a try that crosses a second's end is not the case: again
        with monkeypatch.context() as m:
            _coarse_file_system(db, m)
            os.utime(db)  # the close's last write, now
            store_clean.leave_record(db, time.time())
            before = os.stat(db)
            assert store_clean.still_clean(db, store_clean.take_record(db)), "untouched: clean"
            store_clean.leave_record(db, time.time())
            record = store_clean.take_record(db)
            _corrupt_events_page(db)
            after = os.stat(db)
            if after.st_ctime_ns != before.st_ctime_ns:
                continue
            assert after.st_size == size
            assert not store_clean.still_clean(db, record), "the write in the same tick is seen"
            break
    else:
        pytest.fail("no try wrote within the second of its close")
    with pytest.raises(StoreError, match=r"the database is damaged: table events"):
        await Store.open(db)
    assert checks == [str(db)]
