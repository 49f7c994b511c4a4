"""Nothing acknowledged is lost: printed means committed, and lost commits are noticed.

* SIGKILL of ``demo --headless`` at seeded random points: every line it printed is in
  the log afterwards (subscribers hear of an event only after its group commit).
* Commits that lived only in the ``-wal`` (deleted, truncated, a flipped byte): the
  head anchor beside the database names the loss; opening refuses, verify fails.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from core.engine import Engine
from core.events import canonical_json, parse_line
from core.session import open_sim
from core.store import StoreError

from .conftest import opsdeck_cmd


def _norm(line: str) -> tuple[str, str, str, str]:
    h = parse_line(line)
    return h.type, h.component, h.scope, canonical_json(h.data)


def _log_lines(db: Path, env: dict[str, str]) -> list[str]:
    r = subprocess.run(opsdeck_cmd("events", "--db", str(db)), capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


@pytest.mark.slow
def test_sigkill_of_demo_headless_loses_no_printed_event(tmp_path: Path, cli_env: dict[str, str]) -> None:
    rng = random.Random(11)
    for n in range(4):
        db = tmp_path / f"k{n}.db"
        want = rng.randint(40, 600)
        p = subprocess.Popen(
            opsdeck_cmd("demo", "--headless", "--for", "1000000", "--db", str(db)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env,
        )
        assert p.stdout is not None
        got = b""
        deadline = time.monotonic() + 120
        while got.count(b"\n") < want and time.monotonic() < deadline:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            got += chunk
        os.kill(p.pid, signal.SIGKILL)
        rest, _ = p.communicate(timeout=30)
        got += rest
        printed = got.decode().split("\n")[:-1]  # the last piece may be a line cut short
        assert len(printed) >= min(want, 40), f"the demo printed only {len(printed)} lines"
        log = [_norm(x) for x in _log_lines(db, cli_env)]
        assert [_norm(x) for x in printed] == log[: len(printed)], f"run {n}: a printed event line is not in the log"
        v = subprocess.run(
            opsdeck_cmd("verify", "--db", str(db)), capture_output=True, text=True, env=cli_env, timeout=120
        )
        assert v.returncode == 0, v.stdout + v.stderr


@pytest.fixture
async def wal_only_commits(tmp_path: Path) -> tuple[Path, Engine, int]:
    """A database whose last commits live only in its -wal (the writer is still open)."""
    db = tmp_path / "a.db"
    eng = await open_sim(db, demo=True)
    await eng.advance(60)
    await eng.close()  # the last connection checkpoints: everything so far is in a.db
    eng = await Engine.open(db)
    for i in range(5):
        eng.set_setting(f"after_{i}", i)
        await eng.flush()  # five commits, in the WAL only
    wal = Path(f"{db}-wal")
    assert wal.exists() and wal.stat().st_size > 0
    return db, eng, eng.state.seq


def _copy_without_wal(db: Path, to: Path) -> None:
    shutil.copyfile(db, to)
    shutil.copyfile(f"{db}.head", f"{to}.head")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["deleted", "truncated", "flipped"])
async def test_lost_wal_commits_are_detected(
    wal_only_commits: tuple[Path, Engine, int], tmp_path: Path, cli_env: dict[str, str], damage: str
) -> None:
    db, eng, head = wal_only_commits
    try:
        copy = tmp_path / f"copy-{damage}.db"
        _copy_without_wal(db, copy)
        wal = Path(f"{db}-wal").read_bytes()
        if damage == "truncated":
            Path(f"{copy}-wal").write_bytes(wal[: len(wal) - 3000])
        elif damage == "flipped":
            b = bytearray(wal)
            b[len(b) - 100] ^= 0x20  # inside the last frame: its checksum fails, SQLite drops it
            Path(f"{copy}-wal").write_bytes(bytes(b))
        with pytest.raises(StoreError, match="committed events are missing"):
            e2 = await Engine.open(copy)
            await e2.close()
        v = subprocess.run(
            opsdeck_cmd("verify", "--db", str(copy)), capture_output=True, text=True, env=cli_env, timeout=120
        )
        assert v.returncode == 1 and "committed events are missing" in v.stdout, v.stdout + v.stderr
        x = subprocess.run(
            opsdeck_cmd("exec", "--db", str(copy), "/workflow-status"),
            capture_output=True,
            text=True,
            env=cli_env,
            timeout=120,
        )
        assert x.returncode == 2 and "committed events are missing" in x.stderr and "Traceback" not in x.stderr
    finally:
        await eng.close()
    e3 = await Engine.open(db)  # the original, with its WAL, is whole
    try:
        assert e3.state.seq == head
    finally:
        await e3.close()
