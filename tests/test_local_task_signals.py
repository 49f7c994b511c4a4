"""A task starts with SIGINT at its default, whatever its agent host ignores: the host
ignores SIGINT (a Ctrl-C in the console's terminal is the console's), and a disposition
ignored is inherited through exec, so the console's Ctrl-C key (``\\x03`` written to a
task's terminal) reached every process of the task ignored."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.runtimes.task_process import TaskProcess
from core.runtimes.tty import TaskTerminal

from .conftest import wait_for


@pytest.fixture
def host_ignores_sigint() -> Iterator[None]:
    """This process ignores SIGINT, as an agent host does."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _ignored(pid: int) -> int:
    """The task's ignored signals (``SigIgn`` of ``/proc/PID/status``) once it runs ``sleep``."""
    status = Path(f"/proc/{pid}/status")
    wait_for(lambda: "sleep" in Path(f"/proc/{pid}/comm").read_text(), "the task to exec sleep", 10, poll=0.01)
    line = next(x for x in status.read_text().splitlines() if x.startswith("SigIgn:"))
    return int(line.split()[1], 16)


async def _spawned(cwd: str | None, terminal: TaskTerminal | None) -> int:
    p = TaskProcess.spawn(["sleep", "30"], dict(os.environ), cwd, False, terminal.spawn_args() if terminal else None)
    if terminal is not None:
        terminal.started()
    try:
        return _ignored(p.pid)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        await p.wait()
        p.close()


def test_a_task_gets_sigint_at_its_default(host_ignores_sigint: None) -> None:
    """posix_spawn's path (with a cwd too while no other thread runs: the same call; with
    other threads, as in a test process after others, Popen's, which cannot reset it)."""
    mask = asyncio.run(_spawned(None, None))
    assert not mask & (1 << (signal.SIGINT - 1)), f"SigIgn {mask:x}"


def test_a_task_under_a_terminal_gets_sigint_at_its_default(host_ignores_sigint: None) -> None:
    terminal = TaskTerminal()
    try:
        mask = asyncio.run(_spawned(None, terminal))
    finally:
        terminal.close()
    assert not mask & (1 << (signal.SIGINT - 1)), f"SigIgn {mask:x}"


async def _interrupted() -> int:
    terminal = TaskTerminal()
    try:
        p = TaskProcess.spawn(["sleep", "30"], dict(os.environ), None, False, terminal.spawn_args())
        terminal.started()
        _ignored(p.pid)  # it runs sleep
        await terminal.write(b"\x03")
        try:
            return await asyncio.wait_for(p.wait(), 20)
        finally:
            if p.returncode is None:
                os.kill(p.pid, signal.SIGKILL)
    finally:
        terminal.close()


def test_ctrl_c_typed_to_a_task_interrupts_it(host_ignores_sigint: None) -> None:
    """The console's Ctrl-C key writes \\x03 to the task's terminal: the task ends by SIGINT
    (before: ignored, it ran on)."""
    assert asyncio.run(_interrupted()) == -signal.SIGINT


def test_what_the_host_ignores_is_still_ignored_here(host_ignores_sigint: None) -> None:
    """The must-not: the host itself keeps ignoring SIGINT (the task's default is the task's)."""
    asyncio.run(_spawned(None, None))
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
