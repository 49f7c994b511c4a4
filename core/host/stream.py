"""A host's event stream, ``GET /v1/events``, from both ends: the host's follower that
sends committed rows in bounded pages, and the client's reading of its bytes.

A follower holds at most one page of rows (:attr:`~core.config.Server.send_buffer_kb`
of event data) and what the transport has not sent yet: each write waits until the
reader takes it (backpressure), so a slow reader slows only its own stream. One that
reads nothing for :attr:`~core.config.Server.stall_s` while events wait is dropped:
it is sent a ``dropped`` event naming the reason and the last sequence number sent,
and the connection is closed (aborted if the reader never takes that either). The
reader resumes with ``since=`` its last seq; nothing is skipped.

The client reads the whole server-sent-event blocks of the bytes, decodes each event,
and tells a stream's silence or break apart from a host gone (whether the host's
process is still there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web  # only the annotations: the server that uses this module imports aiohttp

    # Event loads with the first event decoded (the event catalogue): a client used
    # only for commands does not load it.
    from ..events import Event
    from .control import HostControl


log = logging.getLogger("opsdeck.host")

PAGE_ROWS = 200
"""At most this many rows per page read from the store."""
KEEPALIVE_S = 1.0
"""An idle stream sends a comment this often, so a vanished reader is noticed."""
DROP_GRACE_S = 5.0
"""After the ``dropped`` event, how long the connection waits for the reader to take it."""
DROPPED_EVENT = "dropped"
CLOSING_COMMENT = b": closing\n\n"
"""The last block of a stream the host ends as it shuts down (a comment: readers that do not
know it pass over it): a stream that ends without it broke."""
CLOSING_WAIT_S = 0.05
"""How long the host's close waits for a reader to take the closing comment."""


class Stalled(Exception):
    """The reader took nothing for the stall time while events waited for it."""


_STR = json.JSONEncoder(ensure_ascii=False)


def event_json(row: tuple[Any, ...]) -> str:
    """One stored row as the stream's JSON object, without decoding its data: the
    stored data is canonical JSON (compact, keys sorted), so it is both the ``data``
    value and the tail of the event line a reader of the store would print."""
    seq, ts, type_, component, scope, actor, data_json, _prev, h = row
    dumps = _STR.encode
    return (
        f'{{"seq":{int(seq)},"ts":{float(ts)!r},"type":{dumps(type_)},"component":{dumps(component)},'
        f'"scope":{dumps(scope)},"actor":{dumps(actor)},"data":{data_json},"hash":{dumps(h)},'
        f'"line":{dumps(f"{type_}:{component}:{scope}:{data_json}")}}}'
    )


def dropped_block(reason: str, last_sent: int) -> bytes:
    """The SSE block telling a follower why it was dropped and where to resume."""
    body = json.dumps({"reason": reason, "last_sent": last_sent, "resume": f"since=<your last seq> ({last_sent})"})
    return f"event: {DROPPED_EVENT}\ndata: {body}\n\n".encode()


class Follower:
    """Streams the host's committed events after ``since`` to one response."""

    def __init__(
        self, host: HostControl, request: web.Request, resp: web.StreamResponse, since: int, wanted: set[str] | None
    ) -> None:
        self.host = host
        self.request = request
        self.resp = resp
        self.since = since
        self.wanted = wanted
        cfg = host.engine.config.server
        self.page_chars = cfg.send_buffer_kb * 1024
        self.stall_s = cfg.stall_s
        self.last_sent = since

    async def _send(self, data: bytes) -> None:
        try:
            await asyncio.wait_for(self.resp.write(data), self.stall_s)
        except TimeoutError:
            raise Stalled(f"it read nothing for {self.stall_s:g}s while events waited") from None

    async def run(self) -> None:
        """Replay, then follow, until the host closes or the reader goes or stalls."""
        host = self.host
        store = host.engine.store
        assert store is not None
        last = self.since
        loop = asyncio.get_running_loop()
        try:
            await self._send(b": opsdeck events\n\n")
            wrote = loop.time()
            while not host.closing:
                changed = host.change_event()
                async with host.engine.store_lock:  # never between a batch's BEGIN and COMMIT
                    rows = await store.raw_page(last, PAGE_ROWS, self.page_chars)
                if rows:
                    wanted = self.wanted
                    payload = "".join(
                        f"id: {r[0]}\ndata: {event_json(r)}\n\n" for r in rows if wanted is None or r[2] in wanted
                    ).encode()
                    last = rows[-1][0]
                    del rows
                    # A write hands the page to the transport before it waits for the
                    # reader: once called, the page is queued ahead of a drop notice.
                    self.last_sent = last
                    if payload:
                        await self._send(payload)
                        wrote = loop.time()
                    continue
                # Commits without events for this reader (a running clock wakes us each
                # tick) still leave it a keepalive every KEEPALIVE_S.
                left = KEEPALIVE_S - (loop.time() - wrote)
                if left <= 0:
                    await self._send(b": keepalive\n\n")
                    wrote = loop.time()
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), left)
            # Handed to the transport at once; a reader that takes nothing does not hold up the close.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.resp.write(CLOSING_COMMENT), CLOSING_WAIT_S)
        except Stalled as exc:
            await self._drop(str(exc))
        except ConnectionError:
            pass  # the reader went away

    async def _drop(self, reason: str) -> None:
        peer = self.request.remote or "unix socket"
        log.warning(
            "opsdeck host: dropped an event follower (%s, since=%d, sent through seq %d): %s",
            peer,
            self.since,
            self.last_sent,
            reason,
        )
        transport = self.request.transport
        if transport is None or transport.is_closing():
            return
        # Queued behind what the reader has not taken (the write hands it to the
        # transport at once; only its wait for the reader is cut short).
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(self.resp.write(dropped_block(reason, self.last_sent)), 0.05)
        transport.close()  # sends what is queued if the reader comes back ...
        asyncio.get_running_loop().call_later(DROP_GRACE_S, transport.abort)  # ... for a while


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
