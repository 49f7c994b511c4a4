"""Reaching a host and keeping its connections (core.host.client_http against a fake
host on a unix socket, and real hosts): no socket or no listener is the host gone, a
silent host ends unresponsive; a kept connection the host closed is retried once for a
GET, never for a command; how long an idle connection is used again (the host's
Keep-Alive); the token a TCP client sends, and the tokens refused before anything is sent."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from core.host import client as client_mod
from core.host import client_http
from core.host.client import HostClient, HostGone, HostUnresponsive

from . import host_wire_support
from .host_wire_support import CLOSE, HANG, bounded, response

fake = host_wire_support.fake


async def test_no_socket_or_no_listener_is_the_host_gone(tmp_path: Path) -> None:
    missing = HostClient(socket_path=tmp_path / "none.sock", pid=12345678)
    with pytest.raises(HostGone, match=r"pid 12345678\) is gone: .*none.sock: No such file"):
        await bounded(missing.send("/host status"))
    import socket

    path = Path(tempfile.mkdtemp(prefix="odw-")) / "dead.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))  # bound, never listening: refused
    try:
        with pytest.raises(HostGone, match="Connection refused"):
            await bounded(HostClient(socket_path=path).send("/host status"))
    finally:
        sock.close()
        shutil.rmtree(path.parent)


async def test_a_host_that_never_answers_ends_unresponsive(fake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Head sent, body never: the wait is the probe's (health unanswered too), then HostUnresponsive."""
    monkeypatch.setattr(client_mod, "PROBE_S", 0.2)
    _, client = await fake(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{", HANG, HANG, HANG, HANG, HANG)
    client.unresponsive_s = 0.5
    with pytest.raises(HostUnresponsive, match="unresponsive: no answer to /v1/health") as exc:
        await bounded(client.send("/host status"))
    assert f"the host at {client.socket_path} is running" in str(exc.value)  # where, without a pid


async def test_a_kept_connection_closed_while_idle_is_retried_once(fake) -> None:  # type: ignore[no-untyped-def]
    """The host closed the idle connection as the request went: nothing of an answer came, so the
    request goes again on a new connection. The case that must not retry: a connection that
    had begun to answer (above: truncated answers are the host gone)."""
    ok = response(200, b"{}")
    host, client = await fake(ok, CLOSE, ok)
    assert await bounded(client.health()) == {}
    assert await bounded(client.health()) == {}
    assert host.connections == 2 and len(host.requests) == 3


async def test_a_command_on_a_kept_connection_closed_unanswered_is_not_sent_again(fake) -> None:  # type: ignore[no-untyped-def]
    """The host read the command and closed without answering (it may have run it): the
    client says so and does not send it again, where a GET would be (above)."""
    ok = response(200, b"{}")
    host, client = await fake(ok, CLOSE, ok)
    assert await bounded(client.send("/host status")) == {}
    with pytest.raises(HostGone, match=r"closed before an answer \(POST /v1/commands may have been carried out"):
        await bounded(client.send("/workflow pause w1"))
    assert [r.partition(b"\r\n\r\n")[2] for r in host.requests].count(
        json.dumps({"command": "/workflow pause w1", "actor": "operator"}).encode()
    ) == 1
    assert host.connections == 1


async def test_the_token_is_sent_over_tcp() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(response(200, b"{}"))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for token in ("tok-123", None):
            client = HostClient.for_url(f"http://127.0.0.1:{port}/", token)
            assert await bounded(client.health()) == {}
            await client.close()
    finally:
        server.close()
    assert b"Authorization: Bearer tok-123\r\n" in seen[0] and f"Host: 127.0.0.1:{port}".encode() in seen[0]
    assert b"Authorization" not in seen[1]
    with pytest.raises(ValueError):
        HostClient.for_url("ftp://127.0.0.1:1")
    with pytest.raises(ValueError):
        HostClient.for_url("http://127.0.0.1:1", "tok\r\nX-Injected: 1")


def test_a_token_with_a_space_is_refused() -> None:
    """A token with a space anywhere (before or after too) is not the host's token: refused
    before anything is sent, where the bare token is taken."""
    for token in (" tok-123", "tok-123 ", "tok 123"):
        with pytest.raises(ValueError, match="without spaces"):
            HostClient.for_url("http://127.0.0.1:1", token)
    assert HostClient.for_url("http://127.0.0.1:1", "tok-123").token == "tok-123"


def test_an_empty_token_is_refused() -> None:
    """An empty token would send no Authorization header at all (a 401 later, from afar):
    refused where it is given; None (no token, the unix socket) and a real one are taken."""
    with pytest.raises(ValueError, match="the host token is empty"):
        HostClient.for_url("http://127.0.0.1:1", "")
    with pytest.raises(ValueError, match="the host token is empty"):
        HostClient(socket_path="/nonexistent.sock", token="")
    assert HostClient.for_url("http://127.0.0.1:1")._headers() == {}
    assert HostClient.for_url("http://127.0.0.1:1", "t")._headers() == {"Authorization": "Bearer t"}


async def test_a_kept_connection_is_not_used_past_half_the_hosts_idle_timeout(fake) -> None:  # type: ignore[no-untyped-def]
    """A host saying ``Keep-Alive: timeout=1`` may close an idle connection after 1 s: after
    0.6 s idle the command goes on a new connection (a command on one the host closed as it
    went is not sent again). Without the field the client's own window holds and the
    connection is used again."""
    ok = response(200, b"{}")
    host, client = await fake(response(200, b"{}", "Keep-Alive: timeout=1"), ok)
    assert await bounded(client.health()) == {}
    pool = client._conns()
    assert [c.reuse_s for c in pool.idle] == [0.5]
    pool.idle[0].idle_since -= 0.6  # as if idle 0.6 s, however slow the machine
    assert await bounded(client.send("/host status")) == {}
    assert host.connections == 2 and len(host.requests) == 2
    host, client = await fake(ok, ok)
    assert await bounded(client.health()) == {}
    pool = client._conns()
    assert [c.reuse_s for c in pool.idle] == [client_http.IDLE_REUSE_S]
    pool.idle[0].idle_since -= 0.6
    assert await bounded(client.send("/host status")) == {}
    assert host.connections == 1 and len(host.requests) == 2


async def test_a_keep_alive_timeout_that_is_not_digits_keeps_no_connection(fake) -> None:  # type: ignore[no-untyped-def]
    """Delta-seconds are digits only: ``1_0``, ``-0``, ``1.5``, `` +3``, ``١`` (an Arabic-Indic
    one), over 18 digits or a word say nothing of when the host closes, so the connection
    is closed after the answer and the next command opens a new one; ``timeout=0`` likewise.
    Digits around spaces are read."""
    ok = response(200, b"{}")
    for value in ("1_0", "-0", "1.5", "+3", "\u0661", "1" * 19, "soon", "", "0"):
        host, client = await fake(response(200, b"{}", f"Keep-Alive: timeout={value}"), ok)
        assert await bounded(client.health()) == {}
        assert client._conns().idle == [], value
        assert await bounded(client.send("/host status")) == {}
        assert host.connections == 2 and len(host.requests) == 2, value
    assert client_http.reuse_window({"keep-alive": "max=5, timeout= 8 "}) == 4.0
    assert client_http.reuse_window({"keep-alive": "timeout=100"}) == client_http.IDLE_REUSE_S


async def test_the_host_says_its_idle_timeout_and_the_client_follows_it(tmp_path: Path) -> None:
    """A host configured with ``server.idle_timeout_s = 1`` says so on each answer; its
    client keeps an idle connection for half of that, not its own 15 s."""
    from core.config import Config, Server
    from core.host.host import Host

    host = await Host.open_sim(tmp_path / "k.db", Config(server=Server(idle_timeout_s=1.0)), create=True, speed=0)
    await host.serve()
    client = HostClient(socket_path=host.socket_path)
    try:
        await bounded(client.health())
        assert [c.reuse_s for c in client._conns().idle] == [0.5]
    finally:
        await client.close()
        await host.close()


async def test_the_host_says_its_idle_timeout_in_whole_seconds(tmp_path: Path) -> None:
    """``server.idle_timeout_s = 1.5`` is said as ``timeout=1`` (digits, rounded down: the
    client never counts on a connection the host has closed), and its client keeps the
    connection for half of that; 1e7 s is said in digits, not ``1e+07``."""
    from core.config import Config, Server
    from core.host.host import Host

    for idle, said in ((1.5, "timeout=1"), (1e7, "timeout=10000000")):
        host = await Host.open_sim(
            tmp_path / f"k{said}.db", Config(server=Server(idle_timeout_s=idle)), create=True, speed=0
        )
        await host.serve()
        client = HostClient(socket_path=host.socket_path)
        try:
            pool = client._conns()
            resp = await bounded(pool.exchange("GET", "/v1/health", {}, None))
            await bounded(resp.read())
            assert resp.headers["keep-alive"] == said
            pool.release(resp)
            assert [c.reuse_s for c in pool.idle] == [min(client_http.IDLE_REUSE_S, int(idle) / 2)]
        finally:
            await client.close()
            await host.close()
