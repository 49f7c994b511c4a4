"""Bounded input: linear parsing, size limits, text that is not text, runaway requests.

Each case checks the state after the input: a refused input changes nothing, and
none answers INTERNAL_ERROR. The host cases run a host in this process with its
endpoint on a unix socket and talk to it as a client would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from core.commands import run_command
from core.commands.grammar import MAX_COMMAND_CHARS, parse, tokenize
from core.commands.payloads import MAX_LABEL_CHARS
from core.config import Config
from core.host.client import HostClient
from core.host.host import Host
from core.session import memory_sim


@pytest.fixture
def engine():  # type: ignore[no-untyped-def]
    return memory_sim(seed=0)


@pytest.mark.slow
def test_tokenizing_is_linear_in_the_text() -> None:
    """A command at the limit splits in about ten times the time of one a tenth its size
    (quadratic splitting would take a hundred times). Timed in this process's CPU time,
    the best of a few runs: wall time would also count the time other processes had the core
    on a shared machine."""

    def split_time(n: int) -> float:
        text = "/debug " + ('\'ab\' "c\\"d" e\\ f ' * (n // 18))
        t0 = time.process_time()
        tokenize(text)
        return time.process_time() - t0

    small = min(split_time(MAX_COMMAND_CHARS // 10) for _ in range(5))
    big = min(split_time(MAX_COMMAND_CHARS) for _ in range(3))
    assert big < 10.0, f"{MAX_COMMAND_CHARS} characters took {big:.2f}s"
    assert big < 30 * small, f"10x the text took {big / small:.1f}x the time: not linear"


def test_a_long_json_argument_keeps_its_positions() -> None:
    payload = '{"scope": "' + "x" * (MAX_COMMAND_CHARS - 100) + '", "bad" 1}'
    text = f"/debug '{payload}'"
    t0 = time.perf_counter()
    with pytest.raises(Exception) as exc:
        parse(text)
    assert time.perf_counter() - t0 < 5.0
    assert getattr(exc.value, "code", None) == "INVALID_JSON"
    assert getattr(exc.value, "offset", None) == text.index("1}")


async def test_a_million_character_command_is_refused_at_once(engine) -> None:  # type: ignore[no-untyped-def]
    before = engine.state.state_hash()
    text = "/debug '" + "y" * 1_000_000 + "'"
    t0 = time.perf_counter()
    resp = await run_command(engine, text)
    assert time.perf_counter() - t0 < 5.0  # refused before it is split: milliseconds on an idle machine
    assert resp["status"] == "error" and resp["error"]["code"] == "COMMAND_TOO_LONG"
    assert resp["error"]["details"]["limit"] == MAX_COMMAND_CHARS
    assert engine.state.state_hash() == before


async def test_a_label_over_the_limit_is_refused_and_one_at_it_is_kept(engine) -> None:  # type: ignore[no-untyped-def]
    before = engine.state.state_hash()
    n_cps = len(engine.state.checkpoints)
    long = json.dumps({"label": "L" * (MAX_LABEL_CHARS + 1)})
    resp = await run_command(engine, f"/coordination-hub checkpoint '{long}'")
    assert resp["status"] == "error" and resp["error"]["details"]["field"] == "label"
    assert engine.state.state_hash() == before and len(engine.state.checkpoints) == n_cps
    ok = json.dumps({"label": "L" * MAX_LABEL_CHARS})
    resp = await run_command(engine, f"/coordination-hub checkpoint '{ok}'")
    assert resp["status"] == "success"
    assert len(engine.state.checkpoints) == n_cps + 1


async def test_a_lone_surrogate_in_a_payload_is_a_command_error(engine) -> None:  # type: ignore[no-untyped-def]
    before = engine.state.state_hash()
    for bad in ("\\udc00", "x\\ud83d", "\\ud83d\\u0041"):
        text = (
            "/coordination-hub publish-event "
            f'\'{{"type": "X", "component": "c", "scope": "s", "data": {{"k": "{bad}"}}}}\''
        )
        resp = await run_command(engine, text)
        assert resp["status"] == "error" and resp["error"]["code"] == "INVALID_JSON", resp
        assert engine.state.state_hash() == before
    # A whole pair is a character: accepted.
    text = '/coordination-hub publish-event \'{"type": "X", "component": "c", "scope": "s", "data": {"k": "\\ud83d\\ude00"}}\''
    assert (await run_command(engine, text))["status"] == "success"


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Host]:
    host = await Host.open_sim(tmp_path / "in.db", Config(), demo=True, create=True, speed=0)
    await host.serve()
    try:
        yield host
    finally:
        await host.close()


async def _raw(host: Host, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    conn = aiohttp.UnixConnector(path=str(host.socket_path))
    async with aiohttp.ClientSession(connector=conn) as s, s.request(method, "http://h" + path, data=body) as r:
        return r.status, json.loads(await r.text())


async def test_http_input_errors_are_4xx_and_change_nothing(live: Host) -> None:
    seq = live.engine.state.seq
    cases = [
        ("POST", "/v1/commands", b'{"command": "/host status", "actor": "\\ud800"}'),
        ("POST", "/v1/commands", json.dumps({"command": "/debug " + "z" * (MAX_COMMAND_CHARS + 1)}).encode()),
        ("GET", f"/v1/events?since={2**63}", None),
        ("GET", "/v1/events?since=" + "9" * 5000, None),
        ("GET", "/v1/events?since=-1", None),
    ]
    for method, path, body in cases:
        status, out = await _raw(live, method, path, body)
        assert 400 <= status < 500, (path[:60], status, out)
        assert out["error"]["code"] != "INTERNAL_ERROR"
    # A command with a lone surrogate in its text: a command error, not INTERNAL_ERROR.
    status, out = await _raw(live, "POST", "/v1/commands", b'{"command": "/host status \\udc80"}')
    assert status in (200, 400) and out["status"] == "error" and out["error"]["code"] != "INTERNAL_ERROR"
    assert live.engine.state.seq == seq


async def test_host_advance_runs_in_steps_that_commands_and_a_cancel_interleave_with(live: Host) -> None:
    client = HostClient(socket_path=live.socket_path)
    other = HostClient(socket_path=live.socket_path)
    try:
        start = live.engine.clock.now()
        long = asyncio.get_running_loop().create_task(client.send("/host advance 12h", actor="long"))
        while live.engine.clock.now() < start + 120:  # a few steps in
            assert not long.done(), long.result()
            await asyncio.sleep(0.01)
        # Another command is answered while the advance goes on.
        status = await other.send("/host status", actor="other")
        assert status["status"] == "success"
        assert not long.done() and status["result"]["advance"]["done"] is False
        cancel = await other.send("/host advance cancel", actor="other")
        assert cancel["status"] == "success", cancel
        resp = await asyncio.wait_for(long, 120)
        assert resp["status"] == "success"
        assert resp["result"]["advance"]["cancelled"] is True
        stopped = live.engine.clock.now()
        assert stopped < start + 12 * 3600
        assert resp["result"]["advance"]["at"] == pytest.approx(stopped, abs=1e-3)
        # Nothing runs on after the cancel, and a second cancel has nothing to stop.
        again = await other.send("/host advance cancel", actor="other")
        assert again["status"] == "error" and again["error"]["code"] == "NOT_ADVANCING"
        assert live.engine.clock.now() == stopped
        # A whole advance answers once it is there.
        done = await client.send("/host advance 5m", actor="long")
        assert done["status"] == "success" and live.engine.clock.now() == pytest.approx(stopped + 300)
    finally:
        await client.close()
        await other.close()
