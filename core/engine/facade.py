"""The engine: one orchestration core over one store, clock and runtime.

:class:`Engine` is a thin facade over its parts, each an object it holds:

- :class:`~core.engine.log.EventLog` — emit, units of work, group commit, subscribers, archive;
- :class:`~core.engine.opening.Opening` — load, replay and anchor checks;
- :class:`~core.engine.bridge.RuntimeBridge` — runtime wiring, dispatch, task facts, merge;
- :class:`~core.engine.liveness.Liveness` — heartbeats, usage samples, utilisation;
- :class:`~core.engine.checkpoints.Checkpoints` — snapshots, rollback, automatic checkpoints;
- :class:`~core.engine.workflows.WorkflowOps` and :class:`~core.engine.resources.ResourceOps` — operations;
- :class:`~core.engine.usage.UsageOps` — AI agents' spend, budgets and rate-limit holds.

The engine implements :class:`~core.runtimes.RuntimeSink` (its parts report through
it); an attached runtime reports to :class:`~core.engine.bridge.Reports`, each fact
bound to the part that records it. The bridge turns task facts into events and
dispatches more work.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..clock import Clock, VirtualClock
from ..collector import Collector, settle_before_open
from ..config import Config
from ..event_types import EVENTS
from ..events import GENESIS_HASH, Event, EventHeader
from ..merge import BufferedReport
from ..models import Resources, Task, WorkflowSpec
from ..projection import State
from ..runtimes import Runtime
from ..store import Store
from ..telemetry import Telemetry
from .bridge import RuntimeBridge
from .checkpoints import Checkpoints
from .liveness import Liveness
from .log import EventLog, Subscriber, Unit
from .opening import Opening
from .resources import ResourceOps
from .usage import UsageOps
from .workflows import WorkflowOps

FLUSH_EVERY = 2000


class Engine:
    """One orchestration core over one store, clock and runtime."""

    def __init__(
        self,
        config: Config | None = None,
        clock: Clock | None = None,
        runtime: Runtime | None = None,
        store: Store | None = None,
        actor: str = "engine",
    ) -> None:
        self.config = config or Config()
        self.clock: Clock = clock or VirtualClock()
        self.store = store
        self.state = State(EVENTS.folds, collect_archive=True)
        self.telemetry = Telemetry()
        self.actor = actor
        self.head_hash = GENESIS_HASH
        """Hash of the last event row handed to the store (its chain's head); without a
        store nothing is chained and it stays the genesis hash."""
        self.store_lock = asyncio.Lock()
        """Serialises store writes: with a wall clock several tasks flush (runtime, console)."""
        self.runtime: Runtime | None = None
        self.creating: WorkflowSpec | None = None
        """The spec :meth:`create_workflow` was handed as a model, while its WORKFLOW_CREATED
        is emitted (None otherwise): an observer that needs the tasks as models (a real
        runtime's commands) takes these, validated where they entered, rather than
        validating the recorded spec again (about 2 us a task)."""
        self.readonly = False
        self.auto_checkpoints = True
        self.collector = Collector()
        """Its use of the cyclic collector: the heap thawed when it closes if a freeze may hold it."""
        self.log = EventLog(self)
        self.opening = Opening(self)
        self.bridge = RuntimeBridge(self)
        self.liveness = Liveness(self)
        self.checkpoints = Checkpoints(self)
        self.workflows = WorkflowOps(self)
        self.resources = ResourceOps(self)
        self.spend = UsageOps(self)
        """AI agents' usage: spend per task, agent, workflow and pool, budgets, rate-limit holds."""
        self.liveness.on_sample(self.spend.tick, name="usage")
        if runtime is not None:
            self.attach_runtime(runtime)

    # -- opening and closing --------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        path: str | Path,
        config: Config | None = None,
        clock: Clock | None = None,
        runtime: Runtime | None = None,
        readonly: bool = False,
    ) -> Engine:
        """Open a database and rebuild the projection: latest good checkpoint + replay."""
        trust = config is not None and config.storage.trust_owner
        settle_before_open()
        store = await Store.open(path, readonly=readonly, trust_owner=trust)
        eng: Engine | None = None
        try:
            eng = cls(config=config, clock=clock, store=store)
            eng.readonly = readonly
            await eng.load()
            eng.collector.loaded(len(eng.state.tasks) + len(eng.state.finished))
            if isinstance(eng.clock, VirtualClock) and eng.state.clock > eng.clock.now():
                eng.clock.run_until(eng.state.clock)
            if runtime is not None:
                eng.attach_runtime(runtime)
        except BaseException as exc:
            await store.close()  # never leave the connection's thread behind: the process would hang
            if eng is not None:
                eng.collector.thaw()  # frozen once loaded, it would stay in memory for good
            if isinstance(exc, sqlite3.Error):
                raise store.damaged(str(exc)) from None
            raise
        return eng

    async def load(self) -> None:
        """Rebuild the projection from the store (:meth:`Opening.load`)."""
        await self.opening.load()

    async def close(self) -> None:
        """Commit what is pending and close the store (closed even when the commit is
        refused: its thread would keep the process alive; the error is raised after)."""
        try:
            await self.flush(all_samples=True)
        finally:
            if self.store is not None:
                await self.store.close()
            self.collector.thaw()

    # -- the log --------------------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Hear of each event once committed (:meth:`EventLog.subscribe`)."""
        return self.log.subscribe(fn)

    def observe(self, fn: Subscriber) -> Callable[[], None]:
        """Hear of each event as it is folded, for bookkeeping (:meth:`EventLog.observe`)."""
        return self.log.observe(fn)

    def on_sample(self, fn: Callable[[float], None], name: str | None = None) -> bool:
        """Run ``fn(now)`` after each system usage sample (``name``: once per engine)."""
        return self.liveness.on_sample(fn, name)

    def emit(
        self, type_: str, component: str, scope: str, data: dict[str, Any] | None = None, actor: str | None = None
    ) -> Event:
        """Record one state change (:meth:`EventLog.emit`)."""
        return self.log.emit(type_, component, scope, data, actor)

    def inject(self, header: EventHeader, actor: str = "operator") -> Event:
        return self.log.inject(header, actor)

    def begin_unit(self) -> Unit | None:
        return self.log.begin_unit()

    def end_unit(self, unit: Unit | None, keep: bool) -> bool:
        return self.log.end_unit(unit, keep)

    async def flush(self, all_samples: bool = False) -> None:
        """Group commit, then tell subscribers (:meth:`EventLog.flush`)."""
        await self.log.flush(all_samples)

    @property
    def unflushed(self) -> int:
        """Events emitted and not yet handed to the store (the next group commit's batch).
        Not all that is uncommitted: the batch being written is not counted (:attr:`held_events`)."""
        return len(self.log.buffer)

    @property
    def held_events(self) -> int:
        """Events emitted and not committed: the batch the store is writing (maybe waiting
        for another program's lock) and those emitted since (:meth:`.held.HeldLimits.held_events`)."""
        return self.log.held.held_events()

    @property
    def committed_seq(self) -> int:
        """The last sequence number the store committed (the log holds every row up to it)."""
        return self.state.seq - self.held_events

    @property
    def holds_changes(self) -> bool:
        """Changes are held uncommitted, not only queries' records (:meth:`EventLog.holds_changes`)."""
        return self.log.holds_changes()

    async def archived(self, wf_id: str) -> dict[str, Any] | None:
        return await self.log.archived(wf_id)

    async def tasks_with_archive(self, finished_since: float = float("-inf")) -> list[Task]:
        return await self.log.tasks_with_archive(finished_since)

    # -- the runtime ----------------------------------------------------------------------
    def attach_runtime(self, runtime: Runtime) -> None:
        self.bridge.attach(runtime)

    def request_dispatch(self) -> None:
        self.bridge.request_dispatch()

    def task_started(self, agent_id: str, task_id: str, at: float | None = None) -> None:
        self.bridge.task_started(agent_id, task_id, at)

    def task_progress(
        self,
        agent_id: str,
        task_id: str,
        progress: float,
        output: list[str] | None = None,
        partial: dict[str, Any] | None = None,
    ) -> None:
        self.bridge.task_progress(agent_id, task_id, progress, output, partial)

    def task_finished(
        self,
        agent_id: str,
        task_id: str,
        output: list[str] | None = None,
        result: Any = None,
        ran_s: float | None = None,
    ) -> None:
        self.bridge.task_finished(agent_id, task_id, output, result, ran_s)

    def task_failed(self, agent_id: str, task_id: str, error: str, output: list[str] | None = None) -> None:
        self.bridge.task_failed(agent_id, task_id, error, output)

    def task_input_wait(self, agent_id: str, task_id: str, reason: str | None) -> None:
        self.bridge.task_input_wait(agent_id, task_id, reason)

    def task_workspace(self, agent_id: str, task_id: str, path: str, branch: str, repo: str) -> None:
        self.bridge.task_workspace(agent_id, task_id, path, branch, repo)

    def agent_failed(self, agent_id: str, error: str) -> None:
        self.bridge.agent_failed(agent_id, error)

    def agent_reconnected(self, agent_id: str, buffered: list[BufferedReport]) -> None:
        self.bridge.agent_reconnected(agent_id, buffered)

    def merge_partition(self, agent_id: str, reports: list[BufferedReport]) -> None:
        self.bridge.merge_partition(agent_id, reports)

    def agent_heartbeat(self, agent_id: str) -> None:
        self.liveness.agent_heartbeat(agent_id)

    def agent_unreachable(self, agent_id: str) -> None:
        self.liveness.agent_unreachable(agent_id)

    def agent_silence(self, agent_id: str, now: float) -> float | None:
        """Seconds ``agent_id`` has been silent, less the console's own stalls (None: never heard)."""
        return self.liveness.silent_while_listening(agent_id, now)

    def usage(self, agent_id: str, cpu_pct: float, memory_mb: float) -> None:
        self.liveness.usage(agent_id, cpu_pct, memory_mb)

    def system_usage(self, cpu_pct: float, memory_pct: float) -> None:
        self.liveness.system_usage(cpu_pct, memory_pct)

    def health_check_interval(self) -> float | None:
        return self.liveness.health_check_interval()

    def agent_utilisation(self) -> float:
        return self.liveness.agent_utilisation()

    def utilisation(self) -> dict[str, float]:
        return self.liveness.utilisation()

    # -- operations -----------------------------------------------------------------------
    def create_pool(self, name: str, specializations: list[str], min_size: int = 0, max_size: int = 20) -> None:
        self.resources.create_pool(name, specializations, min_size, max_size)

    def next_agent_id(self) -> str:
        return self.resources.next_agent_id()

    def add_agent(
        self, pool: str, specializations: list[str] | None = None, agent_id: str | None = None, actor: str | None = None
    ) -> str:
        return self.resources.add_agent(pool, specializations, agent_id, actor)

    def retire_agent(self, agent_id: str, actor: str | None = None) -> None:
        self.resources.retire_agent(agent_id, actor)

    def create_workflow(self, spec: WorkflowSpec | dict[str, Any], actor: str | None = None) -> str:
        self.creating = spec if isinstance(spec, WorkflowSpec) else None
        try:
            return self.workflows.create(spec, actor)
        finally:
            self.creating = None

    async def submit_workflow(self, raw: dict[str, Any], actor: str | None = None) -> str:
        return await self.workflows.submit(raw, actor)

    def start_workflow(self, wf_id: str, actor: str | None = None) -> None:
        self.workflows.start(wf_id, actor)

    def pause_workflow(self, wf_id: str, actor: str | None = None, reason: str = "operator") -> list[str]:
        return self.workflows.pause(wf_id, actor, reason)

    def resume_workflow(self, wf_id: str, actor: str | None = None) -> list[str]:
        return self.workflows.resume(wf_id, actor)

    def release_task(self, key: str, reason: str = "released", actor: str | None = None) -> str | None:
        return self.workflows.release_task(key, reason, actor)

    def cancel_workflow(self, wf_id: str, actor: str | None = None) -> None:
        self.workflows.cancel(wf_id, actor)

    def freeze(self, wf_id: str, frozen: bool = True, actor: str | None = None) -> None:
        self.workflows.freeze(wf_id, frozen, actor)

    def set_allocation(self, wf_id: str, alloc: Resources, actor: str | None = None, base: bool = False) -> Resources:
        return self.resources.set_allocation(wf_id, alloc, actor, base)

    def reserve(self, wf_id: str, guarantee: Resources | None, actor: str | None = None) -> None:
        self.resources.reserve(wf_id, guarantee, actor)

    def set_stage_limit(self, wf_id: str, limit: Resources | None, actor: str | None = None) -> None:
        self.resources.set_stage_limit(wf_id, limit, actor)

    def cpu_limits(self, wf_id: str, task_id: str) -> dict[str, float | int]:
        return self.resources.cpu_limits(wf_id, task_id)

    async def relimit_workflow(self, wf_id: str) -> dict[str, Any]:
        return await self.resources.relimit_workflow(wf_id)

    def set_setting(self, key: str, value: Any, actor: str | None = None) -> None:
        self.resources.set_setting(key, value, actor)

    # -- checkpoints ----------------------------------------------------------------------
    async def checkpoint(
        self, kind: str = "manual", label: str = "", workflow: str | None = None, actor: str | None = None
    ) -> int:
        return await self.checkpoints.checkpoint(kind, label, workflow, actor)

    async def load_checkpoint(self, cp_id: int) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        return await self.checkpoints.load(cp_id)

    async def verified_checkpoint(self, cp_id: int) -> dict[str, Any]:
        return await self.checkpoints.verified(cp_id)

    async def rollback(
        self, cp_id: int, workflow: str | None = None, actor: str | None = None, reason: str = "rollback"
    ) -> dict[str, Any]:
        return await self.checkpoints.rollback(cp_id, workflow, actor, reason)

    def checkpoint_interval(self) -> float:
        return self.checkpoints.interval()

    async def maintain(self) -> None:
        """Periodic work: automatic checkpoints, metric retention (:meth:`Checkpoints.maintain`),
        the frozen heap's collection (:meth:`Collector.maintain`)."""
        await self.checkpoints.maintain()
        self.collector.maintain(len(self.state.tasks) + len(self.state.finished))

    # -- running the clock ----------------------------------------------------------------
    async def advance(self, seconds: float) -> None:
        """Run the virtual clock forward, flushing in batches (group commit)."""
        clock = self.clock
        assert isinstance(clock, VirtualClock), "advance() needs the virtual clock"
        until = clock.now() + seconds
        while True:
            # Stop at the next interval checkpoint, and as soon as a phase completes or the
            # event limit is reached: checkpoints keep their cadence however far this runs.
            stop_at = min(until, self.checkpoints.next_at())
            clock.run_until(stop_at, budget=FLUSH_EVERY, stop=self.checkpoints.owed)
            if self.checkpoints.owed() or clock.now() >= stop_at:
                await self.maintain()
            if self.unflushed >= FLUSH_EVERY or clock.now() >= until:
                await self.flush()
            if clock.now() >= until:
                nxt = clock.next_time()
                if nxt is None or nxt > until:
                    break

    async def run_realtime(self, speed: float, tick: float = 0.1, stop: asyncio.Event | None = None) -> None:
        """Advance the virtual clock at ``speed`` simulated seconds per wall second."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while stop is None or not stop.is_set():
            await asyncio.sleep(tick)
            now = loop.time()
            dt, last = now - last, now
            if isinstance(self.clock, VirtualClock):
                await self.advance(dt * speed)
            else:
                await self.maintain()
                await self.flush()

    def summary(self) -> dict[str, Any]:
        s = self.state
        counts: dict[str, int] = {}
        for w in s.all_workflows():
            counts[w.status.value] = counts.get(w.status.value, 0) + 1
        return {
            "seq": s.seq,
            "clock": s.clock,
            "workflows": counts,
            "agents": len(s.live_agents()),
            "utilisation": self.utilisation(),
        }
