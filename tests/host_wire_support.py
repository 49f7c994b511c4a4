"""A fake agent host on a unix socket for the host client's HTTP tests
(core.host.client_http): it answers each request with the next answer given, bytes or
a function of the connection, and the helpers that frame those answers. Each test
module takes the ``fake`` fixture as ``fake = host_wire_support.fake``."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from core.host.client import HostClient

BOUND_S = 20.0
"""No call here may take longer (each is expected in well under a second)."""
CLOSE = b"<close>"
"""An answer that closes the connection."""
HANG = b"<hang>"
"""An answer that never comes (the connection stays open)."""

Answer = bytes | Callable[[asyncio.StreamWriter], Awaitable[None]]


def response(status: int, body: bytes, *headers: str, length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} X", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(status: int, *chunks: bytes, end: bool = True) -> bytes:
    out = f"HTTP/1.1 {status} OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n".encode()
    for c in chunks:
        out += f"{len(c):x}\r\n".encode() + c + b"\r\n"
    return out + (b"0\r\n\r\n" if end else b"")


def sse(*objs: dict[str, Any]) -> bytes:
    return b"".join(f"id: {o['seq']}\ndata: {json.dumps(o)}\n\n".encode() for o in objs)


def event(seq: int) -> dict[str, Any]:
    return {"seq": seq, "ts": 1.0, "type": "T", "component": "c", "scope": "s", "actor": "a", "data": {}}


class FakeHost:
    """Answers the requests on each connection with the next answers in order."""

    def __init__(self, path: Path, answers: list[Answer]) -> None:
        self.path = path
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.stop = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(ln.split(b":")[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0) if self.answers else CLOSE
                if answer == CLOSE:
                    break
                if answer == HANG:
                    await self.stop.wait()
                    break
                if callable(answer):
                    await answer(writer)
                else:
                    writer.write(answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def fake() -> AsyncIterator[Callable[..., Awaitable[tuple[FakeHost, HostClient]]]]:
    """``await fake(answer, ...)``: a fake host and a client of it (closed after the test)."""
    tmp = Path(tempfile.mkdtemp(prefix="odw-"))  # a short path: unix sockets allow about 100 bytes
    made: list[tuple[FakeHost, HostClient]] = []

    async def make(*answers: Answer) -> tuple[FakeHost, HostClient]:
        host = FakeHost(tmp / f"h{len(made)}.sock", list(answers))
        host.server = await asyncio.start_unix_server(host.handle, str(host.path))
        client = HostClient(socket_path=host.path)
        made.append((host, client))
        return host, client

    yield make
    for host, client in made:
        await client.close()
        host.stop.set()
        for w in host.writers:
            w.close()
        assert host.server is not None
        host.server.close()
        if host.tasks:
            await asyncio.wait(host.tasks, timeout=BOUND_S)  # each sees its connection closed
    shutil.rmtree(tmp, ignore_errors=True)


async def bounded(aw: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(aw, BOUND_S)


async def first_events(client: HostClient, n: int, into: list[int]) -> None:
    async for obj in client.event_objects(0):
        into.append(obj["seq"])
        if len(into) >= n:
            return
