"""psutil sampling of each agent's process tree and of the whole machine.

An agent's usage is its host process plus every descendant (the task and whatever
the task started): CPU as percent of one core (so 2 busy cores read 200) and RSS in
MB. psutil's ``cpu_percent`` measures since the previous call on the same Process
object, so the objects are kept between samples, keyed by (pid, create time) so a
reused pid is never mistaken for the process we measured before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

import psutil

from .task_process import boot_time, create_time
from .task_tree import descendant_pids


@dataclass(frozen=True)
class TreeUsage:
    cpu_pct: float
    rss_mb: float
    processes: int


@dataclass(frozen=True)
class TaskMeasure:
    """One task's processes measured now: what an action that pauses or stops them
    recovers is computed from these, never from the task's reservation."""

    cpu_pct: float
    """Percent of one core since the previous sample of the same processes."""
    rss_mb: float
    processes: int
    stopped: bool
    """Every process is in state T (SIGSTOPped): it cannot use CPU until SIGCONT."""
    pid: int | None
    create_time: float | None
    basis: str
    """``measured`` (psutil) or ``simulated`` (the simulated runtime's model)."""


class Sampler:
    """Keeps psutil handles between samples so CPU percentages are real deltas."""

    def __init__(self) -> None:
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._seen: set[tuple[int, float]] | None = None
        """The handles the last :meth:`trees` pass used (what :meth:`forget_dead` keeps)."""
        psutil.cpu_percent(None)  # prime the system-wide delta

    def _handle(self, proc: psutil.Process) -> psutil.Process:
        try:
            key = (proc.pid, proc.create_time())
        except psutil.Error:
            return proc
        known = self._procs.get(key)
        if known is None:
            self._procs[key] = proc
            with contextlib.suppress(psutil.Error):
                proc.cpu_percent(None)  # first call primes; it reads 0
            return proc
        return known

    def _members(self, pid: int, create_time: float | None) -> list[psutil.Process] | None:
        """``pid`` (the process created at ``create_time``) and its descendants; None if gone."""
        try:
            root = psutil.Process(pid)
            if create_time is not None and abs(root.create_time() - create_time) > 0.05:
                return None
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return None

    def _sum(self, members: list[psutil.Process], skip_zombies: bool) -> tuple[float, int, int, bool]:
        """(CPU percent, RSS bytes, processes, all stopped) over ``members``."""
        cpu = 0.0
        rss = n = 0
        stopped = True
        for p in members:
            h = self._handle(p)
            with contextlib.suppress(psutil.Error):
                st = h.status() if skip_zombies else ""
                if st == psutil.STATUS_ZOMBIE:
                    continue
                cpu += h.cpu_percent(None)
                rss += h.memory_info().rss
                n += 1
                stopped = stopped and st in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
        return cpu, rss, n, stopped

    def tree(self, pid: int, create_time: float | None = None) -> TreeUsage | None:
        """Usage of ``pid`` and its descendants; None if that process is gone."""
        members = self._members(pid, create_time)
        if members is None:
            return None
        cpu, rss, n, _ = self._sum(members, skip_zombies=False)
        return TreeUsage(round(cpu, 2), round(rss / (1024 * 1024), 1), n)

    def _at(self, pid: int, boot: float) -> tuple[tuple[int, float], psutil.Process] | None:
        """The kept handle of ``pid`` and its key (a new handle, primed, for a process not
        seen before), told apart from a reused pid by its create time read from ``/proc``;
        None if gone."""
        ct = create_time(pid, boot)
        if ct is None:
            return None
        key = (pid, ct)
        known = self._procs.get(key)
        if known is None:
            try:
                known = psutil.Process(pid)
            except psutil.Error:
                return None
            self._procs[key] = known
            with contextlib.suppress(psutil.Error):
                known.cpu_percent(None)  # first call primes; it reads 0
        return key, known

    def trees(self, roots: dict[str, tuple[int, float | None]]) -> dict[str, TreeUsage | None]:
        """Usage of several trees, each walked down from its root through
        ``/proc/PID/task/*/children`` (a few small reads per process of the tree: not
        a read of every process on the machine, as ``process_iter`` is; it was most of
        the console's CPU in the sampling loop). Handles of processes not seen in a
        pass are dropped by :meth:`forget_dead` (they ended)."""
        boot = boot_time()
        seen: set[tuple[int, float]] = set()
        ppids: dict[int, list[int]] | None = None
        out: dict[str, TreeUsage | None] = {}
        for name, (pid, ct) in roots.items():
            root = self._at(pid, boot)
            if root is None or (ct is not None and abs(root[0][1] - ct) > 0.05):
                out[name] = None
                continue
            below = descendant_pids(pid)
            if below is None:  # no children files: one pass over the process table for all roots
                ppids = ppids if ppids is not None else _children_map()
                below = _below(pid, ppids)
            cpu = 0.0
            rss = n = 0
            for q in [pid, *below]:
                at = root if q == pid else self._at(q, boot)
                if at is None:
                    continue
                key, h = at
                try:
                    cpu += h.cpu_percent(None)
                    rss += h.memory_info().rss
                except psutil.Error:
                    continue
                n += 1
                seen.add(key)
            out[name] = TreeUsage(round(cpu, 2), round(rss / (1024 * 1024), 1), n)
        self._seen = seen
        return out

    def group(self, pid: int, create_time: float | None) -> TaskMeasure | None:
        """A task's tree measured now (CPU as the delta since this sampler last read the
        same processes), with whether every member is stopped; None once it is gone."""
        members = self._members(pid, create_time)
        if members is None:
            return None
        cpu, rss, n, stopped = self._sum(members, skip_zombies=True)
        if n == 0:
            return None
        return TaskMeasure(round(cpu, 2), round(rss / (1024 * 1024), 2), n, stopped, pid, create_time, "measured")

    def system(self) -> tuple[float, float]:
        """(CPU percent of all cores, memory percent used) of the machine."""
        return round(psutil.cpu_percent(None), 2), round(psutil.virtual_memory().percent, 2)

    def forget_dead(self) -> None:
        """Drop handles of processes that have exited: each one looked at, except those
        the last :meth:`trees` pass just measured (alive then: a task's processes, the
        hosts; what it did not see is mostly a run that ended)."""
        seen, self._seen = self._seen or set(), None
        for key, p in list(self._procs.items()):
            if key not in seen and not p.is_running():
                del self._procs[key]


def _children_map() -> dict[int, list[int]]:
    """Every process's children, from one pass over the process table."""
    children: dict[int, list[int]] = {}
    for p in psutil.process_iter(["ppid"]):
        ppid = p.info.get("ppid")
        if ppid is not None:
            children.setdefault(ppid, []).append(p.pid)
    return children


def _below(pid: int, children: dict[int, list[int]]) -> list[int]:
    """The descendants of ``pid`` in a children map."""
    out: list[int] = []
    seen: set[int] = set()
    stack = list(children.get(pid, ()))
    while stack:
        q = stack.pop()
        if q in seen:  # a set: the list's membership test made a large tree quadratic
            continue
        seen.add(q)
        out.append(q)
        stack.extend(children.get(q, ()))
    return out


def same_process(pid: int, create_time: float) -> bool:
    """Is ``pid`` still the process that was created at ``create_time``? (never pid alone)"""
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - create_time) < 0.05 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def process_ended(pid: int, create_time: float | None, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds, without blocking the loop, for ``pid`` (the process
    created at ``create_time``; None: an unreaped child of ours, whose pid cannot be
    reused) to end; True once it has. Woken by its pidfd, not by polling."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # no such process: ended (and reaped)
        return True
    try:
        if create_time is not None and not same_process(pid, create_time):
            return True  # ended (a zombie), or the pid is another process's now
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await asyncio.wait_for(readable, timeout)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)
        return True
    finally:
        os.close(fd)
