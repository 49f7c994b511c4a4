"""A client of a live host: send commands, read health, follow the event stream.

``HostClient.for_db(db)`` finds the host through the database's lease (None when no
live process holds it); ``HostClient.for_url(url, token)`` reaches one over TCP.
When the host goes away (killed, stopped) every call raises :class:`HostGone` naming
its pid: the socket closes with the process, so a follower learns it at once. An
answer this client cannot read (not HTTP, over a size limit) raises
:class:`HostBadAnswer`, a HostGone. A stream the host refuses with an error status
raises :class:`HostRefused` (not gone: its words are given), except a busy host's 503,
which is asked again with a growing wait. The HTTP is the standard library's asyncio
streams (:mod:`core.host.client_http`), not aiohttp's client (about 0.3 s of CPU to import).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..timefmt import duration
from .client_http import MAX_BODY_BYTES, Endpoint, HttpError, Malformed, Pool, Response
from .errors import (
    STREAM,
    HostBadAnswer,
    HostBusy,
    HostGone,
    HostRefused,
    HostUnresponsive,
    UndecodableEvent,
    no_endpoint,
    refused,
    the_host,
)
from .lease import Holder, current_holder
from .stream import DROPPED_EVENT

if TYPE_CHECKING:
    # Event loads with the first event decoded (the event catalogue): a client used
    # only for commands does not load it.
    from ..events import Event

__all__ = ["HostBadAnswer", "HostBusy", "HostClient", "HostGone", "HostRefused", "UndecodableEvent", "event_from_json"]

STARTUP_WAIT_S = 30.0
"""How long a client waits for a host that holds the lease to open its endpoint."""
SILENCE_S = 5.0
"""A stream quiet this long (the host sends keepalives every second) is checked for life."""
PROBE_S = 5.0
"""While a command runs, the host is checked this often (its process state, ``/v1/health``)."""
UNRESPONSIVE_S = 30.0
"""A command gives up once the host has not answered for this long (stopped or unresponsive)."""
MAX_EVENT_BYTES = 64 * 1024 * 1024
"""One event of the stream (its server-sent-events block) at most this long."""
REFUSAL_SHOWN = 300
"""Characters of a refused stream's answer quoted in the error."""
BUSY_FIRST_S = 0.5
BUSY_MAX_S = 10.0
"""A stream refused because the host is busy (503) is asked for again after the first
wait, each wait twice the last, at most this long."""


DROPPED_MARK = f"event: {DROPPED_EVENT}\n".encode()


def event_from_json(obj: dict[str, Any]) -> Event:
    """The event ``obj`` (a line of the stream) holds: KeyError, TypeError or ValueError
    for a field missing or of the wrong type."""
    from ..events import Event

    ev = Event(
        seq=int(obj["seq"]),
        ts=float(obj["ts"]),
        type=obj["type"],
        component=obj["component"],
        scope=obj["scope"],
        data=obj.get("data") or {},
        actor=obj.get("actor") or "engine",
    )
    if not all(isinstance(v, str) for v in (ev.type, ev.component, ev.scope, ev.actor)) or not isinstance(
        ev.data, dict
    ):
        raise TypeError("type, component, scope and actor are text, data an object")
    return ev


def process_state(pid: int | None) -> str | None:
    """``"gone"`` (no such process, or exited and not reaped), ``"stopped"`` (SIGSTOP,
    SIGTSTP, a debugger) or None (running, or not ours to inspect)."""
    if not pid:
        return None
    import psutil  # only when a host is slow to answer

    try:
        st = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.Error:
        return None
    if st in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
        return "stopped"
    if st in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        return "gone"
    return None


class Blocks:
    """The event stream's bytes as they come, cut at its last blank line: the whole
    server-sent-event blocks so far. An event longer than a read is held in pieces and
    joined once it is whole: appending each read to one buffer and searching all of it
    costs time quadratic in an event's size (a 10,000-task workflow's creation is 1.1 MB)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.pending = 0
        """Bytes held of an event not yet whole."""

    def feed(self, data: bytes) -> bytes:
        """The whole blocks ``data`` completes, without their last blank line (b"" for none)."""
        seam = self._parts[-1][-1:] + data if self._parts else data  # a blank line may span two reads
        end = seam.rfind(b"\n\n")
        if end < 0:
            if data:
                self._parts.append(data)
                self.pending += len(data)
            return b""
        buf = b"".join([*self._parts, data])
        end += len(buf) - len(seam)
        rest = buf[end + 2 :]
        self._parts = [rest] if rest else []
        self.pending = len(rest)
        return buf[:end]


class HostClient:
    """Talks HTTP to one host, on its unix socket or over TCP with a token."""

    def __init__(
        self,
        *,
        socket_path: str | Path | None = None,
        url: str | None = None,
        token: str | None = None,
        pid: int | None = None,
        db: str | Path | None = None,
        holder: Holder | None = None,
    ) -> None:
        if (socket_path is not None and url is not None) or (socket_path is None and url is None and db is None):
            raise ValueError("a HostClient needs a socket path, a database or a URL")
        self.socket_path = Path(socket_path) if socket_path is not None else None
        self.base = "http://opsdeck" if url is None else url.rstrip("/")
        if url is not None:
            Endpoint.parse(self.base, None)  # a URL it cannot reach is refused here, not at first use
        if token == "":
            # Sending no Authorization header for it would hide the mistake until a 401.
            raise ValueError("the host token is empty: pass the token (in <database>.token) or None for no token")
        if token is not None and (not token.isascii() or not token.isprintable() or " " in token):
            raise ValueError("a host token is printable ASCII without spaces")
        self.token = token
        self.pid = pid
        self.db = Path(db) if db is not None else None
        self.holder = holder
        self._pool: Pool | None = None
        self.resumed = 0
        """Times the event stream was dropped by the host and opened again."""
        self.unresponsive_s = UNRESPONSIVE_S
        self.on_silence: Callable[[str | None], None] | None = None
        """Told (a sentence) when a followed stream goes silent, and (None) when it speaks again."""
        self.on_busy: Callable[[HostBusy | None, float], None] | None = None
        """Told (the refusal, the wait before asking again) each time the host refuses the
        stream as busy, and (None, 0) once it takes the stream again."""
        self.busy: HostBusy | None = None
        """The host's last busy refusal of the stream, until it takes the stream again."""

    @classmethod
    def for_db(cls, db: str | Path) -> HostClient | None:
        """A client of the live host of ``db``, or None when no host holds its lease
        (nobody, or a one-shot in-process tool such as ``exec`` that serves no one)."""
        holder = current_holder(db)
        if holder is None or not holder.host:
            return None
        # A host still opening its log has not recorded its socket yet: found on first use.
        return cls(socket_path=holder.socket, pid=holder.pid, db=db, holder=holder)

    @classmethod
    def for_url(cls, url: str, token: str | None = None) -> HostClient:
        return cls(url=url, token=token)

    # -- plumbing ---------------------------------------------------------------
    async def _ready(self) -> None:
        """Learn the socket of a host that took the lease but was not listening yet."""
        if self.socket_path is not None or self.db is None or self.base != "http://opsdeck":
            return
        deadline = time.monotonic() + STARTUP_WAIT_S
        while True:
            holder = current_holder(self.db)
            if holder is None or (self.pid is not None and holder.pid != self.pid):
                raise self.gone("it released the database before it opened its endpoint")
            if holder.socket:
                self.socket_path = Path(holder.socket)
                self.holder = holder
                return
            if time.monotonic() > deadline:
                raise no_endpoint(holder.pid, self.db, STARTUP_WAIT_S, holder.command)
            await asyncio.sleep(0.05)

    def _conns(self) -> Pool:
        if self._pool is None:
            unix = str(self.socket_path) if self.socket_path is not None else None
            self._pool = Pool(Endpoint.parse(self.base, unix))
        return self._pool

    def _headers(self) -> dict[str, str]:
        return {} if self.token is None else {"Authorization": f"Bearer {self.token}"}

    def gone(self, reason: str) -> HostGone:
        return HostGone(self.pid, reason)

    def _failed(self, exc: BaseException, request: str) -> HostGone:
        """What a failed exchange means to a caller: the host gone, or its answer to
        ``request`` unreadable."""
        if isinstance(exc, Malformed):
            return HostBadAnswer(self.pid, str(exc), request)
        if isinstance(exc, OSError) and not isinstance(exc, HttpError):
            where = self.socket_path or self.base
            return self.gone(f"{where}: {exc.strerror or str(exc) or type(exc).__name__}")
        return self.gone(str(exc) or type(exc).__name__)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def __aenter__(self) -> HostClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def silence(self) -> str | None:
        """Why the host does not answer, in words naming its pid and state, or None
        when it answers ``/v1/health``; :class:`HostGone` when its process is gone."""
        who = the_host(self.pid) if self.pid else f"the host at {self.socket_path or self.base}"
        state = process_state(self.pid)
        if state == "gone":
            raise self.gone("its process no longer exists")
        if state == "stopped":
            return f"{who} is stopped (SIGSTOP or SIGTSTP): it answers nothing until continued (kill -CONT {self.pid})"
        try:
            async with asyncio.timeout(PROBE_S):
                await self._fetch("GET", "/v1/health", None)
            return None
        except (TimeoutError, HttpError, OSError):
            return f"{who} is running but unresponsive: no answer to /v1/health within {PROBE_S:g}s"

    def unresponsive(self, why: str, waited: float) -> HostUnresponsive:
        state = "stopped" if " is stopped " in why else "unresponsive"
        return HostUnresponsive(self.pid, state, f"{why}; gave up after {duration(waited)}")

    async def _fetch(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        """One exchange; the wire's own errors (OSError, HttpError) as they come."""
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers()
        if data is not None:
            headers["Content-Type"] = "application/json"
        pool = self._conns()
        resp = await pool.exchange(method, path, headers, data)
        try:
            raw = await resp.read(MAX_BODY_BYTES)
        except BaseException:
            pool.discard(resp.conn)
            raise
        pool.release(resp)
        return resp.status, raw

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, str]:
        try:
            status, raw = await self._fetch(method, path, body)
        except (HttpError, OSError) as exc:
            raise self._failed(exc, f"{method} {path}") from None
        try:
            return status, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HostBadAnswer(
                self.pid, f"answered {status} with bytes that are not UTF-8 (at byte {exc.start})", f"{method} {path}"
            ) from None

    async def _json(self, method: str, path: str, body: Any = None, refuse: bool = False) -> dict[str, Any]:
        """One request, watched: a host that stays stopped or unresponsive for
        :attr:`unresponsive_s` ends the wait with :class:`HostUnresponsive` (a long
        command on a host that keeps answering its health check is waited for). With
        ``refuse``, an answer other than 200 raises :class:`HostRefused` (a command's
        error answer is its response, in the command envelope)."""
        await self._ready()
        loop = asyncio.get_running_loop()
        req = asyncio.ensure_future(self._request(method, path, body))
        step = min(PROBE_S, self.unresponsive_s)
        silent_since: float | None = None
        try:
            while True:
                done, _ = await asyncio.wait({req}, timeout=step)
                if done:
                    status, text = req.result()
                    break
                why = await self.silence()
                if req.done():
                    continue
                if why is None:
                    silent_since = None
                    continue
                if silent_since is None:
                    silent_since = loop.time() - step
                if loop.time() - silent_since >= self.unresponsive_s:
                    raise self.unresponsive(why, loop.time() - silent_since)
        finally:
            req.cancel()
        if refuse and status != 200:
            raise refused(self.pid, f"{method} {path}", status, text, REFUSAL_SHOWN)
        try:
            out = json.loads(text)
        except json.JSONDecodeError:
            raise HostBadAnswer(
                self.pid, f"answered {status} with something that is not JSON: {text[:200]!r}", f"{method} {path}"
            ) from None
        if not isinstance(out, dict):
            raise HostBadAnswer(self.pid, f"answered {status} with JSON that is not an object", f"{method} {path}")
        return out

    # -- the API ----------------------------------------------------------------
    async def send(self, text: str, actor: str = "operator") -> dict[str, Any]:
        """Run a command on the host: its response, once its events are committed (a command
        that changed nothing is answered before its own COMMAND_EXECUTED record commits)."""
        return await self._json("POST", "/v1/commands", {"command": text, "actor": actor})

    async def health(self) -> dict[str, Any]:
        """``GET /v1/health``; an answer other than 200 (the host at its connection cap:
        503) raises :class:`HostRefused` with the host's words, never read as health."""
        return await self._json("GET", "/v1/health", refuse=True)

    async def event_objects(self, since: int = 0) -> AsyncIterator[dict[str, Any]]:
        """The host's committed events after ``since`` as JSON objects (with hash and line), then live.
        When the host drops this stream (the reader fell behind), it is opened again
        from the last event yielded: nothing is skipped or repeated. A host that refuses it
        as busy (503) is asked again after a growing wait (:attr:`on_busy` is told); any
        other refusal raises :class:`HostRefused`, said as the host said it."""
        last = since
        wait = BUSY_FIRST_S
        while True:
            dropped: list[dict[str, Any]] = []
            try:
                async for obj in self._stream(last, dropped):
                    last = int(obj["seq"])
                    yield obj
            except HostBusy as exc:
                # Growing while the refusals follow each other; from the first wait again
                # once the host took the stream in between.
                wait = min(BUSY_MAX_S, 2 * wait) if self.busy is not None else BUSY_FIRST_S
                self.busy = exc
                if self.on_busy is not None:
                    self.on_busy(exc, wait)
                await asyncio.sleep(wait)
                continue
            if not dropped:
                raise self.gone("the event stream closed")
            self.resumed += 1

    async def _stream(self, since: int, dropped: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        """One connection of the event stream; ends when the host drops it (``dropped`` filled)."""
        await self._ready()
        silent = False
        after = since  # the last event yielded: where an undecodable one is said to be

        async def check() -> None:
            nonlocal silent
            why = await self.silence()  # HostGone if its process is gone
            if why is not None and not silent and self.on_silence is not None:
                self.on_silence(f"{why}; no events or keepalives for {SILENCE_S:g}s, still waiting")
            silent = silent or why is not None

        pool = self._conns()
        opening = asyncio.ensure_future(pool.exchange("GET", f"/v1/events?since={since}", self._headers(), None))
        try:
            while not (await asyncio.wait({opening}, timeout=SILENCE_S))[0]:
                await check()
        except BaseException:
            opening.cancel()
            if opening.done() and not opening.cancelled() and opening.exception() is None:
                pool.discard(opening.result().conn)  # answered in the loop turn this was cancelled
            raise
        try:
            resp = opening.result()
        except (HttpError, OSError) as exc:
            raise self._failed(exc, STREAM) from None
        try:
            if resp.status != 200:
                raise refused(self.pid, STREAM, resp.status, await self._refusal(resp), REFUSAL_SHOWN)
            if self.busy is not None:
                self.busy = None
                if self.on_busy is not None:
                    self.on_busy(None, 0.0)
            cut = Blocks()
            while True:
                try:
                    async with asyncio.timeout(SILENCE_S):
                        chunk = await resp.piece()
                except TimeoutError:
                    await check()
                    continue
                except Malformed as exc:
                    raise self._failed(exc, STREAM) from None
                except (HttpError, OSError) as exc:
                    if dropped:
                        return
                    raise self._failed(exc, STREAM) from None
                if chunk is None:
                    return
                if silent and self.on_silence is not None:
                    self.on_silence(None)
                silent = False
                blocks = cut.feed(chunk)
                if cut.pending > MAX_EVENT_BYTES:  # what is left is the start of one event
                    raise UndecodableEvent(self.pid, after, None, f"over {MAX_EVENT_BYTES} bytes")
                if not blocks:
                    continue
                try:
                    if DROPPED_MARK in blocks:
                        blocks, _, notice = blocks.partition(DROPPED_MARK)
                        dropped.append(json.loads(notice.partition(b"data:")[2]))
                    # Every whole block of this read decoded in one call (one data line per event).
                    datas = [ln[5:].lstrip() for ln in blocks.split(b"\n") if ln.startswith(b"data:")]
                    objs = json.loads(b"[" + b",".join(datas) + b"]") if datas else []
                except ValueError as exc:
                    raise UndecodableEvent(self.pid, after, None, f"not JSON: {exc}") from None
                for obj in objs:
                    if not isinstance(obj, dict) or not isinstance(obj.get("seq"), int):
                        raise UndecodableEvent(self.pid, after, None, f"no seq: {str(obj)[:200]}")
                    after = obj["seq"]
                    yield obj
                if dropped:
                    return
        finally:
            pool.discard(resp.conn)  # a stream's connection is not used again

    async def _refusal(self, resp: Response) -> str:
        """The start of a refused stream's answer, for the error: what came of it within
        :data:`SILENCE_S`, at most a few times :data:`REFUSAL_SHOWN` bytes (a host's JSON
        error is read whole: a few hundred bytes)."""
        got = b""
        try:
            async with asyncio.timeout(SILENCE_S):
                while len(got) < 4 * REFUSAL_SHOWN and (piece := await resp.piece()) is not None:
                    got += piece
        except TimeoutError:
            got += f" (the rest not sent within {SILENCE_S:g}s)".encode()
        except (HttpError, OSError) as exc:
            got += f" (the rest unread: {exc})".encode()
        return got.decode("utf-8", "replace")

    async def events(self, since: int = 0) -> AsyncIterator[Event]:
        """The host's committed events after ``since``, then live ones, as :class:`Event`."""
        after = since
        async for obj in self.event_objects(since):
            try:
                ev = event_from_json(obj)
            except (KeyError, TypeError, ValueError) as exc:
                why = f"no field {exc}" if isinstance(exc, KeyError) else str(exc)
                raise UndecodableEvent(self.pid, after, obj["seq"], f"not an event ({why}): {str(obj)[:200]}") from None
            after = ev.seq
            yield ev
