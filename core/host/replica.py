"""A read-only replica of a database's projection, for clients of a live host.

The replica is a read-only :class:`~core.engine.Engine`: opening it loads the latest
good checkpoint and replays the rest (``Engine.load``, the same code the host ran),
over a read-only SQLite connection that reads the host's WAL. It is then kept
current by events in sequence order, from the host's stream (:meth:`apply`) or by
tailing rows the store committed (:meth:`catch_up`). Gauges come from the store's
metrics table, followed by rowid (:meth:`refresh_telemetry`), so an attached
console's CPU, memory and per-agent usage move as the host samples them.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..engine import Engine
from ..events import Event
from ..models import AgentStatus
from ..store import Store
from ..telemetry import HISTORY

AGENT_METRICS = ("cpu_pct", "memory_mb")


class ReplicaGap(Exception):
    """An event arrived out of order: the replica must catch up from the store first."""


class Replica:
    """The projection of ``db`` as the host committed it; never writes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._metric_rowid = 0

    @classmethod
    async def open(cls, db: str | Path, config: Config | None = None) -> Replica:
        engine = await Engine.open(db, config=config, readonly=True)
        rep = cls(engine)
        await rep._load_agent_usage()
        return rep

    @property
    def store(self) -> Store:
        assert self.engine.store is not None
        return self.engine.store

    @property
    def seq(self) -> int:
        return self.engine.state.seq

    # -- events ---------------------------------------------------------------------
    def apply(self, ev: Event) -> bool:
        """Fold one committed event; False if it was already folded. Raises ReplicaGap
        when events before it are missing."""
        state = self.engine.state
        if ev.seq <= state.seq:
            return False
        if ev.seq != state.seq + 1:
            raise ReplicaGap(f"event {ev.seq} after {state.seq}")
        state.apply(ev)
        return True

    async def catch_up(self, upto: int | None = None, batch: int = 5000) -> list[Event]:
        """Fold the rows committed since the replica's seq (up to ``upto``); returns those
        it folded (the event stream may have folded some meanwhile)."""
        out: list[Event] = []
        while upto is None or self.seq < upto:
            evs = await self.store.read_events(since=self.seq, limit=batch, until=upto)
            out += [ev for ev in evs if self.apply(ev)]
            if len(evs) < batch:
                break
        return out

    # -- telemetry ------------------------------------------------------------------
    async def _load_agent_usage(self) -> None:
        """Per-agent usage history of the live agents (system series: Engine.load)."""
        tel = self.engine.telemetry
        horizon = self.engine.state.clock - HISTORY * self.engine.config.intervals.sample_s
        self._metric_rowid = await self.store.last_metric_rowid()
        live = [a.id for a in self.engine.state.agents.values() if a.status is not AgentStatus.RETIRED]
        for (name, subject), points in (await self.store.recent_metrics(horizon, AGENT_METRICS, live)).items():
            tel.load(name, subject, points)
        for agent in live:
            self._set_usage(agent)

    def _set_usage(self, agent: str) -> None:
        tel = self.engine.telemetry
        cpu, mem = tel.get("cpu_pct", agent), tel.get("memory_mb", agent)
        if cpu.points or mem.points:
            tel.agent_usage[agent] = (cpu.last(), mem.last())

    async def refresh_telemetry(self) -> int:
        """Fold the metric samples the host stored since the last call; returns how many."""
        rows, self._metric_rowid = await self.store.metrics_after(self._metric_rowid)
        tel = self.engine.telemetry
        agents: set[str] = set()
        for t, name, subject, value in rows:
            tel.record(t, name, subject, value, persist=False)
            if subject != "system" and name in AGENT_METRICS:
                agents.add(subject)
        for a in agents:
            self._set_usage(a)
        return len(rows)

    async def close(self) -> None:
        await self.engine.close()
