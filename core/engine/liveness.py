"""Liveness and usage: heartbeats, unreachable agents, samples and utilisation.

:class:`Liveness` records the usage runtimes sample, marks agents that have been
silent past the missed-heartbeat limit unreachable (pinging them first when active
health checks are on), moves tasks off agents that stay unreachable when the
standing reassignment is in force, and runs the sample hooks detectors use.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..event_types import AGENT_TIMEOUT
from ..models import AgentStatus
from ..projection import agent_in_use
from ..telemetry import COMPLETIONS

if TYPE_CHECKING:
    from ..projection import State
    from .contract import EngineCore

_ANSWERING = (AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED)
THROUGHPUT_WINDOW_S = 300.0
LATE_FRACTION = 0.1
"""A liveness check later than its sample interval by more than this share of it counts
the rest as time the console was not listening."""


def tasks_on_unreachable(s: State) -> dict[str, str]:
    """The task each unreachable agent holds, by agent, in agent id order: the work a
    partition cuts off (an unreachable agent holding none is not in it)."""
    return {
        a.id: a.current_task
        for a in sorted(s.agents.values(), key=lambda x: x.id)
        if a.status is AgentStatus.UNREACHABLE and a.current_task
    }


def protocol_keeps_tasks(s: State) -> bool:
    """The distributed protocol in force keeps tasks running on unreachable agents
    (``activate-distributed-protocols`` with ``agent_autonomy_increase``): then neither
    the standing reassignment nor ``communication-redundancy-activation`` moves them."""
    proto = s.settings.get("monitoring.distributed_protocols")
    return isinstance(proto, dict) and not proto.get("closed") and bool(proto.get("keep_tasks_on_unreachable"))


def kept_on_unreachable(s: State) -> dict[str, str]:
    """The tasks kept on unreachable agents, by agent: those they hold while the protocol
    in force keeps them there (none without such a protocol)."""
    return tasks_on_unreachable(s) if protocol_keeps_tasks(s) else {}


class Liveness:
    """Heartbeats, usage samples and the checks that follow each sample."""

    def __init__(self, engine: EngineCore) -> None:
        self.engine = engine
        self.sample_hooks: list[Callable[[float], None]] = []
        self.named_hooks: set[str] = set()
        """Names of hooks installed once per engine (the command language's watches)."""
        self.last_health_check = float("-inf")
        self.last_check: float | None = None
        self.deaf: deque[tuple[float, float]] = deque(maxlen=256)
        """(when, seconds): liveness checks that came late, on the wall clock. Reports sent
        while this process was not running (a loaded machine, a long synchronous step) wait
        unread in the sockets; that time is the console's silence, not the agents'."""

    def on_sample(self, fn: Callable[[float], None], name: str | None = None) -> bool:
        """Run ``fn(now)`` after each system usage sample: where detectors hook in. A
        ``name`` installs it once per engine: False when that name is already there."""
        if name is not None:
            if name in self.named_hooks:
                return False
            self.named_hooks.add(name)
        self.sample_hooks.append(fn)
        return True

    # -- facts --------------------------------------------------------------------------
    def agent_heartbeat(self, agent_id: str) -> None:
        e = self.engine
        e.telemetry.liveness[agent_id] = e.clock.now()

    def agent_unreachable(self, agent_id: str) -> None:
        e = self.engine
        a = e.state.agents.get(agent_id)
        if a is not None and a.status in _ANSWERING:
            silent = e.clock.now() - e.telemetry.liveness.get(agent_id, e.clock.now())
            e.emit(AGENT_TIMEOUT, "network", "agent_coordination", {"agent": agent_id, "silent_s": round(silent, 3)})

    def usage(self, agent_id: str, cpu_pct: float, memory_mb: float) -> None:
        e = self.engine
        now = e.clock.now()
        e.telemetry.liveness[agent_id] = now
        e.telemetry.agent_usage[agent_id] = (cpu_pct, memory_mb)
        e.telemetry.record(now, "cpu_pct", agent_id, cpu_pct)
        e.telemetry.record(now, "memory_mb", agent_id, memory_mb)

    def system_usage(self, cpu_pct: float, memory_pct: float) -> None:
        e = self.engine
        now = e.clock.now()
        tel = e.telemetry
        tel.record(now, "cpu_pct", "system", cpu_pct)
        tel.record(now, "memory_pct", "system", memory_pct)
        tel.record(now, "agents_pct", "system", self.agent_utilisation())
        done = tel.get(COMPLETIONS, "system").since(now - THROUGHPUT_WINDOW_S)
        tel.record(now, "throughput_per_min", "system", len(done) * 60.0 / THROUGHPUT_WINDOW_S)
        self.check_liveness(now)
        self.reassign_unreachable(now)
        for hook in list(self.sample_hooks):
            hook(now)

    # -- checks -------------------------------------------------------------------------
    def health_check_interval(self) -> float | None:
        """The active health-check interval ``/resource-manager update-agent-management``
        set (shorter than the heartbeat), or None: then only heartbeats count."""
        e = self.engine
        cfg = e.state.settings.get("agent_management")
        if isinstance(cfg, dict) and cfg.get("health_check_interval_s"):
            iv = float(cfg["health_check_interval_s"])
            if iv < e.config.intervals.heartbeat_s:
                return iv
        return None

    def check_liveness(self, now: float) -> None:
        """Mark agents silent for more than the missed-heartbeat limit unreachable. With
        active health checks the runtime pings every live agent at their interval (an
        answer counts as a heartbeat), so the limit is that many intervals instead."""
        e = self.engine
        rt = e.runtime
        every = self.health_check_interval() if rt is not None else None  # only a runtime can be asked
        if rt is not None and every is not None and now - self.last_health_check >= every - 1e-9:
            self.last_health_check = now
            for a in sorted(e.state.agents.values(), key=lambda x: x.id):
                if a.status in _ANSWERING:
                    rt.ping_agent(a.id)
        beat = every if every is not None else e.config.intervals.heartbeat_s
        limit = beat * (e.config.intervals.missed_heartbeats + 0.5)
        self.note_lateness(now)
        for a in list(e.state.agents.values()):
            if a.status in _ANSWERING:
                last = e.telemetry.liveness.get(a.id)
                if last is None:
                    e.telemetry.liveness[a.id] = now
                elif self.silence(last, now) > limit:
                    self.agent_unreachable(a.id)

    def note_lateness(self, now: float) -> None:
        """Record how late this check is against the sample interval (simulated time is
        never late: it moves only when the loop moves it)."""
        if self.engine.clock.virtual:
            return
        cadence = self.engine.config.intervals.sample_s
        if self.last_check is not None:
            late = now - self.last_check - cadence
            if late > LATE_FRACTION * cadence:
                self.deaf.append((now, late))
        self.last_check = now

    def silence(self, last: float, now: float) -> float:
        """Seconds an agent last heard at ``last`` has been silent while the console was
        listening: the time since, less the console's stalls since (a late check's stall
        is the ``late`` seconds before it; only its part after ``last`` counts: a report
        read just before that check ended a silence the stall cannot excuse). A host that
        really stopped is still found, later by at most the console's own stalls."""
        return now - last - sum(min(late, at - last) for at, late in self.deaf if at > last)

    def reassign_unreachable(self, now: float) -> None:
        """The standing reassignment that ``/coordination-hub communication-redundancy-
        activation`` turns on: a task on an agent silent for ``reassign_after_s`` moves
        (with its context) to a reachable agent, unless the distributed protocol in
        force keeps tasks running on isolated agents. The silence is :meth:`silence`'s, as
        for marking agents unreachable: the console's own stalls move no work."""
        e = self.engine
        cfg = e.state.settings.get("monitoring.communication")
        if e.readonly or not isinstance(cfg, dict) or cfg.get("closed") or cfg.get("reassign_after_s") is None:
            return
        if protocol_keeps_tasks(e.state):
            return
        after = float(cfg["reassign_after_s"])
        for agent, task in tasks_on_unreachable(e.state).items():
            silent = self.silent_while_listening(agent, now)
            if silent is not None and silent >= after:
                e.release_task(task, reason="agent_unreachable", actor="standing-reassignment")

    def silent_while_listening(self, agent_id: str, now: float) -> float | None:
        """How long ``agent_id`` has been silent while the console was listening
        (:meth:`silence` since :meth:`Telemetry.last_heard`); None: never heard. What
        moving an agent's work is judged on, by the standing policy or a command."""
        e = self.engine
        last = e.telemetry.last_heard(e.state.agents[agent_id])
        return None if last is None else self.silence(last, now)

    # -- measures -----------------------------------------------------------------------
    def agent_utilisation(self) -> float:
        """Agents in use (:func:`core.projection.agent_in_use`: holding a task, paused ones too) as a
        percent of the capacity's agent slots."""
        e = self.engine
        busy = sum(1 for a in e.state.agents.values() if agent_in_use(a))
        return round(busy / e.config.capacity.agents * 100.0, 2)

    def utilisation(self) -> dict[str, float]:
        tel = self.engine.telemetry
        return {
            "cpu": tel.get("cpu_pct").last(),
            "memory": tel.get("memory_pct").last(),
            "agents": self.agent_utilisation(),
        }
