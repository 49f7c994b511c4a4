"""A task's first process: spawned by the agent host, its exit seen through a pidfd.

The host spawns with ``posix_spawn`` (glibc: ``vfork`` + ``exec``, the set-up done in C:
nothing runs in the child but that, so a spawn costs what the kernel makes it cost, not
a copy of a Python process, nor Popen's Python-side work), or with :class:`subprocess.Popen`
(also ``vfork``) for what ``posix_spawn`` cannot do here (a pty's controlling terminal;
a working directory in a process with other threads: the host's own is changed around
the spawn, see :func:`_enter`). It holds the task's descriptors itself: the read end of its
output pipe (stdout and stderr together) and, for an interactive task, the write end of
its stdin. Its exit is a readable pidfd (Linux 5.3): one wake-up when it ends, none while
it runs (asyncio's subprocess transport waits for the pipes to close as well before
3.12, and costs a transport, a protocol and stream objects per task). Where
``pidfd_open`` is missing, the exit is looked at after 1, 2, 4 ... ms up to
:data:`EXIT_POLL_S`. The watch may start a while after the spawn (``watch_after``), its
owner looking for the exit meanwhile (:meth:`TaskProcess.poll_exit`, when the output
ends): a short task's end is then seen with its output's, and no pidfd is opened for it.

The status is collected with ``waitpid`` on this pid only, so the subreaper's sweep of
orphans (:meth:`~core.runtimes.task_tree.TaskTree.reap`, which skips the running task's
pid) never takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

EXIT_POLL_S = 0.05
"""The longest wait between two looks at a running task's exit status (no pidfd)."""
EXIT_POLL_FIRST_S = 0.001
"""The first wait: it doubles up to EXIT_POLL_S."""

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_TICK_NS = 1_000_000_000 // _CLOCK_TICKS
_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)
"""The clock a process's start is counted on in ``/proc/PID/stat`` (Linux only)."""
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT)
"""Signals a task gets back at their defaults: those Python ignores (Popen's
``restore_signals``), and SIGINT, which the agent host ignores (an ignored disposition
survives exec: a Ctrl-C typed to the task would reach it ignored). A task also starts
with no signal blocked: the thread a Ray async actor runs its calls in blocks SIGINT,
and a signal mask survives exec too."""


def read_proc(path: str) -> bytes:
    """The whole of a small ``/proc`` file: ``open``, ``read`` until its end, ``close``
    (Python's ``open()`` adds an ``fstat``, an ``isatty`` and ``lseek`` calls to each)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
        if data:
            while more := os.read(fd, 65536):
                data += more
        return data
    finally:
        os.close(fd)


def read_boot_time() -> float:
    """When this machine booted: ``btime`` in ``/proc/stat``, as psutil reads it."""
    data = read_proc("/proc/stat")
    at = data.find(b"\nbtime ")
    if at < 0:
        raise OSError("no btime line in /proc/stat")
    return float(data[at + 7 : data.index(b"\n", at + 7)])


_btime: list[float] = []
"""The ``btime`` last read from ``/proc/stat`` (none yet)."""


def boot_time() -> float:
    """When this machine booted, as psutil reads it on each call (a clock stepped since
    shifts it). The kernel writes ``btime`` as the whole seconds of the real-time clock
    less the boot clock; when both clocks, read here, give the second last read (and
    the readings cannot straddle a second's end), that is still it: no read of
    ``/proc/stat`` (the kernel sums every CPU's counters to write it), which is only
    read again once the clocks disagree with it (a step or a slew of the real-time
    clock across a second)."""
    if _BOOTTIME is not None and _btime:
        b1 = time.clock_gettime_ns(_BOOTTIME)
        real = time.time_ns()
        b2 = time.clock_gettime_ns(_BOOTTIME)
        low, high = (real - b2) // 1_000_000_000, (real - b1) // 1_000_000_000
        if low == high == _btime[0]:
            return _btime[0]
    bt = read_boot_time()
    _btime[:] = [bt]
    return bt


def create_time(pid: int, boot: float | None = None) -> float | None:
    """The process's create time as psutil computes it (its start in clock ticks since
    boot, from ``/proc/PID/stat``, plus the boot time: ``boot`` when the caller read it
    already), from one small read; None when it cannot be read (gone, or not Linux)."""
    try:
        data = read_proc(f"/proc/{pid}/stat")
        fields = data[data.rindex(b")") + 2 :].split()
        return float(fields[19]) / _CLOCK_TICKS + (boot_time() if boot is None else boot)
    except (OSError, ValueError, IndexError):
        return None


def _boot_ns() -> int | None:
    return time.clock_gettime_ns(_BOOTTIME) if _BOOTTIME is not None else None


def start_ticks(before: int | None, after: int | None) -> int | None:
    """The start of a process created between two readings of the boot clock (ns), in
    the clock ticks ``/proc/PID/stat`` gives (its start in ns since boot, truncated to
    ticks): known when both readings fall in one tick, else None."""
    if before is None or after is None or before // _TICK_NS != after // _TICK_NS:
        return None
    return before // _TICK_NS


async def _writable(fd: int) -> None:
    """Until ``fd`` (a task's stdin pipe) takes more bytes."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _wake, fut)
    try:
        await fut
    finally:
        loop.remove_writer(fd)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _which(name: str, env: dict[str, str]) -> str:
    """The file a command name runs, searched on the task's own PATH as ``execvpe``
    (and Popen) search it, at each start (a program installed meanwhile is found as
    Popen would find it); FileNotFoundError when it is on none."""
    if os.sep in name:
        return name
    for d in os.get_exec_path(env):
        f = os.path.join(d, name)
        if os.access(f, os.X_OK) and not os.path.isdir(f):
            return f
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)


def _sigint_default(argv: list[str], env: dict[str, str], cwd: str) -> list[str]:
    """``argv`` to start through Popen with SIGINT at its default and not blocked where
    this process ignores it or this thread blocks it (both survive exec, and no
    ``preexec_fn`` may run in a process with other threads): ``env --default-signal=INT
    --`` first (it resets and unblocks it), which execs it as the same process; ``argv``
    itself where neither is so or there is no such ``env`` (:func:`_default_signal_env`).
    The program is looked for here first, so a missing one raises as Popen's own start
    does, naming it (``env`` would only say so in the task's output); a relative name is
    the task's ``cwd``'s, as the child resolves it after changing to it."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if not ignored and signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, ()):
        return argv
    tool = _default_signal_env()
    if tool is None:
        return argv
    program = os.path.join(cwd, _which(argv[0], env))
    if not os.access(program, os.X_OK):
        os.stat(program)  # FileNotFoundError naming it when it is not there
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    return [tool, "--default-signal=INT", "--", *argv]


_ENV_FOUND: list[str | None] = []
"""The probe's answer once it is definite (``env`` absent, or it ran and said yes or no)."""


def _default_signal_env() -> str | None:
    """The ``env`` program that takes ``--default-signal`` (GNU coreutils 8.31 and later),
    looked for at the first start that needs it; None where there is none. A probe that
    could not run (no process to spare, a timeout) answers None for this start only and is
    asked again at the next: a passing shortage does not leave every later task with SIGINT
    ignored."""
    if _ENV_FOUND:
        return _ENV_FOUND[0]
    path = shutil.which("env")
    answer: str | None = None
    if path is not None:
        try:
            done = subprocess.run(
                [path, "--default-signal=INT", "--", "true"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        answer = path if done.returncode == 0 else None
    _ENV_FOUND.append(answer)
    return answer


def _spawnp(argv: list[str], env: dict[str, str], kw: dict[str, Any]) -> int:
    """``posix_spawnp``: glibc looks the name up on this process's PATH as ``execvp``
    does (the task's own PATH when they are the same); a name on none of its
    directories is an error naming it, as :func:`_which` names it."""
    try:
        return os.posix_spawnp(argv[0], argv, env, **kw)
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, argv[0]) from None
        raise


def _enter(cwd: str | None) -> int | None:
    """Make ``cwd`` this process's working directory, which a child of ``posix_spawn``
    starts in (Python's takes no directory); a descriptor of the one left, to go back to
    (None: no ``cwd``, nothing changed). The directory is the whole process's: only
    changed while no other thread runs. A ``cwd`` that cannot be entered raises as
    Popen's ``cwd`` does (the error names it), and nothing is changed."""
    if cwd is None:
        return None
    back = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(cwd)
    except BaseException:
        os.close(back)
        raise
    return back


class TaskProcess:
    """The task's first process: its pid, its output, its stdin, its exit."""

    def __init__(
        self,
        pid: int,
        popen: subprocess.Popen[bytes] | None,
        output: int | None,
        stdin: int | None,
        ticks: int | None = None,
        watch_after: float = 0.0,
    ) -> None:
        self.pid = pid
        self.ticks = ticks
        """Its start in clock ticks since boot when the spawn's clock readings tell it (:func:`start_ticks`)."""
        self.popen = popen
        """The Popen of a run spawned through it (a cwd or a pty), which then collects the status."""
        self.returncode: int | None = None
        self.stdout = output
        """The read end of the task's output pipe, non-blocking (None under a pty: the terminal reads it)."""
        if output is not None:
            os.set_blocking(output, False)
        self.stdin = stdin
        """The write end of an interactive task's stdin pipe (non-blocking), else None."""
        if stdin is not None:
            os.set_blocking(stdin, False)
        self.loop = loop = asyncio.get_running_loop()
        """The loop its output and exit are followed on (asked once: each ask is a ``getpid``)."""
        self._exit: asyncio.Future[int] = loop.create_future()
        self._on_exit: list[Callable[[int], None]] = []
        self._pidfd: int | None = None
        self._poller: asyncio.Task[None] | None = None
        self._watch_timer = loop.call_later(watch_after, self.watch) if watch_after > 0 else None
        if self._watch_timer is None:
            self.watch()

    def watch(self) -> None:
        """Watch for the exit from now on (its pidfd, else the poller), once."""
        if self._watch_timer is not None:
            self._watch_timer.cancel()
            self._watch_timer = None
        if self._pidfd is not None or self._poller is not None or self._exit.done():
            return
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._poller = self.loop.create_task(self._poll_exit())
        else:
            self.loop.add_reader(self._pidfd, self._collect)

    def poll_exit(self) -> int | None:
        """The exit status if the process has ended (its ``on_exit`` callbacks called
        now), else None: one ``waitpid``."""
        rc = self._poll()
        if rc is not None:
            self._ended(rc)
        return rc

    @classmethod
    def spawn(
        cls,
        argv: list[str],
        env: dict[str, str],
        cwd: str | None,
        interactive: bool,
        terminal: dict[str, Any] | None = None,
        watch_after: float = 0.0,
    ) -> TaskProcess:
        """Start ``argv`` in a session of its own: stdout and stderr into one pipe, stdin
        /dev/null (a pipe when ``interactive``); or the pty's ``terminal`` arguments. Its
        exit is watched from the start, or from ``watch_after`` seconds on (:meth:`watch`).

        ``posix_spawn`` (glibc: ``clone(CLONE_VM|CLONE_VFORK)`` then ``exec``, the file
        actions and ``setsid`` done in C) where it can: Python's ``posix_spawn`` cannot
        change the child's directory, so a ``cwd`` is this process's own around the spawn
        (a run with a ``cwd`` in a process with other threads, where that would be seen,
        goes through Popen), and a pty needs its ``TIOCSCTTY`` (Popen). Every descriptor Python opens is close-on-exec,
        so the child gets only 0, 1 and 2 either way; SIGPIPE and SIGXFSZ are reset to
        their defaults, as Popen resets them, and SIGINT too (through Popen without a
        terminal, where nothing may run between fork and exec, by an exec prefix:
        :func:`_sigint_default`)."""
        if terminal is not None:
            before = _boot_ns()
            tty = subprocess.Popen(argv, env=env, cwd=cwd, start_new_session=True, **terminal)
            return cls(tty.pid, tty, None, None, start_ticks(before, _boot_ns()), watch_after)
        out_r, out_w = os.pipe()
        in_r, in_w = os.pipe() if interactive else (None, None)
        popen: subprocess.Popen[bytes] | None = None
        before = _boot_ns()
        try:
            if cwd is None or threading.active_count() == 1:
                stdin: tuple[Any, ...] = (
                    (os.POSIX_SPAWN_DUP2, in_r, 0)
                    if in_r is not None
                    else (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)
                )
                actions = [stdin, (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, out_w, 2)]
                kw: dict[str, Any] = {
                    "setsid": True,
                    "setsigdef": _DEFAULT_SIGNALS,
                    "setsigmask": (),
                    "file_actions": actions,
                }
                back = _enter(cwd)
                try:
                    if os.sep not in argv[0] and env.get("PATH") == os.environ.get("PATH"):
                        pid = _spawnp(argv, env, kw)  # the same PATH: glibc searches it, in C
                    else:
                        pid = os.posix_spawn(_which(argv[0], env), argv, env, **kw)
                finally:
                    if back is not None:
                        os.fchdir(back)
                        os.close(back)
            else:
                popen = subprocess.Popen(
                    _sigint_default(argv, env, cwd),
                    env=env,
                    cwd=cwd,
                    stdin=in_r if in_r is not None else subprocess.DEVNULL,
                    stdout=out_w,
                    stderr=out_w,
                    start_new_session=True,
                )
                pid = popen.pid
            after = _boot_ns()
        except BaseException:
            for fd in (out_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in (out_w, in_r):
                if fd is not None:
                    os.close(fd)
        return cls(pid, popen, out_r, in_w, start_ticks(before, after), watch_after)

    def create_time(self) -> float | None:
        """Its create time as psutil computes it (:func:`create_time`): from the start its
        spawn's clock readings tell, else read from ``/proc`` (a spawn across a tick's
        end, or no boot clock), which costs a read of a process that is just starting."""
        if self.ticks is None:
            return create_time(self.pid)
        try:
            return self.ticks / _CLOCK_TICKS + boot_time()
        except (OSError, ValueError):
            return None

    def _poll(self) -> int | None:
        """The exit status if the process has ended (``waitpid`` of this pid only)."""
        if self.returncode is None:
            if self.popen is not None:
                self.returncode = self.popen.poll()
            else:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:  # collected by someone else: its status is lost
                    self.returncode = 255  # what asyncio's child watchers report then
                else:
                    if pid:
                        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    async def wait(self) -> int:
        """The exit status as soon as the process is gone (negative: killed by that signal)."""
        self.watch()
        return await asyncio.shield(self._exit)

    def on_exit(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(status)`` when the process is gone, from the loop's callback that
        saw it go (no task, no future's hop): at once if it is gone already. Seen once it
        is watched, or by :meth:`poll_exit`."""
        if self._exit.done():
            callback(self._exit.result())
        else:
            self._on_exit.append(callback)

    def _collect(self) -> None:
        """The pidfd is readable: the process has exited; take its status."""
        rc = self._poll()
        if rc is None:
            return  # not yet reapable (a spurious wake-up)
        self._ended(rc)

    async def _poll_exit(self) -> None:
        wait = EXIT_POLL_FIRST_S
        while (rc := self._poll()) is None:
            await asyncio.sleep(wait)
            wait = min(wait * 2, EXIT_POLL_S)
        self._ended(rc)

    def _ended(self, rc: int) -> None:
        if self._watch_timer is not None:
            self._watch_timer.cancel()
            self._watch_timer = None
        if self._pidfd is not None:
            self.loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if not self._exit.done():
            self._exit.set_result(rc)
            callbacks, self._on_exit = self._on_exit, []
            for cb in callbacks:
                cb(rc)

    async def write(self, data: bytes, timeout: float) -> int:
        """Write all of ``data`` to the task's stdin within ``timeout`` seconds."""
        fd = self.stdin
        if fd is None:
            raise OSError("the task's stdin is not a pipe")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        done = 0
        while done < len(data):
            try:
                done += os.write(fd, data[done:])
            except BlockingIOError:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"the task's stdin took {done} of {len(data)} bytes in {timeout:g}s") from None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_writable(fd), left)
        return done

    def close(self) -> None:
        """Let go of the task's descriptors (after its end)."""
        for fd in (self.stdout, self.stdin):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.stdout = self.stdin = None
