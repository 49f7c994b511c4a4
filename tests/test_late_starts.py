"""A run's start that reaches the console late is recorded at the run's own time.

Late: the console learns of the start after the run began, and after other reports of
it could have come: a restarted console (the host answers the start sent again, or
lists the run's end among those done while no console ran), or a connection that went
while the host held the start (the next hello hands it over). TASK_STARTED's time is
then when the run began as its host says (``started_at``), kept between the task's
assignment and now; a start reported as it happens is recorded when it arrives.

At the parts' level: an engine that assigns and starts nothing (virtual time: assigned
at 101, now 106), the local runtime's report handling fed a host's reports.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.engine.bridge import Reports as Sink
from core.models import Task
from core.runtimes.local import LocalRuntime
from core.runtimes.local_hosts import ProcessHost
from core.runtimes.sim import SimRuntime
from core.verify import verify_store
from tests.local_harness import Recorder

TASK = "w/t"
ASSIGNED, NOW = 101.0, 106.0


class Assigning(SimRuntime):
    """Assigns runs and starts nothing: what happens to them is told by the test."""

    def start_task(self, agent_id: str, task: Task) -> None:
        pass


async def assigned_run(start_in_log: bool = False) -> tuple[Engine, Recorder, str]:
    """An engine whose one agent runs TASK (attempt 1, assigned at ASSIGNED; its start in
    the log or not), at NOW; what it records from then on; the agent."""
    clock = VirtualClock(ASSIGNED)
    eng = Engine(config=Config(), clock=clock, runtime=Assigning(clock, seed=1))
    eng.create_pool("p", ["x"], 0, 20)
    agent = eng.add_agent("p")
    spec = {"id": "w", "phases": [{"name": "p", "tasks": [{"id": "t", "specialization": "x"}]}]}
    eng.start_workflow(eng.create_workflow(spec))
    await eng.advance(1.0)
    assert eng.state.tasks[TASK].agent == agent and eng.state.tasks[TASK].started_at == ASSIGNED
    if start_in_log:
        eng.task_started(agent, TASK)
    await eng.advance(NOW - clock.now())
    rec = Recorder()
    eng.subscribe(rec)
    return eng, rec, agent


async def console(
    tmp_path: Path, restored: bool | None = None, start_in_log: bool = False
) -> tuple[LocalRuntime, ProcessHost, Recorder]:
    """The local runtime's parts bound to :func:`assigned_run`'s engine, the run restored
    at open (``restored``: whether its start is in the log) or not (None); its host."""
    eng, rec, agent = await assigned_run(start_in_log)
    rt = LocalRuntime(tmp_path / "run")
    rt.fleet.engine, rt.fleet.sink = eng, Sink(eng.bridge, eng)
    if restored is not None:
        rt.fleet.restored = {(TASK, 1): restored}
    h = ProcessHost(agent, "unused")
    rt.fleet.hosts[agent] = h
    return rt, h, rec


def hello(held: list[dict[str, Any]] | None = None, done: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    current = None if done else {"task": TASK, "attempt": 1, "pgid": None, "started_at": 103.0}
    msg: dict[str, Any] = {"t": "hello", "agent": "a", "current": current, "done": done or []}
    if held is not None:
        msg["held"] = held
    return msg


def started(at: Any = 103.0, attempt: int = 1, task: str = TASK) -> dict[str, Any]:
    return {"t": "started", "task": task, "attempt": attempt, "pgid": None, "started_at": at}


def finished(at: Any = 103.0) -> dict[str, Any]:
    return {"t": "finished", "task": TASK, "attempt": 1, "rc": 0, "elapsed_s": 2.0, "output": [], "started_at": at}


def starts(rec: Recorder) -> list[float]:
    return [e.ts for e in rec.of("TASK_STARTED") if e.data["task"] == TASK]


async def test_a_start_held_when_the_connection_went_is_recorded_at_the_runs_time(tmp_path: Path) -> None:
    """The same console connects again (nothing restored): the hello's held start is
    recorded, when the run began (main: the host dropped it; no TASK_STARTED)."""
    rt, h, rec = await console(tmp_path)
    rt.reports.on_report(h, hello(held=[started(103.0)]))
    assert starts(rec) == [103.0]


async def test_a_held_start_of_a_run_that_ended_meanwhile_comes_before_its_end(tmp_path: Path) -> None:
    rt, h, rec = await console(tmp_path)
    rt.reports.on_report(h, hello(held=[started(103.0)], done=[finished(103.0)]))
    assert [(e.type, e.ts) for e in rec.events if e.type in ("TASK_STARTED", "TASK_COMPLETED")] == [
        ("TASK_STARTED", 103.0),
        ("TASK_COMPLETED", NOW),
    ]


@pytest.mark.parametrize(
    ("said", "recorded"),
    [(50.0, ASSIGNED), (1e12, NOW), (math.nan, NOW), (math.inf, NOW), ("soon", NOW), (True, NOW), (None, NOW)],
)
async def test_a_late_start_is_kept_between_the_assignment_and_now(tmp_path: Path, said: Any, recorded: float) -> None:
    """A host's clock is not this console's, and a figure may not be a time: never before
    the task was assigned, never after now, and now for what is not a time."""
    rt, h, rec = await console(tmp_path)
    rt.reports.on_report(h, hello(held=[started(said)]))
    assert starts(rec) == [recorded]


async def test_held_starts_that_are_not_news_record_nothing(tmp_path: Path) -> None:
    """The must-not: a held start of another attempt or task, of a run whose start the
    log holds (a restarted console), or that is not a report, records nothing."""
    rt, h, rec = await console(tmp_path)
    rt.reports.on_report(h, hello(held=[started(attempt=2), started(task="w/other"), "started"]))  # type: ignore[list-item]
    assert starts(rec) == []
    rt, h, rec = await console(tmp_path, restored=True, start_in_log=True)
    rt.reports.on_report(h, hello(held=[started()]))
    rt.reports.on_report(h, started())  # the answer to the start sent again
    assert starts(rec) == []


async def test_a_restarted_console_records_a_start_the_log_lacks_at_the_runs_time(tmp_path: Path) -> None:
    """The answer to the start sent again, and a run that ended while no console ran:
    recorded once, when the run began (main: at the restart, NOW)."""
    rt, h, rec = await console(tmp_path, restored=False)
    rt.reports.on_report(h, hello())
    rt.reports.on_report(h, started(103.0))
    rt.reports.on_report(h, started(103.0))  # said again: not news
    assert starts(rec) == [103.0]
    rt, h, rec = await console(tmp_path, restored=False)
    rt.reports.on_report(h, hello(done=[finished(102.5)]))
    assert starts(rec) == [102.5] and len(rec.of("TASK_COMPLETED")) == 1


async def test_a_restored_run_that_never_ran_gets_no_start(tmp_path: Path) -> None:
    """The must-not: a run that ended while no console ran without ever running (no
    process could be started: its end says no ``started_at``) is not said to have
    started (main: TASK_STARTED at the restart, then TASK_FAILED)."""
    rt, h, rec = await console(tmp_path, restored=False)
    never = {
        "t": "failed",
        "task": TASK,
        "attempt": 1,
        "rc": None,
        "error": "could not start: no such file",
        "output": [],
    }
    rt.reports.on_report(h, hello(done=[never]))
    assert starts(rec) == [] and len(rec.of("TASK_FAILED")) == 1


async def test_a_start_reported_as_it_happens_is_recorded_when_it_arrives(tmp_path: Path) -> None:
    rt, h, rec = await console(tmp_path)
    rt.reports.on_report(h, started(103.0))
    assert starts(rec) == [NOW]


@pytest.mark.parametrize(("said", "recorded"), [(103, 103.0), (10**400, NOW), (-(10**400), NOW)])
async def test_a_late_start_said_as_an_integer_is_recorded_as_a_float_time(
    tmp_path: Path, said: int, recorded: float
) -> None:
    """A start time the wire read as an int (JSON without a fraction; one beyond a
    double's range too) is a float time or now: never an int in the event (the stored
    REAL reads back as a float, whose text the hash chain did not cover: the log then
    failed verify), never a traceback in the report's handling (main: OverflowError)."""
    rt, h, rec = await console(tmp_path)
    rt.reports.on_report(h, hello(held=[started(said)]))
    assert [(t, type(t)) for t in starts(rec)] == [(recorded, float)]


async def test_a_run_time_beyond_a_doubles_range_is_no_figure(tmp_path: Path) -> None:
    """An end report whose elapsed_s is an integer too large for a float: no duration of
    the host's (the time since the assignment instead), not a traceback (main: OverflowError)."""
    rt, h, rec = await console(tmp_path)
    rt.reports.on_report(h, started(103.0))
    rt.reports.on_report(h, {**finished(), "elapsed_s": 10**400})
    assert [e.data["duration_s"] for e in rec.of("TASK_COMPLETED")] == [NOW - ASSIGNED]


async def test_a_late_start_said_as_an_integer_leaves_a_log_that_verifies(tmp_path: Path) -> None:
    clock = VirtualClock(ASSIGNED)
    eng = await Engine.open(tmp_path / "x.db", config=Config(), clock=clock)
    try:
        eng.attach_runtime(Assigning(clock, seed=1))
        eng.create_pool("p", ["x"], 0, 20)
        agent = eng.add_agent("p")
        spec = {"id": "w", "phases": [{"name": "p", "tasks": [{"id": "t", "specialization": "x"}]}]}
        eng.start_workflow(eng.create_workflow(spec))
        await eng.advance(NOW - ASSIGNED)
        eng.task_started(agent, TASK, 103)  # type: ignore[arg-type]  # as a host's JSON may say it
        await eng.flush()
        assert eng.store is not None
        rep = await verify_store(eng.store)
        assert (rep.first_bad_seq, rep.faults) == (None, [])
    finally:
        await eng.close()


async def test_a_restored_run_that_finished_gets_its_start_when_its_end_says_no_time(tmp_path: Path) -> None:
    """A finished run ran, whatever its end report lacks: an end from a host that does not
    say when its run began (one started by an older opsdeck, adopted by this console) still
    gets its TASK_STARTED first, at the restart (main: none, TASK_COMPLETED alone); a
    failure saying no start still gets none (the case above)."""
    rt, h, rec = await console(tmp_path, restored=False)
    old = {k: v for k, v in finished().items() if k != "started_at"}
    rt.reports.on_report(h, hello(done=[old]))
    assert starts(rec) == [NOW] and len(rec.of("TASK_COMPLETED")) == 1
