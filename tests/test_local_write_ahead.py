"""Write-ahead: a command reaches a host only after the events that led to it are committed.

The fleet's pump flushes the engine, then sends what was queued: a command queued while
a flush runs (a report handled meanwhile assigns the agent its next task) must wait for
the next flush, not go out with the one that does not hold its event.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core.runtimes.fleet import Fleet, HostRecord, Timing

from .conftest import until
from .local_harness import header, open_text, task_toml, workflow_toml


class Log:
    """The engine's part the pump uses: events held, a flush that commits what it took."""

    store = None

    def __init__(self) -> None:
        self.held: list[str] = []
        self.committed: set[str] = set()
        self.gates: list[asyncio.Event] = []
        """One per flush, in order: a flush commits when its gate opens."""
        self.flushes = 0
        self.fail = False

    def emit(self, name: str) -> None:
        self.held.append(name)

    async def flush(self) -> None:
        taken, self.held = self.held, []
        gate = self.gates[self.flushes] if self.flushes < len(self.gates) else None
        self.flushes += 1
        if gate is not None:
            await gate.wait()
        if self.fail:
            self.held = taken + self.held
            raise OSError("disk full")
        self.committed |= set(taken)


class Links:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.sent: list[tuple[str, bool]] = []
        """(the command's event, whether it was committed when the command went out)."""

    def ready(self, h: HostRecord) -> bool:
        return True

    def deliver(self, h: HostRecord, batch: list[dict[str, Any]]) -> bool:
        self.sent += [(m["event"], m["event"] in self.log.committed) for m in batch]
        return True


async def idle() -> None:
    await asyncio.Event().wait()


def fleet_with(log: Log) -> tuple[Fleet[HostRecord], HostRecord, Links]:
    fleet: Fleet[HostRecord] = Fleet(Timing(), actor="test")
    fleet.engine = log  # type: ignore[assignment]
    h = HostRecord("agent_001", "sock")
    fleet.hosts[h.agent] = h
    return fleet, h, Links(log)


def assign(fleet: Fleet[HostRecord], h: HostRecord, log: Log, name: str) -> None:
    log.emit(name)
    fleet.send(h, {"op": "start", "event": name})


async def test_a_command_queued_during_a_flush_waits_for_the_flush_that_commits_its_event() -> None:
    log = Log()
    log.gates = [asyncio.Event(), asyncio.Event()]
    fleet, h, links = fleet_with(log)
    fleet.start(links, idle)
    try:
        assign(fleet, h, log, "assigned-1")
        await until(lambda: log.flushes == 1, "the first flush", 5, poll=0)  # it took assigned-1
        assign(fleet, h, log, "assigned-2")  # queued while it runs
        log.gates[0].set()
        await until(lambda: log.flushes == 2, "the second flush", 5, poll=0)
        # Must NOT have gone out with the first flush, which did not hold its event.
        assert links.sent == [("assigned-1", True)]
        log.gates[1].set()
        await until(lambda: len(links.sent) == 2, "the second command sent", 5, poll=0)
        assert links.sent == [("assigned-1", True), ("assigned-2", True)]
        assert h.outbox == []
    finally:
        await fleet.stop_loops()


async def test_a_failed_flush_sends_nothing_and_keeps_the_commands() -> None:
    log = Log()
    log.fail = True
    fleet, h, links = fleet_with(log)
    fleet.start(links, idle)
    pump = fleet.loops[0]
    assign(fleet, h, log, "assigned-1")
    with pytest.raises(OSError, match="disk full"):
        await asyncio.wait_for(asyncio.shield(pump), 5)
    assert links.sent == []
    assert h.outbox == [{"op": "start", "event": "assigned-1"}]
    fleet.loops[1].cancel()
    await asyncio.gather(*fleet.loops, return_exceptions=True)


async def test_a_runs_end_is_committed_without_waiting_for_anyone_elses_flush(tmp_path: Path) -> None:
    """Nobody flushes here (no host's pacing loop, no test driver): the pump commits the
    assignment to send the start, and the run's end because the runtime asks for it."""
    text = header() + workflow_toml(
        "w", task_toml("t", ["true"], "shell"), phase="p", allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1}
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await until(  # the recorder hears committed events only
            lambda: rec.of("WORKFLOW_COMPLETED"),
            lambda: f"the workflow's end committed; last events: {[e.type for e in rec.events][-5:]}",
        )
        assert [e.data["task"] for e in rec.of("TASK_COMPLETED")] == ["w/t"]
    finally:
        await runtime.shutdown()
        await engine.close()
