"""A restarted console adopts hosts whose runs are going on: each run (task and attempt)
has exactly one TASK_STARTED in the log, whether the killed console had recorded it or not.

The restarted console sends each running task's ``start`` again (the host answers
``started`` for the run it already has): that answer records the start only when the
log does not hold it yet."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import psutil
import pytest

from core.events import GENESIS_HASH
from core.store import Store
from tests.conftest import wait_for
from tests.local_harness import alive, header, task_toml, workflow_toml
from tests.test_local_crash import run_cmd, stored_hosts

TASKS = ("a", "b")


def starts(db: Path) -> Counter[tuple[str, int]]:
    """TASK_STARTED rows per (task, attempt) in the stored log (:func:`start_times`)."""
    return Counter({run: len(started) for run, (_, started) in start_times(db).items() if started})


MTIME_SLACK_S = 0.05
"""How much earlier than the clock a file's modification time may read (the kernel
stamps it from a coarse clock, a tick behind at most)."""


def start_times(db: Path) -> dict[tuple[str, int], tuple[float, list[float]]]:
    """Per (task, attempt): when it was assigned and the times of its TASK_STARTED rows;
    the attempt is the number of the task's TASK_ASSIGNED rows up to it."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT type, json_extract(data, '$.task'), ts FROM events"
            " WHERE type IN ('TASK_ASSIGNED', 'TASK_STARTED') ORDER BY seq"
        ).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return {}
    finally:
        con.close()
    attempts: Counter[str] = Counter()
    out: dict[tuple[str, int], tuple[float, list[float]]] = {}
    for type_, task, ts in rows:
        if type_ == "TASK_ASSIGNED":
            attempts[task] += 1
            out[(task, attempts[task])] = (ts, [])
        else:
            out[(task, attempts[task])][1].append(ts)
    return out


def assert_started_when_they_ran(tmp: Path, db: Path) -> None:
    """Each task's one TASK_STARTED is at its run's start: after its assignment, before
    the run's first act (it marks that it runs, ``<task>.once``), not when a console
    learnt of it (a restarted one, seconds later)."""
    times = start_times(db)
    for t in TASKS:
        assigned, started = times[(f"w/{t}", 1)]
        ran = (tmp / f"{t}.once").stat().st_mtime
        assert len(started) == 1 and assigned <= started[0] <= ran + MTIME_SLACK_S, (t, assigned, started, ran)


def workflow(tmp: Path, first_run: str) -> Path:
    """Two tasks: each marks that it runs (``<task>.once``), the second of them to start
    runs ``first_run`` (shell), then both wait for ``go`` to exist (and mark their end,
    ``<task>.done``)."""
    both = f"[ -e {tmp}/a.once ] && [ -e {tmp}/b.once ] && mkdir {tmp}/both 2>/dev/null"
    wait = f"while [ ! -e {tmp}/go ]; do sleep 0.05; done; : > {tmp}/$1.done"
    script = f": > {tmp}/$1.once; if {both}; then {first_run}; fi; {wait}"
    f = tmp / "wf.toml"
    f.write_text(
        header()
        + workflow_toml(
            "w",
            *(task_toml(t, ["sh", "-c", script, "sh", t], "shell") for t in TASKS),
            allocation={"cpu_cores": 2, "memory_gb": 2, "agents": 2},
        )
    )
    return f


def signalled_console(tmp: Path, sig: str) -> tuple[Path, Path, subprocess.Popen[bytes]]:
    """A console running :func:`workflow`, whose second task to start sends it ``sig``
    (``kill -<sig>``) at once; the workflow file, the database, the console."""
    pidfile = tmp / "console.pid"
    f = workflow(tmp, f"kill -{sig} $(cat {pidfile})")
    db = tmp / "run.db"
    first = subprocess.Popen(run_cmd(f, db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pidfile.write_text(str(first.pid))
    return f, db, first


def kill(first: subprocess.Popen[bytes]) -> None:
    first.send_signal(signal.SIGKILL)
    first.wait(5)


def restart_and_finish(tmp: Path, f: Path, db: Path) -> None:
    """Start the killed console again, let the tasks end once it proved (adopted) both
    hosts, and wait for the run to finish."""
    hosts = stored_hosts(db)
    assert len(hosts) == 2 and all(alive(pid) for _, pid, _, _ in hosts), hosts
    err = tmp / "second.err"
    with err.open("wb") as e:
        second = subprocess.Popen(run_cmd(f, db), stdout=subprocess.DEVNULL, stderr=e)
    try:

        def proved() -> bool:  # or ended (all its runs had ended): its exit status is checked below
            return second.poll() is not None or "proved 2 of 2 agent hosts" in err.read_text()

        wait_for(proved, "the restarted console to prove both hosts", 30)
        (tmp / "go").touch()
        assert second.wait(60) == 0, err.read_text()[-2000:]
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
        for _, pid, _, _ in hosts:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert "adopted=['agent_001', 'agent_002']" in err.read_text()


@pytest.mark.slow
def test_a_recorded_start_is_not_recorded_again_after_a_restart(tmp_path: Path) -> None:
    f = workflow(tmp_path, ":")
    db = tmp_path / "run.db"
    first = subprocess.Popen(run_cmd(f, db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def both_recorded() -> bool:
            assert first.poll() is None, f"the run ended first (exit {first.returncode})"
            return db.exists() and len(starts(db)) == 2 and len(stored_hosts(db)) == 2

        wait_for(both_recorded, "both tasks' TASK_STARTED stored", 30, poll=0.1)
    finally:
        kill(first)
    restart_and_finish(tmp_path, f, db)
    assert starts(db) == {(f"w/{t}", 1): 1 for t in TASKS}


@pytest.mark.slow
@pytest.mark.parametrize("ended_meanwhile", [False, True], ids=["running", "ended-while-down"])
def test_a_start_the_killed_console_did_not_record_is_recorded_once_after_a_restart(
    tmp_path: Path, ended_meanwhile: bool
) -> None:
    """The second task to start stops the console (SIGSTOP) at once: its TASK_STARTED (and
    maybe the first's) is not in the log when the console is killed; the restarted
    console records each start once, also for runs that ended while no console ran
    (their hosts report only the end)."""
    f, db, first = signalled_console(tmp_path, "STOP")
    try:

        def stopped_with_both_running() -> bool:
            assert first.poll() is None, f"the run ended first (exit {first.returncode})"
            return all((tmp_path / f"{t}.once").exists() for t in TASKS) and (
                psutil.Process(first.pid).status() == psutil.STATUS_STOPPED
            )

        wait_for(stopped_with_both_running, "both tasks started and the console stopped", 30, poll=0.05)
    finally:
        kill(first)
    if len(starts(db)) == 2:
        pytest.skip("the console recorded both starts before the second task stopped it: nothing to test")
    if ended_meanwhile:
        (tmp_path / "go").touch()
        wait_for(lambda: all((tmp_path / f"{t}.done").exists() for t in TASKS), "both tasks ended", 10)
    restart_and_finish(tmp_path, f, db)
    assert starts(db) == {(f"w/{t}", 1): 1 for t in TASKS}
    assert_started_when_they_ran(tmp_path, db)


@pytest.mark.slow
def test_a_start_held_when_the_console_was_killed_is_recorded_at_the_runs_start(tmp_path: Path) -> None:
    """The second task to start kills the console (SIGKILL) at once, within the
    HOLD_S its host holds the start for: the restarted console records that start once,
    at the run's start (main: at the restart; the host dropped the held report)."""
    f, db, first = signalled_console(tmp_path, "KILL")
    try:
        assert first.wait(30) == -signal.SIGKILL, "killed by the second task as it started"
    finally:
        if first.poll() is None:
            kill(first)
    assert all((tmp_path / f"{t}.once").exists() for t in TASKS)
    restart_and_finish(tmp_path, f, db)
    assert starts(db) == {(f"w/{t}", 1): 1 for t in TASKS}
    assert_started_when_they_ran(tmp_path, db)


async def test_the_reader_finds_the_starts_of_the_current_attempts_only(db_path: Path) -> None:
    """A start before the task's latest assignment (an earlier attempt) does not count;
    neither does another task's start after it."""
    log = [
        ("TASK_ASSIGNED", "x"),  # 1: x's first attempt
        ("TASK_STARTED", "x"),
        ("TASK_ASSIGNED", "y"),  # 3
        ("TASK_STARTED", "y"),
        ("TASK_ASSIGNED", "x"),  # 5: x again (a retry), not started yet
        ("TASK_ASSIGNED", "z"),  # 6
        ("TASK_STARTED", "z"),
        ("TASK_STARTED", "other"),
    ]
    rows = [
        (seq, float(seq), type_, "c", "s", "me", json.dumps({"task": task, "agent": "a"}), GENESIS_HASH, f"{seq:064x}")
        for seq, (type_, task) in enumerate(log, 1)
    ]
    store = await Store.open(db_path)
    try:
        await store.append(rows)
        assert await store.started_runs(["x", "y", "z"]) == {"y", "z"}
        assert await store.started_runs(["x"]) == set()
        assert await store.started_runs([]) == set()
    finally:
        await store.close()
