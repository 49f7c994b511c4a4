"""A task's first process: its create time is the one psutil gives (the console verifies
pid and create time before it signals a task's group), whether the spawn's boot-clock
readings tell it or ``/proc`` is read."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from core.runtimes import task_process
from core.runtimes.task_process import TaskProcess, start_ticks

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and the boot clock are Linux's")

TICK = task_process._TICK_NS


def test_a_start_is_known_only_when_both_readings_fall_in_one_tick() -> None:
    assert start_ticks(5 * TICK, 5 * TICK + TICK - 1) == 5
    assert start_ticks(5 * TICK + 1, 5 * TICK + 2) == 5
    # Must NOT guess: readings in two ticks, or a missing clock, leave it unknown.
    assert start_ticks(5 * TICK + TICK - 1, 6 * TICK) is None
    assert start_ticks(None, 6 * TICK) is None
    assert start_ticks(5 * TICK, None) is None


async def spawned(n: int, cwd: str | None = None) -> list[TaskProcess]:
    return [TaskProcess.spawn(["sleep", "30"], dict(os.environ), cwd, False) for _ in range(n)]


async def ended(procs: list[TaskProcess]) -> None:
    for p in procs:
        os.kill(p.pid, 9)
        await p.wait()
        p.close()


def same_as_psutil(p: TaskProcess) -> bool:
    ct = p.create_time()
    return ct is not None and abs(ct - psutil.Process(p.pid).create_time()) < 1e-6


async def test_the_create_time_is_psutils_from_the_clock_readings() -> None:
    procs = await spawned(30) + await spawned(3, cwd="/")  # posix_spawn, without and with a cwd
    try:
        assert any(p.ticks is not None for p in procs)  # a spawn takes well under a tick (10 ms)
        assert all(same_as_psutil(p) for p in procs)
    finally:
        await ended(procs)


@pytest.fixture
def straddling(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Boot-clock readings on both sides of a tick's end."""
    readings = iter(range(10**6))

    def clock() -> int:
        return (next(readings) * 2 + 1) * TICK - 1  # ...-1 then ...+TICK-1: always another tick

    monkeypatch.setattr(task_process, "_boot_ns", clock)
    yield


async def test_a_spawn_across_a_tick_reads_the_create_time_from_proc(straddling: None) -> None:
    procs = await spawned(3) + await spawned(1, cwd="/")
    try:
        assert all(p.ticks is None for p in procs)
        assert all(same_as_psutil(p) for p in procs)
    finally:
        await ended(procs)


def test_the_boot_time_is_read_from_proc_only_when_the_clocks_disagree_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[float] = []
    real = task_process.read_boot_time

    def read() -> float:
        reads.append(real())
        return reads[-1]

    monkeypatch.setattr(task_process, "read_boot_time", read)
    monkeypatch.setattr(task_process, "_btime", [])
    first = task_process.boot_time()
    assert first == psutil.boot_time() and len(reads) == 1
    assert all(task_process.boot_time() == first for _ in range(1000))
    assert len(reads) <= 2, "the clocks agree with btime: /proc/stat is not read again"
    # Must NOT trust the cache once the real-time clock moved by a second (a step):
    # /proc/stat is read again and its btime (here the unmoved one) is what counts.
    stepped = time.time_ns() + 1_000_000_000
    monkeypatch.setattr(task_process.time, "time_ns", lambda: stepped)
    before = len(reads)
    assert task_process.boot_time() == psutil.boot_time()
    assert len(reads) == before + 1


async def output_of(p: TaskProcess) -> bytes:
    await p.wait()
    assert p.stdout is not None
    os.set_blocking(p.stdout, True)
    out = os.read(p.stdout, 4096)
    p.close()
    return out


async def test_a_cwd_is_the_childs_and_the_hosts_own_directory_is_back_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An agent host has one thread; the suite's process may hold idle ones (an executor's).
    monkeypatch.setattr(task_process.threading, "active_count", lambda: 1)
    (tmp_path / "x.sh").write_text("pwd\n")
    here = os.getcwd()
    p = TaskProcess.spawn(["/bin/sh", "x.sh"], dict(os.environ), str(tmp_path), False)  # relative to the cwd
    assert p.popen is None  # posix_spawn
    assert os.getcwd() == here
    assert (await output_of(p)).decode().strip() == str(tmp_path)
    # Must NOT start, nor move this process, in a directory that cannot be entered.
    with pytest.raises(FileNotFoundError) as err:
        TaskProcess.spawn(["true"], dict(os.environ), str(tmp_path / "gone"), False)
    assert err.value.filename == str(tmp_path / "gone") and os.getcwd() == here


async def test_with_another_thread_a_cwd_goes_through_popen(tmp_path: Path) -> None:
    """The working directory is the whole process's: another thread would see it change."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        p = TaskProcess.spawn(["pwd"], dict(os.environ), str(tmp_path), False)
        assert p.popen is not None
        assert (await output_of(p)).decode().strip() == str(tmp_path)
    finally:
        stop.set()
        other.join()
