"""A task's processes after its end: an agent host (a subreaper) with no child left has
nothing to find or signal (not even its group); one with a child still scans and signals it (test_local_session runs
the end-to-end case: a detached grandchild is killed with its task).

Each probe runs in a fresh interpreter: the test process may have children of other
tests, and a subreaper's signal reaches every descendant of the process it runs in."""

from __future__ import annotations

import sys

import pytest

from .conftest import run_python

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="waitid and /proc are Linux's")

NO_CHILDREN = """
import signal, subprocess, time
import psutil
from core.runtimes.task_tree import no_children
assert no_children(), "none yet"
child = subprocess.Popen(["sleep", "30"])
assert not no_children(), "running"
child.send_signal(signal.SIGKILL)
deadline = time.monotonic() + 10
while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
    assert time.monotonic() < deadline
    time.sleep(0.01)
assert not no_children(), "exited, not yet collected: still a child"
child.wait()
assert no_children(), "collected"
print("ok")
"""

SIGNAL = """
import os, signal, subprocess
import psutil
from core.runtimes import task_tree
from core.runtimes.task_tree import TaskTree
tree = TaskTree(psutil.Process())
tree.subreaper = True  # as an agent host is: every descendant is a child of its or theirs
scans = []
real = task_tree.descendant_pids
task_tree.descendant_pids = lambda pid: scans.append(pid) or real(pid)
groups = []
killpg = os.killpg
os.killpg = lambda pgid, sig: groups.append(pgid) or killpg(pgid, sig)
ended = subprocess.Popen(["true"], start_new_session=True)
ended.wait()  # a task's first process, gone and collected, that left nothing behind
tree.signal(ended.pid, ended.pid, signal.SIGKILL, running=None)
assert scans == [] and groups == [], (scans, groups)
# Must NOT skip a child that is there: its group is signalled, it is found and killed.
child = subprocess.Popen(["sleep", "30"], start_new_session=True)
tree.signal(child.pid, child.pid, signal.SIGKILL, running=child.pid)  # its own child: collected by wait() below
assert scans == [os.getpid()] and groups == [child.pid], (scans, groups)
assert child.wait(10) == -signal.SIGKILL
print("ok")
"""


def test_no_children_until_one_is_started_and_after_it_is_collected() -> None:
    r = run_python(NO_CHILDREN)
    assert r.stdout.strip() == "ok", r.stderr


def test_a_subreaper_with_no_child_scans_nothing_and_one_with_a_child_signals_it() -> None:
    r = run_python(SIGNAL)
    assert r.stdout.strip() == "ok", r.stderr
