"""Loss is never silent: the anchor and its WAL removed together, SQLite's integrity
check, a damaged metrics page.

The database records that it keeps a head anchor, so deleting or damaging
``<db>.head`` together with ``<db>-wal`` (the commits that lived only there are gone)
is reported by verify, events (non-zero after printing what is left), exec and the
console, instead of opening as a shorter log that the writer appends to. verify
runs SQLite's integrity_check and names the table; a damaged metrics page costs
samples (with a warning), never the host.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from core.engine import Engine
from core.session import open_sim
from core.store import Store

from .console_support import make_app
from .files_support import event_count, run, start_serve, stop_serve


def _lose_wal_commits(tmp_path: Path, anchor: str) -> tuple[Path, int]:
    """A copy of a database without its WAL, the anchor deleted or damaged."""

    async def build() -> tuple[Path, int]:
        db = tmp_path / "src.db"
        eng = await open_sim(db, demo=True)
        await eng.advance(60)
        await eng.close()  # everything so far is in the main file
        eng = await Engine.open(db)  # the next five commits live only in the WAL
        for i in range(5):
            eng.set_setting(f"after_{i}", i)
            await eng.flush()
        head = eng.state.seq
        copy = tmp_path / "lost.db"
        shutil.copyfile(db, copy)  # the main file only: the WAL's commits are lost
        if anchor == "damaged":
            raw = bytearray(Path(f"{db}.head").read_bytes())
            raw[20] ^= 0x01
            Path(f"{copy}.head").write_bytes(bytes(raw))
        await eng.close()
        return copy, head

    return asyncio.run(build())


@pytest.mark.slow
@pytest.mark.parametrize("anchor", ["deleted", "damaged"])
def test_anchor_and_wal_removed_is_reported_by_every_verb(tmp_path: Path, cli_env: dict[str, str], anchor: str) -> None:
    copy, head = _lose_wal_commits(tmp_path, anchor)
    left = event_count(copy)
    assert left < head  # the loss is real
    word = "is missing" if anchor == "deleted" else "is damaged"
    v = run(cli_env, "verify", "--db", str(copy))
    assert v.returncode == 1 and f"{copy}.head {word}" in v.stdout, v.stdout + v.stderr
    assert f"FAULT: first bad sequence number {left + 1}" in v.stdout
    e = run(cli_env, "events", "--db", str(copy))
    assert e.returncode == 1 and f"{copy}.head {word}" in e.stderr, e.stderr
    assert len(e.stdout.splitlines()) == left  # what is left is still printed
    x = run(cli_env, "exec", "--db", str(copy), "/coordination-hub checkpoint")
    assert x.returncode == 2 and f"{copy}.head {word}" in x.stderr and "Traceback" not in x.stderr, x.stderr
    assert event_count(copy) == left  # nothing appended after the gap
    s = run(cli_env, "serve", "--db", str(copy))
    assert s.returncode == 2 and f"{copy}.head {word}" in s.stderr, s.stderr


async def test_the_console_reports_a_missing_anchor(tmp_path: Path) -> None:
    copy, _ = await asyncio.to_thread(_lose_wal_commits, tmp_path, "deleted")
    app = make_app(copy, demo=False)
    async with app.run_test(size=(120, 40)):
        with pytest.raises(RuntimeError, match="head is missing"):
            await app.link_opened(60)
        assert app.link is None and app.open_error is not None and f"{copy}.head" in app.open_error


async def test_a_new_database_is_anchored_from_birth(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    st = await Store.open(db)
    try:
        assert st.anchored and Path(f"{db}.head").exists() and await st.anchor_problem() is None
    finally:
        await st.close()
    os.unlink(f"{db}.head")
    st = await Store.open(db, readonly=True)
    try:
        problem = await st.anchor_problem()
        assert problem is not None and "is missing" in problem[1]
    finally:
        await st.close()


async def test_an_older_database_without_the_mark_is_marked_at_its_first_commit(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    eng = await open_sim(db, demo=True)
    await eng.close()
    con = sqlite3.connect(db)
    con.execute("DELETE FROM meta WHERE key='anchored'")  # as written before the mark existed
    con.commit()
    con.close()
    os.unlink(f"{db}.head")
    eng = await Engine.open(db)  # an older database without an anchor opens: nothing says it had one
    try:
        assert not eng.store.anchored  # type: ignore[union-attr]
        eng.set_setting("x", 1)
        await eng.flush()
        assert eng.store.anchored  # type: ignore[union-attr]
    finally:
        await eng.close()
    os.unlink(f"{db}.head")
    with pytest.raises(Exception, match="is missing"):
        e2 = await Engine.open(db)
        await e2.close()


def _metrics_leaf_pages(db: Path) -> tuple[int, list[int]]:
    con = sqlite3.connect(db)
    try:
        size = con.execute("PRAGMA page_size").fetchone()[0]
        pages = [
            r[0]
            for r in con.execute("SELECT pageno FROM dbstat WHERE name='metrics' AND pagetype='leaf' ORDER BY pageno")
        ]
        return size, pages
    finally:
        con.close()


def _corrupt_metrics_page(db: Path) -> int:
    """Overwrite the b-tree header of a leaf page of the metrics table; returns the page."""
    size, pages = _metrics_leaf_pages(db)
    assert pages, "the metrics table has no leaf page of its own"
    page = pages[len(pages) // 2]
    with open(db, "r+b") as fh:
        fh.seek((page - 1) * size)
        fh.write(b"\xff" * 16)
    return page


def _db_with_samples(tmp_path: Path) -> Path:
    db = tmp_path / "m.db"

    async def build() -> None:
        eng = await open_sim(db, demo=True)
        await eng.advance(4 * 3600)  # hours of samples: the metrics table spans many pages
        await eng.close()

    asyncio.run(build())
    return db


@pytest.mark.slow
def test_a_damaged_metrics_page_degrades_to_no_samples(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = _db_with_samples(tmp_path)
    before = event_count(db)
    _corrupt_metrics_page(db)
    v = run(cli_env, "verify", "--db", str(db))
    assert v.returncode == 1 and "table metrics:" in v.stdout, v.stdout + v.stderr
    assert "metric samples only" in v.stdout, v.stdout
    # serve starts and keeps serving on the damaged file (it crashed on every start)
    p, _ = start_serve(cli_env, "--db", str(db), "--speed", "600")
    try:
        status = run(cli_env, "exec", "--db", str(db), "--json", "/host status")
        assert status.returncode == 0, status.stderr
        assert "metrics table is damaged" in status.stdout, status.stdout
        x = run(cli_env, "exec", "--db", str(db), "/coordination-hub checkpoint")
        assert x.returncode == 0, x.stderr
    finally:
        err = stop_serve(p)
    assert p.returncode == 0 and "Traceback" not in err, err
    assert event_count(db) > before
