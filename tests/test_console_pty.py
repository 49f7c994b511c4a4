"""Run ``opsdeck demo`` in a pseudo-terminal as a user would: see the panes, press q."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time

import pytest

from .conftest import opsdeck_cmd

ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def _read_until(fd: int, wanted: list[bytes], timeout: float) -> bytes:
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            plain = ANSI.sub(b"", buf)
            if all(w in plain for w in wanted):
                return buf
    return buf


def _demo_in_pty(db, rows: int, cols: int, speed: str) -> tuple[int, subprocess.Popen]:  # type: ignore[type-arg]
    """``opsdeck demo`` on a pseudo-terminal of ``cols`` x ``rows``; returns (master fd, process)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        opsdeck_cmd("demo", "--db", str(db), "--speed", speed),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
        start_new_session=True,
    )
    os.close(slave)
    return master, proc


@pytest.mark.slow
def test_demo_in_a_pty_shows_panes_and_quits_with_q(tmp_path):
    master, proc = _demo_in_pty(tmp_path / "demo.db", 40, 120, "60")
    try:
        out = _read_until(
            master, [b"Agent pools", b"Workflows", b"Incidents", b"Event log", b"workflow_001", b"agent_001"], 60
        )
        plain = ANSI.sub(b"", out)
        for pane in (b"Agent pools", b"Workflows", b"Incidents", b"Event log", b"workflow_001", b"agent_001"):
            assert pane in plain, f"{pane!r} not on screen"
        os.write(master, b"q")
        # Keep reading the terminal while it quits: a full pty would block its last frames.
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            _read_until(master, [b"\x00never"], 0.2)
        rc = proc.wait(timeout=5)
        assert rc == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    # The run was recorded: the database holds the demo's events.
    import sqlite3

    with sqlite3.connect(tmp_path / "demo.db") as con:
        assert con.execute("SELECT count(*) FROM events WHERE type='WORKFLOW_CREATED'").fetchone()[0] == 6


@pytest.mark.slow
def test_command_line_result_is_read_on_screen_in_a_pty(tmp_path):
    """Type `:/resource-manager status` Enter as the seed writes it; the result is on screen."""
    master, proc = _demo_in_pty(tmp_path / "demo.db", 42, 140, "0")
    try:
        _read_until(master, [b"workflow_001", b"agent_001"], 60)
        os.write(master, b":")
        assert b"tab completes" in ANSI.sub(
            b"", _read_until(master, [b"tab completes"], 60)
        )  # the command line's placeholder: it is open
        os.write(master, b"/resource-manager status")
        assert b"/resource-manager status" in ANSI.sub(
            b"", _read_until(master, [b"/resource-manager status"], 60)
        )  # typed in full
        os.write(master, b"\r")
        out = _read_until(
            master,
            [
                b"/resource-manager status",
                b"success",
                b"allocation",
                b"migration_workflow_001",
                b"concurrent workflows",
            ],
            30,
        )
        plain = ANSI.sub(b"", out)
        for want in (b"success", b"allocation", b"concurrent workflows", b"migration_workflow_001"):
            assert want in plain, f"{want!r} not on screen"
        # q closes the result screen, a second q quits; keep reading so the app never
        # blocks on a full terminal buffer.
        os.write(master, b"q")
        _read_until(master, [b"Agent pools"], 10)
        os.write(master, b"q")
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            _read_until(master, [b"\x00never"], 0.5)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
