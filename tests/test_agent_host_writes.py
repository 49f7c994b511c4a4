"""What the agent host writes to its console: a run's start is held for the next report
(a short run's start and end in one write: one wake-up of the console, not two), never
longer than HOLD_S, and never to a console other than the one it was held for."""

from __future__ import annotations

import asyncio
import sys
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


async def test_a_start_held_with_no_report_after_it_goes_out_within_the_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that lasts: its start is not held until its end."""
    monkeypatch.setattr(agent_host, "HOLD_S", 0.05)
    h = host(tmp_path)
    w = Writer()
    h.writer = cast(asyncio.StreamWriter, w)
    h.runner.handle(start("t1", [sys.executable, "-c", "import time; time.sleep(60)"]))
    try:
        await until(lambda: w.writes, "the start written", timeout=10)
        assert [[m["t"] for m in ms] for ms in w.messages()] == [["started"]]
        assert h.runner.run is not None and h.runner.run.rc is None, "written while the run still runs"
    finally:
        run = h.runner.run
        assert run is not None
        await h.runner.stop_run(run, "test over")


async def test_a_report_held_for_a_console_that_is_gone_reaches_no_other(tmp_path: Path) -> None:
    h = host(tmp_path)
    old, new = Writer(), Writer()
    h.writer = cast(asyncio.StreamWriter, old)
    h.hold({"t": "started", "task": "t1", "attempt": 0})
    h._without_console()
    h.writer = cast(asyncio.StreamWriter, new)
    h.send({"t": "heartbeat"})
    assert old.writes == [] and [[m["t"] for m in ms] for ms in new.messages()] == [["heartbeat"]]
    assert h.hold_timer is None, "nothing is held: no wake-up is left for it"
