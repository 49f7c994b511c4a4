"""An agent host finds its task's processes from /proc/PID/task/*/children: the same
processes psutil finds by reading every process's status, for a few reads."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from core.runtimes.task_tree import child_pids, descendant_pids

from .conftest import wait_for


def test_descendants_are_the_processes_psutil_finds() -> None:
    # A child with two children of its own.
    code = "import subprocess, time; ps = [subprocess.Popen(['sleep', '30']) for _ in range(2)]; time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        me = psutil.Process()
        wait_for(lambda: len(me.children(recursive=True)) >= 3, "the child and its two children", 20, poll=0.02)
        expected = {p.pid for p in me.children(recursive=True)}
        assert len(expected) == 3
        found = descendant_pids(os.getpid())
        assert found is not None and set(found) == expected
        assert child_pids(os.getpid()) == [proc.pid]
        assert set(child_pids(proc.pid) or []) == {p.pid for p in psutil.Process(proc.pid).children()}
    finally:
        for p in psutil.Process(proc.pid).children(recursive=True):
            p.kill()
        proc.kill()
        proc.wait()


def test_a_process_that_is_gone_has_no_answer() -> None:
    """The case that must not pass for an empty family: a pid nobody has is None, not []."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert child_pids(proc.pid) is None
    assert descendant_pids(proc.pid) is None
