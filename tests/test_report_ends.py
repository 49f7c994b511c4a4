"""A run's end as a host reports it (``Reports._ended``): applied only to the (task,
attempt) the log has running on that agent.

At the parts' level (no agent process): an engine whose dispatch assigns and starts
nothing, the shared report parts bound to it, fed the host's reports as its connection
would feed them. A finished run is recorded once; a stopped run, a failure of another
attempt, an end without a task record nothing; a finished run of a task moved away
from its agent is merged (completed once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.engine.bridge import Reports as Sink
from core.models import Task, TaskStatus
from core.runtimes.adoption import Adoption
from core.runtimes.dispatch import Dispatch
from core.runtimes.fleet import Fleet, HostRecord, Timing
from core.runtimes.limits import Mechanisms
from core.runtimes.local_hosts import LocalLinks, ProcessHost
from core.runtimes.reports import Reports
from core.runtimes.sampler import Sampler
from core.runtimes.sim import SimRuntime
from tests.local_harness import Recorder

TASK = "w/t"
ENDS = ("TASK_COMPLETED", "TASK_FAILED")


class _Assigning(SimRuntime):
    """Assigns runs and starts nothing: what happens to them is told by the test."""

    def start_task(self, agent_id: str, task: Task) -> None:
        pass


async def _running(tmp_path: Path, agents: int = 1) -> tuple[Engine, Recorder, Reports[ProcessHost], list[str]]:
    """An engine with TASK assigned to its first agent (attempt 1) and the report parts."""
    clock = VirtualClock(100.0)
    eng = Engine(config=Config(), clock=clock, runtime=_Assigning(clock, seed=1))
    rec = Recorder()
    eng.subscribe(rec)
    eng.create_pool("p", ["x"], 0, 20)
    ids = [eng.add_agent("p") for _ in range(agents)]
    eng.start_workflow(
        eng.create_workflow({"id": "w", "phases": [{"name": "p", "tasks": [{"id": "t", "specialization": "x"}]}]})
    )
    await eng.advance(1.0)
    assert eng.state.tasks[TASK].agent == ids[0] and eng.state.tasks[TASK].attempts == 1
    fleet: Fleet[ProcessHost] = Fleet(Timing(), actor="test")
    fleet.engine, fleet.sink = eng, Sink(eng.bridge, eng)
    links = LocalLinks(fleet, Adoption(b"secret"))
    dispatch = Dispatch(fleet, links, tmp_path, Mechanisms("rlimit_as", "nice"), Sampler())
    for a in ids:
        fleet.hosts[a] = ProcessHost(a, "/nonexistent.sock")
    return eng, rec, Reports(fleet, links, dispatch), ids


def _end(kind: str, attempt: int = 1) -> dict[str, Any]:
    return {"t": kind, "task": TASK, "attempt": attempt, "rc": 0, "elapsed_s": 0.5, "output": [], "error": "x"}


def _ends(rec: Recorder) -> list[str]:
    return [e.type for e in rec.events if e.type in ENDS and e.data["task"] == TASK]


async def test_a_finished_run_the_log_has_running_is_completed_once(tmp_path: Path) -> None:
    eng, rec, reports, ids = await _running(tmp_path)
    h: HostRecord = reports.fleet.hosts[ids[0]]
    reports.on_report(h, _end("finished"))
    reports.on_report(h, _end("finished"))  # the same end again: the run is no longer the agent's
    assert _ends(rec) == ["TASK_COMPLETED"]
    assert eng.state.workflows.get("w") is None or eng.state.tasks[TASK].status is TaskStatus.COMPLETED


async def test_a_stopped_run_or_another_attempts_end_records_nothing(tmp_path: Path) -> None:
    """The must-nots: a stop's answer, a failure of an attempt that is not the one running,
    an end without a task (a finished one is the merge's to decide: the next test)."""
    eng, rec, reports, ids = await _running(tmp_path)
    h = reports.fleet.hosts[ids[0]]
    for msg in (_end("stopped"), _end("failed", attempt=2), _end("failed", attempt=0), {"t": "finished"}):
        reports.on_report(h, msg)
    assert _ends(rec) == []
    t = eng.state.tasks[TASK]
    assert t.status is TaskStatus.RUNNING and t.agent == ids[0] and t.attempts == 1


async def test_a_failed_run_the_log_has_running_is_failed(tmp_path: Path) -> None:
    eng, rec, reports, ids = await _running(tmp_path)
    reports.on_report(reports.fleet.hosts[ids[0]], _end("failed"))
    assert _ends(rec) == ["TASK_FAILED"]
    t = eng.state.tasks[TASK]
    assert t.status is TaskStatus.PENDING and t.agent is None  # to be run again (the engine's retry policy)


async def test_a_finished_run_of_a_task_moved_away_is_merged_once(tmp_path: Path) -> None:
    eng, rec, reports, ids = await _running(tmp_path, agents=2)
    eng.agent_failed(ids[0], "taken for dead")  # its task goes to the other agent; its host ran on
    await eng.advance(1.0)
    t = eng.state.tasks[TASK]
    assert t.agent != ids[0] and t.status is TaskStatus.RUNNING  # running elsewhere now
    reports.on_report(reports.fleet.hosts[ids[0]], _end("finished"))
    merged = [e for e in rec.of("TASK_COMPLETED") if e.data["task"] == TASK]
    assert len(merged) == 1 and merged[0].data.get("merged") is True
    reports.on_report(reports.fleet.hosts[ids[0]], _end("failed"))  # a moved task's failure is not merged
    assert _ends(rec) == ["TASK_COMPLETED"]


async def test_a_failure_whose_attempt_is_not_an_int_records_nothing(tmp_path: Path) -> None:
    """JSON's true equals 1 in Python: a failure naming attempt true is not attempt 1's."""
    eng, rec, reports, ids = await _running(tmp_path)
    h: HostRecord = reports.fleet.hosts[ids[0]]
    for attempt in (True, 1.0, "1"):
        reports.on_report(h, {**_end("failed"), "attempt": attempt})
    assert _ends(rec) == [] and eng.state.tasks[TASK].status is TaskStatus.RUNNING
    reports.on_report(h, _end("failed"))
    assert _ends(rec) == ["TASK_FAILED"]


async def test_a_malformed_hello_is_refused_whole_and_applies_nothing(tmp_path: Path) -> None:
    """A hello whose held, current or done is of another type raises ValueError (the
    reading's 'report skipped' path) before any of it is applied."""

    _eng, rec, reports, ids = await _running(tmp_path)
    h: HostRecord = reports.fleet.hosts[ids[0]]
    done = [{**_end("finished")}]
    for bad in ({"held": 5}, {"current": [1]}, {"done": {"t": "finished"}}, {"done": [*done, 7]}):
        with pytest.raises(ValueError):
            reports.on_report(h, {"t": "hello", "done": done, **bad})
    assert _ends(rec) == [] and not h.connected_once
    reports.on_report(h, {"t": "hello", "done": done})
    assert _ends(rec) == ["TASK_COMPLETED"] and h.connected_once
