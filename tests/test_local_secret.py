"""The run's secret: made once per run directory, kept for the hosts that live with it.

It is written without an fsync (a power loss ends every host it serves), so a file
such a loss left short, or not the hex it was written as, is replaced, never used.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.private import private_dir
from core.runtimes.handshake import SECRET_FILE, load_or_create_secret


def test_a_new_secret_is_written_without_an_fsync_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = private_dir(tmp_path / "r.agents")
    synced: list[int] = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), fsync(fd))[1])
    first = load_or_create_secret(run_dir)
    p = run_dir / SECRET_FILE
    assert synced == []
    assert p.read_bytes() == first and len(first) == 64 and int(first, 16) >= 0
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert load_or_create_secret(run_dir) == first, "the next console of the run reads the same secret"


@pytest.mark.parametrize(
    "left",
    [
        b"",
        b"0123abcd",
        b"\0" * 64,
        b"ab" * 16 + b"\0" * 32,
        b"\0" * 32 + b"ab" * 16,
        b"not a secret at all, but long enough",
    ],
    ids=["empty", "short", "zeros", "torn-tail", "torn-head", "not-hex"],
)
def test_a_file_a_power_loss_could_leave_is_replaced(tmp_path: Path, left: bytes) -> None:
    run_dir = private_dir(tmp_path / "r.agents")
    p = run_dir / SECRET_FILE
    p.write_bytes(left)
    os.chmod(p, 0o600)
    secret = load_or_create_secret(run_dir)
    assert secret != left and len(secret) == 64 and int(secret, 16) >= 0
    assert p.read_bytes() == secret


def test_a_whole_secret_is_kept_as_it_is(tmp_path: Path) -> None:
    run_dir = private_dir(tmp_path / "r.agents")
    p = run_dir / SECRET_FILE
    p.write_bytes(b"0123456789abcdef" * 4)
    os.chmod(p, 0o644)
    assert load_or_create_secret(run_dir) == b"0123456789abcdef" * 4
    assert stat.S_IMODE(p.stat().st_mode) == 0o600, "its mode narrowed back"
