"""The host client's HTTP (core.host.client_http) against a fake host on a unix socket:
malformed, oversized and truncated answers each end in the mapped error (HostBadAnswer
for what cannot be read, HostGone for a connection that went), never a traceback or a
wait without end (every call here is bounded by wait_for); a stream that breaks off
mid-chunk ends, or resumes after the host's drop notice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from core.host import client as client_mod
from core.host import client_http
from core.host.client import HostBadAnswer, HostClient, HostGone, HostUnresponsive, UndecodableEvent
from core.host.errors import HostFailed

from .conftest import until

BOUND_S = 20.0
"""No call here may take longer (each is expected in well under a second)."""
CLOSE = b"<close>"
"""An answer that closes the connection."""
HANG = b"<hang>"
"""An answer that never comes (the connection stays open)."""

Answer = bytes | Callable[[asyncio.StreamWriter], Awaitable[None]]


def response(status: int, body: bytes, *headers: str, length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} X", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(status: int, *chunks: bytes, end: bool = True) -> bytes:
    out = f"HTTP/1.1 {status} OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n".encode()
    for c in chunks:
        out += f"{len(c):x}\r\n".encode() + c + b"\r\n"
    return out + (b"0\r\n\r\n" if end else b"")


def sse(*objs: dict[str, Any]) -> bytes:
    return b"".join(f"id: {o['seq']}\ndata: {json.dumps(o)}\n\n".encode() for o in objs)


def event(seq: int) -> dict[str, Any]:
    return {"seq": seq, "ts": 1.0, "type": "T", "component": "c", "scope": "s", "actor": "a", "data": {}}


class FakeHost:
    """Answers the requests on each connection with the next answers in order."""

    def __init__(self, path: Path, answers: list[Answer]) -> None:
        self.path = path
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.stop = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(ln.split(b":")[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0) if self.answers else CLOSE
                if answer == CLOSE:
                    break
                if answer == HANG:
                    await self.stop.wait()
                    break
                if callable(answer):
                    await answer(writer)
                else:
                    writer.write(answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def fake() -> AsyncIterator[Callable[..., Awaitable[tuple[FakeHost, HostClient]]]]:
    """``await fake(answer, ...)``: a fake host and a client of it (closed after the test)."""
    tmp = Path(tempfile.mkdtemp(prefix="odw-"))  # a short path: unix sockets allow about 100 bytes
    made: list[tuple[FakeHost, HostClient]] = []

    async def make(*answers: Answer) -> tuple[FakeHost, HostClient]:
        host = FakeHost(tmp / f"h{len(made)}.sock", list(answers))
        host.server = await asyncio.start_unix_server(host.handle, str(host.path))
        client = HostClient(socket_path=host.path)
        made.append((host, client))
        return host, client

    yield make
    for host, client in made:
        await client.close()
        host.stop.set()
        for w in host.writers:
            w.close()
        assert host.server is not None
        host.server.close()
        if host.tasks:
            await asyncio.wait(host.tasks, timeout=BOUND_S)  # each sees its connection closed
    shutil.rmtree(tmp, ignore_errors=True)


async def bounded(aw: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(aw, BOUND_S)


async def first_events(client: HostClient, n: int, into: list[int]) -> None:
    async for obj in client.event_objects(0):
        into.append(obj["seq"])
        if len(into) >= n:
            return


# -- answers to a command -------------------------------------------------------------


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


async def test_no_socket_or_no_listener_is_the_host_gone(tmp_path: Path) -> None:
    missing = HostClient(socket_path=tmp_path / "none.sock", pid=12345678)
    with pytest.raises(HostGone, match=r"pid 12345678\) is gone: .*none.sock: No such file"):
        await bounded(missing.send("/host status"))
    import socket

    path = Path(tempfile.mkdtemp(prefix="odw-")) / "dead.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))  # bound, never listening: refused
    try:
        with pytest.raises(HostGone, match="Connection refused"):
            await bounded(HostClient(socket_path=path).send("/host status"))
    finally:
        sock.close()
        shutil.rmtree(path.parent)


async def test_a_host_that_never_answers_ends_unresponsive(fake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Head sent, body never: the wait is the probe's (health unanswered too), then HostUnresponsive."""
    monkeypatch.setattr(client_mod, "PROBE_S", 0.2)
    _, client = await fake(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{", HANG, HANG, HANG, HANG, HANG)
    client.unresponsive_s = 0.5
    with pytest.raises(HostUnresponsive, match="unresponsive: no answer to /v1/health") as exc:
        await bounded(client.send("/host status"))
    assert f"the host at {client.socket_path} is running" in str(exc.value)  # where, without a pid


async def test_a_kept_connection_closed_while_idle_is_retried_once(fake) -> None:  # type: ignore[no-untyped-def]
    """The host closed the idle connection as the request went: nothing of an answer came, so the
    request goes again on a new connection. The case that must not retry: a connection that
    had begun to answer (above: truncated answers are the host gone)."""
    ok = response(200, b"{}")
    host, client = await fake(ok, CLOSE, ok)
    assert await bounded(client.health()) == {}
    assert await bounded(client.health()) == {}
    assert host.connections == 2 and len(host.requests) == 3


async def test_a_command_on_a_kept_connection_closed_unanswered_is_not_sent_again(fake) -> None:  # type: ignore[no-untyped-def]
    """The host read the command and closed without answering (it may have run it): the
    client says so and does not send it again, where a GET would be (above)."""
    ok = response(200, b"{}")
    host, client = await fake(ok, CLOSE, ok)
    assert await bounded(client.send("/host status")) == {}
    with pytest.raises(HostGone, match=r"closed before an answer \(POST /v1/commands may have been carried out"):
        await bounded(client.send("/workflow pause w1"))
    assert [r.partition(b"\r\n\r\n")[2] for r in host.requests].count(
        json.dumps({"command": "/workflow pause w1", "actor": "operator"}).encode()
    ) == 1
    assert host.connections == 1


async def test_the_token_is_sent_over_tcp() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(response(200, b"{}"))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for token in ("tok-123", None):
            client = HostClient.for_url(f"http://127.0.0.1:{port}/", token)
            assert await bounded(client.health()) == {}
            await client.close()
    finally:
        server.close()
    assert b"Authorization: Bearer tok-123\r\n" in seen[0] and f"Host: 127.0.0.1:{port}".encode() in seen[0]
    assert b"Authorization" not in seen[1]
    with pytest.raises(ValueError):
        HostClient.for_url("ftp://127.0.0.1:1")
    with pytest.raises(ValueError):
        HostClient.for_url("http://127.0.0.1:1", "tok\r\nX-Injected: 1")


def test_a_token_with_a_space_is_refused() -> None:
    """A token with a space anywhere (before or after too) is not the host's token: refused
    before anything is sent, where the bare token is taken."""
    for token in (" tok-123", "tok-123 ", "tok 123"):
        with pytest.raises(ValueError, match="without spaces"):
            HostClient.for_url("http://127.0.0.1:1", token)
    assert HostClient.for_url("http://127.0.0.1:1", "tok-123").token == "tok-123"


def test_an_empty_token_is_refused() -> None:
    """An empty token would send no Authorization header at all (a 401 later, from afar):
    refused where it is given; None (no token, the unix socket) and a real one are taken."""
    with pytest.raises(ValueError, match="the host token is empty"):
        HostClient.for_url("http://127.0.0.1:1", "")
    with pytest.raises(ValueError, match="the host token is empty"):
        HostClient(socket_path="/nonexistent.sock", token="")
    assert HostClient.for_url("http://127.0.0.1:1")._headers() == {}
    assert HostClient.for_url("http://127.0.0.1:1", "t")._headers() == {"Authorization": "Bearer t"}


async def test_a_kept_connection_is_not_used_past_half_the_hosts_idle_timeout(fake) -> None:  # type: ignore[no-untyped-def]
    """A host saying ``Keep-Alive: timeout=1`` may close an idle connection after 1 s: after
    0.6 s idle the command goes on a new connection (a command on one the host closed as it
    went is not sent again). Without the field the client's own window holds and the
    connection is used again."""
    ok = response(200, b"{}")
    host, client = await fake(response(200, b"{}", "Keep-Alive: timeout=1"), ok)
    assert await bounded(client.health()) == {}
    pool = client._conns()
    assert [c.reuse_s for c in pool.idle] == [0.5]
    pool.idle[0].idle_since -= 0.6  # as if idle 0.6 s, however slow the machine
    assert await bounded(client.send("/host status")) == {}
    assert host.connections == 2 and len(host.requests) == 2
    host, client = await fake(ok, ok)
    assert await bounded(client.health()) == {}
    pool = client._conns()
    assert [c.reuse_s for c in pool.idle] == [client_http.IDLE_REUSE_S]
    pool.idle[0].idle_since -= 0.6
    assert await bounded(client.send("/host status")) == {}
    assert host.connections == 1 and len(host.requests) == 2


async def test_a_keep_alive_timeout_that_is_not_digits_keeps_no_connection(fake) -> None:  # type: ignore[no-untyped-def]
    """Delta-seconds are digits only: ``1_0``, ``-0``, ``1.5``, `` +3``, ``١`` (an Arabic-Indic
    one), over 18 digits or a word say nothing of when the host closes, so the connection
    is closed after the answer and the next command opens a new one; ``timeout=0`` likewise.
    Digits around spaces are read."""
    ok = response(200, b"{}")
    for value in ("1_0", "-0", "1.5", "+3", "\u0661", "1" * 19, "soon", "", "0"):
        host, client = await fake(response(200, b"{}", f"Keep-Alive: timeout={value}"), ok)
        assert await bounded(client.health()) == {}
        assert client._conns().idle == [], value
        assert await bounded(client.send("/host status")) == {}
        assert host.connections == 2 and len(host.requests) == 2, value
    assert client_http.reuse_window({"keep-alive": "max=5, timeout= 8 "}) == 4.0
    assert client_http.reuse_window({"keep-alive": "timeout=100"}) == client_http.IDLE_REUSE_S


async def test_the_host_says_its_idle_timeout_and_the_client_follows_it(tmp_path: Path) -> None:
    """A host configured with ``server.idle_timeout_s = 1`` says so on each answer; its
    client keeps an idle connection for half of that, not its own 15 s."""
    from core.config import Config, Server
    from core.host.host import Host

    host = await Host.open_sim(tmp_path / "k.db", Config(server=Server(idle_timeout_s=1.0)), create=True, speed=0)
    await host.serve()
    client = HostClient(socket_path=host.socket_path)
    try:
        await bounded(client.health())
        assert [c.reuse_s for c in client._conns().idle] == [0.5]
    finally:
        await client.close()
        await host.close()


async def test_the_host_says_its_idle_timeout_in_whole_seconds(tmp_path: Path) -> None:
    """``server.idle_timeout_s = 1.5`` is said as ``timeout=1`` (digits, rounded down: the
    client never counts on a connection the host has closed), and its client keeps the
    connection for half of that; 1e7 s is said in digits, not ``1e+07``."""
    from core.config import Config, Server
    from core.host.host import Host

    for idle, said in ((1.5, "timeout=1"), (1e7, "timeout=10000000")):
        host = await Host.open_sim(
            tmp_path / f"k{said}.db", Config(server=Server(idle_timeout_s=idle)), create=True, speed=0
        )
        await host.serve()
        client = HostClient(socket_path=host.socket_path)
        try:
            pool = client._conns()
            resp = await bounded(pool.exchange("GET", "/v1/health", {}, None))
            await bounded(resp.read())
            assert resp.headers["keep-alive"] == said
            pool.release(resp)
            assert [c.reuse_s for c in pool.idle] == [min(client_http.IDLE_REUSE_S, int(idle) / 2)]
        finally:
            await client.close()
            await host.close()


# -- the event stream ---------------------------------------------------------------


async def test_a_stream_cut_mid_chunk_ends_with_the_host_gone_after_the_whole_events(fake) -> None:  # type: ignore[no-untyped-def]
    async def cut(w: asyncio.StreamWriter) -> None:
        whole = chunked(200, b": opsdeck events\n\n", sse(event(1), event(2)), end=False)
        w.write(whole + b"100\r\n" + sse(event(3))[:20])  # a chunk of 256 bytes, 20 sent
        await w.drain()
        w.close()

    _, client = await fake(cut)
    got: list[int] = []
    with pytest.raises(HostGone) as exc:
        await bounded(first_events(client, 10, got))
    assert got == [1, 2]
    assert "236 bytes of a chunk missing" in str(exc.value)


async def test_a_stream_dropped_by_the_host_resumes_from_the_last_event(fake) -> None:  # type: ignore[no-untyped-def]
    notice = b'event: dropped\ndata: {"reason": "slow", "last_sent": 2}\n\n'

    async def drop(w: asyncio.StreamWriter) -> None:
        w.write(chunked(200, sse(event(1), event(2)) + notice, end=False) + b"40\r\nid: 3")
        await w.drain()
        w.close()

    host, client = await fake(drop)
    host.answers.append(chunked(200, sse(event(3), event(4))))  # the next connection's
    got: list[int] = []
    await bounded(first_events(client, 4, got))
    assert got == [1, 2, 3, 4] and client.resumed == 1
    assert b"GET /v1/events?since=2 HTTP/1.1" in host.requests[1]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"data: {not json\n\n", "not JSON"),
        (b'data: {"no": "seq"}\n\n', "no seq"),
        (b"data: " + b"x" * 5000, "over 4096 bytes"),
    ],
    ids=["not-json", "no-seq", "oversized"],
)
async def test_a_stream_of_bad_events_says_so(fake, monkeypatch: pytest.MonkeyPatch, body: bytes, words: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(client_mod, "MAX_EVENT_BYTES", 4096)

    async def in_turn(w: asyncio.StreamWriter) -> None:
        w.write(chunked(200, sse(event(1)), end=False))
        await w.drain()
        await until(lambda: got, "the client to take the good event", BOUND_S, poll=0.01)  # before the bad one comes
        w.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
        await w.drain()

    got: list[int] = []
    _, client = await fake(in_turn, HANG)
    with pytest.raises(UndecodableEvent, match=words) as exc:
        await bounded(first_events(client, 10, got))
    assert got == [1]
    assert (exc.value.after, exc.value.seq) == (1, None) and "(the event after seq 1)" in str(exc.value)


async def test_a_refused_stream_names_the_status(fake) -> None:  # type: ignore[no-untyped-def]
    _, client = await fake(response(500, b"500 Internal Server Error\n\nServer got itself in trouble"))
    with pytest.raises(HostFailed, match=r"failed to answer the event stream: its error 500: 500 Internal") as exc:
        await bounded(first_events(client, 1, []))
    assert not isinstance(exc.value, HostGone)


async def test_a_busy_stream_is_asked_again_after_a_growing_wait(fake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(client_mod, "BUSY_FIRST_S", 0.01)
    busy = b'{"error": {"code": "TOO_MANY_FOLLOWERS", "message": "m", "details": {"limit": 2, "followers": 2}}}'
    host, client = await fake(response(503, busy), response(503, busy), chunked(200, sse(event(1)), end=False), HANG)
    told: list[tuple[str | None, float]] = []
    client.on_busy = lambda exc, wait: told.append((exc.short if exc else None, wait))
    got: list[int] = []
    await bounded(first_events(client, 1, got))
    assert got == [1] and len(host.requests) == 3
    assert told == [("host busy (2 followers)", 0.01), ("host busy (2 followers)", 0.02), (None, 0.0)]


async def test_a_refused_stream_whose_answer_stalls_still_ends(fake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The refusal's body is read for the error only as far as it comes within SILENCE_S."""
    monkeypatch.setattr(client_mod, "SILENCE_S", 0.2)
    _, client = await fake(b'HTTP/1.1 500 X\r\nContent-Length: 1000\r\n\r\n{"error": ', HANG)
    with pytest.raises(HostFailed, match=r"its error 500: \{\"error\":  \(the rest not sent within 0.2s\)"):
        await bounded(first_events(client, 1, []))


@pytest.mark.parametrize(
    ("obj", "words"),
    [
        ({"seq": 1, "type": "T", "component": "c", "scope": "s"}, "no field 'ts'"),
        ({**event(1), "scope": 3}, "are text"),
    ],
    ids=["no-ts", "int-scope"],
)
async def test_an_event_missing_a_field_is_a_bad_answer(fake, obj: dict[str, Any], words: str) -> None:  # type: ignore[no-untyped-def]
    _, client = await fake(chunked(200, sse(event(1), obj), end=False), HANG)
    got: list[int] = []

    async def follow() -> None:
        async for ev in client.events(0):
            got.append(ev.seq)

    with pytest.raises(UndecodableEvent, match=words) as exc:
        await bounded(follow())
    assert got == [1]
    assert exc.value.seq == 1 and "(seq 1)" in str(exc.value)


def test_the_stream_is_cut_into_whole_blocks_however_it_arrives() -> None:
    """Whole blocks come out as the blank line ending them arrives, in one read or across
    two (the seam), and nothing of the next one; the same whole read in any pieces."""
    text = sse(event(1), event(2)) + b": keepalive\n\n" + sse(event(3))[:-1]
    for size in (1, 2, 3, 7, 64, len(text)):
        cut = client_mod.Blocks()
        out = [cut.feed(text[i : i + size]) for i in range(0, len(text), size)]
        assert b"\n\n".join(b for b in out if b) == text[: text.rindex(b"\n\n")], size
        assert cut.pending == len(sse(event(3))) - 1
        assert cut.feed(b"\n") == sse(event(3))[:-2] and cut.pending == 0
    cut = client_mod.Blocks()
    assert cut.feed(b"data: 1\n") == b"" and cut.feed(b"\ndata: 2\n") == b"data: 1" and cut.pending == 8


def test_the_chunk_decoder_takes_bytes_one_at_a_time() -> None:
    data = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\nNEXT"
    for size in (1, 2, 3, 7, len(data)):
        dec = client_http.Chunked()
        out = b"".join(dec.feed(data[i : i + size]) for i in range(0, len(data), size))
        assert out == b"hello world" and dec.done and dec.extra == b"NEXT", size


async def test_close_ends_a_stream_in_use(fake) -> None:  # type: ignore[no-untyped-def]
    """Closing the client closes its connections, the stream's too: the follower ends."""
    _, client = await fake(chunked(200, sse(event(1)), end=False), HANG)
    got: list[int] = []
    task = asyncio.ensure_future(first_events(client, 10, got))
    await until(lambda: got, "the follower's first event", BOUND_S, poll=0.01)
    await client.close()
    with contextlib.suppress(HostGone):
        await bounded(task)
    assert task.done() and got == [1]


async def test_a_stream_cancelled_as_its_answer_arrives_leaves_no_connection_busy(fake) -> None:  # type: ignore[no-untyped-def]
    """The follower is cancelled in the loop turn the stream's answer head arrives: its
    connection is closed and let go, not held busy until the client closes. The case that
    must not end so: a stream not cancelled keeps its connection while it reads."""
    _, client = await fake(chunked(200, sse(event(1)), end=False), HANG)
    pool = client._conns()
    exchange = pool.exchange
    follower: asyncio.Task[None] | None = None

    async def answered_then_cancelled(*args: Any) -> client_http.Response:
        resp = await exchange(*args)
        assert follower is not None
        follower.cancel()  # the answer is there; the follower has not woken to take it
        return resp

    pool.exchange = answered_then_cancelled  # type: ignore[method-assign]
    got: list[int] = []
    follower = asyncio.ensure_future(first_events(client, 1, got))
    with contextlib.suppress(asyncio.CancelledError):
        await bounded(follower)
    assert follower.cancelled() and got == []
    assert not pool.busy and not pool.idle
    pool.exchange = exchange  # type: ignore[method-assign]
    _, client = await fake(chunked(200, sse(event(1)), end=False), HANG)
    reading = asyncio.ensure_future(first_events(client, 2, got))
    await until(lambda: got, "the stream's first event", BOUND_S, poll=0.01)
    assert len(client._conns().busy) == 1
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await bounded(reading)
    assert not client._conns().busy


async def test_an_attached_link_says_the_host_is_gone_with_its_pid_only_when_known(tmp_path: Path) -> None:
    from core.host.attached import AttachedLink

    said: list[str | None] = []
    link = AttachedLink(tmp_path / "x.db")
    link.on_status(said.append)
    await link._host_gone(None)  # no pid ever seen
    link.last_pid = 4321
    await link._host_gone(None)
    assert said == ["the host is gone", "the host (pid 4321) is gone"]
