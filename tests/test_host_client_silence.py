"""A followed stream gone silent is checked for life: a host whose endpoint takes no
connection any more (a TCP host: no pid to look at) is gone, not "running but
unresponsive" waited for without end; one that takes the connection and does not answer
is unresponsive. The host is a stand-in that answers the stream's head and then nothing."""

from __future__ import annotations

import asyncio

import pytest

from core.host import client as client_mod
from core.host.client import HostClient
from core.host.errors import HostGone

BOUND_S = 30.0
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


async def _silent_host(streams: list[asyncio.StreamWriter]) -> asyncio.Server:
    """Answers ``/v1/events`` with a 200 and then nothing; any other request never."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        await reader.readuntil(b"\r\n\r\n")
        if line.startswith(b"GET /v1/events"):
            writer.write(HEAD)
            await writer.drain()
            streams.append(writer)
        await asyncio.Event().wait()  # holds the connection open, says nothing more

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def _drain(port: int, told: list[str | None]) -> None:
    """Follow the stand-in's stream over TCP (no pid known), its silences told to ``told``."""
    client = HostClient.for_url(f"http://127.0.0.1:{port}")
    client.on_silence = told.append
    try:
        async for _ in client.event_objects(0):
            pass
    finally:
        await client.close()


async def _following_a_silent_host() -> tuple[
    asyncio.Server, list[asyncio.StreamWriter], list[str | None], asyncio.Task[None]
]:
    """The stand-in host, its streams' writers, what the follower is told, the follower."""
    streams: list[asyncio.StreamWriter] = []
    server = await _silent_host(streams)
    told: list[str | None] = []
    follow = asyncio.create_task(_drain(server.sockets[0].getsockname()[1], told))
    return server, streams, told, follow


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "SILENCE_S", 0.2)
    monkeypatch.setattr(client_mod, "PROBE_S", 0.2)


async def test_a_silent_stream_whose_host_takes_no_connection_is_the_host_gone() -> None:
    server, streams, told, follow = await _following_a_silent_host()
    try:
        while not streams:
            await asyncio.sleep(0.01)
        server.close()  # nothing listens any more; the stream's connection stays open
        done, _ = await asyncio.wait({follow}, timeout=BOUND_S)
        assert done, f"still waiting on a host that takes no connection: {told}"
        exc = follow.exception()
        assert type(exc) is HostGone and "takes no connection" in str(exc), exc
        assert not [t for t in told if t and "unresponsive" in t], told
    finally:
        follow.cancel()
        await asyncio.gather(follow, return_exceptions=True)
        for w in streams:
            w.close()


async def test_a_silent_stream_whose_host_takes_the_connection_is_unresponsive_not_gone() -> None:
    """The must-not: a host that still takes connections and does not answer is not gone."""
    server, streams, told, follow = await _following_a_silent_host()
    try:
        deadline = asyncio.get_running_loop().time() + BOUND_S
        while not told and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert told and told[0] is not None and "running but unresponsive" in told[0], told
        assert not follow.done(), follow
    finally:
        follow.cancel()
        await asyncio.gather(follow, return_exceptions=True)
        server.close()
        for w in streams:
            w.close()
