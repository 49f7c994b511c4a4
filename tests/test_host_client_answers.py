"""The host client's answers to a command (core.host.client_http) from a fake host on a
unix socket: answers of any status read whole however they are framed and split; malformed
and oversized answers each end in HostBadAnswer saying what was wrong, truncated ones in
HostGone, never a traceback or a wait without end (every call here is bounded)."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.host import client_http
from core.host.client import HostBadAnswer, HostGone

from . import host_wire_support
from .host_wire_support import CLOSE, HANG, bounded, chunked, response

fake = host_wire_support.fake


async def test_answers_of_any_status_are_read_whole(fake) -> None:  # type: ignore[no-untyped-def]
    """The success path: JSON of 200, of an error status, chunked with trailers, split anywhere."""

    async def split_chunks(w: asyncio.StreamWriter) -> None:
        data = chunked(200, b'{"status": "su', b'ccess", "n": 1}', end=False) + b"0\r\nX-Trailer: 1\r\n\r\n"
        for i in range(0, len(data), 7):  # every boundary falls somewhere odd
            w.write(data[i : i + 7])
            await w.drain()
            await asyncio.sleep(0)

    err = {"status": "error", "error": {"code": "INVALID_REQUEST"}}
    host, client = await fake(
        response(200, b'{"status": "success"}'), response(400, json.dumps(err).encode()), split_chunks
    )
    assert await bounded(client.send("/host status")) == {"status": "success"}
    assert await bounded(client.send("/nope")) == err
    assert await bounded(client.health()) == {"status": "success", "n": 1}
    assert host.connections == 1  # one kept-alive connection for all three
    req = host.requests[0]
    assert req.startswith(b"POST /v1/commands HTTP/1.1\r\n") and b"Content-Type: application/json" in req
    assert json.loads(req.partition(b"\r\n\r\n")[2]) == {"command": "/host status", "actor": "operator"}
    assert b"Authorization" not in req  # no token, no header
    assert host.requests[2].startswith(b"GET /v1/health HTTP/1.1\r\n")


async def test_bytes_after_a_sized_answer_keep_its_connection_from_use(fake) -> None:  # type: ignore[no-untyped-def]
    """A host that sent more than its Content-Length: the surplus is no answer's start, so
    the next request goes on a new connection (on the old one it read as the next answer)."""
    host, client = await fake(response(200, b'{"n": 1}') + b"\r\n", response(200, b'{"n": 2}'))
    assert await bounded(client.health()) == {"n": 1}
    assert await bounded(client.health()) == {"n": 2}
    assert host.connections == 2


async def test_interim_answers_are_passed_over_and_doubtful_framing_is_not_kept(fake) -> None:  # type: ignore[no-untyped-def]
    """1xx answers before the final one are read and skipped (RFC 9110 15.2); an answer with
    both Content-Length and chunked is read as chunked, and its connection is not used again."""
    both = chunked(200, b'{"a": 1}').replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\n", 1)
    host, client = await fake(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + response(200, b"{}"),
        both,
        response(200, b'{"b": 2}'),
    )
    assert await bounded(client.health()) == {}
    assert await bounded(client.health()) == {"a": 1}
    assert host.connections == 1
    assert await bounded(client.health()) == {"b": 2}
    assert host.connections == 2


MALFORMED = [
    (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
    (b"HTTP/1.1 99 Odd\r\nContent-Length: 0\r\n\r\n", "status line"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "status 101"),
    (b"HTTP/1.1 100 Continue\r\n\r\n" * 11, "over 10 interim"),
    (b"HTTP/1.1 2\xb20 OK\r\nContent-Length: 0\r\n\r\n", "status line"),  # '²'.isdigit(), int('²') fails
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not a header field"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 300000000\r\n\r\n", "over the limit"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}", "Content-Encoding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not hexadecimal"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", "not CRLF"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000, "over 4096"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n", "over 65536"),
    (chunked(200, b"{}", end=False) + b"0\r\n" + (b"T: " + b"a" * 40_000 + b"\r\n") * 2, "trailers are over 65536"),
    (chunked(200, b"{}", end=False) + b"0\r\n" + b"T: " + b"a" * 70_000, "trailers are over 65536"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 101 + b"Content-Length: 0\r\n\r\n", "over 100 header"),
    (response(200, b"<html>not json</html>"), "not JSON"),
    (response(200, b"[1, 2]"), "not an object"),
    (response(200, b'{"a": "\xff"}'), "not UTF-8"),
]


@pytest.mark.parametrize(("answer", "words"), MALFORMED, ids=[w for _, w in MALFORMED])
async def test_malformed_and_oversized_answers_say_what_was_wrong(fake, answer: bytes, words: str) -> None:  # type: ignore[no-untyped-def]
    _, client = await fake(answer, HANG)
    with pytest.raises(HostBadAnswer) as exc:
        await bounded(client.send("/host status"))
    assert words in str(exc.value)
    if words not in ("not JSON", "not an object", "not UTF-8"):  # broken HTTP: the connection is not kept
        assert client._pool is not None and not client._pool.idle


TRUNCATED = [
    (CLOSE, "closed before an answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "after 27 bytes of an answer's head"),
    (b"HTTP/1.1 100 Continue\r\n\r\n", "after 1 interim answers and 0 bytes"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", "99 bytes before the end"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{", "15 bytes of a chunk missing"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n", "the end of the chunked body missing"),
]


@pytest.mark.parametrize(("answer", "words"), TRUNCATED, ids=[w for _, w in TRUNCATED])
async def test_truncated_answers_are_the_host_gone(fake, answer: bytes, words: str) -> None:  # type: ignore[no-untyped-def]
    async def cut(w: asyncio.StreamWriter) -> None:
        w.write(answer)
        await w.drain()
        w.close()

    _, client = await fake(CLOSE if answer == CLOSE else cut)
    with pytest.raises(HostGone) as exc:
        await bounded(client.send("/host status"))
    assert not isinstance(exc.value, HostBadAnswer)
    assert words in str(exc.value)


def test_the_chunk_decoder_takes_bytes_one_at_a_time() -> None:
    data = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\nNEXT"
    for size in (1, 2, 3, 7, len(data)):
        dec = client_http.Chunked()
        out = b"".join(dec.feed(data[i : i + size]) for i in range(0, len(data), size))
        assert out == b"hello world" and dec.done and dec.extra == b"NEXT", size
