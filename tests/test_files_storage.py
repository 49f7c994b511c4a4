"""Storage errors degrade cleanly: another process's lock, a full disk, a read-only
file system.

* An external ``BEGIN EXCLUSIVE`` held 25 s: the host waits and says so (stderr,
  ``/v1/health``), a command sent meanwhile is answered once the lock is released,
  the host never dies.
* A full disk (a 20 MB tmpfs, mounted here when the test runs as root, else skipped
  saying why): the host stays up, every command is answered ``STORAGE_FULL`` and taken
  back, health says "full"; when space returns the held events are committed and
  commands work again. Nothing answered as done is missing from the log, and verify
  passes.
* A read-only file system: writers say "read-only", never "damaged".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.host.client import HostClient

from .conftest import wait_for
from .files_support import event_count, make_db, run, start_serve, stop_serve

LOCK_HELD_S = 25.0


def _drain(p: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    """Keep reading a process's stderr into ``lines`` (a full pipe would block it)."""

    def go() -> None:
        assert p.stderr is not None
        for line in p.stderr:
            lines.append(line)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def _health(db: Path) -> dict:
    async def go() -> dict:
        client = HostClient.for_db(db)
        assert client is not None
        async with client:
            return await client.health()

    return asyncio.run(go())


@pytest.mark.slow
def test_an_external_exclusive_lock_is_waited_for(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = tmp_path / "locked.db"
    make_db(db, cli_env)
    p, lines = start_serve(cli_env, "--db", str(db), "--speed", "600")
    _drain(p, lines)
    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('held', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
            "c.execute('COMMIT')\n",
            str(db),
            str(LOCK_HELD_S),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "held"
        held_at = time.monotonic()
        wait_for(lambda: any("holds a lock" in x for x in lines), "the host to say it waits for the lock", 30, poll=0.2)
        assert _health(db)["storage"]["state"] == "locked"
        before = event_count(db)
        x = run(cli_env, "exec", "--db", str(db), "/coordination-hub checkpoint", timeout=180)
        assert x.returncode == 0, x.stderr
        assert time.monotonic() - held_at >= LOCK_HELD_S - 1  # it was answered after the release
        assert locker.wait(timeout=60) == 0
        assert p.poll() is None  # the host waited, it did not die
        wait_for(
            lambda: any("was released after" in x for x in lines), "the host to say the lock is gone", 30, poll=0.2
        )
        assert _health(db)["storage"]["state"] == "ok"
        assert event_count(db) > before
    finally:
        if locker.poll() is None:
            locker.kill()
        stop_serve(p)
    err = "".join(lines)
    assert p.returncode == 0 and "Traceback" not in err, err
    v = run(cli_env, "verify", "--db", str(db))
    assert v.returncode == 0, v.stdout


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "20m") -> Iterator[Path]:
    """A small tmpfs at ``where`` (root only; skips saying why otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a 20 MB tmpfs for a full disk")
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(disk: Path) -> Path:
    """A file taking every free byte of ``disk``."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * (1 << 20))
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 4096)
    return filler


@pytest.mark.slow
def test_a_full_disk_is_reported_and_the_host_stays_up(tmp_path: Path, cli_env: dict[str, str]) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        db = disk / "full.db"
        p, lines = start_serve(cli_env, "--demo", "--db", str(db), "--speed", "3000")
        _drain(p, lines)
        answered: list[tuple[str, int]] = []
        try:
            filler = _fill(disk)
            wait_for(lambda: _health(db)["storage"]["state"] == "full", "the host to meet the full disk", 120, poll=0.2)
            assert any("is full" in x for x in lines), "".join(lines)
            for i in range(3):
                x = run(
                    cli_env,
                    "exec",
                    "--db",
                    str(db),
                    "--json",
                    '/coordination-hub checkpoint \'{"label": "full' + str(i) + "\"}'",
                )
                assert x.returncode == 1 and "STORAGE_FULL" in x.stdout + x.stderr, x.stdout + x.stderr
                assert json.loads(x.stdout)["error"]["details"]["taken_back"] is True
                answered.append((f"full{i}", x.returncode))
            assert p.poll() is None  # still up, refusing writes
            filler.unlink()  # space returns
            wait_for(lambda: _health(db)["storage"]["state"] == "ok", "writes to be accepted again", 60, poll=0.2)
            x = run(cli_env, "exec", "--db", str(db), '/coordination-hub checkpoint \'{"label": "after"}\'')
            assert x.returncode == 0, x.stderr
            answered.append(("after", 0))
            assert any("writes are accepted again" in x for x in lines), "".join(lines)
        finally:
            stop_serve(p)
        err = "".join(lines)
        assert p.returncode == 0 and "Traceback" not in err, err
        log = run(cli_env, "events", "--db", str(db), "--type", "CHECKPOINT_CREATED", "--json")
        assert log.returncode == 0, log.stderr
        labels = {json.loads(line)["data"]["label"] for line in log.stdout.splitlines()}
        for label, rc in answered:
            assert (label in labels) == (rc == 0), (label, rc)  # done means recorded; refused means not
        v = run(cli_env, "verify", "--db", str(db))
        assert v.returncode == 0, v.stdout


@pytest.mark.slow
def test_a_read_only_file_system_is_named_as_such(tmp_path: Path, cli_env: dict[str, str]) -> None:
    with tmpfs(tmp_path / "ro") as disk:
        db = disk / "ro.db"
        make_db(db, cli_env)
        before = event_count(db)
        r = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot remount the tmpfs read-only: {r.stderr.decode().strip()}")
        for args in (("exec", "--db", str(db), "/coordination-hub checkpoint"), ("serve", "--db", str(db))):
            x = run(cli_env, *args)
            assert x.returncode != 0 and "read-only" in x.stderr, (args, x.stderr)
            assert "damaged" not in x.stderr and "Traceback" not in x.stderr, (args, x.stderr)
        assert event_count(db) == before
