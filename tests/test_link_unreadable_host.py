"""A console that finds a host whose health answer it cannot read says so (which host,
what was unreadable) rather than acting as if there were no host, and says it once;
it attaches (and says so) once the host answers readably. A real host, its health
route garbled while ``garbled`` is set."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from core.config import Config, Server
from core.host.attached import AttachedLink
from core.host.host import Host
from core.host.server import HostServer
from tests.conftest import until


async def test_a_host_with_an_unreadable_health_answer_is_named_not_taken_for_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbled = [True]
    real = HostServer.health

    async def health(self: HostServer, request: web.Request) -> web.Response:
        if garbled[0]:
            return web.Response(body=b"<html>proxy error</html>")
        return await real(self, request)

    monkeypatch.setattr(HostServer, "health", health)
    db = tmp_path / "u.db"
    host = await Host.open_sim(db, Config(), demo=True, create=True, speed=0)
    await host.serve()
    pid = host.status()["pid"]
    link = await AttachedLink(db).open()
    said: list[str] = []
    try:
        link.on_trouble(said.append)  # what was said while it opened is told now
        assert link.host_pid is None and link.client is None, "not attached to a host it cannot read"
        assert link.stale == f"host pid {pid}: unreadable", link.stale
        assert link.describe() == f"replica of u.db, not attached, host pid {pid}: unreadable", link.describe()
        assert said == [
            f"the host (pid {pid}) holds u.db but answered GET /v1/health with something the console could not "
            "read (answered 200 with something that is not JSON: '<html>proxy error</html>'); the console is not "
            "attached to it: it shows u.db as stored, sends no commands, and asks the host again every 0.5s"
        ], said
        await link.start()
        await until(lambda: link.state.seq == host.engine.state.seq, "the store tailed meanwhile")
        assert len(said) == 1, f"said once, not at every try: {said}"
        garbled[0] = False
        await until(lambda: link.host_pid == pid, "attached once the health answer reads")
        assert link.stale is None and said[-1] == f"the host (pid {pid}) answers its health check: attached", said
    finally:
        await link.close()
        await host.close()


async def test_no_host_at_all_says_nothing(tmp_path: Path) -> None:
    """The must-not: a database no host holds is a replica with nothing to say."""
    db = tmp_path / "n.db"
    host = await Host.open_sim(db, Config(), demo=True, create=True, speed=0)
    await host.close()
    link = await AttachedLink(db).open()
    said: list[str] = []
    try:
        link.on_trouble(said.append)
        assert link.host_pid is None and link.stale is None and said == []
    finally:
        await link.close()


async def test_a_host_at_its_connection_cap_is_said_busy_not_read_as_health(tmp_path: Path) -> None:
    """A 503 answer to GET /v1/health (the host holds its limit of connections) is said
    as the host busy, not taken for a health answer (main: the refusal's JSON was read as
    health and the console said it was attached)."""
    db = tmp_path / "b.db"
    host = await Host.open_sim(db, Config(server=Server(max_connections=2)), demo=True, create=True, speed=0)
    await host.serve()
    server = host.server
    assert server is not None
    pid = host.status()["pid"]
    held = [(await asyncio.open_unix_connection(str(host.socket_path)))[1] for _ in range(2)]
    await until(lambda: server.limit.open == 2, "the cap reached")
    link = await AttachedLink(db).open()
    said: list[str] = []
    try:
        link.on_trouble(said.append)
        assert link.host_pid is None and link.stale == f"host pid {pid}: host busy (2 connections)", link.stale
        assert said[0].startswith(
            f"the host (pid {pid}) holds b.db but refused GET /v1/health (503 TOO_MANY_CONNECTIONS: "
        ), said
        await link.start()
        for w in held:
            w.close()
        await until(lambda: link.host_pid == pid, "attached once a connection is free")
        assert link.stale is None and link.gone is None
    finally:
        for w in held:
            w.close()
        await link.close()
        await host.close()
