"""The agent host carries out a console's commands as they arrive, one at a time and in
order: a command that must wait (a run stopped before the next starts) holds back the
ones behind it; one that fails drops its connection, not the host; neither what a console
sends nor what it leaves unread is held without bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

import pytest

from core.runtimes import agent_host
from core.runtimes.wire import CommandReader

from .conftest import until
from .local_harness import in_process_host as host


class Writer:
    closed = False

    def close(self) -> None:
        self.closed = True


async def test_commands_behind_one_that_waits_run_after_it_in_order(tmp_path: Path) -> None:
    h = host(tmp_path)
    done: list[str] = []
    release = asyncio.Event()

    async def stopping() -> None:
        await release.wait()
        done.append("start a (after the stop)")

    def handle(msg: dict[str, Any]) -> Coroutine[Any, Any, None] | None:
        if msg["op"] == "start" and msg["task"] == "a":
            return stopping()
        if msg["op"] == "bad":
            raise KeyError("task")
        done.append(f"{msg['op']} {msg.get('task', '')}".strip())
        return None

    h.runner.handle = handle  # type: ignore[method-assign]
    w, other = Writer(), Writer()
    ws, others = cast(asyncio.StreamWriter, w), cast(asyncio.StreamWriter, other)
    rd, other_rd = CommandReader(), CommandReader()
    h.command({"op": "ping"}, ws, rd)
    h.command({"op": "start", "task": "a"}, ws, rd)
    h.command({"op": "bad"}, others, other_rd)
    h.command({"op": "ping", "task": "after bad"}, others, other_rd)
    h.command({"op": "stop", "task": "a"}, ws, rd)
    await asyncio.sleep(0)
    assert done == ["ping"], "nothing behind the waiting start ran before it"
    release.set()
    assert h.busy is not None
    await h.busy
    assert done == ["ping", "start a (after the stop)", "stop a"]
    assert other.closed and not w.closed, "the failed command dropped its own connection only"
    assert other_rd.dropped and not rd.dropped, "and the commands after it on that connection"
    assert h.busy is None and not h.waiting
    h.command({"op": "ping"}, ws, rd)
    assert done[-1] == "ping", "with nothing waiting, a command runs at once"


async def test_a_command_that_fails_at_once_drops_its_connection_not_the_host(tmp_path: Path) -> None:
    """From the read callback itself (nothing waiting): the exception does not escape into
    the loop's transport, the connection is closed and its later commands not carried out."""
    h = host(tmp_path)
    done: list[str] = []

    def handle(msg: dict[str, Any]) -> None:
        if msg["op"] == "bad":
            raise KeyError("task")
        done.append(msg["op"])

    h.runner.handle = handle  # type: ignore[method-assign,assignment]
    w, other = Writer(), Writer()
    rd, other_rd = CommandReader(handshake_lines=0), CommandReader(handshake_lines=0)
    rd.deliver(lambda msg: h.command(msg, cast(asyncio.StreamWriter, w), rd), lambda: None)
    other_rd.deliver(lambda msg: h.command(msg, cast(asyncio.StreamWriter, other), other_rd), lambda: None)
    rd.feed_data(b'{"op": "ping"}\n{"op": "bad"}\n{"op": "pause"}\n')
    other_rd.feed_data(b'{"op": "resume"}\n')
    assert done == ["ping", "resume"] and w.closed and not other.closed


async def test_a_console_flooding_commands_behind_one_that_waits_is_not_read_until_they_run(tmp_path: Path) -> None:
    """Commands behind a waiting one are held, but no more than one read of them: the
    connection is not read meanwhile (what the console sends waits in the socket, and the
    console's writes block once that is full); all are carried out, in order, after it."""
    h = host(tmp_path)
    done: list[int] = []
    release = asyncio.Event()

    async def stopping() -> None:
        await release.wait()

    def handle(msg: dict[str, Any]) -> Coroutine[Any, Any, None] | None:
        if msg["op"] == "start":
            return stopping()
        done.append(msg["n"])
        return None

    h.runner.handle = handle  # type: ignore[method-assign]
    conns: list[tuple[CommandReader, asyncio.StreamWriter]] = []

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rd = cast(CommandReader, reader)
        conns.append((rd, writer))
        rd.deliver(lambda msg: h.command(msg, writer, rd), lambda: None)

    loop = asyncio.get_running_loop()
    path = str(tmp_path / "s")
    server = await loop.create_unix_server(
        lambda: asyncio.StreamReaderProtocol(CommandReader(handshake_lines=0), connected), path
    )
    _, console = await asyncio.open_unix_connection(path)
    try:
        console.write(b'{"op": "start"}\n')
        await until(lambda: h.busy is not None, "the start that waits")
        total = 200_000
        console.write(b"".join(b'{"op": "ping", "n": %d}\n' % n for n in range(total)))
        transport = conns[0][1].transport
        await until(lambda: len(h.waiting) == total or not transport.is_reading(), "the host's reading paused")
        assert not transport.is_reading() and len(h.waiting) < total, f"{len(h.waiting)} commands read while one waits"
        assert console.transport.get_write_buffer_size() > 0, "the rest waits on the console's side"
        release.set()
        await until(lambda: len(done) == total, lambda: f"{len(done)} of {total} commands carried out")
        assert done == list(range(total)) and not h.waiting and transport.is_reading()
    finally:
        console.close()
        server.close()


async def test_a_console_that_reads_nothing_is_dropped_past_the_unread_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the host sends (a heartbeat per ping, output) is held for the console in
    memory only up to UNREAD_MAX; then the connection goes (the console reconnects and
    its hello gives the run's state and recent ends)."""
    monkeypatch.setattr(agent_host, "UNREAD_MAX", 4 * 1024 * 1024)
    h = host(tmp_path)
    accepted: list[asyncio.StreamWriter] = []
    path = str(tmp_path / "s")
    server = await asyncio.start_unix_server(lambda _r, w: accepted.append(w), path)
    _, console = await asyncio.open_unix_connection(path)  # reads nothing
    try:
        await until(lambda: accepted, "the connection")
        writer = h.writer = accepted[0]
        h.last_client = time.monotonic() - 3600  # the console came an hour ago
        pad = "x" * 1024 * 1024
        for _ in range(12):
            h.send({"t": "heartbeat", "note": pad})
        assert h.writer is None and writer.transport.is_closing(), "dropped"
        assert time.monotonic() - h.last_client < 600, "the orphan timeout counts from the drop, not from its coming"
        assert writer.transport.get_write_buffer_size() == 0, "what it held is let go"
    finally:
        console.close()
        server.close()
