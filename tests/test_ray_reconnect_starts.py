"""The Ray runtime's reconnect path (an actor back after silence hands over the reports
it buffered) records each restored run's start once, before its end.

A restarted console adopts an actor whose run the log has running without its
TASK_STARTED (the killed console had polled the start, and the actor dropped it, but
never stored it). When that actor then goes silent and comes back with the run's end
buffered, the log must say the run started before it says it ended, once; a run whose
start the log holds gets no second one.

At the parts' level (no Ray instance): the engine's dispatch assigns the run, the Ray
runtime's actors part is fed the actor's poll answer as its connection would be. The
start is recorded when the run began, as its end report says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.engine.bridge import Reports as Sink
from core.models import AgentStatus
from tests.local_harness import Recorder
from tests.test_late_starts import NOW, TASK, assigned_run, finished, started, starts

pytest.importorskip("ray", reason="the Ray runtime's checks need Ray (pip install -e '.[ray]')")

from core.runtimes.ray import RayCluster, RayRuntime
from core.runtimes.ray_actors import ActorHost


async def _cut_off_run(tmp_path: Path, start_in_log: bool) -> tuple[Recorder, RayRuntime, ActorHost]:
    """:func:`~tests.test_late_starts.assigned_run` with its agent unreachable (what it
    records from then on), the Ray runtime's parts bound to it with the run restored at
    open, and the agent's actor."""
    eng, rec, agent = await assigned_run(start_in_log)
    eng.agent_unreachable(agent)
    assert eng.state.agents[agent].status is AgentStatus.UNREACHABLE
    rt = RayRuntime(tmp_path / "r.db", RayCluster(None))  # nothing connects until opened
    rt.fleet.engine, rt.fleet.sink = eng, Sink(eng.bridge, eng)
    rt.fleet.restored = {(TASK, 1): start_in_log}
    h = ActorHost(agent, f"ns/{agent}", ready=True, adopted=True)
    rt.fleet.hosts[agent] = h
    return rec, rt, h


def _end(seq: int) -> dict[str, Any]:
    return {"seq": seq, **finished(103.0)}


def _started(seq: int) -> dict[str, Any]:
    return {"seq": seq, **started(None)}


def _task_facts(rec: Recorder) -> list[str]:
    return [e.type for e in rec.events if e.type in ("TASK_STARTED", "TASK_COMPLETED") and e.data["task"] == TASK]


async def test_a_restored_run_whose_end_comes_back_buffered_gets_its_start_first(tmp_path: Path) -> None:
    rec, rt, h = await _cut_off_run(tmp_path, start_in_log=False)
    rt.actors._batch(h, [_end(7)])  # its start was polled by the killed console: only the end is buffered
    assert _task_facts(rec) == ["TASK_STARTED", "TASK_COMPLETED"]  # main: no TASK_STARTED
    assert starts(rec) == [103.0], "when the run began, as its end says"
    assert rt.fleet.engine is not None and rt.fleet.engine.state.agents[h.agent].status is not AgentStatus.UNREACHABLE


async def test_a_restored_run_whose_start_is_in_the_log_gets_no_second_one(tmp_path: Path) -> None:
    """The must-not: the log holds the run's start; its end (with or without the start
    the actor buffered again) records no other."""
    for reports in ([_end(7)], [_started(6), _end(7)]):
        rec, rt, h = await _cut_off_run(tmp_path, start_in_log=True)
        rt.actors._batch(h, reports)
        assert _task_facts(rec) == ["TASK_COMPLETED"], reports  # the start was recorded before (not seen here)


async def test_a_restored_run_that_never_ran_gets_no_start_from_its_buffered_end(tmp_path: Path) -> None:
    """The must-not: its end (a failure to start) says no ``started_at``: no start."""
    rec, rt, h = await _cut_off_run(tmp_path, start_in_log=False)
    never = {"seq": 7, "t": "failed", "task": TASK, "attempt": 1, "rc": None, "error": "could not start", "output": []}
    rt.actors._batch(h, [never])
    assert starts(rec) == [] and [e.type for e in rec.events if e.type == "TASK_FAILED"] == ["TASK_FAILED"]


@pytest.mark.parametrize("ended", [False, True], ids=["running", "ended"])
async def test_a_restored_runs_start_answered_during_the_silence_is_recorded_when_it_began(
    tmp_path: Path, ended: bool
) -> None:
    """The answer to the start sent again (it says when the run began) comes back
    buffered: recorded once at the run's time (main: at the reconnection, NOW)."""
    rec, rt, h = await _cut_off_run(tmp_path, start_in_log=False)
    rt.actors._batch(h, [{"seq": 6, **started(103.0)}, *([_end(7)] if ended else [])])
    assert starts(rec) == [103.0]
    assert _task_facts(rec) == ["TASK_STARTED", *(["TASK_COMPLETED"] if ended else [])]


async def test_a_buffered_start_and_end_of_a_restored_run_record_one_start(tmp_path: Path) -> None:
    rec, rt, h = await _cut_off_run(tmp_path, start_in_log=False)
    rt.actors._batch(h, [_started(6), _end(7)])
    assert _task_facts(rec) == ["TASK_STARTED", "TASK_COMPLETED"]


async def test_a_restored_run_that_finished_gets_its_start_when_its_buffered_end_says_no_time(tmp_path: Path) -> None:
    """An older actor's finished end, without ``started_at``: the run ran, its start is
    recorded first, at the reconnection (main: none, TASK_COMPLETED alone)."""
    rec, rt, h = await _cut_off_run(tmp_path, start_in_log=False)
    rt.actors._batch(h, [{k: v for k, v in _end(7).items() if k != "started_at"}])
    assert _task_facts(rec) == ["TASK_STARTED", "TASK_COMPLETED"] and starts(rec) == [NOW]
