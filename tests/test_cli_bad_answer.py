"""``exec``, ``events --follow`` and ``script`` against a live host whose answer they
cannot read: said as that (which answer, what was wrong), exit 3, never "the host is
gone" (it still runs and serves) and never followed again in a loop. The host is a
real one on its real socket, its one route garbled; the verbs run as processes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from core.config import Config
from core.host.client import HostClient
from core.host.host import Host
from core.host.server import HostServer
from opsdeck.output import BAD_ANSWER
from tests.conftest import REPO

BOUND_S = 60.0


async def _verb(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run ``opsdeck ARGS`` (this loop keeps serving the host meanwhile): exit code, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opsdeck",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), BOUND_S)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    h = await Host.open_sim(tmp_path / "g.db", Config(), demo=True, create=True, speed=0)
    yield h
    await h.close()


async def _still_serves(host: Host) -> None:
    """The host is up: its own client reads its health (not gone)."""
    async with HostClient(socket_path=host.socket_path, pid=host.status()["pid"]) as c:
        assert (await c.health())["pid"] == host.status()["pid"]


async def test_exec_says_an_unreadable_answer_as_such_with_exit_3(
    host: Host, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = HostServer.commands

    async def garbled(self: HostServer, request: web.Request) -> web.Response:
        await real(self, request)  # the command runs; its answer is not JSON
        return web.Response(body=b"<html>proxy error</html>")

    monkeypatch.setattr(HostServer, "commands", garbled)
    await host.serve()
    before = host.engine.state.seq
    rc, err = await _verb(env, "exec", "--db", str(host.db), "/coordination-hub checkpoint")
    assert rc == BAD_ANSWER, err
    assert "answered something this client cannot read (POST /v1/commands)" in err, err
    assert "not known to be gone" in err and "may have run" in err and "is gone" not in err, err
    assert host.engine.state.seq > before, "the command ran: 'may have run' is so"
    await _still_serves(host)


async def test_events_follow_stops_on_an_undecodable_stream_with_exit_3_and_does_not_loop(
    host: Host, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    async def garbled(self: HostServer, request: web.Request) -> web.Response:
        asked.append(request.path_qs)
        return web.Response(body=b"data: {not json\n\n", content_type="text/event-stream")

    monkeypatch.setattr(HostServer, "events", garbled)
    await host.serve()
    rc, err = await _verb(env, "events", "--db", str(host.db), "--follow")
    assert rc == BAD_ANSWER, err
    assert "cannot read (the event stream)" in err and "cannot be decoded: not JSON" in err, err
    assert "not known to be gone; not following" in err, err
    assert "is gone" not in err and "following the database file" not in err, err
    assert len(asked) == 1, f"followed again: {asked}"
    await _still_serves(host)


async def test_script_says_an_unreadable_health_answer_with_exit_3(
    host: Host, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def garbled(self: HostServer, request: web.Request) -> web.Response:
        return web.Response(body=b"\xff\xfe not text")

    monkeypatch.setattr(HostServer, "health", garbled)
    await host.serve()
    script = tmp_path / "s.ops"
    script.write_text("/coordination-hub checkpoint\n")
    rc, err = await _verb(env, "script", "--db", str(host.db), str(script))
    assert rc == BAD_ANSWER, err
    assert "cannot read (GET /v1/health)" in err and "not UTF-8" in err and "not known to be gone" in err, err
    assert "Traceback" not in err and "is gone" not in err, err


async def test_a_host_whose_socket_is_gone_is_still_exit_1(host: Host, env: dict[str, str]) -> None:
    """The must-not: exit 3 is for an answer that cannot be read; a host whose socket is
    gone (the lease still names it) is "gone", exit 1."""
    await host.serve()  # this process has the server loaded: it starts at once
    assert host.server is not None
    await host.server.stop()
    rc, err = await _verb(env, "exec", "--db", str(host.db), "/coordination-hub checkpoint")
    assert rc == 1 and "is gone" in err and "cannot read" not in err, err
