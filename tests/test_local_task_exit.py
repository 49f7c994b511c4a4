"""A task's exit: watched (a pidfd) from ``watch_after`` on, and seen before that by a
look (``poll_exit``, when its output ends): a short task ends with no pidfd opened; a
task still running is never taken for ended, and one that outlives the look is still
seen ending; a run whose first process exits while a leftover holds its output open
still ends, the leftover killed."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from core.runtimes.task_process import TaskProcess

from .conftest import until
from .local_harness import in_process_host as host

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pidfds are Linux's")


@pytest.fixture
def pidfds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids a pidfd was opened for."""
    opened: list[int] = []
    real = os.pidfd_open

    def counted(pid: int, flags: int = 0) -> int:
        opened.append(pid)
        return real(pid, flags)

    monkeypatch.setattr(os, "pidfd_open", counted)
    return opened


async def test_an_exit_looked_for_before_the_watch_is_seen_with_no_pidfd(pidfds: list[int]) -> None:
    p = TaskProcess.spawn(["true"], dict(os.environ), None, False, watch_after=60.0)
    seen: list[int] = []
    p.on_exit(seen.append)
    await until(lambda: p.poll_exit() is not None, "true's exit, looked for")
    assert seen == [0] and p.returncode == 0
    p.watch()  # too late to watch: nothing is opened
    assert pidfds == []
    assert await p.wait() == 0 and seen == [0]
    p.close()


async def test_a_running_process_is_not_taken_for_ended_and_its_exit_is_seen_once_watched(
    pidfds: list[int],
) -> None:
    p = TaskProcess.spawn(["sleep", "30"], dict(os.environ), None, False, watch_after=60.0)
    seen: list[int] = []
    p.on_exit(seen.append)
    assert p.poll_exit() is None and seen == [] and p.returncode is None
    os.kill(p.pid, 9)
    assert await p.wait() == -9, "wait() watches it"
    assert seen == [-9] and pidfds == [p.pid]
    p.close()


async def test_a_process_nobody_looks_at_is_watched_after_watch_after(pidfds: list[int]) -> None:
    p = TaskProcess.spawn(["true"], dict(os.environ), None, False, watch_after=0.05)
    seen: list[int] = []
    p.on_exit(seen.append)
    await until(lambda: seen, "its exit, seen by the watch that began 50 ms after the spawn", timeout=10)
    assert seen == [0] and pidfds == [p.pid]
    p.close()


async def test_a_run_whose_first_process_exits_while_a_leftover_holds_its_output_ends(tmp_path: Path) -> None:
    h = host(tmp_path)
    sent: list[dict[str, Any]] = []
    h.runner.send = h.runner.hold = sent.append  # type: ignore[method-assign]
    pidfile = tmp_path / "leftover"
    command = f"sleep 30 & echo $! > {pidfile}; exit 0"
    assert h.runner.handle({"op": "start", "task": "t", "attempt": 0, "command": command, "shell": True}) is None
    await until(lambda: [m for m in sent if m["t"] == "finished"], lambda: f"the run's end: {sent}", timeout=30)
    leftover = int(pidfile.read_text())

    def gone() -> bool:
        try:
            return psutil.Process(leftover).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    await until(gone, "the leftover sleep killed with its run")
