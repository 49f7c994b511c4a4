"""The engine's written-out fast paths against the general paths they copy, on the same
inputs: EventLog.emit's fold (State.apply written out), the Event it builds slot by slot
(the dataclass's own fields) and its line (format_line's text, built in Event.line);
RuntimeBridge.task_started and task_finished (``owned()``, ``mark_frozen()`` and
``after_task()``'s test written out); SimRuntime.start_task (``_schedule_finish()``
written out); the scheduler's dispatch (an agent popped without the taken-agent check
where each idle agent is in one pool: against the same state with an idle decoy in two
pools no task asks for, which takes the general path); an agent's fields written and
read in its __dict__, past pydantic (the task folds, dispatch). A simulated fleet runs
through slow and failed agents, a degrading machine, a partition, a freeze and a
cancellation, and one of single-specialization agents runs its workflows, while every
call of each fast path is checked against its general path: a change made to one side
that the other lacks fails here. (Telemetry.task_done against record():
tests/test_core_telemetry.py; a start command's directories against Dispatch's:
tests/test_local_start_command.py.)"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import pytest
from pydantic import BaseModel

from core.config import Capacity
from core.demo import build_demo
from core.engine import Engine, bridge
from core.engine.bridge import RuntimeBridge
from core.event_types import EVENTS, TASK_COMPLETED, TASK_STARTED
from core.events import Event, format_line
from core.models import Agent, AgentStatus, TaskStatus
from core.projection import State
from core.runtimes.sim import SimRuntime
from core.session import memory_sim


@dataclass
class Compared:
    """The engine's events as heard, and how many calls of each case were compared."""

    heard: list[Event] = field(default_factory=list)
    cases: Counter[str] = field(default_factory=Counter)
    after_task_calls: int = 0


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> Iterator[Compared]:
    """Every engine made while it is in use has each fast path checked against its
    general path, call by call (the bridge's and the sim's methods wrapped at their
    class, as the runtime's sink binds them at attach; dispatch where the bridge calls it)."""
    c = Compared()
    started, finished, after_task = RuntimeBridge.task_started, RuntimeBridge.task_finished, RuntimeBridge.after_task
    start_task = SimRuntime.start_task

    def checked_started(self: RuntimeBridge, agent_id: str, task_id: str, at: float | None = None) -> None:
        news = not self.restoring and self.owned(agent_id, task_id) is not None  # the general test
        before = len(c.heard)
        started(self, agent_id, task_id, at)
        assert [ev.type for ev in c.heard[before:]].count(TASK_STARTED) == int(news), (agent_id, task_id)
        c.cases[f"task_started {'owned' if news else 'not owned'}"] += 1

    def checked_finished(self: RuntimeBridge, agent_id: str, task_id: str, *a: Any, **k: Any) -> None:
        t = self.owned(agent_id, task_id)
        marked: dict[str, Any] = {}
        if t is not None:
            self.mark_frozen(t.workflow, marked)
        before, calls = len(c.heard), c.after_task_calls
        finished(self, agent_id, task_id, *a, **k)
        done = [ev for ev in c.heard[before:] if ev.type == TASK_COMPLETED]
        if t is None:
            assert done == [], (agent_id, task_id)
            c.cases["task_finished not owned"] += 1
            return
        assert len(done) == 1 and done[0].data.get("during_freeze") == marked.get("during_freeze"), done
        c.cases["task_finished during a freeze" if marked else "task_finished"] += 1
        if c.after_task_calls == calls:  # its test skipped after_task: the general call finds nothing to do
            seq = self.engine.state.seq
            self.after_task(t.workflow, t.phase)
            assert self.engine.state.seq == seq, f"{task_id}: after_task had work the written-out test skipped"
            c.cases["after_task skipped"] += 1
        else:
            c.cases["after_task called"] += 1

    def counted_after_task(self: RuntimeBridge, wf_id: str, phase: str) -> None:
        c.after_task_calls += 1
        after_task(self, wf_id, phase)

    def checked_start_task(self: SimRuntime, agent_id: str, task: Any) -> None:
        start_task(self, agent_id, task)
        sa = self.agents.get(agent_id)
        st = sa.task if sa is not None else None
        if sa is None or st is None or st.task_id != task.id or st.finish_timer is None:
            c.cases["start_task unscheduled"] += 1
            return
        fast = (st.finish_timer.when, st.finish_timer.fn, st.last_change)
        self._schedule_finish(sa)  # the general path, at the same instant: the same timer again
        assert (st.finish_timer.when, st.finish_timer.fn, st.last_change) == fast, task.id
        c.cases["start_task slowed" if self._speed(sa) != 1.0 else "start_task"] += 1

    dispatch = bridge.dispatch
    decoy = Agent(id="~decoy", pool="~decoy", specializations=["~a", "~b"], status=AgentStatus.IDLE)

    def checked_dispatch(state: State, capacity: Capacity, now: float) -> list[tuple[str, str]]:
        fast = dispatch(state, capacity, now)
        # The same inputs but for an idle agent (sorted last) offered in two pools no task
        # asks for: dispatch takes its general path (the taken-agent check on each pop).
        state.agents[decoy.id] = decoy
        try:
            general = dispatch(state, capacity, now)
        finally:
            del state.agents[decoy.id]
        assert general == fast
        single = all(len(a.specializations) == 1 for a in state.agents.values() if a.status is AgentStatus.IDLE)
        c.cases[f"dispatch {'assigned' if fast else 'nothing'}{' (one pool each)' if single else ''}"] += 1
        return fast

    monkeypatch.setattr(bridge, "dispatch", checked_dispatch)
    monkeypatch.setattr(RuntimeBridge, "task_started", checked_started)
    monkeypatch.setattr(RuntimeBridge, "task_finished", checked_finished)
    monkeypatch.setattr(RuntimeBridge, "after_task", counted_after_task)
    monkeypatch.setattr(SimRuntime, "start_task", checked_start_task)
    yield c


def _engine(c: Compared, seed: int) -> Engine:
    """A memory engine on the simulated runtime whose every event ``c`` hears, from the first
    (a memory engine's subscribers hear each event at once)."""
    eng = memory_sim(seed=seed, demo=False)
    eng.subscribe(c.heard.append)
    return eng


def _running_workflows(eng: Engine) -> list[str]:
    return sorted(
        {t.workflow for t in eng.state.tasks.values() if t.status is TaskStatus.RUNNING and t.agent is not None}
    )


async def _fleet_through_trouble(c: Compared) -> Engine:
    """The demo fleet (its agents, workflows and their phases) through an hour of trouble."""
    eng = _engine(c, seed=5)
    eng.set_setting("sim_seed", 5)
    build_demo(eng, seed=5)
    rt = eng.runtime
    assert isinstance(rt, SimRuntime)
    await eng.advance(300)
    agents = sorted(rt.agents)
    rt.slow_agent(agents[0], 3.0)
    rt.degrade(0.002)
    await eng.advance(600)
    rt.restore_speed()
    frozen = _running_workflows(eng)[0]
    eng.freeze(frozen)
    rt.partition([agents[1]])
    await eng.advance(600)
    rt.heal()
    eng.freeze(frozen, False)
    rt.fail_agent(agents[2])
    cancelled = next(w for w in _running_workflows(eng) if w != frozen)
    eng.cancel_workflow(cancelled)
    await eng.advance(300)
    # Reports that are not the log's: an agent that does not run the task, a task that is not.
    running = next(t for t in eng.state.tasks.values() if t.status is TaskStatus.RUNNING)
    assert running.agent is not None
    other = next(a for a in agents if a != running.agent)
    eng.task_started(other, running.id)
    eng.task_finished(other, running.id)
    eng.task_finished(running.agent, "nothing/here")
    await eng.advance(3600)
    return eng


async def test_the_bridge_and_the_sim_fast_paths_do_what_their_general_paths_do(compared: Compared) -> None:
    """Each call compared in the fixture; here, that the run reached every case of each."""
    await _fleet_through_trouble(compared)
    cases = compared.cases
    for case in (
        "task_started owned",
        "task_started not owned",
        "task_finished",
        "task_finished during a freeze",
        "task_finished not owned",
        "after_task skipped",
        "after_task called",
        "start_task",
        "start_task slowed",
    ):
        assert cases[case] > 0, (case, cases)


async def test_emit_folds_and_builds_each_event_as_the_general_path_would(compared: Compared) -> None:
    """Every event of the run: the Event emit built slot by slot equals the dataclass's,
    its line (built in Event.line, from the header emit keeps) is format_line's, and the
    state its written-out fold reached equals a fresh State's folding the same events
    through State.apply."""
    eng = await _fleet_through_trouble(compared)
    heard = compared.heard
    assert heard[0].seq == 1 and len(heard) > 1000 and len({ev.type for ev in heard}) > 15
    replayed = State(EVENTS.folds)
    for ev in heard:
        values = {f.name: getattr(ev, f.name) for f in fields(Event)}  # an unset slot raises AttributeError
        built = Event(**{**values, "line_head": ""})
        assert built == ev and built.line() == ev.line(), ev.seq
        assert ev.line() == format_line(ev.type, ev.component, ev.scope, ev.data), ev.seq  # the line's general path
        replayed.apply(ev)
    live = eng.state
    assert (replayed.seq, replayed.clock, replayed.observed) == (live.seq, live.clock, live.observed)
    assert replayed.snapshot(full=True) == live.snapshot(full=True)
    assert replayed.state_hash() == live.state_hash()


async def test_dispatch_s_written_out_pop_assigns_what_its_general_path_assigns(compared: Compared) -> None:
    """Agents of one specialization each, so dispatch pops an agent without the taken-agent
    check: each dispatch of the run (checked in the fixture) assigns what its general
    path assigns, and the workflows complete."""
    eng = _engine(compared, seed=2)
    eng.create_pool("p", ["x"], 0, 8)
    eng.create_pool("q", ["y"], 0, 8)
    for pool in ("p", "p", "p", "q", "q"):
        eng.add_agent(pool)
    for i, spec in enumerate(("x", "y", "x")):
        tasks = [{"id": f"t{j}", "specialization": spec, "duration_s": 10 + j} for j in range(6)]
        eng.create_workflow({"id": f"w{i}", "phases": [{"name": "a", "tasks": tasks}]})
        eng.start_workflow(f"w{i}")
    await eng.advance(600)
    assert {w.status.value for w in eng.state.all_workflows()} == {"completed"}
    assert compared.cases["dispatch assigned (one pool each)"] > 3, compared.cases


AGENT_WRITES: tuple[tuple[str, Any], ...] = (
    ("status", AgentStatus.BUSY),
    ("status", AgentStatus.IDLE),
    ("current_task", "w/t"),
    ("current_task", None),
    ("last_heartbeat", 12.5),
    ("tasks_done", 7),
)
"""What the task folds (core.task_reducers) write into an agent's __dict__, past pydantic's
__setattr__: each field with a value of the kind they write."""
AGENT_READS = ("status", "backoff_until", "pool", "id", "specializations")
"""What dispatch reads from an agent's __dict__, past pydantic's attribute access."""


async def test_an_agent_s_fields_written_and_read_past_pydantic_are_as_through_it(compared: Compared) -> None:
    """For every agent of the run, each write the task folds make into its __dict__ gives
    the record that setting the field through pydantic gives, and each field dispatch
    reads from its __dict__ is the attribute's value; Agent has no assignment validation
    and no attribute hook of its own (one would be passed by: these writes and reads
    must then go through it)."""
    eng = await _fleet_through_trouble(compared)
    assert not any(
        vars(k).get("__setattr__") or vars(k).get("__getattr__")
        for k in Agent.__mro__[: Agent.__mro__.index(BaseModel)]
    )
    assert not Agent.model_config.get("validate_assignment")
    assert len(eng.state.agents) > 3
    for a in eng.state.agents.values():
        assert {f: a.__dict__[f] for f in AGENT_READS} == {f: getattr(a, f) for f in AGENT_READS}
        for name, value in AGENT_WRITES:
            general, fast = a.model_copy(deep=True), a.model_copy(deep=True)
            setattr(general, name, value)
            fast.__dict__[name] = value
            assert general.__dict__ == fast.__dict__ and general.model_dump(mode="json") == fast.model_dump(mode="json")
