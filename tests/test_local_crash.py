"""SIGKILL of the console mid-run, then a restart on the same database: the run
resumes, live agents are adopted (pid + create time), no completed task runs again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from core.store import Store
from tests.conftest import opsdeck_cmd, wait_for
from tests.local_harness import PY, alive, chain_workflow, header, task_toml, workflow_toml

STEPS = 6


def run_cmd(f: Path, db: Path) -> list[str]:
    return opsdeck_cmd("run", str(f), "--db", str(db), "--headless")


def two_steps_ran(log: Path, run: subprocess.Popen[bytes]) -> Callable[[], bool]:
    """Whether the chain's first two steps ran (the run still going: one that ended fails)."""

    def ran() -> bool:
        assert run.poll() is None, f"the run ended first (exit {run.returncode})"
        return log.exists() and len(log.read_text().splitlines()) >= 2

    return ran


def stored_hosts(db: Path) -> list[tuple[str, int, float, dict]]:
    async def read() -> list[tuple[str, int, float, dict]]:
        s = await Store.open(db)
        try:
            return await s.processes()
        finally:
            await s.close()

    return asyncio.run(read())


@pytest.mark.slow
def test_console_sigkill_then_restart_resumes_without_repeating_completed_tasks(tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    f = chain_workflow(tmp_path, log, STEPS)
    db = tmp_path / "run.db"
    first = subprocess.Popen(run_cmd(f, db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(two_steps_ran(log, first), "the run to start (two steps of the chain ran)", 30)
    except AssertionError as e:
        first.kill()
        raise AssertionError(f"{e}: {first.stderr.read() if first.stderr else ''}") from None
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    hosts = stored_hosts(db)
    assert len(hosts) == 2, hosts
    assert all(alive(pid) for _, pid, _, _ in hosts), "agent hosts outlive a killed console"
    for _, pid, ct, _ in hosts:
        assert abs(psutil.Process(pid).create_time() - ct) < 0.05

    second = subprocess.run(run_cmd(f, db), capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "adopted=['agent_001', 'agent_002']" in second.stderr
    # Said while the restarted console proves them (silent up to a handshake's time before).
    assert "# opsdeck run: proving 2 agent hosts of the last run…" in second.stderr, second.stderr[-2000:]
    assert "# opsdeck run: proved 2 of 2 agent hosts of the last run in " in second.stderr
    ran = [line.split()[0] for line in log.read_text().splitlines()]
    assert sorted(ran) == [f"s{i}" for i in range(STEPS)], f"each task runs exactly once: {ran}"
    assert ran == [f"s{i}" for i in range(STEPS)], "in dependency order"
    assert stored_hosts(db) == [], "a normal exit forgets (and ends) every agent process"
    assert all(not alive(pid) for _, pid, _, _ in hosts)
    assert "WORKFLOW_COMPLETED" in second.stdout

    # a third run on the finished database starts nothing again
    third = subprocess.run(run_cmd(f, db), capture_output=True, text=True, timeout=60)
    assert third.returncode == 0
    assert len(log.read_text().splitlines()) == STEPS
    assert "TASK_STARTED" not in third.stdout
    assert "already ended" in third.stderr


@pytest.mark.slow
def test_gone_agents_are_failed_and_their_tasks_recovered(tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    f = chain_workflow(tmp_path, log, STEPS)
    db = tmp_path / "run.db"
    first = subprocess.Popen(
        run_cmd(f, db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for(two_steps_ran(log, first), "the run to start (two steps of the chain ran)", 30)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(5)
    hosts = stored_hosts(db)
    for _, pid, _ct, info in hosts:  # the whole fleet dies with the console this time
        os.kill(pid, signal.SIGKILL)
        if info.get("task_pgid"):
            try:
                os.killpg(info["task_pgid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
    wait_for(lambda: not any(alive(pid) for _, pid, _, _ in hosts), "the killed agent hosts gone", 5)
    second = subprocess.run(run_cmd(f, db), capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "adopted=[]" in second.stderr and "recovered=['agent_001', 'agent_002']" in second.stderr
    assert second.stdout.count("AGENT_ERROR") == 2
    assert "agent process gone while the console was down" in second.stdout
    ran = [line.split()[0] for line in log.read_text().splitlines()]
    assert set(ran) == {f"s{i}" for i in range(STEPS)}
    assert ran.count("s0") == 1, "s0 completed before the crash: it does not run again"
    assert ran.count("s1") == 2, "s1 was cut short with its agent: it is recovered and runs again"
    assert '"task":"chain/s1"' in next(
        line for line in second.stdout.splitlines() if line.startswith("TASK_REASSIGNED")
    )


@pytest.mark.slow
def test_sigterm_of_the_console_ends_every_agent_and_task_process(tmp_path: Path) -> None:
    f = tmp_path / "long.toml"
    stubborn = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    f.write_text(
        header(pools='[[pools]]\nname = "p"\nspecializations = ["s"]\nsize = 2\n')
        + workflow_toml(
            "long",
            task_toml("a", [PY, "-c", stubborn]),
            task_toml("b", ["sleep", "60"]),
            allocation={"cpu_cores": 2, "memory_gb": 2, "agents": 2},
        )
    )
    db = tmp_path / "run.db"
    proc = subprocess.Popen(run_cmd(f, db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hosts: list = []
    try:

        def both_tasks_started() -> bool:
            nonlocal hosts
            assert proc.poll() is None, "the run ended before both tasks started"
            hosts = stored_hosts(db) if db.exists() else []
            return len(hosts) == 2 and all(info.get("task_pgid") for *_, info in hosts)

        wait_for(both_tasks_started, lambda: f"two agent hosts, each with its task's group: {hosts}", 30, poll=0.1)
        groups = {info["task_pgid"] for *_, info in hosts}
        members = [p for p in psutil.process_iter() if _pgid(p.pid) in groups]
        assert len(members) == 2, members  # a task that ignores SIGTERM, and a sleep
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        # The run waited for them or SIGKILLed them before it exited: only the kernel's delivery is left.
        wait_for(lambda: not any(alive(pid) for _, pid, _, _ in hosts), "no agent host left behind", 5)
        wait_for(
            lambda: not any(alive(p.pid) for p in members),
            "no task process left behind (SIGKILL after the grace period)",
            5,
        )
        assert stored_hosts(db) == []
        assert out.count("AGENT_DEALLOCATED") == 2 and out.count("TASK_REASSIGNED") == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for _, pid, _ct, info in hosts:  # whatever failed above, leave nothing running
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
            if info.get("task_pgid"):
                try:
                    os.killpg(info["task_pgid"], signal.SIGKILL)
                except OSError:
                    pass


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
