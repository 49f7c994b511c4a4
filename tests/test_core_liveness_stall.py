"""The standing reassignment counts an agent's silence as the liveness check does: less
the console's own stalls. Reports sent while the console was not running (suspended,
stopped, a long synchronous step) wait unread; that time is the console's silence, so
it moves no work. An agent that stays silent while the console listens still loses its
task, later by at most the console's stall."""

from __future__ import annotations

import heapq

from core.clock import VirtualClock
from core.commands import run_command
from core.config import Config
from core.engine import Engine
from core.models import AgentStatus
from tests.test_late_starts import Assigning as Holding  # assigns tasks, runs none: each stays held

REASSIGN_AFTER = 300.0
STALL = 400.0
"""Longer than the reassignment's silence and than the missed-heartbeat limit (75 s)."""
REDUNDANCY = f"/coordination-hub communication-redundancy-activation '{{\"reassign_after\": {REASSIGN_AFTER}}}'"
"""The command whose own move (besides the standing policy) judges silence."""


class ConsoleClock(VirtualClock):
    """Simulated time the console takes for the wall clock: it can stall."""

    virtual = False

    def stall(self, seconds: float) -> None:
        """The loop is blocked for ``seconds``: nothing runs; what fell due meanwhile runs
        on resume, late (as an event loop's timers do)."""
        self._now += seconds
        self._heap = [(max(when, self._now), n, t) for when, n, t in self._heap]
        heapq.heapify(self._heap)


async def _two_busy_agents() -> tuple[Engine, ConsoleClock, Holding, dict[str, str]]:
    """Two agents each holding a task, the standing reassignment in force: task by agent."""
    clock = ConsoleClock(1000.0)
    rt = Holding(clock, seed=1)
    eng = Engine(config=Config(), clock=clock, runtime=rt)
    eng.create_pool("p", ["x"], 0, 20)
    eng.add_agent("p")
    eng.add_agent("p")
    tasks = [{"id": t, "specialization": "x"} for t in ("t1", "t2")]
    eng.start_workflow(eng.create_workflow({"id": "w", "phases": [{"name": "p", "tasks": tasks}]}))
    policy = {"reassign_after_s": REASSIGN_AFTER, "since": clock.now(), "by": "test"}
    eng.set_setting("monitoring.communication", policy, actor="test")
    await eng.advance(10.0)
    held = {a.id: a.current_task for a in eng.state.agents.values() if a.current_task is not None}
    assert len(held) == 2, held
    return eng, clock, rt, held


async def _cut_off(eng: Engine, rt: Holding, agent: str) -> float:
    """Partition ``agent`` until it is marked unreachable: when it was last heard."""
    last = eng.telemetry.liveness[agent]
    rt.partition([agent])
    while eng.state.agents[agent].status is not AgentStatus.UNREACHABLE:
        await eng.advance(eng.config.intervals.sample_s)
    return last


async def test_the_consoles_stall_moves_no_task_and_marks_no_agent_unreachable() -> None:
    eng, clock, rt, held = await _two_busy_agents()
    cut, other = sorted(held)
    await _cut_off(eng, rt, cut)
    clock.stall(STALL)  # meanwhile ``cut`` came back and ``other`` kept reporting, all unread
    await eng.advance(eng.config.intervals.sample_s)  # resume: the late sample's check runs
    assert eng.state.tasks[held[cut]].agent == cut, "the console's stall is not the agent's silence"
    assert eng.state.agents[cut].current_task == held[cut]
    assert eng.state.agents[other].status is AgentStatus.BUSY
    assert eng.state.tasks[held[other]].agent == other
    rt.heal([cut])  # its reports read
    assert eng.state.agents[cut].status is AgentStatus.BUSY
    assert eng.state.agents[cut].current_task == held[cut]


async def test_an_agent_silent_while_the_console_listens_loses_its_task() -> None:
    eng, clock, rt, held = await _two_busy_agents()
    cut = sorted(held)[0]
    last = await _cut_off(eng, rt, cut)
    while eng.state.agents[cut].current_task is not None:
        assert clock.now() - last < REASSIGN_AFTER + eng.config.intervals.sample_s, "moved once silent that long"
        await eng.advance(eng.config.intervals.sample_s)
    assert clock.now() - last >= REASSIGN_AFTER, "not before"
    assert eng.state.tasks[held[cut]].agent != cut


async def test_after_a_stall_a_really_silent_agent_still_loses_its_task() -> None:
    eng, clock, rt, held = await _two_busy_agents()
    cut = sorted(held)[0]
    last = await _cut_off(eng, rt, cut)
    clock.stall(STALL)
    await eng.advance(eng.config.intervals.sample_s)
    assert eng.state.agents[cut].current_task == held[cut], "not yet: most of its silence was the console's"
    sample = eng.config.intervals.sample_s
    while eng.state.agents[cut].current_task is not None:
        assert clock.now() - last < REASSIGN_AFTER + STALL + 2 * sample, "later by at most the stall"
        await eng.advance(sample)
    assert clock.now() - last >= REASSIGN_AFTER + STALL - sample
    assert eng.state.tasks[held[cut]].agent != cut


async def test_the_redundancy_commands_move_now_discounts_the_consoles_stall() -> None:
    """The command's own move (not only the standing policy) judges silence the same way."""
    eng, clock, rt, held = await _two_busy_agents()
    cut = sorted(held)[0]
    last = await _cut_off(eng, rt, cut)
    clock.stall(STALL)
    await eng.advance(eng.config.intervals.sample_s)
    assert clock.now() - last >= REASSIGN_AFTER, "raw silence would move it"
    await run_command(eng, REDUNDANCY)
    assert eng.state.tasks[held[cut]].agent == cut, "the console's stall moved no task"
    assert eng.state.agents[cut].current_task == held[cut]


async def test_the_redundancy_command_moves_the_task_of_an_agent_really_silent() -> None:
    """Must-NOT hold back: silent that long while the console listened, the command moves it."""
    eng, clock, rt, held = await _two_busy_agents()
    eng.set_setting("monitoring.communication", {"closed": True, "by": "test"}, actor="test")  # no standing move
    cut = sorted(held)[0]
    last = await _cut_off(eng, rt, cut)
    while clock.now() - last < REASSIGN_AFTER:
        await eng.advance(eng.config.intervals.sample_s)
    assert eng.state.agents[cut].current_task == held[cut]
    await run_command(eng, REDUNDANCY)
    assert eng.state.tasks[held[cut]].agent != cut
