"""Helpers for the file-hardening tests: a second local user, databases built by the CLI."""

from __future__ import annotations

import os
import pwd
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from .conftest import opsdeck_cmd

OTHER_USER = "opsdeck-other"


def other_uid() -> int:
    """The uid of a second local user (created when absent); skips saying why when it cannot be."""
    if os.geteuid() != 0:
        pytest.skip("needs root: files are given to a second local user with chown")
    try:
        return pwd.getpwnam(OTHER_USER).pw_uid
    except KeyError:
        pass
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not available: no second local user can be made")
    r = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER],
        capture_output=True,
        text=True,
    )
    if r.returncode not in (0, 9):  # 9: made meanwhile by a parallel test
        pytest.skip(f"useradd failed: {r.stderr.strip()}")
    return pwd.getpwnam(OTHER_USER).pw_uid


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(opsdeck_cmd(*args), capture_output=True, text=True, env=env, timeout=timeout)


def make_db(db: Path, env: dict[str, str]) -> None:
    """A small demo database (a few simulated minutes, a checkpoint), with its anchor."""
    r = run(env, "exec", "--db", str(db), "--create", "--advance", "5m", "/coordination-hub checkpoint")
    assert r.returncode == 0, r.stderr


def event_count(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        con.close()


def beside(db: Path) -> list[Path]:
    """The database and every file opsdeck or SQLite keeps beside it, as they exist now."""
    return [p for p in (Path(f"{db}{s}") for s in ("", "-wal", "-shm", ".head", ".lease", ".token")) if p.exists()]


def start_serve(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """``opsdeck serve ARGS`` once it listens (its stderr lines so far); fails naming its
    stderr when it exits first."""
    p = subprocess.Popen(
        opsdeck_cmd("serve", *args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    assert p.stderr is not None
    lines: list[str] = []
    for line in p.stderr:
        lines.append(line)
        if line.startswith("# listening on unix:"):
            return p, lines
    p.wait(timeout=60)
    raise AssertionError(f"serve exited {p.returncode} before listening: {''.join(lines)}")


def stop_serve(p: subprocess.Popen[str]) -> str:
    """SIGTERM, then the rest of its stderr (it must exit by itself)."""
    p.terminate()
    _, err = p.communicate(timeout=120)
    return err
