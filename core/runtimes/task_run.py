"""One attempt of one task on an agent host: its state, its output lines, its reports.

Every line a task prints (stdout and stderr together) arrives at :meth:`Run.take_line`:
progress lines and partial results are taken from it, the rest is the task's output
(kept for the reports, and in full in its output file). What the run reports -- the
heartbeat about it (:meth:`Run.progress_report`) and its end (:meth:`Run.exit_report`)
-- is built here; the :class:`~core.runtimes.task_runner.TaskRunner` sends them.

Progress lines: a task may print, on stdout or stderr, lines of the form::

    OPSDECK_PROGRESS 0.42 optional message     (a fraction 0..1, or a percent like 42%)
    OPSDECK_PARTIAL {"step": 3}                (JSON object merged into the partial results)

They are reported at the next heartbeat and kept as the task's context, so a retry
on another agent starts with ``OPSDECK_RESUME_PROGRESS`` and ``OPSDECK_CONTEXT``
(the JSON partial results) in its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import random
import signal
import socket
import stat
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..private import PrivateError, new_private_dir, private_dir
from ..usage.meter import Meter
from .limits import TaskCgroup
from .output import LINE_MAX, TaskOutput
from .task_process import TaskProcess
from .tty import TaskTerminal

PROGRESS_PREFIX = "OPSDECK_PROGRESS"
PARTIAL_PREFIX = "OPSDECK_PARTIAL"
OUTPUT_KEEP = 20
PARTIAL_MAX = 64 * 1024
"""Characters of a task's partial results (as JSON) kept and reported; an update past it is refused."""
OOM_HINTS = ("MemoryError", "Cannot allocate memory", "bad_alloc", "out of memory")


def parse_progress(line: str) -> tuple[float, str] | None:
    """``OPSDECK_PROGRESS 0.42 msg`` or ``OPSDECK_PROGRESS 42% msg`` -> (0.42, "msg")."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    parts = line[len(PROGRESS_PREFIX) :].strip().split(None, 1)
    if not parts:
        return None
    raw = parts[0]
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        return None
    if value != value:  # NaN: no fraction (and it passes through min/max unclamped)
        return None
    return min(max(value, 0.0), 1.0), (parts[1] if len(parts) > 1 else "")


class Run:
    """One attempt of one task on this host."""

    def __init__(self, msg: dict[str, Any]) -> None:
        self.task: str = msg["task"]
        self.attempt: int = int(msg.get("attempt", 0))
        self.msg = msg
        self.proc: TaskProcess | None = None
        self.pgid: int | None = None
        self.create_time: float | None = None
        ctx = msg.get("context") or {}
        self.progress: float = float(ctx.get("progress", 0.0))
        self.partial: dict[str, Any] = {}
        self.output: deque[str] = deque(maxlen=OUTPUT_KEEP)
        self.new_output: list[str] = []
        self.paused = False
        self.started = time.monotonic()
        self.began = (
            time.time()
        )  # the wall clock at the start, read once: two clocks read apart differ by any preemption
        self.paused_for = 0.0
        self.paused_at: float | None = None
        self.kill_reason: str | None = None
        self.stopping = False
        self.cgroup: TaskCgroup | None = None
        self.dirty = False  # something new to report at the next heartbeat
        self.peak_rss_mb = 0.0
        self.out = TaskOutput(None)
        self.meter: Meter | None = None
        """Usage the run's output reports (OPSDECK_USAGE, Claude Code stream-json, Codex
        JSON): made with its first output (a run that prints nothing reports none)."""
        self.tty = bool(msg.get("tty"))
        self.interactive = self.tty or bool(msg.get("interactive"))
        """The task has a stdin the operator can write to (a pipe, or the pty)."""
        self.input_wait_s = float(msg.get("input_wait_s") or 10.0)
        self.terminal: TaskTerminal | None = None
        self.stdin_target: str | None = None
        """What the task's descriptor 0 is (``pipe:[N]``, ``/dev/pts/N``): reads of it are waits for input."""
        self.last_output_at = time.monotonic()
        self.waiting: str | None = None
        self.output_fd: int | None = None
        """The descriptor its output is read from while it is open (the pipe, or the pty's master)."""
        self.output_done = False
        """Its output was read to the end."""
        self.rc: int | None = None
        """The first process's exit status, once it is gone."""
        self.drain: asyncio.TimerHandle | None = None
        """The wait for the rest of its output after its exit."""
        self.ended = False
        """Its end was reported."""

    def key(self) -> tuple[str, int]:
        return (self.task, self.attempt)

    def watchdog(self) -> bool:
        """Whether the run is watched while it runs: a timeout, a memory limit, a stdin."""
        return self.interactive or bool(self.msg.get("timeout_s") or self.msg.get("memory_mb"))

    def environment(self, base: dict[str, str], agent: str) -> dict[str, str]:
        """The task's environment: the host's ``base``, the run's own variables, and
        what opsdeck tells a task (its agent, task, attempt, resumed progress and context)."""
        m = self.msg
        env = dict(base)
        env.update({str(k): str(v) for k, v in (m.get("env") or {}).items()})
        ctx = m.get("context") or {}
        env["OPSDECK_AGENT"] = agent
        env["OPSDECK_TASK"] = self.task
        env["OPSDECK_ATTEMPT"] = str(self.attempt)
        env["OPSDECK_RESUME_PROGRESS"] = str(ctx.get("progress", 0.0))
        partial = ctx.get("partial_results")
        env["OPSDECK_CONTEXT"] = json.dumps(partial) if partial else "{}"
        return env

    def paused_time(self) -> float:
        """Seconds the run has spent paused (SIGSTOPped) so far."""
        return self.paused_for + ((time.monotonic() - self.paused_at) if self.paused_at is not None else 0.0)

    def running_for(self) -> float:
        return time.monotonic() - self.started - self.paused_time()

    def started_at(self) -> float:
        """When the run began, on this machine's wall clock (seconds since the epoch): what
        a console that learns of its start late records as its time. Read at the start,
        beside the monotonic clock that ``elapsed_s`` is measured on."""
        return self.began

    def started_again(self) -> dict[str, Any]:
        """The answer to its start sent again (by a restarted console): its group, and
        when it began (the console may not have recorded its start)."""
        return {
            "t": "started",
            "task": self.task,
            "attempt": self.attempt,
            "pgid": self.pgid,
            "create_time": self.create_time,
            "started_at": round(self.started_at(), 3),
        }

    def pause(self) -> None:
        if not self.paused:
            self.paused, self.paused_at = True, time.monotonic()

    def resume(self) -> None:
        if self.paused:
            self.paused_for += time.monotonic() - (self.paused_at or time.monotonic())
            self.paused, self.paused_at = False, None

    # -- the task's output lines ------------------------------------------------------
    def take_line(self, line: str) -> None:
        """One line the task printed: progress, partial results, or output."""
        prog = parse_progress(line)
        if prog is not None:
            self.progress = prog[0]
            self.dirty = True
            if prog[1]:
                self.add_output(prog[1])
            return
        if line.startswith(PARTIAL_PREFIX):
            self.take_partial(line)
            return
        self.add_output(line)

    def take_partial(self, line: str) -> None:
        if len(line) > LINE_MAX:
            self.add_output(f"[{PARTIAL_PREFIX} line ignored: over {LINE_MAX:,} characters]")
            return
        with contextlib.suppress(json.JSONDecodeError, TypeError, ValueError):
            obj = json.loads(line[len(PARTIAL_PREFIX) :].strip())
            if isinstance(obj, dict):
                merged = {**self.partial, **obj}
                size = len(json.dumps(merged))
                if size > PARTIAL_MAX:
                    self.add_output(
                        f"[{PARTIAL_PREFIX} ignored: the partial results would be {size:,} characters, over {PARTIAL_MAX:,}]"
                    )
                    return
                self.partial = merged
                self.dirty = True

    def add_output(self, line: str) -> None:
        self.output.append(line)
        if self.out.admit(line):
            self.new_output.append(line)
        self.dirty = True

    # -- reports ----------------------------------------------------------------------
    def progress_report(self) -> dict[str, Any]:
        """A heartbeat about the run: its progress, and what is new since the last one
        (the output lines that fit the budget, a line summarising those that did not)."""
        msg: dict[str, Any] = {
            "t": "heartbeat",
            "task": self.task,
            "attempt": self.attempt,
            "progress": round(self.progress, 4),
            "paused": self.paused,
        }
        if self.dirty:
            msg["changed"] = True
            note = self.out.summary()
            if self.new_output or note:
                msg["output"], self.new_output = self.new_output + ([note] if note else []), []
            if self.partial:
                msg["partial"] = dict(self.partial)
            if self.meter is not None and self.meter.changed:
                msg["usage"] = self.meter.report()
            self.dirty = False
        return msg

    def exit_report(self, rc: int, mech_memory: str) -> dict[str, Any]:
        """The run's end as reported: ``stopped`` (asked for), ``failed`` (killed by a
        watchdog, a non-zero status, a memory limit), or ``finished``."""
        if self.cgroup is not None and self.cgroup.oom_killed() and self.kill_reason is None:
            self.kill_reason = f"memory limit exceeded (cgroup memory.max {self.msg.get('memory_mb')} MB)"
        out = list(self.output)
        base = {
            "task": self.task,
            "attempt": self.attempt,
            "rc": rc,
            "output": out[-OUTPUT_KEEP:],
            "output_file": self.out.file,
            "output_bytes": self.out.bytes_total,
            "progress": self.progress,
            "partial": self.partial,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "elapsed_s": round(self.running_for(), 3),
            "started_at": round(self.started_at(), 3),  # for a console that did not hear its start
        }
        paused = self.paused_time()
        if paused:  # elapsed_s + paused_s: its start to its end (the console's duration_s)
            base["paused_s"] = round(paused, 3)
        if self.meter is not None and self.meter.seen:
            base["usage"] = self.meter.report()
        if self.stopping:
            return {"t": "stopped", **base}
        if self.kill_reason is not None:
            return {"t": "failed", "error": self.kill_reason, **base}
        if rc == 0:
            return {"t": "finished", **base}
        err = f"exit status {rc}" if rc > 0 else f"killed by signal {signal.Signals(-rc).name}"
        mem = self.msg.get("memory_mb")
        if mem and mech_memory == "rlimit_as" and any(s in line for line in out[-5:] for s in OOM_HINTS):
            err = f"memory limit exceeded (RLIMIT_AS {mem:g} MB): {err}"
        return {"t": "failed", "error": err, **base}

    def failed_to_start(self, error: str) -> dict[str, Any]:
        """The report of a run that never ran (no process, or no limits on it)."""
        return {
            "t": "failed",
            "task": self.task,
            "attempt": self.attempt,
            "rc": None,
            "error": error,
            "output": list(self.output),
        }


class RunDirs:
    """The directories an agent host gives its runs: the run's shared directory (made
    once) and each run's own TMPDIR, both private (0700, ours), made here by the agent
    rather than by the console, whose event loop every agent's run goes through.

    A run's TMPDIR is the previous run's, renamed, when that one is still an empty
    private directory of ours and ``alone()`` says no process of an earlier run is left
    (one left could hold it, as its working directory or an open descriptor, and write
    into the next run's TMPDIR): a ``rename`` in place of a ``mkdir``, whose new inode
    and directory block were the largest part of an agent's start of a short task. A
    TMPDIR with anything left in it (or whose mode or type its task changed) stays
    where it is, for the cleanup, and the run gets a new one."""

    def __init__(self, alone: Callable[[], bool]) -> None:
        self._alone = alone
        """Whether no process of an earlier run can be left (the host's subreaper has no child)."""
        self._shared_made: str | None = None
        """The run's shared directory once it was made (checked) here."""
        self._spare: str | None = None
        """The TMPDIR of the last run that ended, to be checked and reused."""
        self._empty: tuple[int, int, int, int] | None = None
        """The device, inode and modification time of the last TMPDIR found empty (and
        stamped with that time), and its change time since: while the spare has them, no
        entry was made in it."""

    def make(self, r: Run) -> str | None:
        """Make the run's directories; why they could not be made, else None."""
        env = r.msg.get("env") or {}
        shared, tmp = env.get("OPSDECK_RUN_DIR"), env.get("TMPDIR")
        try:
            if shared and shared != self._shared_made:
                private_dir(shared)
                self._shared_made = shared
            if tmp and not self._reuse(tmp):
                new_private_dir(tmp)
        except (OSError, PrivateError) as exc:
            return f"could not create its temp directory on {socket.gethostname()}: {exc}"
        return None

    def done(self, r: Run) -> None:
        """The run ended: its TMPDIR may serve the next run."""
        self._spare = (r.msg.get("env") or {}).get("TMPDIR") or None

    def _reuse(self, tmp: str) -> bool:
        """Rename the spare TMPDIR to ``tmp`` if it may serve; whether it was. Checked
        by its name (no descriptor held: its ``dup`` for the listing, the flags and the
        rewind were half the syscalls of a run's start), and the directory renamed must
        be the one checked, by its inode (a name swapped meanwhile, for a link or
        another directory, is put back). No process of a run is left to swap it
        (``alone``); another of our uid could write into any of our directories anyway.

        It is listed only when an entry may have been made in it since it was last found
        empty: a directory's modification time changes with every entry made, linked,
        moved in or removed, and a spare found empty is given a time of its own (a random
        one, in the past), which no such change gives it. (A listing on ext4 goes through
        the hash index of even a one-block directory: most of a short run's start in the
        host.) A task that puts that time back after leaving something in it changes the
        directory's change time (which no process can set): that is noted too, after the
        stamp and after each rename, and must hold as well."""
        spare, self._spare = self._spare, None
        empty, self._empty = self._empty, None
        if spare is None or spare == tmp or os.path.dirname(spare) != os.path.dirname(tmp) or not self._alone():
            return False
        try:
            st = os.lstat(spare)
            if (
                not stat.S_ISDIR(st.st_mode)
                or st.st_uid != _UID
                or stat.S_IMODE(st.st_mode) != 0o700
                or _attributes(spare)
            ):
                return False
            listed = empty != (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
            if listed:
                with os.scandir(spare) as it:
                    if next(it, None) is not None:
                        return False
            os.rename(spare, tmp)  # an existing empty directory at tmp is replaced; anything else refuses
            moved = os.lstat(tmp)
            if (moved.st_dev, moved.st_ino) != (st.st_dev, st.st_ino):
                with contextlib.suppress(OSError):
                    os.rename(tmp, spare)  # not the directory checked: back, for the cleanup
                return False
        except OSError:
            return False
        if not listed:  # the stamp it had, and the change time the rename gave it
            self._empty = (st.st_dev, st.st_ino, st.st_mtime_ns, moved.st_ctime_ns)
        else:
            self._empty = _stamped(tmp, moved)
        return True


def _stamped(path: str, st: os.stat_result) -> tuple[int, int, int, int] | None:
    """Give the empty directory ``path`` (``st``) a modification time no change of its
    entries gives it: the kernel stamps a change with the time it is made, and this one
    is random, over a second before now (a clock stepped back that far would still have
    to hit it to the nanosecond). Its device, inode, modification and change times as
    they are then (None: not set)."""
    mtime = time.time_ns() - 1_000_000_000 - random.randrange(1_000_000_000)
    try:
        os.utime(path, ns=(st.st_atime_ns, mtime), follow_symlinks=False)
        now = os.lstat(path)
    except OSError:
        return None
    return (now.st_dev, now.st_ino, now.st_mtime_ns, now.st_ctime_ns)


_UID = os.getuid()
"""This process's user (it never changes it)."""


def _attributes(path: str) -> bool:
    """Whether a directory carries extended attributes a task may have set on it (a
    ``user.`` value, an ACL: data or access the next run would inherit); the security
    modules' labels (``security.``) are every file's and are not counted."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENOTSUP:  # a file system without them: none
            return False
        raise
    return any(not n.startswith("security.") for n in names)
