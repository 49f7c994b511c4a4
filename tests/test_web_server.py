"""``opsdeck web``'s server without a browser: who gets in, what the page asks for, refusals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from core.host.lease import current_holder
from opsdeck.web import ConsoleServer

from .conftest import opsdeck_cmd, wait_for

TOKEN = "a-test-token-0123456789"


async def client() -> TestClient:
    server = ConsoleServer("true", host="127.0.0.1", port=0, token=TOKEN, title="opsdeck test")
    c = TestClient(TestServer(await server._make_app()))
    await c.start_server()
    return c


async def test_every_request_needs_the_token() -> None:
    c = await client()
    try:
        for path in (
            "/",
            "/ws",
            "/ws/",
            "/ws/wrong-token-wrong-token",
            "/?token=wrong-token-wrong-token",
            "/download/x",
        ):
            r = await c.get(path)
            assert r.status == 401, path
        r = await c.get("/", headers={"Authorization": "Bearer wrong-token-wrong-token"})
        assert r.status == 401
        # The right token: the page, whose websocket address carries it (no cookie is set).
        r = await c.get(f"/?token={TOKEN}")
        assert r.status == 200 and not r.cookies
        assert f"/ws/{TOKEN}" in await r.text()
        r = await c.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200
        # textual-serve's bundled files hold nothing of the fleet: served to anyone.
        r = await c.get("/static/js/textual.js")
        assert r.status == 200
    finally:
        await c.close()


async def test_the_page_names_no_outside_host() -> None:
    c = await client()
    try:
        html = await (await c.get("/", headers={"Authorization": f"Bearer {TOKEN}"})).text()
        port = c.server.port
        urls = re.findall(r"""(?:https?|wss?)://[^"'\s)]+""", html)
        assert urls, "the page has its websocket address"
        for u in urls:
            assert re.match(rf"(?:https?|wss?)://127\.0\.0\.1:{port}/", u), u
        assert "googleapis" not in html and "@font-face" in html
        font = await c.get("/static/fonts/RobotoMono-VariableFont_wght.ttf")
        assert font.status == 200 and len(await font.read()) > 10_000
    finally:
        await c.close()


async def test_websocket_needs_its_own_origin() -> None:
    c = await client()
    try:
        hdrs = {"Origin": "http://evil.example"}
        try:
            ws = await c.ws_connect(f"/ws/{TOKEN}", headers=hdrs)
            await ws.close()
            raise AssertionError("a foreign origin got a websocket")
        except WSServerHandshakeError as exc:
            assert exc.status == 403
        # (Its own origin with the token opens it: the browser test drives a console through it.)
    finally:
        await c.close()


@pytest.mark.slow
def test_binding_beyond_loopback_needs_a_private_token_file(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = tmp_path / "x.db"
    r = subprocess.run(
        opsdeck_cmd("web", "--db", str(db), "--host", "0.0.0.0", "--port", "0"),
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
    )
    assert r.returncode == 2
    assert "--token-file" in r.stderr and "Traceback" not in r.stderr
    assert not db.exists()
    r = subprocess.run(
        opsdeck_cmd("web", "--demo", "--host", "0.0.0.0", "--port", "0"),
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
    )
    assert r.returncode == 2 and "--token-file" in r.stderr
    home = Path(cli_env["OPSDECK_HOME"])
    assert not home.exists() or not any(home.rglob("*")), "a refused start leaves nothing behind"
    tok = tmp_path / "token"
    tok.write_text("x" * 32)
    os.chmod(tok, 0o644)
    r = subprocess.run(
        opsdeck_cmd("web", "--db", str(db), "--host", "0.0.0.0", "--port", "0", "--token-file", str(tok)),
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
    )
    assert r.returncode == 2
    assert "readable by others" in r.stderr and "chmod 600" in r.stderr
    assert not db.exists()
    # No host and no database, without --demo: said so, nothing made.
    r = subprocess.run(
        opsdeck_cmd("web", "--db", str(db), "--port", "0"), capture_output=True, text=True, env=cli_env, timeout=60
    )
    assert r.returncode == 2 and "no such database" in r.stderr and "Traceback" not in r.stderr
    assert not db.exists() and not Path(f"{db}.lease").exists()


@pytest.mark.slow
def test_a_live_host_is_attached_to_and_left_running(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = tmp_path / "live.db"
    host = subprocess.Popen(
        opsdeck_cmd("serve", "--demo", "--db", str(db)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env,
    )
    web = None
    try:

        def listening() -> bool:
            assert host.poll() is None, "the host exited before it listened"
            h = current_holder(db)
            return h is not None and h.socket is not None

        wait_for(listening, "the host to start (its lease names its socket)", 120, poll=0.1)
        web = subprocess.Popen(
            opsdeck_cmd("web", "--db", str(db), "--port", "0"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env,
        )
        assert web.stdout is not None
        first = web.stdout.readline()
        assert "already running" in first, first + (web.stderr.read() if web.poll() is not None and web.stderr else "")
        url = web.stdout.readline()
        m = re.search(r"open (http://\S+)", url)
        assert m, url
        with urllib.request.urlopen(m.group(1), timeout=30) as r:
            assert r.status == 200
        web.send_signal(signal.SIGTERM)
        assert web.wait(60) == 0
        # Not its host to stop: the same process still holds the database.
        holder = current_holder(db)
        assert holder is not None and holder.pid == host.pid and host.poll() is None
    finally:
        for p in (web, host):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
