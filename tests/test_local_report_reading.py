"""The console reads a host's reports from the loop's read callback (:meth:`LocalHosts.hear`).

A fake host behind the real handshake writes reports in chunks that cut lines
anywhere; the console hands each to the reports once, in order, and its reading ends
when the host closes. A report that raises ends the reading with that exception (as
the connection's task ended before), and a reading that was cancelled applies nothing
more.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from core.runtimes.fleet import HostRecord
from core.runtimes.handshake import console_connect, host_accept
from core.runtimes.local_hosts import LocalHosts, ProcessHost
from core.runtimes.wire import CommandReader, encode

SECRET = b"s" * 64


class Heard:
    """Stands in for :class:`~core.runtimes.reports.Reports`: what was handed on, and
    a report kind that raises."""

    def __init__(self, raise_on: str | None = None, error: type[Exception] = RuntimeError) -> None:
        self.got: list[Any] = []
        self.raise_on = raise_on
        self.error = error

    def on_report(self, h: HostRecord, msg: Any) -> None:
        if msg.get("t") == self.raise_on:
            raise self.error(f"cannot apply {msg['t']}")
        self.got.append(msg)


async def _pair(tmp: Path, host_side: Any) -> tuple[CommandReader, asyncio.StreamWriter, asyncio.AbstractServer]:
    """A server doing the host's handshake then ``host_side(writer)``; the console's end."""
    sock = str(tmp / "a.sock")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await host_accept(reader, writer, SECRET)
        await host_side(writer)

    server = await asyncio.start_unix_server(serve, sock)
    reader, writer = await console_connect(sock, SECRET, framed=True)
    assert isinstance(reader, CommandReader)
    return reader, writer, server


def _hear(heard: Heard, reader: CommandReader) -> Any:
    hosts = cast(LocalHosts, SimpleNamespace(reports=heard))
    return LocalHosts.hear(hosts, ProcessHost("agent_001", "a.sock"), reader)


REPORTS = [{"t": "hello", "n": 0}] + [{"t": kind, "n": i} for i in range(1, 40) for kind in ("started", "finished")]


def test_reports_are_handed_on_once_in_order_whatever_the_chunks(tmp_path: Path) -> None:
    data = b"".join(encode(m) for m in REPORTS) + b"not json\n"

    async def host_side(writer: asyncio.StreamWriter) -> None:
        for i in range(0, len(data), 7):  # lines cut anywhere
            writer.write(data[i : i + 7])
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(encode({"t": "finished", "n": "last"})[:-1])  # the last line without its newline
        writer.close()

    async def main() -> list[Any]:
        heard = Heard()
        reader, writer, server = await _pair(tmp_path, host_side)
        await asyncio.wait_for(_hear(heard, reader), 10)  # returns once the host has closed
        writer.close()
        server.close()
        return heard.got

    got = asyncio.run(main())
    assert got == [*REPORTS, {"t": "finished", "n": "last"}]  # the garbled line skipped, nothing twice


def test_a_report_that_raises_ends_the_reading_with_it(tmp_path: Path) -> None:
    async def host_side(writer: asyncio.StreamWriter) -> None:
        writer.write(encode({"t": "started", "n": 1}) + encode({"t": "bad"}) + encode({"t": "finished", "n": 1}))
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(encode({"t": "finished", "n": 2}))  # after the failure: not applied
        await writer.drain()
        await asyncio.sleep(3600)

    async def main() -> list[Any]:
        heard = Heard(raise_on="bad")
        reader, writer, server = await _pair(tmp_path, host_side)
        with pytest.raises(RuntimeError, match="cannot apply bad"):
            await asyncio.wait_for(_hear(heard, reader), 10)
        await asyncio.sleep(0.4)  # the later report arrives meanwhile
        writer.close()
        server.close()
        return heard.got

    assert asyncio.run(main()) == [{"t": "started", "n": 1}]


def test_a_report_that_is_no_object_or_raises_valueerror_is_skipped_and_the_rest_applied(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A value the console cannot read (ValueError) or a line that is JSON but no object
    (on_report would raise AttributeError) costs that report, said on stderr, not the
    reading: connecting again would only read it again with the host's hello."""
    lines = [encode({"t": "started", "n": 1}), b"[1, 2]\n", b'"text"\n', encode({"t": "bad"})]

    async def host_side(writer: asyncio.StreamWriter) -> None:
        writer.write(b"".join(lines) + encode({"t": "finished", "n": 1}))
        writer.close()

    async def main() -> list[Any]:
        heard = Heard(raise_on="bad", error=ValueError)
        reader, writer, server = await _pair(tmp_path, host_side)
        await asyncio.wait_for(_hear(heard, reader), 10)  # returns once the host has closed
        writer.close()
        server.close()
        return heard.got

    assert asyncio.run(main()) == [{"t": "started", "n": 1}, {"t": "finished", "n": 1}]
    assert capfd.readouterr().err.count("a report skipped") == 3


def test_a_cancelled_reading_applies_nothing_more(tmp_path: Path) -> None:
    go_on = asyncio.Event()

    async def host_side(writer: asyncio.StreamWriter) -> None:
        writer.write(encode({"t": "started", "n": 1}))
        await writer.drain()
        await go_on.wait()
        writer.write(encode({"t": "finished", "n": 1}))
        await writer.drain()
        await asyncio.sleep(3600)

    async def main() -> list[Any]:
        heard = Heard()
        reader, writer, server = await _pair(tmp_path, host_side)
        reading = asyncio.ensure_future(_hear(heard, reader))
        for _ in range(500):
            if heard.got:
                break
            await asyncio.sleep(0.01)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        go_on.set()
        await asyncio.sleep(0.3)  # the finished report arrives on the still open connection
        writer.close()
        server.close()
        return heard.got

    assert asyncio.run(main()) == [{"t": "started", "n": 1}]
