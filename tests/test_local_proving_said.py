"""A restarted console proving the last run's agent hosts says so while it waits (up to
one handshake's time) and says the count when done: in the console's header and on a
headless verb's stderr, never silence. A real agent host, stopped (SIGSTOP) so that its
proof takes the whole (shortened) handshake time."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from core.models import Agent
from core.runtimes import adoption as adoption_module
from core.runtimes.adoption import Adoption
from core.runtimes.opening import PROVING, Proving
from tests.console_support import make_app

from .conftest import wait_for
from .test_local_identity import _Rows
from .test_local_security import start_host, stop_host


async def _reconcile(adoption: Adoption, rows: _Rows, agents: list[str]) -> None:
    engine = SimpleNamespace(
        store=rows,
        store_lock=asyncio.Lock(),
        state=SimpleNamespace(agents={a: Agent(id=a, pool="p", specializations=[]) for a in agents}),
    )
    await adoption.reconcile(engine)  # type: ignore[arg-type]


def test_proving_a_stopped_host_is_said_when_it_starts_and_with_the_count_when_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adoption_module, "HANDSHAKE_TIMEOUT_S", 0.5)
    proc, sock, secret = start_host(tmp_path / "run")
    told: list[str] = []
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        wait_for(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED, "the host to stop", 10)
        adoption = Adoption(secret)
        ct = psutil.Process(proc.pid).create_time()
        row: dict[str, object] = {"address": str(sock)}
        row["mac"] = adoption.row_mac("agent_001", proc.pid, ct, row)
        forged = {"address": str(sock), "mac": "0" * 64}  # not this run's row: not proved, not counted

        async def run() -> None:
            PROVING.set(lambda p: told.append(p.words()))
            await _reconcile(
                adoption, _Rows([("agent_001", proc.pid, ct, row), ("agent_002", proc.pid, ct, forged)]), ["agent_001"]
            )

        asyncio.run(run())
        assert told[0] == "proving 1 agent host of the last run…", told
        # Adopted (it holds its socket as the row's pid) but not said to have proved itself:
        # it did not answer.
        assert told[1].startswith("proved 0 of 1 agent host of the last run in "), told
        assert told[1].endswith(
            "; 1 adopted without answering (holding its socket: stopped or hung;"
            " its connection proves it or judges it stuck)"
        ), told
        assert len(told) == 2 and list(adoption.adoptable) == ["agent_001"]
        assert adoption.unanswered == {"agent_001"}
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        stop_host(proc)


def test_nothing_to_prove_says_nothing() -> None:
    """The must-not: a console with no live host of the last run says no proving."""
    told: list[Proving] = []

    async def run() -> None:
        PROVING.set(told.append)
        await _reconcile(Adoption(b"s" * 32), _Rows([("agent_001", 2**22 + 7, 1.0, {"address": "x"})]), [])

    asyncio.run(run())
    assert told == []


def test_a_host_not_proved_is_counted_as_such() -> None:
    p = Proving(20)
    assert p.words() == "proving 20 agent hosts of the last run…"
    p.ended(18)
    assert p.words().startswith("proved 18 of 20 agent hosts of the last run in ")
    assert p.words().endswith("; 2 not proved (nothing was signalled)")
    p.ended(16, 2)  # two adopted for holding their socket: counted apart from the proved and the refused
    assert p.words().startswith("proved 16 of 20 agent hosts of the last run in "), p.words()
    assert "; 2 adopted without answering (holding their socket: stopped or hung; their connections" in p.words()
    assert p.words().endswith("; 2 not proved (nothing was signalled)")


async def test_the_console_header_says_the_proving_while_it_opens(tmp_path: Path) -> None:
    app = make_app(tmp_path / "c.db")
    app.open_link = False  # the header as it is while the link opens
    async with app.run_test(size=(160, 40)) as pilot:
        proving = Proving(20)
        app.announcer.proving(proving)
        await pilot.pause()
        assert "opening: proving 20 agent hosts of the last run…" in str(app.header_pane.render())
        proving.ended(20)
        app.announcer.proving(proving)
        await pilot.pause()
        header = str(app.header_pane.render())
        assert "opening: proved 20 of 20 agent hosts of the last run in " in header, header
        assert any(n.message.startswith("proved 20 of 20") for n in app._notifications), "the count when done"
