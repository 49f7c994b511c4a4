"""The host's control endpoint: HTTP+JSON (aiohttp) on a unix socket, optionally TCP.

- ``POST /v1/commands`` ``{"command": "/...", "actor": "..."}``: the response dict of
  the one command path, returned once the command's events are committed (a command
  that changed nothing is answered before its own COMMAND_EXECUTED record, committed
  within 0.1 s);
- ``GET /v1/events?since=SEQ``: server-sent events, each ``data:`` one committed event
  as JSON (seq, ts, type, component, scope, actor, data, hash, line): first the rows
  after SEQ from the store, then new ones as they commit, without gaps or duplicates
  (the stream is read from the store, so it can only carry committed rows);
  ``&types=A,B`` or ``&subscription=NAME`` (of ``subscribe-event``) keep only those types;
- ``GET /v1/health``: pid, runtime, seq, clock, uptime, speed, clock_running, db;
- ``GET /metrics``: the Prometheus text format (:mod:`core.host.metrics`).

The unix socket is 0600 before it accepts anyone. On TCP (``--listen HOST:PORT``)
commands and the event stream need ``Authorization: Bearer <token>`` from the 0600
token file beside the database; health and ``/metrics`` stay readable.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..commands.coordination_hub.event_feed import subscribed_types
from ..commands.grammar import MAX_COMMAND_CHARS
from ..private import open_beside, trust_requested, write_private
from .connections import ConnectionLimit, OneLineLog
from .metrics import CONTENT_TYPE, exposition, registry_for
from .paths import bind_socket, host_socket_path, token_path
from .stream import Follower

if TYPE_CHECKING:
    from .control import HostControl

HOST_KEY: web.AppKey[HostControl] = web.AppKey("host")
SERVER_KEY: web.AppKey[HostServer] = web.AppKey("server")
PUBLIC_HEALTH = ("runtime", "seq", "clock", "uptime", "speed", "clock_running", "simulated", "started_at")
"""What ``/v1/health`` tells a TCP client without the token: no pid, path or address."""
PROTECTED = ("/v1/commands", "/v1/events")
"""Paths that need the bearer token over TCP."""
MAX_SEQ = 2**63 - 1
"""The largest sequence number SQLite can hold (a signed 64-bit integer)."""


class CommandRequest(BaseModel):
    """The body of ``POST /v1/commands``."""

    model_config = ConfigDict(extra="forbid")
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS, description="a slash command")
    actor: str = Field("operator", min_length=1, max_length=200, description="who it is recorded as")

    @field_validator("command", "actor")
    @classmethod
    def _text(cls, v: str) -> str:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"character {exc.start + 1} is half of a surrogate pair, not text") from None
        return v


def bad_request(code: str, message: str, details: dict[str, Any] | None = None, status: int = 400) -> web.Response:
    body = {
        "status": "error",
        "error": {"code": code, "message": message, "details": details or {}},
        "recovery_suggestions": ['POST /v1/commands {"command": "/host status", "actor": "me"}'],
    }
    return web.json_response(body, status=status)


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) or a clear ValueError."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8470")
    host = host.strip("[]")
    try:
        num = int(port)
    except ValueError:
        raise ValueError(f"--listen {listen!r}: the port {port!r} is not a number") from None
    if not 0 <= num <= 65535:
        raise ValueError(f"--listen {listen!r}: the port must be 0..65535")
    return host, num


def ensure_token(db: str | Path) -> str:
    """The bearer token of ``db``'s host: kept if the file is ours and private, else made
    anew. A symlink at its name, or a file another user owns, is refused (a token they
    chose, or a file of ours read as one)."""
    path = token_path(db)
    try:
        fd = open_beside(path, os.O_RDONLY, "token", trust=trust_requested())
    except FileNotFoundError:
        fd = None
    if fd is not None:
        try:
            tok = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            st = os.fstat(fd)
            private = st.st_uid == os.getuid() and st.st_mode & 0o077 == 0
        finally:
            os.close(fd)
        if private and len(tok) >= 32:
            return tok
    tok = secrets.token_urlsafe(32)
    write_private(path, tok + "\n")
    return tok


def _on_unix(request: web.Request) -> bool:
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX


class HostServer:
    """The aiohttp application of one host and the sites it listens on."""

    def __init__(self, host: HostControl) -> None:
        self.host = host
        self.token: str | None = None
        self.listen: str | None = None
        self.socket_path: Path = host_socket_path(host.db)
        self.app = web.Application(middlewares=[self._auth], client_max_size=8 * 1024 * 1024)
        self.app[HOST_KEY] = host
        self.app[SERVER_KEY] = self
        self.app.router.add_post("/v1/commands", self.commands)
        self.app.router.add_get("/v1/events", self.events)
        self.app.router.add_get("/v1/health", self.health)
        self.app.router.add_get("/metrics", self.metrics)
        self.app.on_response_prepare.append(self._idle_timeout_said)
        self.registry = registry_for(host.engine)
        self._runner: web.AppRunner | None = None
        self.limit: ConnectionLimit = ConnectionLimit(None, 1)
        self._streams: set[asyncio.Task[Any]] = set()

    # -- lifecycle --------------------------------------------------------------
    async def start(self, listen: str | None = None, unix: socket.socket | None = None) -> None:
        """Bind the unix socket (0600 before listening; ``unix``: bound already, by the
        host's :class:`~.door.Door`) and, with ``listen``, TCP."""
        tcp: tuple[str, int] | None = parse_listen(listen) if listen else None
        cfg = self.host.engine.config.server
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=1.0,
            keepalive_timeout=cfg.idle_timeout_s,  # also bounds the wait for a request's head
            logger=OneLineLog(),
        )
        await self._runner.setup()
        assert self._runner.server is not None
        self.limit = ConnectionLimit(self._runner.server, cfg.max_connections)
        await self.limit.listen(unix if unix is not None else bind_socket(self.socket_path))
        if tcp is not None:
            self.token = ensure_token(self.host.db)
            family = socket.AF_INET6 if ":" in tcp[0] else socket.AF_INET
            tsock = socket.create_server(tcp, family=family, reuse_port=False)
            await self.limit.listen(tsock)
            bound = tsock.getsockname()
            self.listen = f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"

    async def stop(self) -> None:
        for t in list(self._streams):
            t.cancel()
        await self.limit.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass

    # -- middleware -------------------------------------------------------------
    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in PROTECTED and not self._trusted(request):
            return bad_request(
                "UNAUTHORIZED",
                f"{request.path} over TCP needs 'Authorization: Bearer <token>' "
                "(the token is in the file <database>.token beside the database, readable by its owner only)",
                status=401,
            )
        return await handler(request)

    async def _idle_timeout_said(self, request: web.Request, response: web.StreamResponse) -> None:
        """Each answer says how long an idle connection is kept (``keepalive_timeout``):
        the client stops using a kept one before this host closes it. Whole seconds, rounded
        down (delta-seconds are digits only): never later than this host closes it."""
        response.headers["Keep-Alive"] = f"timeout={int(self.host.engine.config.server.idle_timeout_s)}"

    def _trusted(self, request: web.Request) -> bool:
        """On the (0600) unix socket, or over TCP with the bearer token."""
        if _on_unix(request):
            return True
        want = self.token
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return (
            want is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(value.strip().encode(), want.encode())
        )

    # -- handlers ---------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        """Anyone on TCP learns that the host is up and where its clock is; the pid,
        the database path and the addresses only with the token (or on the socket)."""
        st = self.host.status()
        if not self._trusted(request):
            return web.json_response({k: st[k] for k in PUBLIC_HEALTH})
        keys = (
            "pid",
            "runtime",
            "seq",
            "clock",
            "uptime",
            "speed",
            "clock_running",
            "db",
            "simulated",
            "started_at",
            "listen",
            "advance",
        )
        storage = {
            k: st["storage"][k]
            for k in (
                "state",
                "since",
                "held_events",
                "lock_waited_s",
                "paused",
                "samples_not_stored",
                "checkpoints_unrecorded",
            )
        }
        return web.json_response({**{k: st[k] for k in keys}, "storage": storage})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=exposition(self.registry), headers={"Content-Type": CONTENT_TYPE})

    async def commands(self, request: web.Request) -> web.Response:
        timeout = self.host.engine.config.server.body_timeout_s
        try:
            raw = await asyncio.wait_for(request.read(), timeout)
        except TimeoutError:
            return bad_request("REQUEST_TIMEOUT", f"the request body did not arrive within {timeout:g}s", status=408)
        except web.HTTPRequestEntityTooLarge as exc:
            return bad_request("REQUEST_TOO_LARGE", exc.text or "the request body is too large", status=413)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            return bad_request("INVALID_JSON", f"the request body is not JSON: {msg}{where}")
        try:
            req = CommandRequest.model_validate(body)
        except ValidationError as exc:
            errs = exc.errors(include_url=False)
            first = errs[0]
            field = ".".join(str(p) for p in first["loc"]) or "(body)"
            return bad_request(
                "INVALID_REQUEST",
                f"field {field!r}: {first['msg']}",
                {"errors": [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in errs]},
            )
        # Shielded: a client that disconnects mid-command does not cut it in half;
        # it runs to its commit (or its error) either way.
        resp = await asyncio.shield(self.host.execute(req.command, req.actor))
        return web.json_response(resp, dumps=lambda o: json.dumps(o, default=str))

    async def events(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("since", "0")
        try:
            if len(raw) > 20:
                raise ValueError
            since = int(raw)
            if not 0 <= since <= MAX_SEQ:
                raise ValueError
        except ValueError:
            return bad_request(
                "INVALID_REQUEST", f"since={raw[:40]!r}: expected a sequence number (an integer 0..{MAX_SEQ})"
            )
        host = self.host
        store = host.engine.store
        if store is None:
            return bad_request("NO_STORE", "this host has no database to stream from", status=409)
        wanted: set[str] | None = None  # ?types=A,B and/or ?subscription=NAME (subscribe-event)
        if request.query.get("types"):
            wanted = {t for t in request.query["types"].split(",") if t}
        if request.query.get("subscription"):
            sub = subscribed_types(host.engine.state, request.query["subscription"])
            if not sub:
                return bad_request(
                    "SUBSCRIPTION_NOT_FOUND", f"no subscription {request.query['subscription']!r}", status=404
                )
            wanted = sub if wanted is None else wanted & sub
        cfg = host.engine.config.server
        if len(self._streams) >= cfg.max_followers:
            return bad_request(
                "TOO_MANY_FOLLOWERS",
                f"this host already streams events to {len(self._streams)} followers, its limit "
                f"(server.max_followers = {cfg.max_followers}); try again later",
                {"limit": cfg.max_followers, "followers": len(self._streams)},
                status=503,
            )
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await resp.prepare(request)
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            await Follower(host, request, resp, since, wanted).run()
        finally:
            if task is not None:
                self._streams.discard(task)
        return resp
