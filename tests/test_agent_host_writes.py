"""What the agent host writes to its console: a run's start is held for the next report
(a short run's start and end in one write: one wake-up of the console, not two), never
longer than HOLD_S; one held when its console went reaches the next console in its
hello, with when its run began."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest

from core.runtimes import agent_host
from core.runtimes.wire import LineFramer

from .conftest import until
from .local_harness import in_process_host as host


class Transport:
    def get_write_buffer_size(self) -> int:
        return 0


class Writer:
    """A console's connection that records each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.transport = Transport()

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def messages(self) -> list[list[dict[str, Any]]]:
        """Each write's messages."""
        return [LineFramer().feed(data) for data in self.writes]


def start(task: str, command: list[str]) -> dict[str, Any]:
    return {"op": "start", "task": task, "attempt": 0, "command": command}


async def test_a_short_runs_start_and_end_reach_the_console_in_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_host, "HOLD_S", 60.0)  # the end comes first, however loaded the machine
    h = host(tmp_path)
    w = Writer()
    h.writer = cast(asyncio.StreamWriter, w)
    assert h.runner.handle(start("t1", ["true"])) is None
    assert w.writes == [], "the start is held"
    await until(lambda: w.writes, "the run's end")
    assert [[m["t"] for m in ms] for ms in w.messages()] == [["started", "finished"]]
    assert h.held == []
    assert h.hold_timer is None, "the hold's timer went with what it held: no wake-up for nothing"


@asynccontextmanager
async def lasting_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hold_s: float
) -> AsyncIterator[tuple[agent_host.Host, Writer]]:
    """A host (holding starts ``hold_s``) reporting to a console's connection, running a
    task that lasts (stopped on leaving)."""
    monkeypatch.setattr(agent_host, "HOLD_S", hold_s)
    h = host(tmp_path)
    w = Writer()
    h.writer = cast(asyncio.StreamWriter, w)
    h.runner.handle(start("t1", [sys.executable, "-c", "import time; time.sleep(60)"]))
    try:
        yield h, w
    finally:
        run = h.runner.run
        assert run is not None
        await h.runner.stop_run(run, "test over")


async def test_a_start_held_with_no_report_after_it_goes_out_within_the_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that lasts: its start is not held until its end."""
    async with lasting_run(tmp_path, monkeypatch, 0.05) as (h, w):
        await until(lambda: w.writes, "the start written", timeout=10)
        assert [[m["t"] for m in ms] for ms in w.messages()] == [["started"]]
        assert h.runner.run is not None and h.runner.run.rc is None, "written while the run still runs"


def _drop_and_greet(h: agent_host.Host, old: Writer) -> list[dict[str, Any]]:
    """The console's connection drops, another console connects: what it is sent (the
    old one is sent nothing more)."""
    h._without_console()
    new = Writer()
    h.greet(cast(asyncio.StreamWriter, new))
    assert old.writes == [], "nothing is written to a console that went"
    return [m for ms in new.messages() for m in ms]


async def test_a_start_held_for_a_console_that_went_reaches_the_next_in_its_hello(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console's connection drops while the run's start is held: the start is not
    lost (it was dropped with the connection) nor written bare ahead of the next
    console's hello (the first message a console reads proves the host): the hello
    carries it, with when the run began. Handed over once: a console after that one
    is not told it again."""
    before = time.time()
    async with lasting_run(tmp_path, monkeypatch, 60.0) as (h, old):
        assert h.held and old.writes == [], "the start is held"
        (hello,) = _drop_and_greet(h, old)
        assert hello["t"] == "hello" and [(m["t"], m["task"]) for m in hello["held"]] == [("started", "t1")]
        began = hello["held"][0]["started_at"]
        assert before - 0.001 <= began <= time.time() and began == hello["current"]["started_at"]
        assert h.held == [] and h.hold_timer is None
        (again,) = _drop_and_greet(h, Writer())
        assert "held" not in again, "handed over once"


async def test_a_held_start_whose_run_ended_meanwhile_comes_before_its_end_with_its_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run ends while no console is connected (its end goes nowhere): the next
    hello has its start, then its end among those done, both saying when it began."""
    monkeypatch.setattr(agent_host, "HOLD_S", 60.0)
    h = host(tmp_path)
    old = Writer()
    h.writer = cast(asyncio.StreamWriter, old)
    h.runner.handle(start("t1", ["true"]))
    h._without_console()
    await until(lambda: h.runner.run is None, "the run's end")
    (hello,) = _drop_and_greet(h, old)
    (held,) = hello["held"]
    (done,) = hello["done"]
    assert (held["t"], done["t"]) == ("started", "finished")
    assert held["started_at"] == done["started_at"] <= time.time()


async def test_a_start_written_to_its_console_is_not_handed_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The must-not: a start that went out (within HOLD_S) is not told again."""
    async with lasting_run(tmp_path, monkeypatch, 0.01) as (h, old):
        await until(lambda: old.writes, "the start written", timeout=10)
        old.writes.clear()
        (hello,) = _drop_and_greet(h, old)
        assert "held" not in hello and hello["current"]["task"] == "t1"
