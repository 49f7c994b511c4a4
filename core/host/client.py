"""A client of a live host: send commands, read health, follow the event stream.

``HostClient.for_db(db)`` finds the host through the database's lease (None when no
live process holds it); ``HostClient.for_url(url, token)`` reaches one over TCP.
When the host goes away (killed, stopped) every call raises :class:`HostGone` naming
its pid: the socket closes with the process, so a follower learns it at once. An
answer this client cannot read (not HTTP, over a size limit) raises
:class:`HostBadAnswer`, a HostGone. A stream the host refuses with an error status
raises :class:`HostRefused` (not gone: its words are given), except a busy host's 503,
which is asked again with a growing wait. A stream that breaks after the host took it
(its connection closed mid-answer: the host's streaming code failed) is followed again
from the last event read when the host still answers; only a host whose process or
socket is gone is "gone". The HTTP is the standard library's asyncio
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
from .client_http import MAX_BODY_BYTES, Disconnected, Endpoint, HttpError, Malformed, Pool, Response
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
from .stream import CLOSING_COMMENT, DROPPED_EVENT, Blocks, event_from_json, process_state

if TYPE_CHECKING:
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
"""A stream refused because the host is busy (503), or broken again where it broke, is
asked for again after the first wait, each wait twice the last, at most this long."""


DROPPED_MARK = f"event: {DROPPED_EVENT}\n".encode()
CLOSING_MARK = CLOSING_COMMENT.rstrip(b"\n")
"""The end of the whole blocks (:class:`Blocks`) that hold the host's closing comment last."""


class StreamBroke(Exception):
    """The event stream broke after the host took it (its connection closed mid-answer,
    or it ended without the host's closing word): whether the host is gone is asked
    before anything is said (:meth:`HostClient._after_break`)."""


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
        self.on_broken: Callable[[str | None, float], None] | None = None
        """Told (a sentence, the wait before following again) each time the stream breaks
        while the host is still there, and (None, 0) once the host takes the stream again."""
        self.broken: str | None = None
        """What was said of the stream's last break, until the host takes the stream again."""

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
        when it answers ``/v1/health``; :class:`HostGone` when its process is gone or
        nothing listens on its endpoint (a host over TCP has no pid to look at)."""
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
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            # Nothing listens where it did: its endpoint is closed, whatever its process does.
            where = self.socket_path or self.base
            raise self.gone(f"{where} takes no connection: {exc.strerror or exc}") from None
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
        again, broke_at = 0.0, -1
        while True:
            dropped: list[dict[str, Any]] = []
            try:
                async for obj in self._stream(last, dropped):
                    last = int(obj["seq"])
                    yield obj
            except StreamBroke as exc:
                unwell = await self._after_break(str(exc))  # HostGone when its process or socket is gone
                # At once after a break that followed events; growing while it breaks again where it broke.
                again = min(BUSY_MAX_S, max(BUSY_FIRST_S, 2 * again)) if last == broke_at else 0.0
                broke_at = last
                self.broken = (
                    f"the event stream of {the_host(self.pid)} broke after seq {last:,}: {exc}; the host is "
                    + (f"still there ({unwell})" if unwell else "still there and answers its health check")
                    + f": following again from seq {last:,}"
                    + (f" in {again:g}s" if again else "")
                )
                if self.on_broken is not None:
                    self.on_broken(self.broken, again)
                await asyncio.sleep(again)
                continue
            except HostBusy as exc:
                # Growing while the refusals follow each other; from the first wait again
                # once the host took the stream in between.
                wait = min(BUSY_MAX_S, 2 * wait) if self.busy is not None else BUSY_FIRST_S
                self.busy = exc
                if self.on_busy is not None:
                    self.on_busy(exc, wait)
                await asyncio.sleep(wait)
                continue
            self.resumed += 1

    async def _after_break(self, why: str) -> str | None:
        """After the stream broke (``why``): :class:`HostGone` when the host's process is
        gone or its socket takes no connection; else None when it answers ``/v1/health``,
        or why it does not (its process is there: stopped, or slow to answer)."""
        if process_state(self.pid) == "gone":
            raise self.gone(f"the event stream broke ({why}) and its process no longer exists")
        try:
            async with asyncio.timeout(PROBE_S):
                await self._fetch("GET", "/v1/health", None)
        except Disconnected as exc:
            if exc.before_answer:  # took the connection and closed it unanswered: shutting down
                raise self.gone(f"the event stream broke ({why}) and it closes connections unanswered") from None
            return f"its health answer broke too: {exc}"
        except TimeoutError:
            stopped = process_state(self.pid) == "stopped"
            return "stopped (SIGSTOP or SIGTSTP)" if stopped else f"no answer to /v1/health within {PROBE_S:g}s"
        except HttpError as exc:
            return f"its health answer cannot be read: {exc}"
        except OSError as exc:
            where = self.socket_path or self.base
            raise self.gone(
                f"the event stream broke ({why}) and {where} takes no connection: "
                f"{exc.strerror or str(exc) or type(exc).__name__}"
            ) from None
        return None

    async def _stream(self, since: int, dropped: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        """One connection of the event stream; ends when the host drops it (``dropped``
        filled); :class:`StreamBroke` when it breaks otherwise, :class:`HostGone` when the
        host ends it as it shuts down."""
        await self._ready()
        silent = False
        closing = False  # the host's closing comment came last
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
            if self.broken is not None:
                self.broken = None
                if self.on_broken is not None:
                    self.on_broken(None, 0.0)
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
                    raise StreamBroke(str(exc) or type(exc).__name__) from None
                if chunk is None:
                    if dropped:
                        return
                    if closing:
                        raise self.gone("it closed the event stream as it shuts down")
                    raise StreamBroke("the host ended it without its closing word")
                if silent and self.on_silence is not None:
                    self.on_silence(None)
                silent = False
                blocks = cut.feed(chunk)
                if cut.pending > MAX_EVENT_BYTES:  # what is left is the start of one event
                    raise UndecodableEvent(self.pid, after, None, f"over {MAX_EVENT_BYTES} bytes")
                if not blocks:
                    continue
                closing = blocks.endswith(CLOSING_MARK)
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
