"""No leftovers: a second ``opsdeck run`` of a file whose workflows all ended starts
nothing and says so; SIGHUP (the terminal closed) stops a host's agents as a quit does,
headless and in the console."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import opsdeck_cmd, wait_for
from tests.local_harness import agent_hosts, header, task_toml, workflow_toml
from tests.test_console_pty import ANSI, _read_until


def _one_task(wf_id: str = "hello", command: str = "echo hello") -> str:
    return workflow_toml(wf_id, task_toml("say", command, "shell"), phase="only")


QUICK = header(heartbeat=0.5, grace=1.0) + _one_task()

LONG = header(heartbeat=0.5, grace=1.0) + _one_task(command="sleep 600")


def opsdeck(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(opsdeck_cmd(*args), capture_output=True, text=True, timeout=timeout)


def events(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM events").fetchone()[0]


@pytest.mark.slow
def test_second_run_of_a_finished_file_starts_nothing(tmp_path: Path) -> None:
    f = tmp_path / "quick.toml"
    f.write_text(QUICK)
    db = tmp_path / "r.db"
    first = opsdeck("run", str(f), "--db", str(db), "--headless")
    assert first.returncode == 0, first.stderr[-2000:]
    wait_for(lambda: not agent_hosts(db), "the first run's agent hosts end with it", 30, poll=0.2)
    logs = sorted((tmp_path / "r.db.agents").glob("*.log"))
    stamps = {p: p.stat().st_mtime_ns for p in logs}
    n = events(db)
    for extra in (["--headless"], []):  # headless, and the console (which must not even open)
        again = opsdeck("run", str(f), "--db", str(db), *extra, timeout=60)
        assert again.returncode == 0, again.stderr[-2000:]
        assert "nothing will run" in again.stderr and "# hello: completed" in again.stderr
        assert events(db) == n, "nothing was recorded: no host opened the database"
        assert not agent_hosts(db)
        assert {p: p.stat().st_mtime_ns for p in logs} == stamps, "no agent host wrote its log"
        assert sorted((tmp_path / "r.db.agents").glob("*.log")) == logs


@pytest.mark.slow
def test_a_file_with_work_left_is_not_refused(tmp_path: Path) -> None:
    """The check must not stop a run that has work: a database whose workflow is pending runs it."""
    f = tmp_path / "quick.toml"
    f.write_text(QUICK)
    db = tmp_path / "r.db"
    r = opsdeck("run", str(f), "--db", str(db), "--headless")
    assert r.returncode == 0 and "nothing will run" not in r.stderr, r.stderr[-2000:]
    g = tmp_path / "more.toml"
    g.write_text(QUICK + _one_task("again"))
    r2 = opsdeck("run", str(g), "--db", str(db), "--headless")
    assert "nothing will run" not in r2.stderr and "# again: completed" in r2.stderr, r2.stderr[-2000:]


@pytest.mark.slow
def test_sighup_to_a_headless_host_stops_its_agents(tmp_path: Path) -> None:
    f = tmp_path / "long.toml"
    f.write_text(LONG)
    db = tmp_path / "h.db"
    proc = subprocess.Popen(
        opsdeck_cmd("run", str(f), "--db", str(db), "--headless"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(agent_hosts(db)) == 2, "two agent hosts running", 60, poll=0.2)
        os.kill(proc.pid, signal.SIGHUP)
        wait_for(lambda: proc.poll() is not None, "the host exits on SIGHUP", 60, poll=0.2)
        wait_for(lambda: not agent_hosts(db), "no agent host left", 30, poll=0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in agent_hosts(db):
            p.kill()


@pytest.mark.slow
def test_sighup_to_a_console_hosting_real_agents_stops_them(tmp_path: Path) -> None:
    """The console of ``opsdeck run FILE`` in a pseudo-terminal; SIGHUP as when its tmux
    session is killed: the agent hosts go as on q."""
    import fcntl
    import struct
    import termios

    f = tmp_path / "long.toml"
    f.write_text(LONG)
    db = tmp_path / "c.db"
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        opsdeck_cmd("run", str(f), "--db", str(db)),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
        start_new_session=True,
    )
    os.close(slave)
    try:
        out = _read_until(master, [b"Agent pools", b"hello"], 60)
        assert b"Agent pools" in ANSI.sub(b"", out)
        wait_for(lambda: len(agent_hosts(db)) == 2, "two agent hosts running", 60, poll=0.2)
        # As tmux kill-session does: the terminal goes away, then the process gets SIGHUP.
        os.close(master)
        master = -1
        os.kill(proc.pid, signal.SIGHUP)
        wait_for(
            lambda: proc.poll() is not None,
            "the console exits on SIGHUP (it does not hang on the dead terminal)",
            60,
            poll=0.2,
        )
        assert proc.returncode == 128 + signal.SIGHUP
        wait_for(lambda: not agent_hosts(db), "no agent host left", 30, poll=0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in agent_hosts(db):
            p.kill()
        if master >= 0:
            os.close(master)
