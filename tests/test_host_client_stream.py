"""The host client's event stream (core.host.client) from a fake host on a unix socket:
a stream that breaks off mid-chunk ends with the host gone after its whole events, one the
host dropped resumes from the last event, bad events and refused or busy streams say what
happened; the stream is cut into whole blocks however it arrives; closing or cancelling
ends a stream and lets its connection go."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from core.host import client as client_mod
from core.host import client_http
from core.host.client import HostGone, UndecodableEvent
from core.host.errors import HostFailed

from . import host_wire_support
from .conftest import until
from .host_wire_support import BOUND_S, HANG, bounded, chunked, event, first_events, response, sse

fake = host_wire_support.fake


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
