"""With the host of a real-process database down, in-process ``opsdeck exec`` and
``script`` refuse what would change the fleet (exit 2, naming the host to start) and
still answer read-only commands: no success is acknowledged for processes this
process cannot reach."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.conftest import opsdeck_cmd, wait_for
from tests.local_harness import PY, agent_hosts, header, task_toml, workflow_toml

pytestmark = pytest.mark.slow

WF = header() + workflow_toml(
    "wa",
    task_toml("sleep", [PY, "-c", "import time; time.sleep(60)"], "shell"),
    phase="p",
    allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
)


def opsdeck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(opsdeck_cmd(*args), capture_output=True, text=True, timeout=120)


def rows(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute("select count(*) from events").fetchone()[0])


def started(db: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return bool(c.execute("select count(*) from events where type = 'TASK_STARTED'").fetchone()[0])
    except sqlite3.Error:
        return False


@pytest.mark.slow
def test_exec_and_script_refuse_mutations_of_a_real_fleet_whose_host_is_down(tmp_path: Path) -> None:
    db = tmp_path / "real.db"
    wf = tmp_path / "wf.toml"
    wf.write_text(WF)
    host = subprocess.Popen(
        opsdeck_cmd("serve", str(wf), "--db", str(db)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: started(db), "the task started")
        hosts = wait_for(lambda: agent_hosts(db), "the agent host")
        tasks = wait_for(lambda: [c for h in hosts for c in h.children()], "the task's process")
        pids = sorted(p.pid for p in tasks)
        host.kill()  # the host is gone (SIGKILL); its agent and the task keep running
        host.wait(30)
        n = rows(db)

        for cmd in ("/coordination-hub pause wa", "/coordination-hub cancel wa", "/workflow-status pause wa"):
            out = opsdeck("exec", "--db", str(db), cmd)
            assert out.returncode == 2, (cmd, out.stdout, out.stderr)
            assert f"opsdeck serve WORKFLOW.toml --db {db}" in out.stderr and "refused" in out.stderr
        assert rows(db) == n, "nothing was recorded"
        assert all(p.is_running() and p.status() != psutil.STATUS_STOPPED for p in tasks), "not paused, not killed"
        assert sorted(p.pid for p in tasks) == pids

        # read-only commands are still answered
        ok = opsdeck("exec", "--db", str(db), "--json", "/workflow-status wa")
        assert ok.returncode == 0, ok.stderr
        assert '"wa"' in ok.stdout
        n = rows(db)  # the query is recorded (COMMAND_EXECUTED)

        script = tmp_path / "s.ops"
        script.write_text("/workflow-status wa\n/coordination-hub pause wa\n")
        sc = opsdeck("script", str(script), "--db", str(db))
        assert sc.returncode == 2 and f"{script}:2:" in sc.stderr and "opsdeck serve" in sc.stderr, sc.stderr
        assert rows(db) == n, "no step of the refused script ran"
        assert all(p.is_running() and p.status() != psutil.STATUS_STOPPED for p in tasks)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(30)
        for h in agent_hosts(db):
            for c in h.children(recursive=True):
                with contextlib.suppress(OSError):
                    os.killpg(os.getpgid(c.pid), signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.killpg(h.pid, signal.SIGKILL)


@pytest.mark.slow
async def test_exec_on_a_simulated_database_without_host_still_changes_it(tmp_path: Path) -> None:
    """The refusal is for real fleets only: a simulated database is changed in-process."""
    db = tmp_path / "sim.db"
    made = opsdeck("exec", "--create", "--db", str(db), "--advance", "2m", "/workflow-status")
    assert made.returncode == 0, made.stderr
    out = opsdeck("exec", "--db", str(db), "/coordination-hub pause workflow_001")
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(db) as c:
        assert c.execute("select count(*) from events where type = 'WORKFLOW_PAUSED'").fetchone()[0] == 1
