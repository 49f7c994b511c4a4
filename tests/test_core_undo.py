"""Taking a command back: read-only commands copy nothing, failures leave no trace.

A read-only command's only event is its COMMAND_EXECUTED record, whose fold only
counts: the unit of work takes it back from a few counters, without the full undo
point (a copy of the whole state) that a changing event needs.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.commands import run_command
from core.engine import Engine
from core.event_types import COMMAND_EXECUTED
from core.incident_models import Incident
from core.projection import State
from core.session import memory_sim

READ_ONLY = "/resource-manager status"


def _engine(tasks: int) -> Engine:
    eng = memory_sim(demo=False)
    eng.create_pool("p", ["x"], 0, 4)
    if tasks:
        spec: list[dict[str, Any]] = [
            {"id": f"t{i}", "specialization": "x", "duration_s": 60, "cpu": 0, "memory_gb": 0} for i in range(tasks)
        ]
        eng.create_workflow(
            {
                "id": "w",
                "allocation": {"cpu_cores": 1, "memory_gb": 1, "agents": 2},
                "phases": [{"name": "a", "tasks": spec}],
            }
        )
    return eng


def test_command_executed_fold_only_moves_counters() -> None:
    eng = _engine(3)
    before = eng.state.snapshot()
    eng.emit(COMMAND_EXECUTED, "command", "resource-manager", {"command": "/x", "status": "success"})
    after = eng.state.snapshot()
    moved = {k for k in before if before[k] != after[k]}
    assert moved <= {"seq", "clock", "commands_executed"}, moved
    assert eng.state.counters_only(str(COMMAND_EXECUTED))
    assert not eng.state.counters_only("WORKFLOW_CREATED")


async def test_read_only_command_takes_no_undo_point(monkeypatch: pytest.MonkeyPatch) -> None:
    eng = _engine(5)
    copies: list[int] = []
    real = State.undo_point
    monkeypatch.setattr(State, "undo_point", lambda self: copies.append(1) or real(self))
    seq = eng.state.seq
    resp = await run_command(eng, READ_ONLY)
    assert resp["status"] == "success"
    assert eng.state.seq == seq + 1  # its record was kept
    assert copies == []
    resp = await run_command(eng, '/resource-manager scale \'{"pool": "p", "size": 1}\'')
    assert resp["status"] == "success"
    assert copies == [1]  # a changing command still takes one


def test_taken_back_counter_events_leave_state_and_chain_as_before() -> None:
    eng = _engine(3)
    h, seq, head = eng.state.state_hash(), eng.state.seq, eng.head_hash
    unit = eng.begin_unit()
    eng.emit(COMMAND_EXECUTED, "command", "resource-manager", {"command": "/x", "status": "success"})
    eng.emit("AGENT_OBSERVED_NOTE", "agent", "x", {})  # no fold: counted in observed
    assert eng.state.seq == seq + 2
    assert eng.end_unit(unit, keep=False)
    assert (eng.state.state_hash(), eng.state.seq, eng.head_hash) == (h, seq, head)


def test_counter_events_then_a_change_are_all_taken_back() -> None:
    eng = _engine(3)
    h, seq, head = eng.state.state_hash(), eng.state.seq, eng.head_hash
    unit = eng.begin_unit()
    eng.emit(COMMAND_EXECUTED, "command", "resource-manager", {"command": "/x", "status": "success"})
    eng.create_pool("q", ["y"], 0, 2)  # a real change after the counter-only event
    assert "q" in eng.state.pools
    assert eng.end_unit(unit, keep=False)
    assert "q" not in eng.state.pools
    assert (eng.state.state_hash(), eng.state.seq, eng.head_hash) == (h, seq, head)


async def test_failing_mutating_command_leaves_state_as_before_and_records_nothing() -> None:
    eng = _engine(3)
    h, seq, head = eng.state.state_hash(), eng.state.seq, eng.head_hash
    resp = await run_command(eng, '/resource-manager scale \'{"pool": "p", "size": 99}\'')
    assert resp["status"] == "error"
    assert (eng.state.state_hash(), eng.state.seq, eng.head_hash) == (h, seq, head)


def _p50(eng: Engine, n: int) -> float:
    import asyncio

    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        resp = asyncio.run(run_command(eng, READ_ONLY))
        times.append(time.perf_counter() - t0)
        assert resp["status"] == "success"
    return sorted(times)[n // 2]


def test_read_only_command_cost_does_not_follow_live_state() -> None:
    """20,000 live tasks: a copy of them took ~1 s a command; the bound is generous
    (5x the empty engine's p50 plus 20 ms) so that a loaded machine does not fail it."""
    small, big = _engine(0), _engine(20_000)
    _p50(small, 3), _p50(big, 3)  # warm-up
    p_small, p_big = _p50(small, 21), _p50(big, 21)
    assert p_big <= 5 * p_small + 0.02, (p_small, p_big)


def test_undo_point_shares_nothing_with_the_state() -> None:
    """The point holds the models' fresh dumps and copies of the plain-dict parts:
    changing the state in place afterwards does not change the point."""
    eng = _engine(3)
    eng.state.incidents["i1"] = Incident(
        id="i1",
        scenario="resource_exhaustion",
        type="RESOURCE_EXHAUSTION",
        severity="high",
        detected_at=0.0,
        evidence={"notes": ["a"]},
    )
    h = eng.state.state_hash()
    point = eng.state.undo_point()
    eng.state.incidents["i1"].evidence["notes"].append("b")
    eng.state.tasks["w/t0"].depends_on.append("w/t1")
    eng.state.settings["x"] = {"y": 1}
    assert eng.state.state_hash() != h
    eng.state.restore(point)
    assert eng.state.state_hash() == h
