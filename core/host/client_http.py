"""HTTP/1.1 over asyncio streams, the host client's side of the wire.

The host serves aiohttp; its clients (``exec``, ``script``, ``events --follow``, an
attached console) speak the little HTTP they need with the standard library: one
request with ``Content-Length``, a response framed by ``Content-Length``, chunked
transfer coding or the connection's close. aiohttp's client costs about 0.3 s of
CPU to import per command line (its SSL contexts load the CA bundle); this module
a few milliseconds. Every size read has a limit, and an answer that breaks the
protocol raises :class:`Malformed` naming what was wrong, never a traceback or a
wait without end.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
"""A response's status line and headers (and a chunked body's trailers) at most this long."""
MAX_HEADERS = 100
"""At most this many header (or trailer) lines."""
MAX_BODY_BYTES = 256 * 1024 * 1024
"""A whole answer (a command's response) at most this long; the event stream is read in pieces."""
MAX_INTERIM = 10
"""Interim (1xx) answers passed over before a final one, at most."""
MAX_CHUNK_LINE = 4096
"""A chunk-size line (hex digits and extensions) at most this long."""
CONNECT_S = 10.0
"""How long opening a connection may take."""
IDLE_REUSE_S = 15.0
"""An idle connection is used again for at most this long, then closed. A host that says
its idle timeout (``Keep-Alive: timeout=N``, its ``server.idle_timeout_s``) shortens it to
half of that (:func:`reuse_window`), so a request on a kept connection arrives before the
host closes it: a command on one it closed as the request went is not sent again
(:meth:`Pool.exchange`)."""
READ_BYTES = 64 * 1024
"""Bytes asked of the socket per read of a body in pieces."""
MAX_TIMEOUT_DIGITS = 18
"""A ``Keep-Alive`` timeout of more digits is not read (it is over any window anyway)."""
RETRIED_METHODS = frozenset({"GET", "HEAD"})
"""Requests sent again on a new connection when a kept one closed before answering: only
those that change nothing on the host (RFC 9110 section 9.2.2)."""


class HttpError(Exception):
    """The exchange failed: the host's answer is malformed, truncated, or never came."""


class Malformed(HttpError):
    """The answer is not HTTP/1.1 as this client reads it, or is over a limit."""


class Disconnected(HttpError, ConnectionError):
    """The connection closed before the whole answer arrived."""

    def __init__(self, message: str, *, before_answer: bool = False) -> None:
        super().__init__(message)
        self.before_answer = before_answer
        """Not a byte of the answer came: the host may not have read the request."""


class ConnectTimeout(HttpError, TimeoutError):
    """No connection within :data:`CONNECT_S`."""


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: a unix socket, or a TCP host and port (TLS for ``https``)."""

    unix: str | None
    host: str
    port: int
    tls: bool
    prefix: str
    """The URL's path before each request's (``http://h:1/api`` gives ``/api``)."""

    @classmethod
    def parse(cls, base: str, unix: str | None) -> Endpoint:
        """``base`` as the client's URL; ValueError for one it cannot reach."""
        if unix is not None:
            return cls(unix, "opsdeck", 0, False, "")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base!r}: expected http://HOST:PORT or https://HOST:PORT")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"{base!r}: a host URL has no query, fragment or user")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{base!r}: {exc}") from None
        tls = parts.scheme == "https"
        return cls(None, parts.hostname, port or (443 if tls else 80), tls, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        if self.unix is not None:
            return self.host
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == (443 if self.tls else 80) else f"{name}:{self.port}"


class Decoder(Protocol):
    """Turns the bytes of a response body as they arrive into the body's bytes."""

    done: bool

    def feed(self, data: bytes) -> bytes: ...


class Sized:
    """A body of ``Content-Length`` bytes."""

    def __init__(self, length: int) -> None:
        self.left = length
        self.done = length == 0
        self.extra = b""

    def feed(self, data: bytes) -> bytes:
        out, self.extra = data[: self.left], data[self.left :]
        self.left -= len(out)
        self.done = self.left == 0
        return out


class UntilClose:
    """A body that ends when the connection closes (neither length nor chunks given)."""

    done = False
    extra = b""

    def feed(self, data: bytes) -> bytes:
        return data


class Chunked:
    """The chunked transfer coding, decoded incrementally (RFC 9112 section 7.1)."""

    def __init__(self) -> None:
        self.done = False
        self.extra = b""
        self._buf = b""
        self._left = 0  # data bytes left in the current chunk
        self._state = "size"  # size, data, data_end, trailer
        self._trailers = 0
        self._trailer_bytes = 0

    def feed(self, data: bytes) -> bytes:
        if self.done:
            self.extra += data
            return b""
        # One pass over the bytes by position: slicing off each chunk's piece as it is
        # read copies the rest of the read once per chunk (a read holds hundreds of an
        # event each when a follower lags a host committing a few at a time).
        buf = self._buf + data if self._buf else data
        pos, size = 0, len(buf)
        out: list[bytes] = []
        while pos < size and not self.done:
            if self._state == "data":
                end = min(size, pos + self._left)
                out.append(buf[pos:end])
                self._left -= end - pos
                pos = end
                if not self._left:
                    self._state = "data_end"
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if self._state != "trailer" and size - pos > MAX_CHUNK_LINE:
                    raise Malformed(f"a chunked body's line is over {MAX_CHUNK_LINE} bytes")
                if self._state == "trailer" and self._trailer_bytes + size - pos > MAX_HEAD_BYTES:
                    raise Malformed(f"a chunked body's trailers are over {MAX_HEAD_BYTES} bytes")
                break
            line = buf[pos:eol]
            pos = eol + 2
            if self._state == "data_end":
                if line:
                    raise Malformed(f"a chunk's data is followed by {line[:40]!r}, not CRLF")
                self._state = "size"
            elif self._state == "size":
                self._left = _chunk_size(line)
                self._state = "data" if self._left else "trailer"
            elif line:  # a trailer field: read and ignored
                self._trailers += 1
                self._trailer_bytes += len(line) + 2
                if self._trailers > MAX_HEADERS:
                    raise Malformed(f"a chunked body has over {MAX_HEADERS} trailer fields")
                if self._trailer_bytes > MAX_HEAD_BYTES:
                    raise Malformed(f"a chunked body's trailers are over {MAX_HEAD_BYTES} bytes")
            else:
                self.done = True
                self.extra = buf[pos:]
                pos = size
        self._buf = buf[pos:]
        return b"".join(out)

    @property
    def missing(self) -> str:
        """What an unfinished body lacks, in words."""
        if self._state == "data":
            return f"{self._left} bytes of a chunk"
        return "the end of the chunked body"


def _chunk_size(line: bytes) -> int:
    if len(line) > MAX_CHUNK_LINE:
        raise Malformed(f"a chunk-size line is over {MAX_CHUNK_LINE} bytes")
    digits = line.partition(b";")[0].strip()
    if not digits or len(digits) > 15 or digits.strip(b"0123456789abcdefABCDEF"):
        raise Malformed(f"a chunk size is not hexadecimal: {line[:40]!r}")
    return int(digits, 16)


@dataclass(eq=False)
class Connection:
    """One open connection; used again only after a whole answer that allows it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0
    reuse_s: float = IDLE_REUSE_S
    """How long it may be used again once idle (:func:`reuse_window` of its last answer)."""

    @property
    def open(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


async def connect(ep: Endpoint) -> Connection:
    """A new connection: OSError when refused or absent, :class:`ConnectTimeout` when slow."""
    try:
        async with asyncio.timeout(CONNECT_S):
            if ep.unix is not None:
                reader, writer = await asyncio.open_unix_connection(ep.unix, limit=MAX_HEAD_BYTES)
            else:
                ctx = None
                if ep.tls:
                    import ssl  # only for https: a context loads the CA bundle

                    ctx = ssl.create_default_context()
                reader, writer = await asyncio.open_connection(ep.host, ep.port, ssl=ctx, limit=MAX_HEAD_BYTES)
    except TimeoutError:
        where = ep.unix or f"{ep.host}:{ep.port}"
        raise ConnectTimeout(f"no connection to {where} within {CONNECT_S:g}s") from None
    return Connection(reader, writer)


def request_bytes(ep: Endpoint, method: str, target: str, headers: dict[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {ep.prefix}{target} HTTP/1.1", f"Host: {ep.host_header}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


@dataclass
class Response:
    """A response whose head is read; its body is read with :meth:`read` or :meth:`piece`."""

    conn: Connection
    status: int
    headers: dict[str, str]
    """Lower-case names; repeated fields joined with ``, ``."""
    decoder: Sized | Chunked | UntilClose
    keep_alive: bool

    async def read(self, limit: int = MAX_BODY_BYTES) -> bytes:
        """The whole body, at most ``limit`` bytes. Read in pieces whatever its framing, so
        that bytes which came after a sized body (a host miscounting its length) are seen
        and its connection not used again: they would be read as the next answer's start."""
        dec = self.decoder
        if isinstance(dec, Sized) and dec.left > limit:
            raise Malformed(f"an answer of {dec.left} bytes, over the limit of {limit}")
        out: list[bytes] = []
        size = 0
        while not dec.done:
            piece = await self.piece()
            if piece is None:
                break
            size += len(piece)
            if size > limit:
                raise Malformed(f"an answer over the limit of {limit} bytes")
            out.append(piece)
        return b"".join(out)

    async def piece(self) -> bytes | None:
        """The next bytes of the body (maybe empty), or None at its end. One socket read:
        cancelling it (a timeout) loses nothing."""
        dec = self.decoder
        if dec.done:
            return None
        data = await self.conn.reader.read(READ_BYTES)
        if not data:
            if isinstance(dec, UntilClose):
                dec.done = True
                return None
            if isinstance(dec, Sized):
                raise Disconnected(f"the connection closed {dec.left} bytes before the end of the answer")
            raise Disconnected(f"the connection closed mid-answer ({dec.missing} missing)")
        return dec.feed(data)

    @property
    def reusable(self) -> bool:
        dec = self.decoder
        return self.keep_alive and dec.done and not dec.extra and self.conn.open


async def read_head(conn: Connection) -> Response:
    """The status line and headers of the next final response on ``conn``; interim
    (1xx) answers before it are read and passed over, as RFC 9110 section 15.2 asks."""
    for interim in range(MAX_INTERIM + 1):
        try:
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise Malformed(f"a response head over {MAX_HEAD_BYTES} bytes") from None
        except asyncio.IncompleteReadError as exc:
            if exc.partial or interim:
                got = f"{interim} interim answers and " if interim else ""
                raise Disconnected(
                    f"the connection closed after {got}{len(exc.partial)} bytes of an answer's head"
                ) from None
            raise Disconnected("the connection closed before an answer", before_answer=True) from None
        resp = parse_head(conn, head)
        if resp.status >= 200:
            return resp
    raise Malformed(f"over {MAX_INTERIM} interim (1xx) answers before a final one")


def parse_head(conn: Connection, head: bytes) -> Response:
    lines = head[:-4].decode("latin-1").split("\r\n")
    status_line = lines[0]
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if (
        version not in ("HTTP/1.1", "HTTP/1.0")
        or len(code) != 3
        or not (code.isascii() and code.isdigit())  # str.isdigit alone takes '²'
        or rest[3:4] not in ("", " ")
    ):
        raise Malformed(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
    status = int(code)
    if not 100 <= status <= 599 or status == 101:
        raise Malformed(f"status {status} where an answer was expected")
    if len(lines) - 1 > MAX_HEADERS:
        raise Malformed(f"a response with over {MAX_HEADERS} header fields")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in ' \t"(),/;<=>?@[\\]{}'):
            raise Malformed(f"not a header field: {line[:80]!r}")
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    # Both framings given: the length is ignored (chunked wins), and a connection whose
    # framing is in doubt is not used again (RFC 9112 section 6.3).
    both = "transfer-encoding" in headers and "content-length" in headers
    return Response(conn, status, headers, _decoder(status, headers), _keep_alive(version, headers) and not both)


def reuse_window(headers: dict[str, str]) -> float | None:
    """How long a connection may stay idle and be used again after an answer with
    ``headers``: half the idle timeout its ``Keep-Alive`` field gives (the other half
    covers the request's way to the host), at most :data:`IDLE_REUSE_S`; that alone
    when the field gives none. None when the timeout is not delta-seconds (digits only,
    RFC 9110 section 1.2's ``1*DIGIT``; not ``1_0``, ``-0`` or ``1.5``): when the host
    closes it is unknown, so the connection is not used again."""
    for param in headers.get("keep-alive", "").split(","):
        name, _, value = param.partition("=")
        if name.strip().lower() == "timeout":
            text = value.strip()
            if not (text.isascii() and text.isdigit()) or len(text) > MAX_TIMEOUT_DIGITS:
                return None
            return min(IDLE_REUSE_S, int(text) / 2)
    return IDLE_REUSE_S


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    return "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens


def _decoder(status: int, headers: dict[str, str]) -> Sized | Chunked | UntilClose:
    coding = headers.get("content-encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        raise Malformed(f"Content-Encoding {coding[:40]!r} (the client asks for none)")
    if status < 200 or status in (204, 304):
        return Sized(0)
    if "transfer-encoding" in headers:
        codings = [c.strip().lower() for c in headers["transfer-encoding"].split(",")]
        if codings != ["chunked"]:
            raise Malformed(f"Transfer-Encoding {headers['transfer-encoding'][:40]!r} (only chunked is read)")
        return Chunked()
    if "content-length" in headers:
        values = {v.strip() for v in headers["content-length"].split(",")}
        text = values.pop()
        if values or not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise Malformed(f"Content-Length {headers['content-length'][:40]!r} is not one length")
        return Sized(int(text))
    return UntilClose()


class Pool:
    """Idle connections to one endpoint, and the ones in use (closed with the pool)."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.idle: list[Connection] = []
        self.busy: set[Connection] = set()

    def _take_idle(self) -> Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.open and now - conn.idle_since < conn.reuse_s:
                return conn
            conn.close()
        return None

    async def exchange(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> Response:
        """Send one request and read its answer's head. A ``GET`` on a reused connection
        that closed before a byte of an answer came (the host closed it while idle) is
        sent once more on a new one. Any other method is not: a host that read the
        request and closed without answering (it died, or its handler was cut off) may
        have carried it out, and a command must not run twice."""
        data = request_bytes(self.ep, method, target, headers, body)
        conn = self._take_idle()
        if conn is not None:
            try:
                return await self._send(conn, data)
            except (Disconnected, ConnectionResetError, BrokenPipeError) as exc:
                if method not in RETRIED_METHODS:
                    raise Disconnected(
                        f"{str(exc) or type(exc).__name__} ({method} {target} may have been carried out: not sent again)"
                    ) from None
                if isinstance(exc, Disconnected) and not exc.before_answer:
                    raise
        return await self._send(await connect(self.ep), data)

    async def _send(self, conn: Connection, data: bytes) -> Response:
        self.busy.add(conn)
        try:
            conn.writer.write(data)
            try:
                await conn.writer.drain()
            except ConnectionError as exc:
                # A host that answers and closes at once (its connection cap) may have
                # answered before our request was all written: read the answer there is.
                try:
                    return await read_head(conn)
                except HttpError:
                    raise exc from None
            return await read_head(conn)
        except BaseException:
            self.discard(conn)
            raise

    def release(self, resp: Response) -> None:
        """Done with ``resp``: its connection is kept for the next request when whole."""
        conn = resp.conn
        self.busy.discard(conn)
        window = reuse_window(resp.headers) if resp.reusable else None
        if window:
            conn.idle_since = time.monotonic()
            conn.reuse_s = window
            self.idle.append(conn)
        else:
            conn.close()

    def discard(self, conn: Connection) -> None:
        self.busy.discard(conn)
        conn.close()

    def close(self) -> None:
        for conn in [*self.idle, *self.busy]:
            conn.close()
        self.idle.clear()
        self.busy.clear()
