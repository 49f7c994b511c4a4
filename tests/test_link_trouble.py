"""What the console says when its side of the link stops while the host may still run:
the embedded host's pacing loop failing (its clock stops), an attached console's fold
of the host's events failing (it stops following). Neither is "the host is gone":
that stays for a host that went away, and a clean close says nothing."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.config import Config
from core.events import Event
from core.host import client as client_mod
from core.host.attached import AttachedLink
from core.host.host import Host
from core.host.link import EmbeddedLink
from tests.conftest import until
from tests.console_support import came_true, make_app

TITLE = "the console's link"


async def _host(db: Path) -> Host:
    return await Host.open_sim(db, Config(), demo=True, create=True, speed=0)


async def _boom(_dt: float) -> None:
    raise RuntimeError("disk on fire")


async def test_an_embedded_hosts_failed_clock_is_said_once_and_commands_still_commit(tmp_path: Path) -> None:
    host = await _host(tmp_path / "e.db")
    link = EmbeddedLink(host)
    said: list[str] = []
    gone: list[str | None] = []
    link.on_trouble(said.append)
    link.on_status(gone.append)
    await link.start()
    host.beat = _boom  # type: ignore[method-assign]
    await until(lambda: said, "the failed pacing loop said")
    assert link.trouble == "clock stopped (RuntimeError: disk on fire)" and not link.clock_running
    assert said == [
        "the host's clock stopped: RuntimeError: disk on fire; commands still run and commit, "
        "the clock no longer moves by itself"
    ]
    assert link.gone is None and gone == [], "the host is there: actions are not refused"
    seq = host.engine.state.seq
    res = await link.send("/coordination-hub checkpoint")
    assert res["status"] == "success", res
    assert link.committed_seq > seq, "the command committed without the pacing loop"
    await link.close()
    assert said == [said[0]], "closing does not say it again"


async def test_a_clean_close_of_an_embedded_host_says_nothing(tmp_path: Path) -> None:
    host = await _host(tmp_path / "e.db")
    link = EmbeddedLink(host)
    said: list[str] = []
    link.on_trouble(said.append)
    await link.start()
    await until(lambda: host.engine.state.seq > 0, "the demo seeded")
    await link.close()
    assert said == [] and link.trouble is None


async def test_the_console_shows_why_its_embedded_clock_stopped(tmp_path: Path) -> None:
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(160, 40)) as pilot:
        await app.link_opened()
        assert app.host is not None
        app.host.beat = _boom  # type: ignore[method-assign]
        ours = lambda: [n for n in app._notifications if n.title == TITLE]  # noqa: E731
        assert await came_true(pilot, lambda: bool(ours()))
        assert "RuntimeError: disk on fire" in ours()[0].message
        assert not [n for n in app._notifications if n.title == "host gone"]
        header = str(app.header_pane.render())
        assert "clock stopped (RuntimeError: disk on fire)" in header, header


async def test_a_quiet_embedded_console_shows_no_link_trouble(tmp_path: Path) -> None:
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(160, 40)) as pilot:
        link = await app.link_opened()
        assert app.host is not None
        ticks = app.host.engine.state.seq
        await app.host.execute("/host advance 1m")
        assert await came_true(pilot, lambda: link.state.seq > ticks)
        assert link.trouble is None and not [n for n in app._notifications if n.title == TITLE]
        assert "clock stopped" not in str(app.header_pane.render())


async def _attached(tmp_path: Path) -> tuple[Host, AttachedLink, list[str], list[str | None]]:
    db = tmp_path / "a.db"
    host = await _host(db)
    await host.serve()
    link = await AttachedLink(db).open()
    assert link.host_pid is not None and link.client is not None
    said: list[str] = []
    status: list[str | None] = []
    link.on_trouble(said.append)
    link.on_status(status.append)
    await link.start()
    await until(lambda: link.state.seq == host.engine.state.seq, "the replica followed the host")
    return host, link, said, status


async def _a_command_runs_on(host: Host, link: AttachedLink) -> None:
    """The host is fine: a command sent through the link commits in its log."""
    seq = host.engine.state.seq
    res = await link.send("/coordination-hub checkpoint")
    assert res["status"] == "success", res
    await until(lambda: host.engine.state.seq > seq, "the command ran on the host")


async def test_a_fold_error_on_the_console_side_is_not_the_host_gone(tmp_path: Path) -> None:
    host, link, said, status = await _attached(tmp_path)
    try:
        assert link.replica is not None
        folded = link.replica.seq

        def broken(ev: Event) -> bool:
            raise KeyError("agent_9")

        link.replica.apply = broken  # type: ignore[method-assign]
        await host.execute("/host advance 1m")
        await until(lambda: said, "the failed fold said")
        assert link.gone is None and status == [], "the host answers: not gone"
        assert link.trouble == "not following (KeyError: 'agent_9')"
        assert "KeyError: 'agent_9'" in said[0] and "may still be running" in said[0]
        assert f"stay at seq {folded:,}" in said[0] and "reopen the console" in said[0]
        assert "is gone" not in said[0] and "not following" in link.describe()
        assert link.replica.seq == folded
        # The host is fine: a command still reaches it and commits in its log.
        await _a_command_runs_on(host, link)
        assert link.replica.seq == folded, "nothing more is folded into a replica that failed"
    finally:
        await link.close()
        await host.close()


async def test_an_event_the_console_cannot_decode_is_said_as_such_not_the_host_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host sends an event this console cannot decode (a newer host's, say): the
    console says which event and that it stopped following, not that the host is gone;
    commands still reach the host."""
    host, link, said, status = await _attached(tmp_path)
    try:
        assert link.replica is not None
        folded = link.replica.seq
        real = client_mod.event_from_json

        def newer(obj: dict[str, Any]) -> Event:
            if obj["seq"] > folded:
                raise ValueError("unknown field 'mood'")
            return real(obj)

        monkeypatch.setattr(client_mod, "event_from_json", newer)
        await host.execute("/host advance 1m")
        await until(lambda: said, "the undecodable event said")
        assert link.gone is None and status == [], "the host answers: not gone"
        assert link.trouble == f"not following (an undecodable event, seq {folded + 1})"
        assert said[0].startswith(
            f"the console stopped following the host (pid {link.host_pid}): it sent an event the console "
            f"could not decode (seq {folded + 1}: not an event (unknown field 'mood')"
        ), said
        assert "is gone" not in said[0] and f"stay at seq {folded:,}" in said[0]
        assert link.replica.seq == folded
        await _a_command_runs_on(host, link)
    finally:
        await link.close()
        await host.close()


async def test_a_host_that_goes_is_gone_and_no_fold_trouble(tmp_path: Path) -> None:
    host, link, said, status = await _attached(tmp_path)
    try:
        pid = link.host_pid
        await host.close()
        await until(lambda: link.gone is not None, "the console noticed the host went")
        assert link.gone == f"the host (pid {pid}) is gone" and status[0] == link.gone
        assert said == [] and link.trouble is None
    finally:
        await link.close()


async def test_a_fold_error_with_no_host_does_not_say_commands_go_to_one(tmp_path: Path) -> None:
    """Tailing the store of a database no host runs: the failed fold says so, and not that
    the host may still be running or that commands still go to it (they are refused)."""
    db = tmp_path / "n.db"
    host = await _host(db)
    await host.close()
    link = await AttachedLink(db).open()
    try:
        assert link.client is None and link.replica is not None
        said: list[str] = []
        link.on_trouble(said.append)

        async def broken(upto: int | None = None) -> list[Event]:
            raise KeyError("agent_9")

        link.replica.catch_up = broken  # type: ignore[method-assign]
        await link.start()
        await until(lambda: said, "the failed fold said")
        assert said[0].startswith("the console stopped following n.db: folding its events failed here"), said
        assert (
            "no host runs n.db" in said[0] and "still go to it" not in said[0] and "may still be running" not in said[0]
        )
        assert link.gone is None and link.trouble == "not following (KeyError: 'agent_9')"
        res = await link.send("/coordination-hub checkpoint")
        assert res["status"] == "error", res
    finally:
        await link.close()


class _FailingReads:
    """A replica store's connection whose reads of the event log fail ``times`` times
    with ``error`` (then read as before); everything else goes to the real one."""

    def __init__(self, db: Any, times: int, error: Exception) -> None:
        self.db, self.left, self.error = db, times, error

    def execute(self, sql: str, *args: Any) -> Any:
        if "FROM events WHERE seq >" in sql and self.left:
            self.left -= 1
            raise self.error
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


@dataclass
class _Tailing:
    link: AttachedLink
    behind: int
    """The replica's seq when it started following."""
    head: int
    """The store's last seq."""
    failing: _FailingReads
    said: list[str]


async def _tailing_behind(tmp_path: Path, times: int, error: Exception) -> _Tailing:
    """A console tailing the store of a database no host runs, whose replica is behind
    the store (a host ran and committed more after it opened), started with its reads
    failing ``times`` times; what it says is kept."""
    db = tmp_path / "t.db"
    await (await _host(db)).close()
    link = await AttachedLink(db).open()
    assert link.client is None and link.replica is not None
    host = await Host.open_sim(db, Config(), speed=0)
    await host.execute("/host advance 1m")
    head = host.engine.state.seq
    await host.close()
    assert link.replica.seq < head
    reader = link.replica.store.reader
    failing = _FailingReads(reader._db, times, error)
    reader._db = failing  # type: ignore[assignment]
    tailing = _Tailing(link, link.replica.seq, head, failing, [])
    link.on_trouble(tailing.said.append)
    await link.start()
    return tailing


async def test_a_locked_store_is_read_again_and_the_console_follows_on(tmp_path: Path) -> None:
    """A read of the store that meets another process's lock is a passing condition: the
    console says so (a warning, not 'stopped following'), reads again with growing waits,
    and once a read succeeds folds what it missed and says it follows on."""
    t = await _tailing_behind(tmp_path, 3, sqlite3.OperationalError("database is locked"))
    link, said = t.link, t.said
    try:
        await until(lambda: link.replica is not None and link.replica.seq == t.head, "the console followed on")
        assert t.failing.left == 0, "every failed read was read again"
        assert link.trouble is None and link.stale is None and link.gone is None
        assert len(said) == 2, said
        assert said[0].startswith("the console could not read t.db: another process holds a lock on it"), said
        assert "a passing condition: it reads again" in said[0] and f"stay at seq {t.behind:,}" in said[0]
        assert said[1] == f"the console reads t.db again and follows on from seq {t.head:,}"
    finally:
        await link.close()


async def test_a_damaged_store_stops_the_console_following_and_is_not_read_again(tmp_path: Path) -> None:
    """A read that fails for good (a damaged file) is not a passing condition: following
    stops and the console says it is not one; nothing is read again."""
    t = await _tailing_behind(tmp_path, 1, sqlite3.DatabaseError("database disk image is malformed"))
    link, said = t.link, t.said
    try:
        await until(lambda: link.trouble is not None, "following stopped")
        assert link.trouble is not None and link.trouble.startswith("not following (StoreError: ")
        assert link.stale is None
        assert len(said) == 1 and "not a passing condition" in said[0] and "reading t.db failed" in said[0], said
        assert link.replica is not None
        assert t.failing.left == 0 and link.replica.seq == t.behind < t.head, "nothing more was read or folded"
    finally:
        await link.close()


async def test_gauges_that_cannot_be_refreshed_are_said_once_and_their_recovery_too(tmp_path: Path) -> None:
    """An attached console whose telemetry refresh fails says so once (not every poll),
    shows it as behind, and says when the gauges refresh again; following goes on."""
    host, link, said, status = await _attached(tmp_path)
    try:
        assert link.replica is not None
        real = link.replica.refresh_telemetry
        failures = [RuntimeError("metrics table gone"), RuntimeError("metrics table gone")]

        async def flaky() -> int:
            if failures:
                raise failures.pop()
            return await real()

        link.replica.refresh_telemetry = flaky  # type: ignore[method-assign]
        await until(lambda: said, "the failed refresh said")
        assert link.stale == "gauges behind (RuntimeError)" and link.trouble is None
        assert said[0] == (
            "the console could not refresh its gauges from a.db: RuntimeError: metrics table gone "
            "(not a passing condition); they show the samples read before, and it reads again every 0.5s"
        )
        await until(lambda: len(said) > 1, "the recovery said")
        assert not failures and said[1:] == ["the console's gauges refresh again"], said
        assert link.stale is None and status == []
    finally:
        await link.close()
        await host.close()


async def test_a_link_that_fails_to_close_is_said_after_the_console_exits(tmp_path: Path) -> None:
    """Closing the link (the embedded host's last commit) fails: the console still exits,
    and keeps why for the command line to print once the screen is gone."""
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 30)) as pilot:
        link = await app.link_opened()
        real = link.close

        async def failing_close() -> None:
            await real()
            raise OSError(28, "No space left on device")

        link.close = failing_close  # type: ignore[method-assign]
        await pilot.press("ctrl+q")
    assert app.close_error == "closing the console's link failed: OSError: [Errno 28] No space left on device"


def test_the_command_line_prints_a_failed_close_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opsdeck.console import run_console
    from tui.app import OpsdeckApp

    def run(self: OpsdeckApp) -> None:
        self.close_error = "closing the console's link failed: OSError: disk full"

    monkeypatch.setattr(OpsdeckApp, "run", run)
    assert run_console(tmp_path / "c.db", Config()) == 1
    assert capsys.readouterr().err == "opsdeck: closing the console's link failed: OSError: disk full\n"
