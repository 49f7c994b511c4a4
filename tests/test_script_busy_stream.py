"""``opsdeck script`` against a live host whose event stream it cannot follow: refused as
busy (503, its follower cap; asked again meanwhile) or breaking at each event (followed
again meanwhile). ``expect no TYPE within D`` must not pass on events it never saw: a
wait that ends while the host still refuses the stream stops with the refusal (exit 1),
and the window's end waits for what the host committed in it, or fails saying so."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.commands.script import ScriptResult, parse_script
from core.host import script as host_script
from core.host import stream
from core.host.client import HostClient
from core.host.host import Host
from core.host.script import HostScriptRunner

from .test_cli_bad_answer import _verb
from .test_link_stream_refused import _hold_a_follower, _host

SCRIPT = "expect no WORKFLOW_FAILED within 1s\n"
WINDOW = "expect no CHECKPOINT_CREATED within 1s\n"


async def test_a_negative_expectation_on_a_busy_stream_fails_with_the_refusal(
    tmp_path: Path, env: dict[str, str]
) -> None:
    host = await _host(tmp_path / "b.db", max_followers=1)
    held = await _hold_a_follower(host)
    script = tmp_path / "s.ops"
    script.write_text(SCRIPT)
    try:
        rc, err = await _verb(env, "script", "--db", str(host.db), str(script))
    finally:
        held.close()
        await host.close()
    assert rc == 1, err
    assert "is busy: it refused the event stream (503 TOO_MANY_FOLLOWERS" in err, err
    assert "Traceback" not in err and "is gone" not in err and "passed" not in err, err


async def test_the_same_expectation_passes_on_a_stream_the_host_serves(tmp_path: Path, env: dict[str, str]) -> None:
    """The must-not: with a follower's slot free the stream is followed and the script passes."""
    host = await _host(tmp_path / "f.db", max_followers=1)
    script = tmp_path / "s.ops"
    script.write_text(SCRIPT)
    try:
        rc, err = await _verb(env, "script", "--db", str(host.db), str(script))
    finally:
        await host.close()
    assert rc == 0, err


async def _run_script(host: Host, text: str, during: Callable[[], Awaitable[object]] | None = None) -> ScriptResult:
    """``text`` run against ``host`` in this process (``during``: done on the host while it runs)."""
    client = HostClient(socket_path=host.socket_path, pid=host.status()["pid"])
    runner = HostScriptRunner(client, lambda line: None)
    await runner.start()
    try:
        run = asyncio.create_task(runner.run(parse_script(text)))
        if during is not None:
            await during()
        return await asyncio.wait_for(run, 60)
    finally:
        await runner.stop()
        await client.close()


def _break_every_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's stream fails (its own error) whenever it would send an event: the
    connection closes mid-answer, the client follows again, and it breaks again."""
    real = stream.Follower._send

    async def send(self: stream.Follower, data: bytes) -> None:
        if b"data:" in data:
            raise RuntimeError("the host's streaming code failed")
        await real(self, data)

    monkeypatch.setattr(stream.Follower, "_send", send)


@pytest.mark.parametrize("broken", [True, False], ids=["broken-stream", "stream-followed"])
async def test_a_negative_expectation_judges_every_event_of_its_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    """A checkpoint committed in the window of ``expect no CHECKPOINT_CREATED within 1s``:
    on a stream that breaks at each event the step fails saying what the stream delivered
    (before: passed, the event never seen); on a stream that delivers it, it is found."""
    monkeypatch.setattr(host_script, "CATCH_UP_S", 2.0)
    if broken:
        _break_every_event(monkeypatch)
    host = await _host(tmp_path / "w.db")
    try:
        result = await _run_script(host, WINDOW, lambda: host.execute("/coordination-hub checkpoint", "operator"))
    finally:
        await host.close()
    assert not result.ok, result
    if broken:
        assert "whether the window held such an event cannot be told" in result.message, result.message
        assert "broke after seq" in result.message, result.message
    else:
        assert "found CHECKPOINT_CREATED" in result.message, result.message


async def test_a_quiet_window_on_a_broken_stream_still_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The must-not: nothing committed in the window, nothing missed: it passes."""
    monkeypatch.setattr(host_script, "CATCH_UP_S", 2.0)
    _break_every_event(monkeypatch)
    host = await _host(tmp_path / "q.db")
    try:
        result = await _run_script(host, WINDOW)
    finally:
        await host.close()
    assert result.ok, result


@pytest.mark.parametrize("broken", [True, False], ids=["broken-stream", "stream-followed"])
async def test_a_positive_expectation_says_an_event_it_could_not_see_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    """``expect CHECKPOINT_CREATED within 1s`` with a checkpoint committed: on a stream that
    breaks at each event the step fails saying the stream did not deliver it (before: "no
    CHECKPOINT_CREATED event since the last expectation", untrue); followed, it passes."""
    monkeypatch.setattr(host_script, "CATCH_UP_S", 2.0)
    if broken:
        _break_every_event(monkeypatch)
    host = await _host(tmp_path / "p.db")
    try:
        result = await _run_script(
            host,
            "expect CHECKPOINT_CREATED within 1s\n",
            lambda: host.execute("/coordination-hub checkpoint", "operator"),
        )
    finally:
        await host.close()
    if broken:
        assert not result.ok and "whether the window held such an event cannot be told" in result.message, result
    else:
        assert result.ok, result
