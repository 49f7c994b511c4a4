"""A task starts with SIGINT at its default, whatever its agent host ignores: the host
ignores SIGINT (a Ctrl-C in the console's terminal is the console's), and a disposition
ignored is inherited through exec, so the console's Ctrl-C key (``\\x03`` written to a
task's terminal) reached every process of the task ignored."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
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


def test_ctrl_c_typed_to_a_task_interrupts_it(sigint_kept_off: str) -> None:
    """The console's Ctrl-C key writes \\x03 to the task's terminal: the task ends by SIGINT
    (before: ignored, or blocked in a Ray actor's thread, it ran on)."""
    assert asyncio.run(_interrupted()) == -signal.SIGINT
    assert _kept_off(sigint_kept_off)


def test_what_the_host_ignores_is_still_ignored_here(host_ignores_sigint: None) -> None:
    """The must-not: the host itself keeps ignoring SIGINT (the task's default is the task's)."""
    asyncio.run(_spawned(None, None))
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.fixture(params=["ignored", "blocked"])
def sigint_kept_off(request: pytest.FixtureRequest) -> Iterator[str]:
    """This thread ignores SIGINT (as an agent host does) or blocks it (as the thread a
    Ray async actor runs its calls in does: a signal mask is inherited through exec too)."""
    if request.param == "ignored":
        before = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield request.param
        finally:
            signal.signal(signal.SIGINT, before)
    else:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield request.param
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.fixture
def other_thread() -> Iterator[None]:
    """Another thread runs in this process (as in a Ray actor's): a run with a ``cwd`` is
    spawned through Popen then (posix_spawn would change the whole process's directory)."""
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


async def _sigint_ends(cwd: Path | None) -> tuple[int, str, bool]:
    """A ``sleep`` task sent SIGINT: its status, its directory, whether it went through Popen."""
    p = TaskProcess.spawn(["sleep", "30"], dict(os.environ), str(cwd) if cwd else None, False, None)
    try:
        _ignored(p.pid)  # it runs sleep
        where = os.readlink(f"/proc/{p.pid}/cwd")
        os.kill(p.pid, signal.SIGINT)
        return await asyncio.wait_for(p.wait(), 20), where, p.popen is not None
    finally:
        if p.returncode is None:
            os.kill(p.pid, signal.SIGKILL)
            await p.wait()
        p.close()


def _kept_off(how: str) -> bool:
    """SIGINT is still ignored or blocked here, as the fixture left it."""
    if how == "ignored":
        return signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    return signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_task_spawned_through_posix_spawn_dies_of_sigint(sigint_kept_off: str) -> None:
    """posix_spawn's path: the task ends by SIGINT whether this thread ignores it or blocks
    it (before: blocked, it ran on); here it stays as it was."""
    rc, _, popen = asyncio.run(_sigint_ends(None))
    assert rc == -signal.SIGINT and not popen
    assert _kept_off(sigint_kept_off)


def test_a_task_spawned_through_popen_dies_of_sigint(sigint_kept_off: str, other_thread: None, tmp_path: Path) -> None:
    """Popen's path (a ``cwd`` with other threads running, as in a Ray actor): the task ends
    by SIGINT in its directory (before: ignored or blocked, it ran on); here it stays as it was."""
    rc, where, popen = asyncio.run(_sigint_ends(tmp_path))
    assert rc == -signal.SIGINT and popen and where == str(tmp_path)
    assert _kept_off(sigint_kept_off)


def test_popens_path_refuses_a_missing_program_or_directory_as_before(
    sigint_kept_off: str, other_thread: None, tmp_path: Path
) -> None:
    """The must-not: no task starts for a program on no PATH directory, one that cannot be
    run, or a ``cwd`` that is not there, and the error names what is wrong."""
    with pytest.raises(FileNotFoundError, match="no-such-program-here"):
        TaskProcess.spawn(["no-such-program-here"], dict(os.environ), str(tmp_path), False, None)
    with pytest.raises(FileNotFoundError, match="gone"):
        TaskProcess.spawn([str(tmp_path / "gone")], dict(os.environ), str(tmp_path), False, None)
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    with pytest.raises(PermissionError, match="plain"):
        TaskProcess.spawn([str(plain)], dict(os.environ), str(tmp_path), False, None)
    with pytest.raises(FileNotFoundError, match="gone"):
        TaskProcess.spawn(["sleep", "30"], dict(os.environ), str(tmp_path / "gone"), False, None)


def test_popens_path_runs_a_program_named_relative_to_the_tasks_directory(
    sigint_kept_off: str, other_thread: None, tmp_path: Path
) -> None:
    """``./prog`` names a file in the task's ``cwd`` (Popen and posix_spawn's path both run
    it there), not in the host's directory: it starts and dies of SIGINT; the host's
    directory holds no such file."""
    (tmp_path / "prog").write_text("#!/bin/sh\nexec sleep 30\n")
    (tmp_path / "prog").chmod(0o700)
    assert not Path("prog").exists()

    async def run() -> int:
        p = TaskProcess.spawn(["./prog"], dict(os.environ), str(tmp_path), False, None)
        try:
            _ignored(p.pid)
            os.kill(p.pid, signal.SIGINT)
            return await asyncio.wait_for(p.wait(), 20)
        finally:
            if p.returncode is None:
                os.kill(p.pid, signal.SIGKILL)
                await p.wait()
            p.close()

    assert asyncio.run(run()) == -signal.SIGINT
    assert _kept_off(sigint_kept_off)


def test_a_probe_that_could_not_run_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A passing shortage (no process to spare) answers None for that start only: the next
    start that needs the reset asks again and gets ``env``, so later tasks are not left with
    SIGINT ignored. The must-not: a definite answer is kept (the probe runs once)."""
    import subprocess

    from core.runtimes import task_process

    monkeypatch.setattr(task_process, "_ENV_FOUND", [])
    real = subprocess.run
    calls: list[list[str]] = []

    def short_once(argv: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
        calls.append(argv)
        if len(calls) == 1:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real(argv, **kw)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(task_process.subprocess, "run", short_once)
    assert task_process._default_signal_env() is None
    found = task_process._default_signal_env()
    assert found is not None and os.path.basename(found) == "env"
    assert task_process._default_signal_env() == found and len(calls) == 2
