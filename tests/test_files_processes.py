"""The ``processes`` table is trusted only for this run's records: nothing signals a pid
it did not start.

A database someone else wrote can list any pid (a root process, with its real start
time). Before, ``opsdeck run`` SIGTERMed such a pid and SIGKILLed its "task group".
Now a row must carry this run's MAC (keyed by the secret in the private run
directory) and a live pid must be ours and prove itself on the row's socket (its
SO_PEERCRED pid, the run's secret, its agent's name; ``Adoption.prove``): a root process
listed there, by a forged row or by one whose MAC is right, is left running.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from core.runtimes.handshake import SECRET_FILE
from core.runtimes.local import run_dir_for

from .conftest import REPO
from .files_support import run

QUICK = REPO / "examples" / "quick.toml"


@pytest.fixture
def bystanders() -> Iterator[list[psutil.Process]]:
    """Two processes this run did not start (root-owned when the tests run as root)."""
    procs = [subprocess.Popen(["sleep", "600"], start_new_session=True) for _ in range(2)]
    try:
        yield [psutil.Process(p.pid) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)


def _list(db: Path, agent: str, host: psutil.Process, task: psutil.Process, secret: bytes | None) -> None:
    info: dict[str, object] = {
        "address": "/nonexistent.sock",
        "task_pgid": task.pid,
        "task_create_time": task.create_time(),
    }
    if secret is not None:  # a row whose MAC is right: only the live checks stand in the way
        fields = {k: info[k] for k in ("address", "task_pgid", "task_create_time")}
        body = json.dumps([agent, host.pid, repr(float(host.create_time())), fields], sort_keys=True)
        info["mac"] = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    con = sqlite3.connect(db)
    try:
        con.execute(
            "INSERT OR REPLACE INTO processes(agent, pid, create_time, info) VALUES (?,?,?,?)",
            (agent, host.pid, host.create_time(), json.dumps(info)),
        )
        con.commit()
    finally:
        con.close()


def _untouched(procs: list[psutil.Process]) -> None:
    for p in procs:
        assert p.is_running() and p.status() != psutil.STATUS_ZOMBIE, f"pid {p.pid} was signalled"
        assert p.status() != psutil.STATUS_STOPPED


@pytest.mark.slow
@pytest.mark.parametrize("mac", ["forged", "valid"])
def test_a_listed_pid_this_run_did_not_start_is_never_signalled(
    tmp_path: Path, cli_env: dict[str, str], bystanders: list[psutil.Process], mac: str
) -> None:
    db = tmp_path / "run.db"
    first = run(cli_env, "run", str(QUICK), "--db", str(db), "--headless", timeout=180)
    assert first.returncode == 0, first.stderr
    secret = (run_dir_for(db) / SECRET_FILE).read_bytes() if mac == "valid" else None
    host, task = bystanders
    _list(db, "agent_001", host, task, secret)  # an agent the log has (retired): the kill path
    _list(db, "agent_zz", host, task, secret)  # an agent the log never had
    # A workflow the database does not have yet: a second run of a finished file starts
    # nothing (not even the runtime), and this one must open the runtime on the rows.
    second = tmp_path / "again.toml"
    second.write_text(QUICK.read_text().replace('[[workflows]]\nid = "hello"', '[[workflows]]\nid = "again"', 1))
    assert 'id = "again"' in second.read_text()
    again = run(cli_env, "run", str(second), "--db", str(db), "--headless", timeout=180)
    assert again.returncode == 0, again.stderr
    _untouched(bystanders)
    con = sqlite3.connect(db)
    try:
        left = {r[0] for r in con.execute("SELECT pid FROM processes")}
    finally:
        con.close()
    assert host.pid not in left  # the untrusted rows were dropped, not acted on
