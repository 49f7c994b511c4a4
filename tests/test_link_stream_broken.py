"""An event stream that breaks after the host took it (its streaming code failed: the
connection closes mid-answer) is said as broken and followed again from the last event
read, nothing lost or repeated, while the host still answers; only a host whose process
is gone is "gone". Real hosts on their real sockets."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.config import Config
from core.host import stream
from core.host.attached import AttachedLink
from core.host.client import HostClient
from core.host.errors import HostGone
from core.host.host import Host
from tests.conftest import until

from .test_host_control_plane import HostProc
from .test_link_trouble import _a_command_runs_on

BOUND_S = 30.0


async def _host(db: Path) -> Host:
    host = await Host.open_sim(db, Config(), demo=True, create=True, speed=0)
    await host.serve()
    return host


def _fail_once_after_a_page(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The host's stream fails (its own error) once, at its first keepalive after it sent
    events: the connection closes mid-answer. Returns the seq sent through when it failed."""
    real = stream.Follower._send
    failed: list[int] = []

    async def send(self: stream.Follower, data: bytes) -> None:
        if not failed and self.last_sent > self.since and data.startswith(b": keepalive"):
            failed.append(self.last_sent)
            raise RuntimeError("the host's streaming code failed")
        await real(self, data)

    monkeypatch.setattr(stream.Follower, "_send", send)
    return failed


def _following(client: HostClient, seqs: list[int]) -> asyncio.Task[None]:
    """The client following the host's events from the start, each seq appended to ``seqs``."""

    async def follow() -> None:
        async for obj in client.event_objects(0):
            seqs.append(obj["seq"])

    return asyncio.create_task(follow())


async def test_a_stream_broken_by_the_hosts_error_is_followed_again_with_nothing_lost_or_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = await _host(tmp_path / "s.db")
    failed = _fail_once_after_a_page(monkeypatch)
    client = HostClient(socket_path=host.socket_path, pid=host.status()["pid"])
    told: list[tuple[str | None, float]] = []
    client.on_broken = lambda sentence, wait: told.append((sentence, wait))
    seqs: list[int] = []
    task = _following(client, seqs)
    try:
        await until(lambda: told and told[-1][0] is None, "the stream broken and taken again", timeout=BOUND_S)
        for _ in range(3):  # events committed after the break come through too
            await host.execute("/coordination-hub checkpoint", "operator")
        await until(lambda: seqs and seqs[-1] == host.engine.state.seq, "followed to the host's head", timeout=BOUND_S)
        assert not task.done(), task  # still following: not ended as gone
        assert seqs == list(range(1, host.engine.state.seq + 1)), "every event once, in order"
        assert failed and 0 < failed[0] < seqs[-1]
        sentence, wait = told[0]
        assert sentence is not None and wait == 0.0
        assert sentence.startswith(f"the event stream of the host (pid {client.pid}) broke after seq {failed[0]:,}: ")
        assert "the connection closed mid-answer" in sentence and "answers its health check" in sentence, sentence
        assert "is gone" not in sentence and client.broken is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        await host.close()


async def test_an_attached_console_says_the_break_and_follows_on_not_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = await _host(tmp_path / "a.db")
    failed = _fail_once_after_a_page(monkeypatch)
    link = await AttachedLink(tmp_path / "a.db").open()
    said: list[str] = []
    status: list[str | None] = []
    link.on_trouble(said.append)
    link.on_status(status.append)
    await link.start()
    try:
        await _a_command_runs_on(host, link)  # events after the replica's own: the stream sends them
        await until(lambda: len(said) >= 2, "the break said, then the stream taken again", timeout=BOUND_S)
        assert failed and said[0].startswith(f"the event stream of the host (pid {link.host_pid}) broke"), said
        assert said[1].startswith(f"the host (pid {link.host_pid}) took the console's event stream again"), said
        assert link.gone is None and status == [] and link.trouble is None and link.stale is None
        await _a_command_runs_on(host, link)
        await until(lambda: link.state.seq == host.engine.state.seq, "the replica followed the host")
    finally:
        await link.close()
        await host.close()


async def test_a_killed_host_is_still_gone_and_never_said_broken(tmp_path: Path, env: dict[str, str]) -> None:
    """The must-not: a stream that ends because the host's process was killed is "gone"."""
    db = tmp_path / "k.db"
    proc = HostProc(["serve", "--demo", "--db", str(db), "--speed", "1"], env, db)
    client = HostClient.for_db(db)
    assert client is not None
    told: list[Any] = []
    client.on_broken = lambda sentence, wait: told.append(sentence)
    seqs: list[int] = []
    task = _following(client, seqs)
    try:
        await until(lambda: seqs, "events followed", timeout=BOUND_S)
        proc.proc.send_signal(signal.SIGKILL)
        done, _ = await asyncio.wait({task}, timeout=BOUND_S)
        assert done, "the follower did not end"
        exc = task.exception()
        assert type(exc) is HostGone and f"the host (pid {proc.proc.pid}) is gone" in str(exc), exc
        assert told == [], told
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        if proc.proc.poll() is None:
            proc.proc.kill()
        proc.proc.wait(BOUND_S)


async def test_a_reader_that_takes_nothing_does_not_hold_up_the_hosts_close(tmp_path: Path) -> None:
    """The closing comment is handed over, not waited for: a stalled reader's stream ends
    with the host's close (waiting for it would hold the close up to ``stall_s``)."""
    host = await Host.open_sim(tmp_path / "c.db", Config(), demo=True, create=True, speed=0)
    written: list[bytes] = []

    class Stuck:
        async def write(self, data: bytes) -> None:
            written.append(data)
            if data == stream.CLOSING_COMMENT:
                await asyncio.Event().wait()  # the reader never takes it

    try:
        host.closing = True
        follower = stream.Follower(host, SimpleNamespace(remote=None), Stuck(), 0, None)  # type: ignore[arg-type]
        await asyncio.wait_for(follower.run(), 5.0)
        assert written[-1] == stream.CLOSING_COMMENT, written
    finally:
        host.closing = False
        await host.close()


async def test_an_attached_link_says_the_host_is_gone_with_its_pid_only_when_known(tmp_path: Path) -> None:
    said: list[str | None] = []
    link = AttachedLink(tmp_path / "x.db")
    link.on_status(said.append)
    await link._host_gone(None)  # no pid ever seen
    link.last_pid = 4321
    await link._host_gone(None)
    assert said == ["the host is gone", "the host (pid 4321) is gone"]
