"""The host endpoint's sockets: a cap on open connections, one log line per bad request.

aiohttp's own sites accept every connection; :class:`ConnectionLimit` listens with a
protocol factory that answers ``503`` and closes once ``server.max_connections`` are
open, so a flood of idle sockets ends at the cap, not at the process's file limit.
:class:`OneLineLog` is the logger aiohttp reports request errors to: one line each
(the peer, what was wrong), never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

from aiohttp import web

log = logging.getLogger("opsdeck.host")

REFUSAL_LOG_S = 5.0
"""Refused connections are reported at most once per this many seconds (with a count)."""


class OneLineLog(logging.Logger):
    """The aiohttp request logger: errors as one warning line, without traceback."""

    def __init__(self) -> None:
        super().__init__("opsdeck.host.http", logging.WARNING)
        self.parent = log

    def _line(self, msg: object, args: tuple[Any, ...], exc_info: Any) -> str:
        text = str(msg) % args if args else str(msg)
        exc = exc_info if isinstance(exc_info, BaseException) else None
        why = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        return f"opsdeck host: {text}{why}".replace("\n", " ")[:500]

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kw: Any) -> None:
        self.warning(self._line(msg, args, exc_info))

    def error(self, msg: object, *args: Any, **kw: Any) -> None:
        self.warning(self._line(msg, args, kw.get("exc_info")))


def _refusal(limit: int) -> bytes:
    body = json.dumps(
        {
            "status": "error",
            "error": {
                "code": "TOO_MANY_CONNECTIONS",
                "message": f"this host holds its limit of {limit} open connections (server.max_connections)",
                "details": {"limit": limit},
            },
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Refuse(asyncio.Protocol):
    """A connection past the cap: told so and closed."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.answer)
        transport.close()
        asyncio.get_running_loop().call_later(1.0, transport.abort)  # a peer that never reads

    def data_received(self, data: bytes) -> None:
        pass


class ConnectionLimit:
    """Listens on sockets for one aiohttp server, holding at most ``limit`` connections."""

    def __init__(self, server: web.Server | None, limit: int) -> None:
        self.server = server
        self.limit = limit
        self.refused = 0
        self._servers: list[asyncio.Server] = []
        self._unreported = 0
        self._reported_at = 0.0

    @property
    def open(self) -> int:
        return 0 if self.server is None else len(self.server.connections)

    def _factory(self) -> asyncio.BaseProtocol:
        assert self.server is not None
        if self.open >= self.limit:
            self.refused += 1
            self._unreported += 1
            now = time.monotonic()
            if now - self._reported_at >= REFUSAL_LOG_S:
                log.warning(
                    "opsdeck host: refused %d connection(s): %d open, the limit (server.max_connections)",
                    self._unreported,
                    self.limit,
                )
                self._unreported, self._reported_at = 0, now
            return _Refuse(_refusal(self.limit))
        return self.server()

    async def listen(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(self._factory, sock=sock, backlog=128))

    async def close(self) -> None:
        """Stop accepting; the open connections are the aiohttp runner's to close."""
        for srv in self._servers:
            srv.close()
        self._servers.clear()
