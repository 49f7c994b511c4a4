"""An event stream the host refuses with an error status is said by that status, on a
real host and its real socket, never as "the host is gone": a busy host (503, its
follower cap) is asked again with a growing wait and said busy with its count; a
refused token (401) stops with no second try; the host's own error (500) is said as
its error. Only a connection refused, reset or without a socket is "gone"."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path
from typing import Any

from core.config import Config, Server
from core.host.attached import AttachedLink
from core.host.client import HostClient
from core.host.errors import HostBusy, HostGone, TokenRefused
from core.host.host import Host
from core.host.lease import current_holder
from tests.conftest import until, wait_for

from .test_host_control_plane import HostProc, events_follower
from .test_link_trouble import _a_command_runs_on

BOUND_S = 30.0


async def _host(db: Path, **server: Any) -> Host:
    host = await Host.open_sim(db, Config(server=Server(**server)), demo=True, create=True, speed=0)
    await host.serve()
    return host


async def _hold_a_follower(host: Host) -> asyncio.StreamWriter:
    """A follower of the host's stream that takes its slot until closed."""
    reader, writer = await asyncio.open_unix_connection(str(host.socket_path))
    writer.write(b"GET /v1/events?since=0 HTTP/1.1\r\nHost: h\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), BOUND_S)).startswith(b"HTTP/1.1 200")
    return writer


async def _link(db: Path) -> tuple[AttachedLink, list[str], list[str | None]]:
    link = await AttachedLink(db).open()
    said: list[str] = []
    status: list[str | None] = []
    link.on_trouble(said.append)
    link.on_status(status.append)
    await link.start()
    return link, said, status


async def test_a_busy_host_is_said_busy_with_its_count_and_followed_once_it_takes_the_stream(tmp_path: Path) -> None:
    host = await _host(tmp_path / "b.db", max_followers=1)
    held = await _hold_a_follower(host)
    link, said, status = await _link(tmp_path / "b.db")
    try:
        assert link.replica is not None
        await until(lambda: said, "the busy host said")
        assert link.stale == "host busy (1 follower)", link.stale
        assert said[0].startswith(
            f"the host (pid {link.host_pid}) is busy: it refused the event stream (503 TOO_MANY_FOLLOWERS: "
        ), said
        assert link.gone is None and status == [] and link.trouble is None, "busy, not gone"
        await _a_command_runs_on(host, link)  # commands still reach it
        held.close()
        await until(lambda: link.stale is None, "the stream taken again", timeout=BOUND_S)
        assert said[-1].startswith(f"the host (pid {link.host_pid}) took the console's event stream"), said
        await until(lambda: link.state.seq == host.engine.state.seq, "the replica followed the host")
        assert link.gone is None and status == []
    finally:
        held.close()
        await link.close()
        await host.close()


class _Failing(set[Any]):
    """The host's set of streams, failing when counted: the handler's own error."""

    def __len__(self) -> int:
        raise RuntimeError("the followers could not be counted")


async def test_the_hosts_error_on_the_stream_is_said_as_its_error_not_the_host_gone(tmp_path: Path) -> None:
    host = await _host(tmp_path / "f.db")
    assert host.server is not None
    streams = host.server._streams
    host.server._streams = _Failing()
    link, said, status = await _link(tmp_path / "f.db")
    try:
        await until(lambda: said, "the host's error said")
        assert link.trouble == "not following (the host's error 500)", link.trouble
        assert said[0].startswith(
            f"the console stopped following the host (pid {link.host_pid}): it failed to serve the event stream: "
            "its error 500"
        ), said
        assert "is gone" not in said[0] and link.gone is None and status == []
        host.server._streams = streams
        await _a_command_runs_on(host, link)
    finally:
        host.server._streams = streams
        await link.close()
        await host.close()


async def test_a_refused_token_stops_the_stream_with_no_second_try(tmp_path: Path) -> None:
    host = await Host.open_sim(tmp_path / "t.db", Config(), demo=True, create=True, speed=0)
    await host.serve("127.0.0.1:0")
    server = host.server
    assert server is not None
    client = HostClient.for_url(f"http://{server.listen}", "not-the-token")
    asked: list[str] = []
    real = client._conns().exchange

    async def counted(method: str, target: str, *rest: Any) -> Any:
        asked.append(target)
        return await real(method, target, *rest)

    client._conns().exchange = counted  # type: ignore[method-assign]
    try:

        async def follow() -> None:
            async for _ in client.event_objects(0):
                pass

        try:
            await asyncio.wait_for(follow(), BOUND_S)
        except TokenRefused as exc:
            refusal = exc
        else:
            raise AssertionError("a stream with a wrong token ended without an error")
        assert not isinstance(refusal, (HostGone, HostBusy)), "refused, not gone and not asked again"
        assert refusal.status == 401 and refusal.code == "UNAUTHORIZED"
        assert str(refusal).startswith("the host refused the token for the event stream (401 UNAUTHORIZED: ")
        assert asked == ["/v1/events?since=0"], asked
    finally:
        await client.close()
        await host.close()


async def test_only_a_connection_that_is_not_there_is_the_host_gone(tmp_path: Path) -> None:
    """The must-not of the three above: no socket at all is "gone", not a refusal."""
    client = HostClient(socket_path=tmp_path / "none.sock", pid=None)

    async def follow() -> None:
        async for _ in client.event_objects(0):
            pass

    try:
        await asyncio.wait_for(follow(), BOUND_S)
    except HostGone as exc:
        assert type(exc) is HostGone and "is gone" in str(exc), exc
    else:
        raise AssertionError("a stream with no socket ended without an error")
    finally:
        await client.close()


def test_events_follow_says_a_busy_host_busy_and_follows_once_it_takes_the_stream(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """``opsdeck events --follow`` against a ``serve`` process at its follower cap."""
    db = tmp_path / "cli.db"
    cfg = tmp_path / "opsdeck.toml"
    cfg.write_text("[server]\nmax_followers = 1\n")
    host = HostProc(["--config", str(cfg), "serve", "--demo", "--db", str(db), "--speed", "1"], env, db)
    held = socket.socket(socket.AF_UNIX)
    follower: subprocess.Popen[str] | None = None
    try:
        holder = current_holder(db)
        assert holder is not None and holder.socket
        held.connect(holder.socket)
        held.sendall(b"GET /v1/events?since=0 HTTP/1.1\r\nHost: h\r\n\r\n")
        held.settimeout(BOUND_S)
        assert held.recv(64).startswith(b"HTTP/1.1 200")
        follower, err = events_follower(db, env)
        wait_for(lambda: any("asking again" in ln for ln in err), "the busy host said", BOUND_S)
        busy = next(ln for ln in err if "asking again" in ln)
        assert busy.startswith(
            f"# the host (pid {host.proc.pid}) is busy: it refused the event stream (503 TOO_MANY_FOLLOWERS: "
        ), busy
        held.close()
        wait_for(lambda: any("took the stream" in ln for ln in err), "the stream taken", BOUND_S)
        assert follower.poll() is None, "still following"
        assert not [ln for ln in err if "is gone" in ln], err
    finally:
        held.close()
        if follower is not None:
            follower.terminate()
            follower.wait(BOUND_S)
        host.stop()
