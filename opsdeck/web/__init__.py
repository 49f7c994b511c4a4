"""``opsdeck web``: the console in a browser, served by textual-serve.

Every browser connection runs its own attached console (``opsdeck console --db D``)
in a subprocess whose screen textual-serve streams over a websocket. The fleet is
the live host of D; when nobody holds D, ``opsdeck web`` starts one
(``opsdeck serve --db D``, ``--demo`` for the demo fleet) and stops it on exit.

Who gets in: the page needs the token in its address (``/?token=...``), and the
console's websocket (``/ws/<token>``, written into the page) needs it too, with an
Origin of this server, so no other page in the browser can drive the console. No
cookie: a browser sends a host's cookies to every port of it, so another local
user's server on 127.0.0.1 would receive it. Only textual-serve's bundled static
files are served without the token. On 127.0.0.1 the token is made fresh for each
run and printed with the address; anywhere else it comes from ``--token-file`` (a
0600 file), or the server refuses to start.

The page reaches nothing outside this server: textual-serve's template loads a web
font from the internet, so ours (``templates/app_index.html``) serves the fonts
textual-serve bundles, from this server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import os
import secrets
import shlex
import signal
import stat
import sys
from asyncio.subprocess import Process
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
import textual_serve
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

TEMPLATES = Path(__file__).parent / "templates"
STATICS = Path(textual_serve.__file__).parent / "static"
WS_PREFIX = "/ws/"
"""The console's websocket: ``/ws/<token>`` (textual.js appends its own query)."""
PUBLIC = ("/static/", "/favicon.ico")


class WebError(Exception):
    """``opsdeck web`` cannot start as asked; the message says why."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token_file(path: Path) -> str:
    """The token in ``path``: it must exist, be private to its owner and not be empty."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise WebError(f"--token-file {path}: no such file") from None
    if not stat.S_ISREG(st.st_mode):
        raise WebError(f"--token-file {path}: not a regular file")
    if st.st_mode & 0o077:
        raise WebError(
            f"--token-file {path}: readable by others (mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 {shlex.quote(str(path))}"
        )
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise WebError(f"--token-file {path}: the token must be at least 16 characters (it is {len(token)})")
    return token


def choose_token(host: str, token_file: Path | None) -> str:
    """The page's token: from the file, or made fresh on a loopback address; refused elsewhere."""
    if token_file is not None:
        return read_token_file(token_file)
    if not is_loopback(host):
        raise WebError(
            f"--host {host}: the browser console can change the fleet, so it is only served beyond this machine "
            "with a secret: pass --token-file FILE (a 0600 file holding the token), or bind 127.0.0.1"
        )
    return secrets.token_urlsafe(24)


def console_command(db: Path, config: Path | None) -> str:
    """The shell command textual-serve runs for each browser connection."""
    parts = [sys.executable, "-m", "opsdeck"]
    if config is not None:
        parts += ["--config", str(config)]
    parts += ["console", "--db", str(db)]
    return shlex.join(parts)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEARTBEAT_S = 5.0
"""Websocket pings: a tab whose browser vanished without closing is noticed within about this."""
QUIT_GRACE_S = 0.5
"""A console asked to quit gets this long, then SIGTERM to its process group, then SIGKILL."""


class ConsoleProcess(AppService):
    """textual-serve's app process, run in its own session (its whole group can be
    signalled) and ended within about ``3 * grace`` seconds whatever state it is in."""

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        environment = self._build_environment(width=width, height=height)
        self._process = process = await asyncio.create_subprocess_exec(
            *shlex.split(self.command),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
            start_new_session=True,
        )
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def end(self, grace: float) -> None:
        """Quit (the console commits nothing half-done), else TERM, else KILL its group."""
        proc = self._process
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send_meta({"type": "quit"}), grace)
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, sig)  # its session's group: the console and anything it started
                try:
                    await asyncio.wait_for(proc.wait(), grace)
                    break
                except TimeoutError:
                    continue
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()  # its output pump; it may still be closing the websocket: not waited on
            await asyncio.wait({task}, timeout=grace)


class ConsoleServer(Server):
    """textual-serve's server with our template, its bundled statics and a token."""

    def __init__(self, command: str, host: str, port: int, token: str, title: str) -> None:
        super().__init__(command, host=host, port=port, title=title, statics_path=STATICS, templates_path=TEMPLATES)
        self.token = token
        self.consoles: set[ConsoleProcess] = set()

    def _token_ok(self, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(str(value).encode(), self.token.encode())

    def _request_token(self, request: web.Request) -> str | None:
        if request.path.startswith(WS_PREFIX):
            return request.path[len(WS_PREFIX) :]
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
        return request.query.get("token")

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PUBLIC):
            return await handler(request)  # textual-serve's bundled files: nothing of the fleet
        if not self._token_ok(self._request_token(request)):
            return web.Response(
                status=401, text="opsdeck web: open the address `opsdeck web` printed (it carries the token)\n"
            )
        if request.path.startswith(WS_PREFIX) or request.headers.get("Upgrade", "").lower() == "websocket":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != request.host:
                return web.Response(status=403, text=f"opsdeck web: websocket from another origin ({origin}) refused\n")
        return await handler(request)

    async def on_startup(self, app: web.Application) -> None:
        """``opsdeck web`` prints its own address (with the token); no banner."""

    async def _make_app(self) -> web.Application:
        """Only our routes: the page, its websocket (``/ws/<token>``), the bundled files.
        textual-serve's own ``/ws`` (token in the query, no Origin check) and its
        ``/download`` are not registered."""
        app = web.Application(middlewares=[self._guard])
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
        app.add_routes(
            [
                web.get("/", self.handle_index, name="index"),
                web.get(WS_PREFIX + "{token}", self.handle_websocket, name="websocket"),
                web.static("/static", self.statics_path, name="static"),
                web.get("/favicon.ico", self._no_icon),
            ]
        )
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One browser tab's console: started with the websocket, ended with it (quit,
        then its process group terminated), whatever way the tab went."""
        websocket = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        console: ConsoleProcess | None = None
        try:
            await websocket.prepare(request)
            console = ConsoleProcess(
                self.command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,  # type: ignore[arg-type]  # as textual-serve passes it
                download_manager=self.download_manager,
                debug=self.debug,
            )
            self.consoles.add(console)
            await console.start(width, height)
            await self._process_messages(websocket, console)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - one tab's failure: said in one line, the server goes on
            print(f"opsdeck web: a console connection failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            if console is not None:
                try:
                    await asyncio.shield(console.end(QUIT_GRACE_S))  # runs to its end if we are cancelled
                finally:
                    self.consoles.discard(console)
            with contextlib.suppress(Exception):
                await websocket.close()
        return websocket

    async def stop_consoles(self, grace: float = QUIT_GRACE_S) -> None:
        """End every tab's console at once (``opsdeck web`` stopping)."""
        await asyncio.gather(*(c.end(grace) for c in list(self.consoles)), return_exceptions=True)

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.stop_consoles()

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """The page, with addresses of this server as the browser reached it."""
        scheme = "wss" if request.secure else "ws"
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{scheme}://{request.host}{WS_PREFIX}{self.token}",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }
