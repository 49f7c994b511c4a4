"""The agent hosts' launcher: one interpreter that imports the agent host once and forks a host per request.

A fresh interpreter importing :mod:`.agent_host` costs 60-70 ms of CPU (over 0.1 s on a
loaded machine); twenty of them were most of a short run. The local runtime starts this
process instead (``python -m core.runtimes.zygote``, once per console), and it forks each
host from its already imported modules. Its only thread is the main one when it forks,
and it never runs an event loop: each child starts from a clean state.

Each child does what ``python -m core.runtimes.agent_host ARGS`` does: its own session
(it outlives the console and this launcher), stdin from ``/dev/null``, its log file as
stdout and stderr, the console's cwd and environment, :func:`.agent_host.main` on the
options. This process is the hosts' parent: it reaps each and reports its exit status.

The console speaks JSON lines over a socketpair (the fd passed as ``--fd``):

    console -> launcher  {"op": "spawn", "id": N, "argv": [...], "log": PATH, "cwd": DIR, "env": {...}}
                         {"op": "log", "path": PATH}   (its own output from now on; before: /dev/null)
    launcher -> console  {"t": "spawned", "id": N, "pid": P, "create_time": T}
                         {"t": "listening", "pid": P}   (the host's socket listens: connect now)
                         {"t": "failed", "id": N, "error": "..."}
                         {"t": "exited", "pid": P, "rc": RC}   (RC as ``Popen.returncode``: -SIG when killed)

Hosts start a few at a time (:data:`STARTING_MAX`, the CPUs this process may use): the
next is forked once one that is starting listens (it says so on a pipe), ended, or has
been starting for :data:`START_SLOT_S`. Twenty starting at once would share the CPU and
all listen late, the first of them (the first task's) as late as the last; one by one, the
first listens after one host's start and the run begins while the others start.

When the console's end closes (it exited or was killed), the launcher exits; the hosts
live on in their sessions, as when each was its own interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import selectors
import shlex
import signal
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from ..private import PrivateError, open_private
from . import agent_host
from .task_process import create_time

HOST_NAME = "opsdeck-host"
"""A forked host's process name (``/proc/PID/comm``), and the start of its command line."""
REQUEST_MAX = 1024 * 1024
"""Bytes of one request past which the console's channel is taken for broken (the launcher exits)."""
STARTING_MAX = max(1, len(os.sched_getaffinity(0)))
"""Hosts forked and not yet listening at one time: one per CPU this process may use."""
START_SLOT_S = 0.5
"""Seconds a starting host holds its place before the next is forked anyway (one slow to
start, on a loaded machine, does not hold the others back for long)."""


def _title_setter() -> Callable[[str], None] | None:
    """setproctitle's, imported here once (before any fork); None in an environment
    installed before it was a dependency: there a host keeps the launcher's command line
    (and the launcher's log says so, :func:`say_untitled`)."""
    try:
        from setproctitle import setproctitle
    except ImportError:
        return None
    return setproctitle


SET_TITLE = _title_setter()
UNTITLED = (
    "host launcher: setproctitle is not installed (a dependency of opsdeck: `pip install -e .` "
    "installs it): ps shows each forked agent host with this launcher's command line, its "
    "process name opsdeck-host"
)


def say_untitled() -> None:
    """In the launcher's output (its log), where its hosts cannot set their command line."""
    if SET_TITLE is None:
        print(UNTITLED, file=sys.stderr, flush=True)


def name_host(argv: list[str]) -> None:
    """Name this (forked) host for ``ps``: its command line ``opsdeck-host --agent ID ...``
    (what ``python -m core.runtimes.agent_host`` would show, not the launcher's, which every
    host would share otherwise), its process name (``/proc/self/comm``) ``opsdeck-host``."""
    if SET_TITLE is not None:
        SET_TITLE(f"{HOST_NAME} {shlex.join(argv)}")  # also sets comm to its first 15 bytes
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write(HOST_NAME)


def _send(control: socket.socket, msg: dict[str, Any]) -> None:
    control.sendall((json.dumps(msg, separators=(",", ":")) + "\n").encode())


def _close_inherited(keep: int) -> None:
    """Close every descriptor above stderr but ``keep``: the console's channel, the
    selector, the other hosts' pidfds and pipes (a host keeps nothing of the launcher's)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _listening(ready: int) -> Callable[[], None]:
    """What the host calls once its socket listens: a byte on its pipe to the launcher."""

    def say() -> None:
        with contextlib.suppress(OSError):
            os.write(ready, b"L")
        with contextlib.suppress(OSError):
            os.close(ready)

    return say


def _child(req: dict[str, Any], log: int, ready: int) -> NoReturn:
    """In the forked child: become the host (never returns); ``ready``: its pipe's end."""
    rc = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        _close_inherited(ready)
        name_host(list(req["argv"]))
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        rc = agent_host.main(list(req["argv"]), _listening(ready))
    except SystemExit as exc:  # argparse on bad options: its message is in the log
        rc = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # noqa: BLE001 - whatever ends the host, the launcher's loop must not run here
        traceback.print_exc()
    agent_host.exit_now(rc)


@dataclass
class Starting:
    """A host forked and not yet listening: the launcher's end of its pipe."""

    pid: int
    until: float
    """When it stops holding its place among the starting (:data:`START_SLOT_S`)."""
    holds: bool = True


class Launcher:
    """The launcher's loop: requests in, forks (a few starting at a time), reaps, reports."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.sel = selectors.DefaultSelector()
        self.sel.register(control, selectors.EVENT_READ, None)
        self.buf = b""
        self.queue: deque[dict[str, Any]] = deque()
        """Requests to spawn not forked yet (in the order asked)."""
        self.starting: dict[int, Starting] = {}
        """By the launcher's end of each one's pipe."""

    def serve(self) -> int:
        while True:
            for key, _ in self.sel.select(self.timeout()):
                if key.data is None:
                    if not self.read():
                        self.reap_ended()
                        return 0
                elif isinstance(key.data, Starting):
                    self.listened(key.fd, key.data)
                else:
                    self.reap(key.fileobj, key.data)  # type: ignore[arg-type]
            self.fork_next()

    def timeout(self) -> float | None:
        """Until the first starting host's place frees (None: no wait is timed)."""
        held = [s.until for s in self.starting.values() if s.holds]
        return None if not held or not self.queue else max(0.0, min(held) - time.monotonic())

    def fork_next(self) -> None:
        """Fork those asked for while fewer than :data:`STARTING_MAX` hold a place."""
        now = time.monotonic()
        for s in self.starting.values():
            if s.holds and now >= s.until:
                s.holds = False
        while self.queue and sum(s.holds for s in self.starting.values()) < STARTING_MAX:
            self.spawn(self.queue.popleft())

    def read(self) -> bool:
        """Take the requests that arrived; False once the console's end is closed."""
        try:
            data = self.control.recv(65536)
        except OSError:
            return False
        if not data:
            return False
        self.buf += data
        while b"\n" in self.buf:
            if self.console_done():
                return False  # the run is ending: the hosts still asked for are not forked
            line, self.buf = self.buf.split(b"\n", 1)
            req = json.loads(line)
            if req.get("op") == "log":
                self.log_to(req.get("path"))
            else:
                self.queue.append(req)
        if len(self.buf) > REQUEST_MAX:
            print(f"host launcher: a request over {REQUEST_MAX:,} bytes; exiting", file=sys.stderr, flush=True)
            return False
        return True

    def log_to(self, path: Any) -> None:
        """Write this process's output to ``path`` from now on (a launcher started before
        the run directory was made drops it until then); left as it is if it cannot be opened."""
        try:
            fd = open_private(path)
        except (OSError, PrivateError, TypeError):
            return
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        say_untitled()  # said before the log was named went nowhere

    def console_done(self) -> bool:
        """Has the console closed its end (or only its sending side: no more hosts)?"""
        try:
            return self.control.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def spawn(self, req: dict[str, Any]) -> None:
        ident = req.get("id")
        try:
            log = open_private(req["log"])
        except (OSError, PrivateError, KeyError, TypeError) as exc:
            _send(self.control, {"t": "failed", "id": ident, "error": f"cannot open the host's log: {exc}"})
            return
        ready, theirs = os.pipe()
        try:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            try:
                pid = os.fork()
            except OSError as exc:
                os.close(ready)
                _send(self.control, {"t": "failed", "id": ident, "error": f"fork: {exc}"})
                return
            if pid == 0:
                _child(req, log, theirs)
        finally:
            os.close(log)
            os.close(theirs)
        # Its pipe reads its word once it listens, or its end (then it never will).
        self.starting[ready] = Starting(pid, time.monotonic() + START_SLOT_S)
        self.sel.register(ready, selectors.EVENT_READ, self.starting[ready])
        # Unreaped until its pidfd says it ended: the pid is the child's while we read its start.
        pidfd = os.pidfd_open(pid)
        self.sel.register(pidfd, selectors.EVENT_READ, pid)
        try:
            _send(self.control, {"t": "spawned", "id": ident, "pid": pid, "create_time": create_time(pid)})
        except OSError:
            # The console's end is closed: no console knows this host (it has no row to be
            # adopted by), so it would only wait out its orphan timeout. Our unreaped child.
            os.kill(pid, signal.SIGKILL)
            raise

    def listened(self, ready: int, s: Starting) -> None:
        """A starting host's pipe: its word that it listens (said to the console), or its
        end before it did. Either way its place frees."""
        try:
            said = os.read(ready, 1)
        except OSError:
            said = b""
        self.sel.unregister(ready)
        os.close(ready)
        del self.starting[ready]
        if said:
            _send(self.control, {"t": "listening", "pid": s.pid})

    def reap_ended(self) -> None:
        """On leaving: reap the hosts that have already ended (their CPU time is counted in
        the launcher's, so in the console's); those still running live on."""
        for key in list(self.sel.get_map().values()):
            if isinstance(key.data, int) and os.waitpid(key.data, os.WNOHANG)[0]:
                self.sel.unregister(key.fileobj)

    def reap(self, pidfd: int, pid: int) -> None:
        self.sel.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        _send(self.control, {"t": "exited", "pid": pid, "rc": os.waitstatus_to_exitcode(status)})


def warm_up() -> None:
    """Before any fork: do once here what every host would do first (parse its options,
    make and close an event loop), so that what these make on first use (compiled
    patterns, caches) is shared by the children instead of made again in each."""
    agent_host.OPTIONS.parse_args(["--agent", "warm-up", "--socket", "-", "--secret-file", "-"])
    asyncio.new_event_loop().close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zygote", description="opsdeck agent host launcher (started by the local runtime)")
    p.add_argument("--fd", type=int, required=True, help="the console's end of the socketpair")
    p.add_argument("--run-dir", required=True, help="the run's private directory (named so that ps shows whose)")
    args = p.parse_args(argv)
    say_untitled()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the console's terminal is for the console
    control = socket.socket(fileno=args.fd)
    warm_up()
    gc.collect()
    gc.freeze()  # the imported modules' objects: not scanned, so not copied, in each child
    try:
        return Launcher(control).serve()
    except (OSError, ValueError) as exc:  # the console's channel broke, or sent garbage
        print(f"host launcher: {exc!r}; exiting", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    agent_host.exit_now(main())
