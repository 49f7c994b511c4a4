"""The processes of one agent host's task: found, counted, signalled and reaped.

Each task runs in its own process group, but a task may leave it (``setsid``, a
double fork) and outlive its parent. Without a cgroup to hold them, the agent host
makes itself a child subreaper (:func:`become_subreaper`): such orphans become its
children instead of init's, so every descendant of the host belongs to its one
running task and is counted in its memory and killed with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

import psutil

from .task_process import read_proc

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """``PR_SET_CHILD_SUBREAPER`` for this process (Linux); False where it cannot be set."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def child_pids(pid: int) -> list[int] | None:
    """The direct children of ``pid``, from ``/proc/PID/task/*/children`` (Linux): a
    few small reads, where psutil's ``children()`` reads the status of every process
    on the machine (twice per task run, it was most of an agent host's CPU per task).
    None where the kernel does not offer these files."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    out: list[int] = []
    for tid in tids:
        try:
            out += [int(x) for x in read_proc(f"/proc/{pid}/task/{tid}/children").split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # that thread ended meanwhile
            return None  # a kernel without the children files
        except OSError:
            return None
    return out


def descendant_pids(pid: int) -> list[int] | None:
    """Every descendant of ``pid`` (children first), or None (see :func:`child_pids`)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = child_pids(todo.pop())
        if kids is None:
            return None
        out += kids
        todo += kids
    return out


def no_children() -> bool:
    """Whether this process has no child at all, running or exited (one ``waitid`` that
    collects nothing); False when it cannot tell."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    except (OSError, AttributeError):  # no waitid here
        return False
    return False


class TaskTree:
    """The task processes under one agent host (``me``)."""

    def __init__(self, me: psutil.Process) -> None:
        self.me = me
        self.subreaper = False
        """Set once :func:`become_subreaper` succeeded: every descendant of ``me`` is the task's."""

    def alone(self) -> bool:
        """Whether no task process is left at all: as a subreaper, the host has no child
        (running or exited). False when it cannot tell (not a subreaper: a task's
        orphans are init's, out of sight)."""
        return self.subreaper and no_children()

    def members(self, pid: int | None) -> list[psutil.Process]:
        """The task (child ``pid``) and its descendants; as a subreaper, every
        descendant of the host, detached ones included."""
        if pid is None:
            return []
        root = self.me.pid if self.subreaper else pid
        found = descendant_pids(root)
        if found is not None:
            pids = found if self.subreaper else [pid, *found]
            out = []
            for q in pids:
                with contextlib.suppress(psutil.Error):
                    out.append(psutil.Process(q))
            return out
        try:
            if self.subreaper:
                return list(self.me.children(recursive=True))
            p = psutil.Process(pid)
            return [p, *p.children(recursive=True)]
        except psutil.Error:
            return []

    def signal(self, pgid: int | None, pid: int | None, sig: int, running: int | None) -> None:
        """``sig`` to the task's process group and to every member (other sessions too).

        A subreaper with no child at all has nothing to signal: every process of the
        group is a descendant of the task's session leader (a process joins a group only
        in its own session, and a session only by being made in it), so one of the host's."""
        if self.subreaper and no_children():
            return  # a subreaper's descendants are its children or theirs: there is none
        if pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        members = self.members(pid)
        for q in members:
            with contextlib.suppress(psutil.Error):
                q.send_signal(sig)
        if members:  # no descendant (a zombie is one until collected): nothing to collect either
            self.reap(running)

    def reap(self, running: int | None) -> None:
        """Collect exited orphans handed to this subreaper (never ``running``, the
        task's own child, whose status :class:`~core.runtimes.task_process.TaskProcess` collects)."""
        if not self.subreaper:
            return
        kids = child_pids(self.me.pid)
        with contextlib.suppress(psutil.Error):
            for q in [psutil.Process(k) for k in kids] if kids is not None else self.me.children():
                if q.pid != running and q.status() == psutil.STATUS_ZOMBIE:
                    with contextlib.suppress(ChildProcessError, OSError):
                        os.waitpid(q.pid, os.WNOHANG)

    def rss_mb(self, pid: int | None) -> float:
        total = 0
        for q in self.members(pid):
            with contextlib.suppress(psutil.Error):
                total += q.memory_info().rss
        return total / (1024 * 1024)
