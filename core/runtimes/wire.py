"""The agent socket's framing: one JSON object per line, both directions.

Shared by the console side (``local.py``) and the agent host (``agent_host.py``);
it imports nothing heavy so that an agent host starts fast. Both ends frame the bytes
as they arrive (:class:`CommandReader`, called from the loop's read callback): the host
hands each command on at once, the console applies each report at once. :func:`messages`
reads a stream whole where one message is awaited (a host's hello when its identity is
proved, the launcher's channel).

A line may be up to :data:`MAX_LINE` bytes (the readers' buffer limit); senders keep
theirs far under it (output lines and partial results are capped where they are
made). A longer line is skipped whole and the reader is handed an
``{"t": "oversize", "bytes": N}`` message in its place, so the connection stays in
step and the receiver can fail what the message was about, with the reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

MAX_LINE = 16 * 1024 * 1024
"""The longest message a reader takes (bytes, its newline included)."""
OVERSIZE = "oversize"
_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""The standard library's encoder, for what orjson cannot write as it writes it."""
_NULL = b"null"
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x78 for b in range(256))
"""Each digit as ``0``, every other byte as ``x``: a line's runs of digits, found with ``in``."""
_LONG_NUMBER = b"0" * 19
"""A run of digits that may be an integer beyond 64 bits, which orjson reads as a float."""


def encode(msg: dict[str, Any]) -> bytes:
    """One message's line. orjson's bytes (a fifth of the standard library's cost per
    message) wherever they decode to what the standard library's would: always, except
    that orjson writes a NaN or an infinity as ``null`` (so a line with a ``null`` is
    read back and compared) and refuses what the standard library writes otherwise
    (integers beyond 64 bits, lone surrogates, keys that are not strings)."""
    try:
        data = orjson.dumps(msg, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError
        return (_ENCODER.encode(msg) + "\n").encode()
    if _NULL in data and orjson.loads(data) != msg:
        return (_ENCODER.encode(msg) + "\n").encode()
    return data


def decode(line: bytes | bytearray) -> Any:
    """A line's message as :func:`json.loads` reads it: orjson's reading (a quarter of
    its cost), except where orjson refuses the text (NaN, lone surrogates, numbers out
    of a double's range) or may read it otherwise (a run of 19 digits or more: an
    integer beyond 64 bits, which orjson makes a float); ValueError when neither reads it
    (a line nested too deeply included: json's RecursionError would end the connection's
    reading from the loop's read callback, with the lines read before it in its chunk)."""
    if _LONG_NUMBER not in line.translate(_DIGITS):
        try:
            return orjson.loads(line)
        except ValueError:  # orjson.JSONDecodeError
            pass
    try:
        return json.loads(line)
    except RecursionError:  # nested deeper than the interpreter recurses: garbled as any other
        raise ValueError("a line nested too deeply to read") from None


async def messages(reader: asyncio.StreamReader) -> AsyncIterator[Any]:
    """Each message until the peer closes; a garbled line is skipped, not fatal; a
    line over the reader's limit is skipped and reported as an ``oversize`` message."""
    skipped = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip() and not skipped:
                try:
                    yield decode(exc.partial)
                except ValueError:  # not JSON, or not UTF-8
                    pass
            return
        except asyncio.LimitOverrunError as exc:
            # Over the limit: drop what is buffered (bounded memory), keep going to its end.
            await reader.readexactly(max(exc.consumed, 1))
            skipped += max(exc.consumed, 1)
            continue
        if skipped:
            yield {"t": OVERSIZE, "bytes": skipped + len(line)}
            skipped = 0
            continue
        try:
            yield decode(line)
        except ValueError:  # not JSON, or not UTF-8
            continue


class LineFramer:
    """The framing of :func:`messages`, fed chunk by chunk: the messages each chunk
    completes (a garbled line skipped, a line over ``limit`` reported as ``oversize``)."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._skipped = 0
        """Bytes of a line over the limit dropped so far (it is reported at its end)."""

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        buf += data
        out: list[Any] = []
        start = 0
        while (nl := buf.find(b"\n", start)) >= 0:
            size = nl + 1 - start
            if self._skipped or size - 1 > self._limit:
                out.append({"t": OVERSIZE, "bytes": self._skipped + size})
                self._skipped = 0
            else:
                try:
                    out.append(decode(buf[start : nl + 1]))
                except ValueError:  # not JSON, or not UTF-8
                    pass
            start = nl + 1
        if start:
            del buf[:start]
        if len(buf) > self._limit:  # no end in sight: held no longer (bounded memory)
            self._skipped += len(buf)
            buf.clear()
        return out

    def end(self) -> list[Any]:
        """At the end of the stream: its last line if it had no newline."""
        tail, skipped = bytes(self._buf), self._skipped
        self._buf.clear()
        self._skipped = 0
        if tail.strip() and not skipped:
            try:
                return [decode(tail)]
            except ValueError:
                pass
        return []


class CommandReader(asyncio.StreamReader):
    """A connection's reader: its first ``handshake_lines`` lines are read as a
    StreamReader's (the handshake awaits them); every line after them is framed here
    as it arrives and handed to the callback :meth:`deliver` names, from the loop's
    read callback itself: no task wakes up and no future is made per message.
    Messages that arrive before :meth:`deliver` are held for it, and nothing more is
    read meanwhile (:meth:`pause`): what a connection sends is held here one read at
    most, the rest waits in the socket (its sender blocks once that is full)."""

    def __init__(self, limit: int = MAX_LINE, handshake_lines: int = 1) -> None:
        super().__init__(limit=limit)
        self._framer = LineFramer(limit)
        self._handshake = handshake_lines
        self._to: Callable[[Any], None] | None = None
        self._at_end: Callable[[], None] | None = None
        self._held: list[Any] = []
        self._ended = False
        self._conn: asyncio.BaseTransport | None = None
        self.dropped = False
        """Set by :meth:`drop`: no more of its messages are handed on."""

    def set_transport(self, transport: asyncio.BaseTransport) -> None:
        super().set_transport(transport)
        self._conn = transport

    def pause(self) -> None:
        """Read nothing more from the connection until :meth:`resume`."""
        if isinstance(self._conn, asyncio.ReadTransport):
            self._conn.pause_reading()

    def resume(self) -> None:
        if isinstance(self._conn, asyncio.ReadTransport):
            self._conn.resume_reading()

    def drop(self) -> None:
        """Hand on none of the connection's messages from now on (one of them failed)."""
        self.dropped = True
        self._held.clear()

    def deliver(self, to: Callable[[Any], None], at_end: Callable[[], None]) -> None:
        """From now on each message goes to ``to`` (those held first); ``at_end`` is
        called once the connection is gone."""
        self._to, self._at_end = to, at_end
        held, self._held = self._held, []
        self.resume()
        self._hand(held)
        if self._ended:
            at_end()

    def feed_data(self, data: Any) -> None:
        data = bytes(data)
        while self._handshake and data:
            nl = data.find(b"\n")
            if nl < 0:
                super().feed_data(data)
                return
            super().feed_data(data[: nl + 1])
            data = data[nl + 1 :]
            self._handshake -= 1
        if data:
            self._hand(self._framer.feed(data))

    def _hand(self, msgs: list[Any]) -> None:
        if self._to is None:
            self._held += msgs
            if msgs:
                self.pause()
            return
        for msg in msgs:
            if self.dropped:
                return
            self._to(msg)

    def feed_eof(self) -> None:
        super().feed_eof()
        if not self._handshake:
            self._end(self._framer.end())

    def set_exception(self, exc: Exception) -> None:
        super().set_exception(exc)
        self._end([])

    def _end(self, last: list[Any]) -> None:
        if self._ended:
            return
        self._ended = True
        self._hand(last)
        if self._at_end is not None:
            self._at_end()
