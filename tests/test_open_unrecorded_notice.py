"""Opening a database that holds checkpoint rows no event records says so once, on
stderr (``exec`` as a process) and to the console's link, and removes nothing; a
database whose rows are all recorded, or a reader's open, says nothing."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path

from core.config import Config
from core.engine import Engine
from core.events import canonical_json
from core.host.host import Host
from core.host.link import EmbeddedLink
from core.session import open_sim
from tests.conftest import REPO

from .store_support import checkpoint_rows

WORDS = "checkpoint rows no CHECKPOINT_CREATED records: 1 ({id}); /workflow-recovery cleanup-checkpoints removes them"


async def _with_orphan(db: Path, orphan: bool = True) -> int | None:
    """A demo database with a recorded checkpoint and, with ``orphan``, a row no event
    records (what a process ending between the row's commit and its event's leaves)."""
    eng = await open_sim(db, demo=True)
    try:
        await eng.advance(60)
        await eng.checkpoint()
        await eng.flush()
        if not orphan:
            return None
        assert eng.store is not None
        text = canonical_json(eng.state.snapshot())
        changes = eng.state.history.changes(await eng.store.history_kept())
        digest = hashlib.sha256(text.encode()).hexdigest()
        row: int = await eng.store.save_checkpoint(
            eng.state.seq, eng.clock.now(), "auto", "", None, text, digest, changes
        )
        return row
    finally:
        await eng.close()


async def _exec_stderr(db: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opsdeck",
        "exec",
        "--db",
        str(db),
        "/resource-manager status",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_exec_says_unrecorded_rows_once_at_open_and_removes_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    db = tmp_path / "o.db"
    orphan = await _with_orphan(db)
    rows = await checkpoint_rows(db)
    rc, err = await _exec_stderr(db, env)
    assert rc == 0 and err.count(WORDS.format(id=orphan)) == 1, err
    assert f"opsdeck: {db}: " in err and "nothing was removed" in err, err
    assert await checkpoint_rows(db) == rows, "said, not acted on"


async def test_the_console_link_is_told_and_a_reader_is_not(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    orphan = await _with_orphan(db)
    reader = await Engine.open(db, readonly=True)
    try:
        assert reader.opening.unrecorded == [], "a reader's host may be between a row and its event"
    finally:
        await reader.close()
    host = await Host.open_sim(db, Config(), speed=0)
    link = EmbeddedLink(host)
    said: list[str] = []
    try:
        link.on_trouble(said.append)
        assert said == [f"c.db: {WORDS.format(id=orphan)}; nothing was removed"], said
        assert orphan in await checkpoint_rows(db)
    finally:
        await link.close()


async def test_every_row_recorded_says_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    db = tmp_path / "r.db"
    await _with_orphan(db, orphan=False)
    rc, err = await _exec_stderr(db, env)
    assert rc == 0 and "CHECKPOINT_CREATED" not in err, err
