"""``opsdeck web``'s consoles live exactly as long as their tabs; only its own websocket route exists.

The console command here is a stand-in that ignores textual-serve's quit and SIGTERM
(the worst case) and starts a child of its own; the checks are on the processes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from opsdeck.web import ConsoleServer

from .conftest import until

TOKEN = "a-test-token-0123456789"

STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "open(sys.argv[1], 'w').write(f'{child.pid}\\n')\n"
    "time.sleep(600)\n"
)


async def _client(tmp_path: Path, name: str = "pids") -> tuple[ConsoleServer, TestClient, Path]:
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    pids = tmp_path / name
    server = ConsoleServer(
        f"{sys.executable} {script} {pids}", host="127.0.0.1", port=0, token=TOKEN, title="opsdeck test"
    )
    c = TestClient(TestServer(await server._make_app()))
    await c.start_server()
    return server, c, pids


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_only_opsdecks_websocket_route_exists_and_a_foreign_origin_is_refused(tmp_path: Path) -> None:
    server, c, _ = await _client(tmp_path)
    try:
        own = {"Origin": f"http://{c.server.host}:{c.server.port}"}
        evil = {"Origin": "http://evil.example"}
        # textual-serve's /ws?token=... is not there, whatever the origin.
        for hdrs in (own, evil):
            with pytest.raises(WSServerHandshakeError) as exc:
                await c.ws_connect(f"/ws?token={TOKEN}", headers=hdrs)
            assert exc.value.status in (403, 404)
        # Ours refuses another origin, and starts no console for it.
        with pytest.raises(WSServerHandshakeError) as exc:
            await c.ws_connect(f"/ws/{TOKEN}", headers=evil)
        assert exc.value.status == 403
        assert not server.consoles
    finally:
        await c.close()


async def test_a_closed_tab_ends_its_console_and_what_it_started(tmp_path: Path) -> None:
    server, c, pids = await _client(tmp_path)
    try:
        ws = await c.ws_connect(f"/ws/{TOKEN}", headers={"Origin": f"http://{c.server.host}:{c.server.port}"})
        await until(
            lambda: pids.exists() and pids.read_text().endswith("\n"), "the console's pids written", 60, poll=0.05
        )
        child = int(pids.read_text())
        (console,) = server.consoles
        assert console._process is not None
        pid = console._process.pid
        assert not _gone(pid) and not _gone(child)
        await ws.close()  # the tab goes
        await until(lambda: _gone(pid) and _gone(child), "the console and its child gone", 30, poll=0.05)
        await until(lambda: not server.consoles, "no console left on the server", 30, poll=0.05)
    finally:
        await c.close()


async def test_stopping_ends_every_console_within_two_seconds(tmp_path: Path) -> None:
    server, c, pids = await _client(tmp_path)
    socks = []
    try:
        origin = {"Origin": f"http://{c.server.host}:{c.server.port}"}
        for _ in range(3):
            socks.append(await c.ws_connect(f"/ws/{TOKEN}", headers=origin))
        await until(
            lambda: len(server.consoles) == 3 and all(x._process for x in server.consoles),
            "three consoles started",
            60,
            poll=0.05,
        )
        await until(lambda: pids.exists(), "the pids file written", 60, poll=0.05)
        procs = [x._process.pid for x in server.consoles if x._process is not None]
        t0 = time.monotonic()
        await server.stop_consoles()
        took = time.monotonic() - t0
        assert all(_gone(p) for p in procs)
        assert took < 2.0, f"stopping 3 consoles that ignore quit and SIGTERM took {took:.2f}s"
    finally:
        for ws in socks:
            await ws.close()
        await c.close()
