"""The simulated agent's reports while cut off: held in its own sequence, handed over
once and in order when its link comes back; gone with the agent when it dies."""

from __future__ import annotations

from typing import Any

from core.clock import VirtualClock
from core.merge import BufferedReport
from core.models import Agent, Task
from core.runtimes.sim import SimRuntime


class _Heard:
    """A runtime sink that keeps what it hears (task and agent facts, not usage)."""

    def __init__(self) -> None:
        self.facts: list[tuple[Any, ...]] = []

    def task_started(self, agent_id: str, task_id: str, at: float | None = None) -> None:
        self.facts.append(("started", agent_id, task_id))

    def task_progress(self, agent_id: str, task_id: str, progress: float, output: list[str] | None = None) -> None:
        self.facts.append(("progress", agent_id, task_id, progress))

    def task_finished(self, agent_id: str, task_id: str, output: list[str] | None = None, result: Any = None) -> None:
        self.facts.append(("finished", agent_id, task_id))

    def task_failed(self, agent_id: str, task_id: str, error: str, output: list[str] | None = None) -> None:
        self.facts.append(("failed", agent_id, task_id))

    def agent_failed(self, agent_id: str, error: str) -> None:
        self.facts.append(("agent_failed", agent_id))

    def task_workspace(self, agent_id: str, task_id: str, path: str, branch: str, repo: str) -> None:
        self.facts.append(("workspace", agent_id, task_id))

    def task_input_wait(self, agent_id: str, task_id: str, reason: str | None) -> None:
        self.facts.append(("input_wait", agent_id, task_id))

    def agent_heartbeat(self, agent_id: str) -> None:
        self.facts.append(("heartbeat", agent_id))

    def agent_unreachable(self, agent_id: str) -> None:
        self.facts.append(("unreachable", agent_id))

    def agent_reconnected(self, agent_id: str, buffered: list[BufferedReport]) -> None:
        self.facts.append(("reconnected", agent_id, [(b.seq, b.kind, b.task_id) for b in buffered]))

    def usage(self, agent_id: str, cpu_pct: float, memory_mb: float) -> None:
        pass

    def system_usage(self, cpu_pct: float, memory_pct: float) -> None:
        pass


def _sim() -> tuple[VirtualClock, SimRuntime, _Heard]:
    clock = VirtualClock()
    sim = SimRuntime(clock, heartbeat_s=10.0, sample_s=1000.0)
    heard = _Heard()
    sim.attach(heard)
    sim.spawn_agent(Agent(id="a1", pool="p", specializations=["x"]))
    return clock, sim, heard


def _task(task_id: str, duration_s: float) -> Task:
    return Task(id=task_id, workflow="w", phase="p", specialization="x", duration_s=duration_s)


def test_reports_held_while_cut_off_are_handed_over_once_in_their_order() -> None:
    clock, sim, heard = _sim()
    sim.start_task("a1", _task("w/t1", 25.0))
    clock.run_until(5.0)
    sim.partition(["a1"])
    clock.run_until(40.0)  # progress at 10 and 20, then done at 25: all held
    sim.start_task("a1", _task("w/t2", 0.0))  # a task of no duration, started and done while cut off
    clock.run_until(41.0)
    assert [f for f in heard.facts if f[0] != "heartbeat"] == [("started", "a1", "w/t1")]
    del heard.facts[:]
    sim.heal(["a1"])
    sim.heal(["a1"])  # healed already: nothing more to hand over
    held = [(1, "progress", "w/t1"), (2, "progress", "w/t1"), (3, "progress", "w/t1"), (4, "finished", "w/t1")]
    held += [(5, "started", "w/t2"), (6, "finished", "w/t2")]
    assert heard.facts == [("reconnected", "a1", held)]
    sim.start_task("a1", _task("w/t3", 1.0))
    clock.run_until(45.0)
    assert heard.facts[1:] == [("started", "a1", "w/t3"), ("progress", "a1", "w/t3", 1.0), ("finished", "a1", "w/t3")]


def test_an_agent_killed_while_cut_off_hands_over_nothing_when_the_link_heals() -> None:
    """Its held reports were in the process that died: the engine hears the failure and
    never a reconnection of a dead agent or facts about tasks already taken back."""
    clock, sim, heard = _sim()
    sim.start_task("a1", _task("w/t1", 25.0))
    sim.partition(["a1"])
    clock.run_until(15.0)  # one progress held
    sim.fail_agent("a1")
    sim.heal()
    assert [f for f in heard.facts if f[0] != "heartbeat"] == [("started", "a1", "w/t1"), ("agent_failed", "a1")]
    assert sim.agents["a1"].buffer == []


def test_held_reports_say_what_each_kind_carries() -> None:
    """Each held report is a BufferedReport carrying what its kind says and no more: a
    progress report its fraction, a finished one the task's output, each when it was
    held on the agent's clock."""
    clock, sim, _ = _sim()
    sim.start_task("a1", _task("w/t1", 25.0))
    sim.partition(["a1"])
    clock.run_until(30.0)
    assert sim.agents["a1"].buffer == [
        BufferedReport(1, "progress", "w/t1", progress=0.4, at=10.0),
        BufferedReport(2, "progress", "w/t1", progress=0.8, at=20.0),
        BufferedReport(3, "progress", "w/t1", progress=1.0, at=25.0),
        BufferedReport(4, "finished", "w/t1", output=["w/t1 done"], at=25.0),
    ]
    assert [b.reached for b in sim.agents["a1"].buffer] == [0.4, 0.8, 1.0, 1.0]
