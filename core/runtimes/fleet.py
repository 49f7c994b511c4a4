"""The agents of a real runtime as the console knows them, and the write-ahead outbox.

A real runtime (local processes, Ray actors) is composed of parts that share one
:class:`Fleet`: the engine and sink it reports to, one :class:`HostRecord` per agent
host, the commands waiting for each host, and the ``processes`` rows waiting to be
written. What differs per runtime is how a host is reached (a unix socket, a Ray
actor): the :class:`Links` it supplies. The parts are:

* :mod:`.dispatch` -- task commands (start, pause, stop, limits), temp dirs, measuring;
* :mod:`.reports` -- what hosts report (the place a task's output lines arrive);
* :mod:`.supervise` -- an agent's end (retired, died, replaced) and the runtime's shutdown;
* the runtime's own hosts part (:mod:`.local_hosts`, :mod:`.ray_actors`) -- spawning,
  connections, sampling; and its :class:`Links`.

Write-ahead: :meth:`Fleet.pump` writes the rows, then flushes the engine, then sends the
commands, so a host never runs an assignment the log does not hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ..models import LIVE_AGENT, TaskStatus

if TYPE_CHECKING:
    from ..engine import Engine
    from ..store_tables import ProcessRow
    from . import RuntimeSink


@dataclass
class HostRecord:
    """What the console knows about one agent's host (a process here, or an actor)."""

    agent: str
    address: str
    pid: int | None = None
    create_time: float | None = None
    outbox: list[dict[str, Any]] = field(default_factory=list)
    conn: asyncio.Task[None] | None = None
    dead: bool = False
    exited: bool = False
    """Its process was seen ended (a local host's pidfd): its liveness is not read again."""
    retiring: bool = False
    connected_once: bool = False
    started: bool = False
    """This runtime started the host (not adopted from a previous console)."""
    reached: bool = False
    """A command of this runtime has been delivered to the host."""
    lost: bool = False
    task_pgid: int | None = None
    task_create_time: float | None = None
    spawned_at: float = 0.0
    last_report: float = 0.0
    group_since: float = 0.0
    """When the run whose process group is ``task_pgid`` was reported started."""
    group_timer: asyncio.TimerHandle | None = None
    """The pending write of that group to the host's row (:meth:`.reports.Reports._save_group_later`)."""


# Python 3.11 reads an enum class's attributes through EnumType.__getattr__'s slow path
# (about 70 ns each): the statuses a report's ownership test compares with, bound once.
_RUNNING, _PAUSED = TaskStatus.RUNNING, TaskStatus.PAUSED

H = TypeVar("H", bound=HostRecord)
H_contra = TypeVar("H_contra", bound=HostRecord, contravariant=True)


@dataclass(frozen=True)
class Timing:
    """A real runtime's intervals (from the workflow file's ``[runtime]``)."""

    heartbeat_s: float = 1.0
    sample_s: float = 1.0
    stop_grace_s: float = 5.0
    orphan_s: float = 3600.0


class Links(Protocol[H_contra]):
    """How one runtime reaches and ends its hosts: the only transport-specific primitives
    the shared parts use."""

    def ready(self, h: H_contra) -> bool:
        """Can commands reach this host now?"""
        ...

    def deliver(self, h: H_contra, batch: list[dict[str, Any]]) -> bool:
        """Send a batch of commands, in order; False to keep them for the next try."""
        ...

    def alive(self, h: H_contra) -> bool: ...

    def kill(self, h: H_contra) -> None:
        """End the host and its task group at once."""
        ...

    def kill_task_group(self, h: H_contra) -> None:
        """SIGKILL the host's task group where this console can verify it."""
        ...

    def measurable(self, h: H_contra) -> bool:
        """Can psutil on this machine see the host's tasks?"""
        ...

    def save(self, h: H_contra) -> None:
        """Record where the host is (the ``processes`` row), if this runtime keeps one."""
        ...

    def close(self, h: H_contra) -> None:
        """Drop what connects the console to a host that is no more."""
        ...

    def release(self, h: H_contra) -> None:
        """At shutdown, after the host was asked to exit: reap or end what is left."""
        ...

    async def ended(self, h: H_contra, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds (never blocking the loop) for the host to end; True once it has."""
        ...


class Fleet(Generic[H]):
    """The shared state of a real runtime's parts, and the write-ahead outbox."""

    def __init__(self, timing: Timing, actor: str) -> None:
        self.timing = timing
        self.actor = actor
        """Who the log says acted when this runtime replaces agents (``local-runtime``, ``ray-runtime``)."""
        self.engine: Engine | None = None
        self.sink: RuntimeSink | None = None
        self.hosts: dict[str, H] = {}
        self.left_running: list[str] = []
        """Hosts this runtime started that its shutdown could not end (agent and pid)."""
        self.closing = False
        self.adopted: list[str] = []
        self.recovered: list[str] = []
        self.restored: dict[tuple[str, int], bool] = {}
        """The runs the log had running when this console opened (their ``start`` is sent
        again at attach, and the host answers ``started`` again): (task, attempt) -> its
        TASK_STARTED is in the log (:meth:`start_is_news`)."""
        self.loops: list[asyncio.Task[None]] = []
        self._rows: dict[str, ProcessRow | None] = {}
        """Each agent's processes row still to write: the row, or None to delete it (the
        last word per agent is the one that counts)."""
        self._wake: asyncio.Event | None = None

    # -- commands to hosts ---------------------------------------------------------------
    def send(self, h: H, msg: dict[str, Any]) -> None:
        h.outbox.append(msg)
        self.poke()

    def send_first(self, h: H, msg: dict[str, Any]) -> None:
        """Ahead of everything waiting (a stop for a run the log does not assign)."""
        h.outbox.insert(0, msg)
        self.poke()

    def command(self, agent_id: str, msg: dict[str, Any]) -> None:
        """Send to a live agent's host; nothing for an agent this runtime does not run."""
        h = self.hosts.get(agent_id)
        if h is not None and not h.dead:
            self.send(h, msg)

    def poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def fail_later(self, agent_id: str, task_id: str, why: str) -> None:
        """A task that cannot start fails on the next turn of the loop, after ``start_task`` returned."""

        def fail() -> None:
            if self.sink is not None:
                self.sink.task_failed(agent_id, task_id, why)

        asyncio.get_running_loop().call_soon(fail)

    # -- the processes table ------------------------------------------------------------
    def save_row(self, agent_id: str, pid: int, create_time: float, info: dict[str, Any]) -> None:
        self._rows[agent_id] = (agent_id, pid, create_time, info)
        self.poke()

    def forget_row(self, agent_id: str) -> None:
        self._rows[agent_id] = None
        self.poke()

    async def run_store_ops(self) -> None:
        engine = self.engine
        rows, self._rows = self._rows, {}
        if not rows or engine is None or engine.store is None:
            return  # nothing to write: the store's lock is not waited for
        saves = [row for row in rows.values() if row is not None]
        forgets = [agent for agent, row in rows.items() if row is None]
        async with engine.store_lock:
            await engine.store.apply_processes(saves, forgets)  # one commit for all of them

    # -- the loops ------------------------------------------------------------------------
    def start(self, links: Links[H], sampling: Callable[[], Any]) -> None:
        """Start the pump and the runtime's sampling loop (once)."""
        if self.loops:
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.loops = [loop.create_task(self.pump(links)), loop.create_task(sampling())]

    async def pump(self, links: Links[H]) -> None:
        """Store writes, then the engine's flush, then the commands: write-ahead.

        The commands sent are those queued before the flush began: their events are in
        what it commits. One queued while it runs (a report handled meanwhile) waits
        for the next flush, which its ``send`` has already asked for."""
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.run_store_ops()
            taken = [(h, h.outbox) for h in list(self.hosts.values()) if h.outbox]
            for h, _ in taken:
                h.outbox = []
            try:
                if self.engine is not None:
                    await self.engine.flush()
            except BaseException:
                for h, batch in taken:
                    h.outbox = batch + h.outbox
                raise
            for h, batch in taken:
                if links.ready(h) and links.deliver(h, batch):
                    h.reached = True
                else:
                    h.outbox = batch + h.outbox

    async def stop_loops(self) -> None:
        for t in self.loops:
            t.cancel()
        for t in self.loops:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self.loops = []

    # -- facts ---------------------------------------------------------------------------
    def owns_attempt(self, agent_id: str, task_id: str | None, attempt: Any) -> bool:
        """Is this (task, attempt) the one the log has running on this agent now?"""
        engine = self.engine
        if engine is None or task_id is None:
            return False
        a = engine.state.agents.get(agent_id)
        t = engine.state.tasks.get(task_id)
        return (
            a is not None
            and t is not None
            and a.current_task == task_id
            and t.agent == agent_id
            and type(attempt) is int  # JSON's true is not attempt 1
            and t.attempts == attempt
            and (t.status is _RUNNING or t.status is _PAUSED)
        )

    def start_is_news(self, task_id: str, attempt: Any) -> bool:
        """Is a run's ``started`` report one the log must record? Not for a run restored at
        open whose start the log holds, or was recorded since (its host answers the
        re-sent ``start``, and may also deliver the report it held when the old console died)."""
        key = (task_id, attempt)
        recorded = self.restored.get(key)
        if recorded is None:
            return True
        self.restored[key] = True
        return not recorded

    def start_unrecorded(self, task_id: str, attempt: Any) -> bool:
        """Is this a run restored at open whose start the log does not hold yet? (Then
        taken as recorded: the caller records it.)"""
        key = (task_id, attempt)
        if self.restored.get(key) is not False:
            return False
        self.restored[key] = True
        return True

    async def learn_restored(self, engine: Engine) -> None:
        """Which runs the log has running on live agents already have their TASK_STARTED
        (a bounded read of the log, :meth:`~core.store_reads.LogReads.started_runs`)."""
        s = engine.state
        running = {
            a.current_task: s.tasks[a.current_task].attempts
            for a in s.agents.values()
            if a.status in LIVE_AGENT and a.current_task
        }
        if not running or engine.store is None:
            return
        recorded = await engine.store.started_runs(running)
        self.restored = {(task, attempt): task in recorded for task, attempt in running.items()}

    def replenish(self, pool: str, target: int | None = None) -> list[str]:
        """Spawn agents until ``pool`` has ``target`` (default: its minimum) live agents."""
        engine = self.engine
        if engine is None or self.closing:
            return []
        from ..engine import EngineError

        p = engine.state.pools.get(pool)
        if p is None:
            return []
        want = p.min_size if target is None else target
        live = sum(1 for a in engine.state.agents.values() if a.pool == pool and a.status in LIVE_AGENT)
        added = []
        while live < want:
            try:
                added.append(engine.add_agent(pool, actor=self.actor))
            except EngineError:
                break
            live += 1
        return added

    def host_pids(self) -> dict[str, int]:
        """Live agents' host pids (an actor's: its worker's, on its node)."""
        return {a: h.pid for a, h in self.hosts.items() if not h.dead and h.pid is not None}

    def host_process(self, agent_id: str, links: Links[H]) -> tuple[int, float] | None:
        """The agent's host (pid, create time) where this machine's process table has it."""
        h = self.hosts.get(agent_id)
        if h is None or not h.pid or h.create_time is None or not links.measurable(h):
            return None
        return h.pid, h.create_time

    def host_starting(self, agent_id: str) -> bool:
        """The agent's host is started and still without a pid (a launcher's fork not yet answered)."""
        h = self.hosts.get(agent_id)
        return h is not None and not h.dead and h.pid is None

    def task_pgid(self, agent_id: str) -> int | None:
        h = self.hosts.get(agent_id)
        return h.task_pgid if h is not None and not h.dead else None
