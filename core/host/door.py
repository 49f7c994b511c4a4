"""The control endpoint's unix socket, listening before its server is loaded.

The endpoint's HTTP server (aiohttp, with the ssl contexts it makes as it is imported)
costs about a sixth of a headless run's start-up CPU, and a run nobody attaches to never
uses it. A host binds its socket at once (0600 before it listens: clients find it as
before) and loads the server only when the first connection arrives: that connection
waits in the socket's backlog, and the server, given the listening socket, accepts it.

The event counts and task timings ``GET /metrics`` reads start with the endpoint
(:func:`start_counting`, here rather than in :mod:`.metrics`, which loads
prometheus-client): a host whose server is not loaded yet starts counting when its door
starts listening, so its first scrape reads the same figures as one that loaded its
server at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..event_types import TASK_FAILED, TASK_TIMEOUT
from ..telemetry import COUNTED_TYPES, EventCounts, failure_reason
from .parts import SERVER_MODULE, import_server
from .paths import bind_socket

if TYPE_CHECKING:
    from ..engine import Engine
    from .control import HostControl
    from .lease import Lease
    from .server import HostServer

BACKLOG = 128
"""Connections the socket holds while the server loads (as many as the server's own listen)."""


async def start_counting(engine: Engine) -> None:
    """Seed the event counts from the store and feed the task timings from now on.

    Under the store lock, so no commit falls between the count and the seed: the
    counts equal the log's from the first scrape on.
    """
    tel = engine.telemetry
    if tel.counts is not None:
        return
    store = engine.store
    await engine.flush()
    if store is None:
        tel.counts = EventCounts({}, {}, engine.state.seq)
    else:
        async with engine.store_lock:
            head, _ = await store.head()
            by_type = await store.count_types(COUNTED_TYPES, head)
            failures: dict[str, int] = {}
            for type_, error in await store.type_field((TASK_FAILED, TASK_TIMEOUT), "error", head):
                reason = failure_reason(type_, str(error or ""))
                failures[reason] = failures.get(reason, 0) + 1
            tel.counts = EventCounts(by_type, failures, head)
    tel.tasks.start(engine.state, engine.clock.now())
    engine.observe(lambda ev: tel.tasks.observe(engine.state, ev))


class Door:
    """A listening socket that hands itself to ``open_server`` at its first connection."""

    def __init__(self, path: Path, open_server: Callable[[socket.socket], Awaitable[None]]) -> None:
        self.path = path
        self.sock = bind_socket(path)
        self.sock.listen(BACKLOG)
        self._open_server = open_server
        self.opening: asyncio.Task[None] | None = None
        """Loading the server for the first connection (None until one arrives)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._knocked)

    def _knocked(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self.opening = self._loop.create_task(self._open(), name="opsdeck-host-endpoint")

    async def _open(self) -> None:
        try:
            await self._open_server(self.sock)
        except Exception as exc:  # noqa: BLE001 - the host goes on without its endpoint; said once
            self.sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            print(f"opsdeck host: the control endpoint could not start: {exc}", file=sys.stderr, flush=True)

    async def close(self) -> None:
        """Stop listening, unless the server took the socket (then it is the server's to close)."""
        if self.opening is None:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        else:
            await asyncio.gather(self.opening, return_exceptions=True)


class Endpoint:
    """A host's control endpoint: its server, or while that is not loaded, its door.
    Where it listens is recorded in the host's ``lease`` (clients find it there)."""

    def __init__(self, host: HostControl, path: Path, lease: Lease | None) -> None:
        self.host = host
        self.path = path
        self.lease = lease
        self.server: HostServer | None = None
        self.door: Door | None = None

    @property
    def serving(self) -> bool:
        """The control socket listens (its server loaded or not yet)."""
        return self.server is not None or self.door is not None

    @property
    def listen(self) -> str | None:
        """The TCP address served (``--listen``), None without one."""
        return self.server.listen if self.server is not None else None

    async def open(self, listen: str | None = None) -> None:
        """The unix socket, and TCP with ``listen``. Without ``listen`` and with the
        server not imported yet, the socket listens at once and the server loads at its
        first connection; else the server starts now."""
        if self.serving:
            return
        path = self.path
        if listen is None and SERVER_MODULE not in sys.modules:
            await start_counting(self.host.engine)  # as for a server: its first scrape counts alike
            self.door = Door(path, self._serve_on)
            self._listening(None)
            return
        if SERVER_MODULE not in sys.modules:  # a Host made directly, a console
            await asyncio.to_thread(import_server)
        if not self.serving:  # not opened by a call that ran meanwhile
            from .server import HostServer

            server = HostServer(self.host)
            await start_counting(self.host.engine)  # the counters equal the log's from the first scrape
            await server.start(listen)
            self.server = server
            self._listening(server.listen)

    def _listening(self, listen: str | None) -> None:
        if self.lease is not None:
            self.lease.update(socket=str(self.path), listen=listen)

    async def _serve_on(self, unix: socket.socket) -> None:
        """The server, loaded for the door's first connection, on the door's socket (its
        counting started with the door)."""
        if SERVER_MODULE not in sys.modules:
            await asyncio.to_thread(import_server)  # the loop keeps pacing the run meanwhile
        from .server import HostServer

        server = HostServer(self.host)
        await server.start(None, unix)
        self.server = server

    async def close(self) -> None:
        if self.door is not None:
            await self.door.close()  # a server loading for a first connection is waited for
        if self.server is not None:
            await self.server.stop()
