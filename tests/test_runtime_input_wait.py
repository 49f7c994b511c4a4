"""A task waiting for a human is told from the kernel: a blocked read of its stdin."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from core.runtimes.input_wait import blocked_read_fd, stdin_target, supported, waiting_for_input

from .conftest import wait_for

pytestmark = pytest.mark.skipif(not supported(), reason="needs Linux /proc/PID/syscall on x86_64 or aarch64")


@pytest.fixture
def reader() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('name?', flush=True); print('got', sys.stdin.readline())"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    yield p
    p.kill()
    p.wait()


def test_a_process_blocked_reading_its_stdin_is_waiting(reader: subprocess.Popen[bytes]) -> None:
    wait_for(lambda: blocked_read_fd(reader.pid) == 0, "the reader blocked reading its stdin", 30, poll=0.02)
    w = waiting_for_input([psutil.Process(reader.pid)], stdin_target(reader.pid), None, quiet_s=5, threshold_s=1)
    assert w is not None and w.pid == reader.pid and w.reason == "blocked reading stdin"
    assert reader.stdin is not None
    reader.stdin.write(b"ada\n")
    reader.stdin.flush()
    assert reader.wait(timeout=30) == 0  # answered: it read the line and went on


def test_before_the_threshold_nothing_is_waiting(reader: subprocess.Popen[bytes]) -> None:
    wait_for(lambda: blocked_read_fd(reader.pid) == 0, "the reader blocked reading its stdin", 30, poll=0.02)
    assert waiting_for_input([psutil.Process(reader.pid)], stdin_target(reader.pid), None, 0.5, 1) is None


def test_a_quiet_process_that_reads_nothing_is_not_waiting() -> None:
    p = subprocess.Popen(["sleep", "30"], stdin=subprocess.PIPE)
    try:
        wait_for(lambda: psutil.Process(p.pid).status() == psutil.STATUS_SLEEPING, "sleep sleeping (S)", 30, poll=0.02)
        assert waiting_for_input([psutil.Process(p.pid)], stdin_target(p.pid), "compiling", 60, 1) is None
    finally:
        p.kill()
        p.wait()


def test_a_process_reading_another_pipe_is_not_waiting_for_its_stdin() -> None:
    code = "import os; r, w = os.pipe(); print('x', flush=True); os.read(r, 1)"
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        wait_for(
            lambda: blocked_read_fd(p.pid) not in (None, 0), "the process blocked reading another pipe", 30, poll=0.02
        )
        assert waiting_for_input([psutil.Process(p.pid)], stdin_target(p.pid), None, 60, 1) is None
    finally:
        p.kill()
        p.wait()


def test_a_known_prompt_after_the_quiet_threshold_counts_without_a_stdin() -> None:
    me = psutil.Process()
    assert waiting_for_input([me], None, "Do you want to proceed? [y/N]", 10, 1) is not None
    assert waiting_for_input([me], None, "Proceed? ", 10, 1) is not None
    assert waiting_for_input([me], None, "Building target: all", 10, 1) is None
