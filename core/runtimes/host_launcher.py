"""The console's side of the agent hosts' launcher (:mod:`.zygote`): requests, pids, exit statuses.

One launcher process per console forks the agent hosts from its imported modules
(one interpreter start instead of one per host). A host it forks is its child, not
the console's: the launcher reaps it and reports how it ended, which :class:`Launched`
holds for the died reason. When the launcher is gone (it died, or could not start),
:attr:`HostLauncher.broken` says why and the hosts start as processes of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..private import PrivateError
from .launching import host_env, start_launcher, take_early
from .sampler import process_ended, same_process
from .wire import encode, messages

CLOSE_WAIT_S = 2.0
"""How long a closed launcher is given to exit before it is killed."""


def exit_status(returncode: int | None) -> str | None:
    """How a process ended (``exit status N`` / ``killed by SIGX``), None while it runs
    (``returncode`` as :attr:`subprocess.Popen.returncode`)."""
    if returncode is None:
        return None
    return "exit status " + str(returncode) if returncode >= 0 else "killed by " + signal.Signals(-returncode).name


async def until(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event``, ``timeout`` seconds at most: whether it is set."""
    if not event.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
    return event.is_set()


@dataclass
class Launched:
    """A host asked of the launcher: its pid once forked, its exit status once reaped."""

    ident: int
    pid: int | None = None
    create_time: float | None = None
    returncode: int | None = None
    error: str | None = None
    """Why it was not forked (the launcher refused, or is gone): the host is not running."""
    orphaned: bool = False
    """The launcher went while the host ran: its exit status will not be known."""
    kill_on_start: bool = False
    """Killed before its pid was known: SIGKILLed as soon as it is."""
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once forked (``pid``) or refused (``error``)."""
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once its socket listens (connect now), or once it is known that the launcher
    will not say so (refused, ended, the launcher gone: connecting tells)."""
    reported: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once its exit status arrived, or it is known that none will."""

    def alive(self) -> bool:
        """Not known to have ended: starting, or forked and still the process at its pid."""
        if self.error is not None or self.returncode is not None:
            return False
        if self.pid is None or self.create_time is None:
            return True
        return same_process(self.pid, self.create_time)

    def kill(self) -> None:
        """SIGKILL the host, verified by its create time (or as soon as its pid is known)."""
        if self.pid is None:
            self.kill_on_start = True
        elif self.create_time is not None and self.returncode is None and same_process(self.pid, self.create_time):
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)


class HostLauncher:
    """The launcher process and its channel: one per console, started on the first host."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.popen: subprocess.Popen[bytes] | None = None
        self.broken: str | None = None
        """Why the launcher cannot be used (never started, died, stuck), or None."""
        self.closing = False
        self.writer: asyncio.StreamWriter | None = None
        self.pending: list[bytes] = []
        """Requests made before the channel was wrapped for the loop."""
        self.waiting: dict[int, Launched] = {}
        self.running: dict[int, Launched] = {}
        self.channel: socket.socket | None = None
        """The console's end, until the loop reads it (:meth:`_reader`)."""
        self.reading: asyncio.Task[None] | None = None
        self.count = 0

    @property
    def usable(self) -> bool:
        return self.broken is None and not self.closing

    def start(self) -> None:
        """Start the launcher (``python -m core.runtimes.zygote``); on failure :attr:`broken`
        says why. No event loop is needed yet (it may be started before the first host is
        asked for: its answers are read from then on)."""
        try:
            self.popen, self.channel = start_launcher(self.run_dir)
        except (OSError, PrivateError) as exc:
            self.broken = f"the agent host launcher could not start ({exc})"

    def _reader(self) -> None:
        """Read the launcher's answers on the running loop (from the first request on)."""
        if self.channel is not None and self.reading is None:
            self.reading = asyncio.get_running_loop().create_task(self._read(self.channel))

    def spawn(self, argv: list[str], log: Path) -> Launched:
        """Ask for a host running ``agent_host.main(argv)`` with ``log`` as its output."""
        self._reader()
        self.count += 1
        h = Launched(self.count)
        self.waiting[h.ident] = h
        msg: dict[str, Any] = {"op": "spawn", "id": h.ident, "argv": argv, "log": str(log)}
        data = encode({**msg, "cwd": os.getcwd(), "env": host_env()})
        if self.writer is None:
            self.pending.append(data)
        else:
            self.writer.write(data)
        return h

    def abandon(self, why: str) -> None:
        """Stop using the launcher (stuck): kill it; its hosts not yet forked are refused."""
        if self.broken is None:
            self.broken = why
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()

    async def _read(self, sock: socket.socket) -> None:
        try:
            reader, self.writer = await asyncio.open_unix_connection(sock=sock)
            for data in self.pending:
                self.writer.write(data)
            self.pending = []
            if self.closing:
                self.writer.close()  # closed before the channel was wrapped: the launcher sees its end
            async for msg in messages(reader):
                self._on(msg)
        except (ConnectionError, OSError):
            pass
        finally:
            if self.writer is None:
                sock.close()
        self._gone(await self._exit_status())

    async def _exit_status(self) -> str:
        """How the launcher ended, once its channel closed (its exit follows at once:
        waited for up to ``CLOSE_WAIT_S``)."""
        if self.popen is None:
            return "closed its channel"
        await self._exited(CLOSE_WAIT_S)
        rc = self.popen.poll()
        return f"exited ({exit_status(rc)})" if rc is not None else "closed its channel"

    def _on(self, msg: dict[str, Any]) -> None:
        t, ident, pid = msg.get("t"), msg.get("id"), msg.get("pid")
        if t == "spawned" and isinstance(ident, int) and isinstance(pid, int) and ident in self.waiting:
            h = self.waiting.pop(ident)
            ct = msg.get("create_time")
            h.pid, h.create_time = pid, float(ct) if isinstance(ct, (int, float)) else None
            self.running[pid] = h
            h.started.set()
            if h.kill_on_start:
                h.kill()
        elif t == "listening" and isinstance(pid, int) and pid in self.running:
            self.running[pid].listening.set()
        elif t == "failed" and isinstance(ident, int) and ident in self.waiting:
            h = self.waiting.pop(ident)
            h.error = str(msg.get("error"))
            h.started.set()
            h.listening.set()
        elif t == "exited" and isinstance(pid, int) and isinstance(msg.get("rc"), int) and pid in self.running:
            h = self.running.pop(pid)
            h.returncode = msg["rc"]
            h.reported.set()
            h.listening.set()

    def _gone(self, how: str) -> None:
        """The launcher's end closed: nothing more will be forked or reported."""
        if self.broken is None:
            self.broken = f"the agent host launcher {how}"
            if not self.closing:
                print(
                    f"opsdeck: {self.broken}; agent hosts start as processes of their own",
                    file=sys.stderr,
                    flush=True,
                )
        for h in self.waiting.values():
            h.error = self.broken
            h.started.set()
            h.listening.set()
        for h in self.running.values():
            h.orphaned = True
            h.reported.set()
            h.listening.set()
        self.waiting, self.running = {}, {}
        if self.writer is not None:
            self.writer.close()

    def stop_forking(self) -> None:
        """The run is ending: the launcher forks no host still asked for (it sees the end
        of the requests, answers nothing more and exits; those hosts are refused)."""
        self.closing = True
        if self.writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.writer.write_eof()
        elif self.channel is not None:
            with contextlib.suppress(OSError):
                self.channel.shutdown(socket.SHUT_WR)

    async def close(self) -> None:
        """End the launcher (the hosts it forked live on: their own sessions)."""
        self.closing = True
        if self.reading is None and self.channel is not None:
            self.channel.close()  # never used: the launcher sees its end at once
        if self.writer is not None:
            self.writer.close()
        if self.reading is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.reading), CLOSE_WAIT_S)
            except TimeoutError:
                self.reading.cancel()
        if self.popen is not None:
            if self.popen.poll() is None:
                self.popen.kill()
            await self._exited(CLOSE_WAIT_S)

    async def _exited(self, timeout: float) -> None:
        """Wait for the launcher's exit on its pidfd, then reap it: no thread (one of the
        loop's executor would be started for this alone, and joined as the loop ends)."""
        assert self.popen is not None
        if self.popen.poll() is None:
            await process_ended(self.popen.pid, None, timeout)  # our unreaped child: the pid is its own
            self.popen.poll()


def launcher_for(run_dir: Path) -> HostLauncher:
    """The launcher started early for ``run_dir`` (:func:`.launching.start_early`), else
    one not started yet."""
    launcher = HostLauncher(run_dir)
    started = take_early(run_dir)
    if started is not None:
        launcher.popen, launcher.channel = started
    return launcher
