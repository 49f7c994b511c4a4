"""The endpoint under many, slow, stalled or malformed clients, and clients of a stopped host.

A host subprocess (``opsdeck serve``) with a small stall time in its config carries a
log of a few simulated hours; followers are raw sockets that never read. The host's
memory is measured with psutil; everything else is checked from what the clients and
the log show afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from core.config import Config, Server
from core.host.client import HostClient
from core.host.host import Host

from .conftest import REPO, opsdeck_cmd, until, wait_for
from .test_host_control_plane import TIMEOUT, HostProc, run

STALL_S = 3.0
FOLLOWERS = 200
RSS_GROWTH_BOUND_MB = 80
"""Measured: about 25 MB for 200 stalled followers on a 2 h demo log (from 480 MB before pages)."""


def _config(tmp_path: Path, **server: object) -> Path:
    path = tmp_path / "opsdeck.toml"
    path.write_text("[server]\n" + "".join(f"{k} = {v}\n" for k, v in server.items()))
    return path


@pytest.fixture
def busy_host(tmp_path: Path, env: dict[str, str]) -> Iterator[HostProc]:
    """A simulated host with two hours of log, stall time 3 s."""
    db = tmp_path / "busy.db"
    cfg = _config(tmp_path, stall_s=STALL_S)
    host = HostProc(["--config", str(cfg), "serve", "--demo", "--db", str(db), "--speed", "1"], env, db)
    try:
        r = run(["exec", "--db", str(db), "--timeout", "120", "/host advance 2h"], env, timeout=600)
        assert r.returncode == 0, r.stderr
        yield host
    finally:
        if host.proc.poll() is None:
            os.kill(host.proc.pid, signal.SIGCONT)
        host.stop()


def _stalled_follower(sock_path: str, since: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(sock_path)
    s.sendall(f"GET /v1/events?since={since} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    return s


def _read_all(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    got = bytearray()
    try:
        while chunk := s.recv(1 << 20):
            got += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return bytes(got)


@pytest.mark.slow
def test_stalled_followers_keep_host_memory_bounded_and_are_dropped_with_a_reason(
    busy_host: HostProc, env: dict[str, str]
) -> None:
    db = busy_host.db
    sock = f"{db}.sock"
    proc = psutil.Process(busy_host.proc.pid)
    base = proc.memory_info().rss
    followers = [_stalled_follower(sock) for _ in range(FOLLOWERS)]
    try:
        peak = base

        def all_dropped() -> bool:
            nonlocal peak
            peak = max(peak, proc.memory_info().rss)
            return sum("dropped an event follower" in ln for ln in busy_host.err) >= FOLLOWERS

        # Commands are answered while 200 streams wait on their readers.
        r = run(["exec", "--db", str(db), "--timeout", "60", "/host status"], env)
        assert r.returncode == 0, r.stderr
        wait_for(all_dropped, "the stalled followers to be dropped", TIMEOUT)
        growth_mb = (peak - base) / 2**20
        assert growth_mb < RSS_GROWTH_BOUND_MB, f"host RSS grew {growth_mb:.0f} MB with {FOLLOWERS} stalled followers"
        for s in followers:
            s.close()
        # One that reads again just after it is dropped finds why, and where it stopped.
        late = _stalled_follower(sock)
        followers.append(late)
        wait_for(
            lambda: sum("dropped an event follower" in ln for ln in busy_host.err) > FOLLOWERS,
            "one more follower to be dropped",
            TIMEOUT,
        )
        got = _read_all(late, 10)
        assert b"event: dropped" in got, got[-300:]
        notice = json.loads(got.split(b"event: dropped\ndata: ")[1].split(b"\n")[0])
        assert "read nothing" in notice["reason"]
        seqs = [int(ln[4:]) for ln in got.split(b"\n") if ln.startswith(b"id: ")]
        assert seqs == list(range(1, seqs[-1] + 1)) and seqs[-1] == notice["last_sent"]
        # It resumes from its last seq: the next event, nothing skipped.
        again = _stalled_follower(sock, since=seqs[-1])
        more = _read_all_until(again, f"id: {seqs[-1] + 1}\n".encode())
        again.close()
        first = next(int(ln[4:]) for ln in more.split(b"\n") if ln.startswith(b"id: "))
        assert first == seqs[-1] + 1
        assert not any("Traceback" in ln for ln in busy_host.err)
    finally:
        for s in followers:
            s.close()


def _read_all_until(s: socket.socket, marker: bytes, timeout: float = TIMEOUT) -> bytes:
    s.settimeout(timeout)
    got = bytearray()
    while marker not in got:
        chunk = s.recv(1 << 16)
        assert chunk, "the stream closed"
        got += chunk
    return bytes(got)


@pytest.mark.slow
def test_a_stopped_host_makes_exec_give_up_naming_its_pid_and_state(busy_host: HostProc, env: dict[str, str]) -> None:
    db = busy_host.db
    pid = busy_host.proc.pid
    follow = subprocess.Popen(
        opsdeck_cmd("events", "--db", str(db), "--follow", "--since", str(10**9)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    err: list[str] = []
    try:
        assert follow.stderr is not None
        line = follow.stderr.readline()
        assert "following the live host" in line, line
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        r = run(["exec", "--db", str(db), "--timeout", "5", "/host status"], env, timeout=TIMEOUT)
        took = time.monotonic() - t0
        assert r.returncode == 1
        assert f"pid {pid}" in r.stderr and "stopped" in r.stderr, r.stderr
        assert took < 5 + 30, f"exec took {took:.0f}s against a 5 s timeout"  # start-up on a loaded machine
        assert "Traceback" not in r.stderr
        # The follower says the host is silent, and stays.
        line = follow.stderr.readline()
        assert f"pid {pid}" in line and "stopped" in line, line
        assert follow.poll() is None
        os.kill(pid, signal.SIGCONT)
        line = follow.stderr.readline()
        assert "answers again" in line, line
        # The host runs on: the command was not lost or half-done.
        ok = run(["exec", "--db", str(db), "/host status"], env)
        assert ok.returncode == 0, ok.stderr
    finally:
        os.kill(pid, signal.SIGCONT)
        follow.terminate()
        follow.wait(TIMEOUT)
        err.extend(follow.stderr.readlines() if follow.stderr else [])
    assert not any("Traceback" in ln for ln in err)


@pytest.mark.slow
async def test_a_host_that_answers_is_waited_for(tmp_path: Path) -> None:
    """The case that must not give up: a long command on a host that answers its health check."""
    host = await Host.open_sim(tmp_path / "w.db", Config(), demo=True, create=True, speed=0)
    await host.serve()
    client = HostClient(socket_path=host.socket_path, pid=os.getpid())
    client.unresponsive_s = 0.5
    try:
        resp = await client.send("/host advance 2h")
        assert resp["status"] == "success" and resp["result"]["advance"]["done"]
    finally:
        await client.close()
        await host.close()


# -- caps and timeouts, on a host in this process -----------------------------------


async def _open(path: Path, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    if request:
        writer.write(request)
        await writer.drain()
    return reader, writer


@pytest.mark.slow
async def test_follower_and_connection_caps_refuse_with_503(tmp_path: Path) -> None:
    cfg = Config(server=Server(max_followers=2, max_connections=4))
    host = await Host.open_sim(tmp_path / "c.db", cfg, demo=True, create=True, speed=0)
    await host.serve()
    held = []
    try:
        get = b"GET /v1/events?since=0 HTTP/1.1\r\nHost: h\r\n\r\n"
        for _ in range(2):
            r, w = await _open(host.socket_path, get)
            assert (await r.readline()).startswith(b"HTTP/1.1 200")
            held.append(w)
        r, w = await _open(host.socket_path, get)
        # The refusal is a whole answer on a connection kept alive (read to its length, not
        # to an end of stream that comes only with the idle timeout, 30 s later).
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 503"), head
        length = next(int(ln.split(b":")[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:"))
        assert b"TOO_MANY_FOLLOWERS" in await asyncio.wait_for(r.readexactly(length), 30)
        w.close()
        assert host.server is not None
        limit = host.server.limit
        await until(lambda: limit.open == 2, lambda: f"the refused follower's connection closed: {limit.open} open")
        for _ in range(2):  # connections that send nothing yet
            held.append((await _open(host.socket_path, b""))[1])
        r, w = await _open(host.socket_path, b"")
        refused = await asyncio.wait_for(r.read(), 30)
        assert refused.startswith(b"HTTP/1.1 503") and b"TOO_MANY_CONNECTIONS" in refused
        w.close()
        assert host.server is not None and host.server.limit.open <= 4
    finally:
        for w in held:
            w.close()
        await host.close()


async def test_half_sent_requests_time_out_and_malformed_ones_log_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = Config(server=Server(idle_timeout_s=1.0, body_timeout_s=1.0))
    host = await Host.open_sim(tmp_path / "t.db", cfg, demo=True, create=True, speed=0)
    await host.serve()
    try:
        with caplog.at_level(logging.WARNING, logger="opsdeck.host"):
            # A request head that never ends: closed by the host.
            r, w = await _open(host.socket_path, b"GET /v1/health HTTP/1.1\r\nHost: h\r\n")
            assert await asyncio.wait_for(r.read(), 30) == b""
            w.close()
            # A body that never comes: 408.
            r, w = await _open(
                host.socket_path, b"POST /v1/commands HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n{"
            )
            assert (await asyncio.wait_for(r.readline(), 30)).startswith(b"HTTP/1.1 408")
            w.close()
            # Garbage: 400, one line in the log, no traceback.
            before = len(caplog.records)
            for junk in (b"\x16\x03\x01 TLS\r\n\r\n", b"GET / HTTP/9\r\n\r\n", b"GET /v1/health HTTP/1.1\r\nX\r\n\r\n"):
                r, w = await _open(host.socket_path, junk)
                assert b" 400 " in (await asyncio.wait_for(r.readline(), 30))
                w.close()
            lines = [rec for rec in caplog.records[before:] if rec.name.startswith("opsdeck.host")]
            assert len(lines) <= 3
            assert all(rec.exc_info is None and "\n" not in rec.getMessage() for rec in caplog.records)
        # The host still answers.
        client = HostClient(socket_path=host.socket_path)
        assert (await client.health())["seq"] == host.engine.state.seq
        await client.close()
    finally:
        await host.close()


async def test_unauthenticated_endpoints_disclose_no_paths_or_pids(tmp_path: Path) -> None:
    import aiohttp

    host = await Host.open_sim(tmp_path / "secretname.db", Config(), demo=True, create=True, speed=0)
    await host.serve("127.0.0.1:0")
    try:
        assert host.server is not None and host.server.listen and host.server.token
        base = f"http://{host.server.listen}"
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/v1/health") as r:
                assert r.status == 200
                health = await r.json()
            async with s.get(base + "/metrics") as r:
                metrics = await r.text()
            async with s.post(base + "/v1/commands", json={"command": "/host status"}) as r:
                refused = await r.text()
                assert r.status == 401
            auth = {"Authorization": f"Bearer {host.server.token}"}
            async with s.get(base + "/v1/health", headers=auth) as r:
                full = await r.json()
        pid = str(os.getpid())
        assert "pid" not in health and "db" not in health and "listen" not in health
        assert health["seq"] == host.engine.state.seq
        for text in (json.dumps(health), metrics, refused):
            assert "secretname" not in text and str(tmp_path) not in text
            assert f'"{pid}"' not in text and f":{pid}," not in text and f'pid="{pid}"' not in text
        # With the token: the full answer (the case that must still work).
        assert full["pid"] == os.getpid() and full["db"].endswith("secretname.db")
    finally:
        await host.close()
