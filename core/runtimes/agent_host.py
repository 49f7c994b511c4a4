"""The agent host: one small process per agent that runs its tasks as real processes.

Forked by the local runtime's launcher (:mod:`.zygote`, which calls :func:`main`) or
started as ``python -m core.runtimes.agent_host``. It listens
on a unix socket (the "pipe" to the console) and speaks JSON lines both ways. It
runs in its own session, so it outlives a console killed with SIGKILL; a restarted
console reconnects to the same socket and the host tells it where it is (``hello``).

The tasks are run by its :class:`~core.runtimes.task_runner.TaskRunner` (the Ray
actor holds the same runner); this module is the socket transport: one authenticated
console at a time, reports written to it, commands read from it, heartbeats, and
leaving when nobody comes back.

Reports (host -> console): ``hello``, ``started``, ``heartbeat`` (task progress,
new output lines, partial results), ``finished``, ``failed`` (exit status, error,
last output lines), ``stopped``, ``limited``. Commands: see :mod:`.task_runner`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import stat
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn

from ..private import PrivateError, private_dir
from .handshake import ChannelError, host_accept, read_secret
from .task_runner import RunnerConfig, TaskRunner
from .task_tree import become_subreaper
from .wire import MAX_LINE, CommandReader, decode, encode

NEVER_CONNECTED_S = 60.0
"""A host no console ever reached (the console died while starting it) exits after this."""
UNREAD_MAX = 4 * MAX_LINE
"""Bytes sent to the console and not yet read by it past which its connection is dropped."""
HOLD_S = 0.01
"""How long a report that may wait (a run's start) is held for the next report, to reach
the console in one write with it: a short task's start and end in one wake-up of the
console, not two. A run that lasts longer is reported started up to this much later;
one that ends within it is reported started with its end (the console's TASK_STARTED
then comes with its end: the run's own measure is its end report's ``elapsed_s``)."""


def undeliverable(msg: dict[str, Any], size: int) -> dict[str, Any]:
    """What is sent instead of a report too large for the channel: a run's end
    becomes its failure with the reason, anything else a bare heartbeat."""
    why = f"the agent's {msg.get('t')} report of {size:,} bytes is over the channel's limit of {MAX_LINE:,}"
    if msg.get("t") in ("finished", "failed") and msg.get("task"):
        return {
            "t": "failed",
            "task": msg["task"],
            "attempt": msg.get("attempt"),
            "rc": msg.get("rc"),
            "error": why,
            "output": [],
        }
    return {"t": "heartbeat", "task": msg.get("task"), "attempt": msg.get("attempt"), "note": why}


def runner_config(args: argparse.Namespace) -> RunnerConfig:
    """The runner's settings from the host's command line; each run's whole output is
    kept beside the socket (none without a socket path)."""
    sock = args.socket or ""
    output_dir = (
        Path(args.output_dir)
        if args.output_dir
        else Path(os.path.abspath(sock)).parent / "output" / args.agent
        if sock and not sock.startswith("@")
        else None
    )
    return RunnerConfig(
        agent=args.agent,
        heartbeat_s=args.heartbeat,
        grace_s=args.grace,
        mech_memory=args.memory_mechanism,
        mech_cpu=args.cpu_mechanism,
        cgroup_parent=args.cgroup,
        output_dir=output_dir,
        make_dirs=True,  # each run's TMPDIR is made here, off the console's event loop
    )


class Host:
    """One agent's task runner behind a unix socket: the console connects, the host reports."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.agent = args.agent
        self.address = args.socket
        self.heartbeat_s = args.heartbeat
        self.orphan_s = args.orphan
        self.secret = read_secret(args.secret_file)
        """The run's secret that every socket connection must prove it knows."""
        self.writer: asyncio.StreamWriter | None = None
        self.last_client = time.monotonic()
        self.ever_connected = False
        self.held: list[bytes] = []
        """Reports encoded and held for the next write (:meth:`hold`)."""
        self.hold_timer: asyncio.TimerHandle | None = None
        """The write of the held reports if no other report goes out first (one at a time)."""
        self.runner = TaskRunner(runner_config(args), self.send, self.hold)
        self.readers: set[CommandReader] = set()
        """The connections' readers (the server's protocols hold them only weakly)."""
        self.waiting: deque[tuple[dict[str, Any], asyncio.StreamWriter, CommandReader]] = deque()
        """Commands that arrived while an earlier one waited (carried out after it, in order)."""
        self.paused: set[CommandReader] = set()
        """The connections not read while commands wait (one read's commands at most each)."""
        self.busy: asyncio.Task[None] | None = None
        """The task finishing a command that waits (a run being stopped, a write to stdin)."""

    def send(self, msg: dict[str, Any]) -> None:
        """Write a report to the console now, after those held (in one write). With no
        console it goes nowhere (a console that connects learns from ``hello``); what is
        held stays held for it (:meth:`_unheard_starts`)."""
        w = self.writer
        if w is None or w.is_closing():
            return
        data = self._encode(msg)
        if self.held:
            self.held.append(data)
            data = b"".join(self.held)
            self.held.clear()
            self._hold_done()
        self._write(w, data)

    def hold(self, msg: dict[str, Any]) -> None:
        """Send a report with the next one, or within :data:`HOLD_S` if none comes (with
        no console: in the next one's ``hello``)."""
        self.held.append(self._encode(msg))
        w = self.writer
        if self.hold_timer is None and w is not None and not w.is_closing():
            self.hold_timer = asyncio.get_running_loop().call_later(HOLD_S, self._hold_over)

    def _hold_over(self) -> None:
        """The hold is over: the reports held (if any) go out; a report held later than
        the first waits less than HOLD_S (one timer at a time, not one per report)."""
        self.hold_timer = None
        self._write_held()

    def _hold_done(self) -> None:
        """Nothing is held any more: the hold's timer goes too (it would wake the host
        for nothing: a short run's start goes out with its end, well within HOLD_S)."""
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None

    def _write_held(self) -> None:
        """The reports held go out now, to the console they were held for (kept for the
        next console's ``hello`` if its connection is closing)."""
        w = self.writer
        if self.held and w is not None and not w.is_closing():
            data = b"".join(self.held)
            self.held.clear()
            self._hold_done()
            self._write(w, data)

    def _unheard_starts(self) -> list[dict[str, Any]]:
        """The runs' starts held for a console that went before they were written, each
        with when its run began (``started_at``): handed to the next console in its
        ``hello``, before the ends it lists, so that it records each start, at its time.
        (Held only while no console could read them: the starts of commands already read.)"""
        held, self.held = self.held, []
        self._hold_done()
        starts = []
        for data in held:
            msg = decode(data)
            if msg.get("t") == "started":
                msg["started_at"] = self._began(msg["task"], msg["attempt"])
                starts.append(msg)
        return starts

    def _began(self, task: str, attempt: int) -> float | None:
        """When the run (task, attempt) began (:meth:`Run.started_at`): the current run's,
        or an ended one's as its end report says; None for a run no longer known here."""
        runner = self.runner
        r = runner.run
        if r is not None and r.key() == (task, attempt):
            return round(r.started_at(), 3)
        ended = runner.results.get((task, attempt))
        return ended.get("started_at") if ended is not None else None

    @staticmethod
    def _encode(msg: dict[str, Any]) -> bytes:
        data = encode(msg)
        if len(data) > MAX_LINE:
            data = encode(undeliverable(msg, len(data)))
        return data

    def _write(self, w: asyncio.StreamWriter, data: bytes) -> None:
        try:
            w.write(data)
        except (ConnectionError, RuntimeError):
            self._without_console()
            return
        unread = w.transport.get_write_buffer_size()
        if unread > UNREAD_MAX:  # a console that reads nothing: held here no longer (it reconnects: hello)
            print(
                f"agent host {self.agent}: dropped the console, {unread:,} bytes sent to it unread",
                file=sys.stderr,
                flush=True,
            )
            self._without_console()
            w.transport.abort()

    def _without_console(self) -> None:
        """The console's connection is gone: the orphan timeout counts from now; what
        was held for it waits for the next console's ``hello``."""
        self.writer = None
        self.last_client = time.monotonic()

    async def client(self, reader: CommandReader, writer: asyncio.StreamWriter) -> None:
        """One authenticated console at a time: a new one replaces the old one; its
        commands are carried out as they arrive (:meth:`command`).

        A peer of another uid, or one that does not know the run's secret, is
        dropped before it can send a command or displace the console."""
        try:
            await host_accept(reader, writer, self.secret)
        except (ChannelError, TimeoutError, ConnectionError, OSError) as exc:
            print(f"agent host {self.agent}: refused a connection: {exc}", file=sys.stderr, flush=True)
            writer.close()
            return
        self.greet(writer)
        self.readers.add(reader)
        reader.deliver(lambda msg: self.command(msg, writer, reader), lambda: self._closed(reader, writer))

    def greet(self, writer: asyncio.StreamWriter) -> None:
        """An authenticated console is the one reported to from now on: its first message
        is the ``hello`` (what runs, what ended, the starts no console heard)."""
        self._write_held()  # to the console they were held for, while it can read them
        old, self.writer = self.writer, writer
        self.ever_connected = True
        if old is not None:
            old.close()
        runner = self.runner
        hello: dict[str, Any] = {
            "t": "hello",
            "agent": self.agent,
            "pid": os.getpid(),
            "create_time": runner.me.create_time(),
            "current": runner.current(),
            "done": runner.recent_results(),
        }
        if self.held:
            hello["held"] = self._unheard_starts()
        self.send(hello)

    def command(self, msg: dict[str, Any], writer: asyncio.StreamWriter, reader: CommandReader) -> None:
        """A console's command, from the loop's read callback that framed it: carried
        out at once, or after the one still waiting (commands run one at a time, in
        order); its connection is not read again until those waiting have run."""
        if self.busy is not None:
            self.waiting.append((msg, writer, reader))
            if reader not in self.paused:
                self.paused.add(reader)
                reader.pause()
            return
        try:
            rest = self.runner.handle(msg)
        except Exception as exc:  # noqa: BLE001 - as in _finish: the connection goes, not the host
            self._failed(exc, writer, reader)
            return
        if rest is not None:
            self.busy = asyncio.get_running_loop().create_task(self._finish(rest, writer, reader))

    async def _finish(
        self, rest: Coroutine[Any, Any, None] | None, writer: asyncio.StreamWriter, reader: CommandReader
    ) -> None:
        """Await a command's rest, then carry out those that arrived meanwhile."""
        try:
            while rest is not None:
                try:
                    await rest
                except Exception as exc:  # noqa: BLE001 - whatever a command raises, the other connections' commands still run
                    self._failed(exc, writer, reader)
                rest = None
                while rest is None and self.waiting:
                    msg, writer, reader = self.waiting.popleft()
                    if reader.dropped:
                        continue
                    try:
                        rest = self.runner.handle(msg)
                    except Exception as exc:  # noqa: BLE001 - as above
                        self._failed(exc, writer, reader)
        finally:
            self.busy = None
            paused, self.paused = self.paused, set()
            for reader in paused:
                reader.resume()

    def _failed(self, exc: Exception, writer: asyncio.StreamWriter, reader: CommandReader) -> None:
        """A command that failed drops the connection it came from, with the commands
        after it there (its console reconnects)."""
        print(f"agent host {self.agent}: a command failed: {exc!r}", file=sys.stderr, flush=True)
        reader.drop()
        writer.close()

    def _closed(self, reader: CommandReader, writer: asyncio.StreamWriter) -> None:
        """The connection is gone: the host is without a console until one connects."""
        self.readers.discard(reader)
        if self.writer is writer:
            self._without_console()
        writer.close()

    async def heartbeat(self) -> None:
        runner = self.runner
        while not runner.done.is_set():
            await asyncio.sleep(self.heartbeat_s)
            runner.beat()
            idle_for = time.monotonic() - self.last_client
            if (
                self.writer is None
                and runner.run is None
                and (idle_for > self.orphan_s or (not self.ever_connected and idle_for > NEVER_CONNECTED_S))
            ):
                runner.done.set()  # nobody came (back) for us: do not linger forever

    async def main(self, on_listening: Callable[[], None] | None = None) -> int:
        """Serve until told to end; ``on_listening`` is called once the socket listens."""
        runner = self.runner
        runner.tree.subreaper = become_subreaper()
        try:
            server = await start_server(self.client, self.address)
        except (OSError, PrivateError) as exc:
            print(f"agent host {self.agent}: cannot listen: {exc}", file=sys.stderr, flush=True)
            return 2
        if on_listening is not None:
            on_listening()
        hb = asyncio.get_running_loop().create_task(self.heartbeat())
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, runner.done.set)
        await runner.done.wait()
        hb.cancel()
        if runner.run is not None:
            await runner.stop_run(runner.run, "agent shut down")
        server.close()
        self._write_held()
        if self.writer is not None:
            with contextlib.suppress(Exception):
                await self.writer.drain()
            self.writer.close()
        with contextlib.suppress(OSError):
            os.unlink(self.address)
        return 0


async def start_server(handler: Any, address: str) -> asyncio.AbstractServer:
    """Listen on a path socket (never abstract) in a 0700 directory of ours, mode 0600.

    A stale socket of ours at the path is replaced; anything else there is refused."""
    path = Path(address)
    private_dir(path.parent)
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
            raise OSError(f"{address}: exists and is not a socket of ours; refusing to replace it")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket file is created 0600, with no window of a wider mode
    try:
        sock.bind(address)
    finally:
        os.umask(old)
    os.chmod(address, 0o600)

    def protocol() -> asyncio.StreamReaderProtocol:
        return asyncio.StreamReaderProtocol(CommandReader(MAX_LINE), handler)

    return await asyncio.get_running_loop().create_unix_server(protocol, sock=sock)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameters."""
HEAP_BLOCKS_UP_TO = 1024 * 1024
"""Allocations up to this size come from the heap, not from an ``mmap`` of their own."""


def keep_freed_memory() -> None:
    """Let glibc's malloc serve the socket's 256 KiB receive buffers (asyncio's
    ``recv`` size: one per command read) from the heap and keep what is freed, instead
    of an ``mmap``, a page fault, an ``mremap`` and a ``munmap`` per command. The host
    holds at most a few MiB more; nothing changes where the C library is not glibc."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, HEAP_BLOCKS_UP_TO)
        libc.mallopt(M_TRIM_THRESHOLD, 4 * HEAP_BLOCKS_UP_TO)


def options() -> argparse.ArgumentParser:
    """The host's command line (built once: the launcher builds it before it forks any host)."""
    p = argparse.ArgumentParser(prog="agent_host", description="opsdeck agent host (started by the local runtime)")
    p.add_argument("--agent", required=True)
    p.add_argument("--socket", required=True, help="unix socket path (in a 0700 directory of ours)")
    p.add_argument(
        "--secret-file", required=True, help="0600 file holding the run's secret (checked on every connection)"
    )
    p.add_argument("--heartbeat", type=float, default=1.0)
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--orphan", type=float, default=3600.0, help="exit when idle with no console for this long")
    p.add_argument("--memory-mechanism", default="rlimit_as")
    p.add_argument("--cpu-mechanism", default="nice")
    p.add_argument(
        "--output-dir", default=None, help="where each run's whole output is kept (default: beside the socket)"
    )
    p.add_argument("--cgroup", default=None)
    return p


OPTIONS = options()


def main(argv: list[str] | None = None, on_listening: Callable[[], None] | None = None) -> int:
    """The host on its options; ``on_listening``: see :meth:`Host.main` (the launcher's)."""
    args = OPTIONS.parse_args(argv)
    keep_freed_memory()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the console's terminal is for the console
    return asyncio.run(Host(args).main(on_listening))


def exit_now(rc: int) -> NoReturn:
    """End the process once :func:`main` has returned, without the interpreter's
    teardown: by then the runs are stopped and reaped, the socket closed and every
    output written with ``os.write``; what remains (freeing each module and object)
    took about 20 ms of CPU per host and up to 0.1 s before the console saw the exit.
    Only stdout and stderr buffer in Python: they are flushed first."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(rc)


if __name__ == "__main__":
    exit_now(main())
