"""The simulated runtime: a virtual clock, a seeded RNG, modelled tasks, and faults.

Tasks take their modelled duration (stretched by an agent's slowdown), hold their
modelled CPU and memory while running, and report progress at each heartbeat. A
paused task is a SIGSTOPped process: it uses no CPU and keeps its memory.
Faults for the drills: an agent fails, slows down, becomes unreachable (it keeps
working and buffers its reports), a load spike, a memory leak. Same seed and inputs
give the same sequence of facts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import Timer, VirtualClock
from ..merge import BufferedReport, ReportKind
from ..models import Agent, Task
from . import Capabilities, NotApplicable, RuntimeSink
from .sampler import TaskMeasure

_new = object.__new__


@dataclass(slots=True)
class _SimTask:
    task_id: str
    work_left: float
    cpu: float
    memory_gb: float
    started: float
    running: bool
    last_change: float
    finish_timer: Timer | None
    total: float
    agent: _SimAgent
    sim: SimRuntime

    def finish(self) -> None:
        """The finish timer's callback (a bound method: no ``partial`` per task)."""
        sa, sim = self.agent, self.sim
        if sa.task is not self or not sa.alive:
            return
        sa.task = None
        sink, task_id = sim.sink, self.task_id
        output = [f"{task_id} done"]
        if sa.reachable:  # every fact goes this way: heard by the sink now, or held by the agent
            if sink is not None:
                if self.total > 0:
                    sink.task_progress(sa.id, task_id, 1.0)
                sink.task_finished(sa.id, task_id, output)
        else:
            now = sim.clock.now()
            if self.total > 0:
                sa.hold(now, "progress", task_id, progress=1.0)
            sa.hold(now, "finished", task_id, output=output)


@dataclass
class _SimAgent:
    id: str
    alive: bool = True
    reachable: bool = True
    slowdown: float = 1.0
    task: _SimTask | None = None
    buffer: list[BufferedReport] = field(default_factory=list)
    buffer_seq: int = 0
    leak_mb: float = 0.0
    leak_rate_mb_s: float = 0.0
    pending_stops: set[str] = field(default_factory=set)
    """Stops sent while cut off: they reach the agent when its link comes back."""

    def hold(
        self,
        at: float,
        kind: ReportKind,
        task_id: str,
        *,
        progress: float | None = None,
        output: list[str] | None = None,
    ) -> None:
        """A fact the agent cannot report while cut off: kept with its own sequence
        number, handed over when its link comes back (``RuntimeSink.agent_reconnected``)."""
        self.buffer_seq += 1
        self.buffer.append(BufferedReport(self.buffer_seq, kind, task_id, progress, output, at=at))


class SimRuntime:
    """Agents that exist only in the model; every fact is derived from the clock."""

    name = "sim"
    capabilities = Capabilities(processes=False, simulated=True, cluster=False)

    def __init__(
        self,
        clock: VirtualClock,
        seed: int = 0,
        heartbeat_s: float = 30.0,
        sample_s: float = 5.0,
        cpu_capacity: float = 8.0,
        memory_capacity_gb: float = 16.0,
    ) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
        self.heartbeat_s = heartbeat_s
        self.sample_s = sample_s
        self.cpu_capacity = cpu_capacity
        self.memory_capacity_gb = memory_capacity_gb
        self.agents: dict[str, _SimAgent] = {}
        self.sink: RuntimeSink | None = None
        self.extra_cpu = 0.0  # cores of background load (spikes)
        self.extra_memory_gb = 0.0
        self.global_slowdown = 1.0
        self.degrade_rate = 0.0  # added to global_slowdown per simulated second
        self.cache_gb = 0.0  # engine-owned caches the cleanup can purge
        self.adopted: list[str] = []  # no process outlives a host: nothing is ever adopted
        self.recovered: list[str] = []
        self.left_running: list[str] = []  # no processes: nothing is ever left running
        self._ticking = False

    # -- wiring ---------------------------------------------------------------
    def attach(self, sink: RuntimeSink) -> None:
        self.sink = sink
        if not self._ticking:
            self._ticking = True
            self.clock.call_later(self.heartbeat_s, self._heartbeat)
            self.clock.call_later(self.sample_s, self._sample)

    def now(self) -> float:
        return self.clock.now()

    def describe(self) -> dict[str, Any]:
        """The model's capacity and its reporting intervals (no process, no OS limit)."""
        return {
            "runtime": self.name,
            "cpu_capacity": self.cpu_capacity,
            "memory_capacity_gb": self.memory_capacity_gb,
            "heartbeat_s": self.heartbeat_s,
            "sample_s": self.sample_s,
        }

    def limits_line(self) -> str:
        return "limits: none enforced (simulated runtime: usage is modelled, there is no OS process)"

    def attempts_allowed(self, task_id: str) -> int | None:
        """Simulated tasks have no retry policy of their own: the engine's config decides."""
        return None

    async def relimit(self, targets: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        raise NotApplicable("the tasks of the simulated runtime are not OS processes")

    def task_output(self, agent_id: str, task_id: str, attempt: int) -> Path | None:
        return None

    def task_repo(self, task_id: str) -> str | None:
        return None

    def worktree_root(self) -> Path | None:
        return None

    async def send_input(self, agent_id: str, task_id: str, data: bytes) -> int:
        raise NotApplicable("the tasks of the simulated runtime are not processes: they read no input")

    async def shutdown(self, release: bool = True) -> None:
        """Nothing runs outside the model: there is nothing to stop."""
        return

    def spawn_agent(self, agent: Agent) -> None:
        self.agents[agent.id] = _SimAgent(agent.id)

    def retire_agent(self, agent_id: str) -> None:
        sa = self.agents.pop(agent_id, None)
        if sa and sa.task:
            if sa.task.finish_timer:
                sa.task.finish_timer.cancel()
            sa.task = None  # the task refers to its agent: reference counting frees both

    # -- task control -----------------------------------------------------------
    def _speed(self, sa: _SimAgent) -> float:
        return 1.0 / (sa.slowdown * self.global_slowdown)

    def start_task(self, agent_id: str, task: Task) -> None:
        sa = self.agents.get(agent_id)
        if sa is None or not sa.alive:
            if self.sink:
                self.sink.task_failed(agent_id, task.id, "agent not running")
            return
        total = task.duration_s
        progress = task.context.progress
        left = total if progress == 0.0 else total * (1.0 - min(max(progress, 0.0), 1.0))  # the same value
        clock = self.clock
        now = clock.now()
        # _SimTask(task.id, left, task.cpu, task.memory_gb, now, True, now, None, total, sa, self),
        # its slots set here: the dataclass's __init__ through its type costs about 700
        # instructions more a task (callgrind).
        st = _new(_SimTask)
        st.task_id = task.id
        st.work_left = left
        st.cpu = task.cpu
        st.memory_gb = task.memory_gb
        st.started = now
        st.running = True
        st.last_change = now
        st.finish_timer = None
        st.total = total
        st.agent = sa
        st.sim = self
        sa.task = st
        if sa.reachable:  # as every fact: heard by the sink now, or held by the agent
            if self.sink is not None:
                self.sink.task_started(sa.id, task.id)
        else:
            sa.hold(now, "started", task.id)
        if sa.task is st and st.finish_timer is None:  # _schedule_finish(sa), written out (a call a task)
            now = st.last_change = clock.now()
            st.finish_timer = clock.call_at(
                now + st.work_left / (1.0 / (sa.slowdown * self.global_slowdown)), st.finish
            )
        else:
            self._schedule_finish(sa)

    def _schedule_finish(self, sa: _SimAgent) -> None:
        st = sa.task
        assert st is not None
        if st.finish_timer is not None:
            st.finish_timer.cancel()
        clock = self.clock
        now = st.last_change = clock.now()
        st.finish_timer = clock.call_at(now + st.work_left / self._speed(sa), st.finish)

    def _account(self, sa: _SimAgent) -> None:
        """Bring a running task's remaining work up to now."""
        st = sa.task
        if st and st.running:
            now = self.clock.now()
            st.work_left = max(0.0, st.work_left - (now - st.last_change) * self._speed(sa))
            st.last_change = now

    def pause_task(self, agent_id: str, task_id: str) -> None:
        sa = self.agents.get(agent_id)
        if sa and sa.task and sa.task.task_id == task_id and sa.task.running:
            self._account(sa)
            sa.task.running = False
            if sa.task.finish_timer:
                sa.task.finish_timer.cancel()

    def resume_task(self, agent_id: str, task_id: str) -> None:
        sa = self.agents.get(agent_id)
        if sa and sa.task and sa.task.task_id == task_id and not sa.task.running:
            sa.task.running = True
            self._schedule_finish(sa)

    def stop_task(self, agent_id: str, task_id: str) -> None:
        sa = self.agents.get(agent_id)
        if sa and not sa.reachable:
            sa.pending_stops.add(task_id)  # it cannot hear us: it keeps working until the link is back
            return
        if sa and sa.task and sa.task.task_id == task_id:
            if sa.task.finish_timer:
                sa.task.finish_timer.cancel()
            sa.task = None

    def measure_task(
        self, agent_id: str, task_id: str, pid: int | None = None, create_time: float | None = None
    ) -> TaskMeasure | None:
        """The modelled usage of the task on ``agent_id`` (basis ``simulated``); None if
        that agent does not run it any more."""
        sa = self.agents.get(agent_id)
        st = sa.task if sa is not None and sa.alive else None
        if st is None or st.task_id != task_id:
            return None
        cpu = st.cpu * 100.0 if st.running else 0.0
        return TaskMeasure(round(cpu, 2), round(st.memory_gb * 1024.0, 2), 1, not st.running, None, None, "simulated")

    def cleanup_temp(self) -> None:
        """Simulated tasks write no files: there is nothing to clean up."""
        return

    def purge_caches(self) -> dict[str, float]:
        freed = self.cache_gb
        self.cache_gb = 0.0
        leaked = 0.0
        for sa in self.agents.values():
            leaked += sa.leak_mb
        return {"cache_gb": round(freed, 3), "leaked_mb_still_held": round(leaked, 1)}

    # -- reporting --------------------------------------------------------------
    def _heartbeat(self) -> None:
        for sa in list(self.agents.values()):
            if not sa.alive:
                continue
            st = sa.task
            if st is not None and st.running and st.total > 0:
                self._account(sa)
                progress = round(1.0 - st.work_left / st.total, 4)
                if not sa.reachable:
                    sa.hold(self.clock.now(), "progress", st.task_id, progress=progress)
                elif self.sink:
                    self.sink.task_progress(sa.id, st.task_id, progress)
            elif sa.reachable and self.sink:
                self.sink.agent_heartbeat(sa.id)
        self.clock.call_later(self.heartbeat_s, self._heartbeat)

    def _sample(self) -> None:
        if self.degrade_rate:
            for sa in self.agents.values():
                self._account(sa)
            self.global_slowdown += self.degrade_rate * self.sample_s
            for sa in self.agents.values():
                if sa.alive and sa.task and sa.task.running:
                    self._schedule_finish(sa)
        cpu = self.extra_cpu
        mem = self.extra_memory_gb + self.cache_gb
        for sa in self.agents.values():
            if sa.leak_rate_mb_s:
                sa.leak_mb += sa.leak_rate_mb_s * self.sample_s
            agent_cpu = agent_mem = 0.0
            if sa.alive and sa.task:
                agent_mem = sa.task.memory_gb  # a paused (stopped) task keeps its memory
                if sa.task.running:
                    agent_cpu = sa.task.cpu * (1.0 + self.rng.uniform(-0.05, 0.05))
            agent_mem += sa.leak_mb / 1024.0
            cpu += agent_cpu
            mem += agent_mem
            if sa.alive and sa.reachable and self.sink:
                self.sink.usage(sa.id, round(agent_cpu * 100.0, 2), round(agent_mem * 1024.0, 1))
        # Engine bookkeeping grows a cache over time; the cleanup can reclaim it.
        self.cache_gb = min(self.cache_gb + 0.002 * self.sample_s, 1.0)
        if self.sink:
            self.sink.system_usage(
                round(min(cpu / self.cpu_capacity * 100.0, 100.0), 2),
                round(min(mem / self.memory_capacity_gb * 100.0, 100.0), 2),
            )
        self.clock.call_later(self.sample_s, self._sample)

    # -- faults ---------------------------------------------------------------
    def fail_agent(self, agent_id: str, error: str = "process crashed") -> None:
        sa = self.agents.get(agent_id)
        if sa is None or not sa.alive:
            return
        sa.alive = False
        if sa.task and sa.task.finish_timer:
            sa.task.finish_timer.cancel()
        sa.task = None
        sa.buffer = []  # what it held while cut off died with it: a heal hands over nothing
        sa.pending_stops.clear()
        if self.sink:
            self.sink.agent_failed(agent_id, error)

    def slowdown(self, agent_id: str) -> float | None:
        sa = self.agents.get(agent_id)
        return None if sa is None else sa.slowdown

    def slow_agent(self, agent_id: str, factor: float) -> None:
        sa = self.agents.get(agent_id)
        if sa is None:  # retired meanwhile: nothing to slow
            return
        self._account(sa)
        sa.slowdown = factor
        if sa.task and sa.task.running:
            self._schedule_finish(sa)

    def partition(self, agent_ids: list[str]) -> None:
        for a in agent_ids:
            if a in self.agents:
                self.agents[a].reachable = False

    def heal(self, agent_ids: list[str] | None = None) -> None:
        for sa in self.agents.values():
            if (agent_ids is None or sa.id in agent_ids) and not sa.reachable:
                sa.reachable = True
                for task_id in sorted(sa.pending_stops):
                    self.stop_task(sa.id, task_id)
                sa.pending_stops.clear()
                buffered, sa.buffer = sa.buffer, []
                if self.sink and sa.alive:  # a dead agent does not come back
                    self.sink.agent_reconnected(sa.id, buffered)

    def load_spike(self, cpu_cores: float, memory_gb: float, duration_s: float | None = None) -> None:
        self.extra_cpu += cpu_cores
        self.extra_memory_gb += memory_gb
        if duration_s is not None:

            def end() -> None:
                self.extra_cpu -= cpu_cores
                self.extra_memory_gb -= memory_gb

            self.clock.call_later(duration_s, end)

    def leak(self, agent_id: str, mb_per_s: float) -> None:
        sa = self.agents.get(agent_id)
        if sa is not None:
            sa.leak_rate_mb_s = mb_per_s

    def degrade(self, rate_per_s: float) -> None:
        """Every task gets slower over time: the shape of a gradual degradation."""
        self.degrade_rate = rate_per_s

    def restore_speed(self) -> None:
        for sa in self.agents.values():
            self._account(sa)
        self.degrade_rate = 0.0
        self.global_slowdown = 1.0
        for sa in self.agents.values():
            if sa.alive and sa.task and sa.task.running:
                self._schedule_finish(sa)

    def ping_agent(self, agent_id: str) -> None:
        """An active health check: a live, reachable agent answers at once."""
        sa = self.agents.get(agent_id)
        if sa is not None and sa.alive and sa.reachable and self.sink is not None:
            self.sink.agent_heartbeat(agent_id)

    def host_process(self, agent_id: str) -> tuple[int, float] | None:
        """Simulated agents have no process."""
        return None

    def host_starting(self, agent_id: str) -> bool:
        """Simulated agents have no process to start."""
        return False

    def has_task(self, agent_id: str) -> bool:
        sa = self.agents.get(agent_id)
        return bool(sa and sa.task)
