"""The Ray runtime's agents: one detached Ray actor each, reached by calls and polls.

An agent is an :class:`~core.runtimes.ray_agent.AgentActor` (named ``<agent id>`` in a
namespace derived from the database path) that runs the agent host's task runner on
its node; commands go as numbered ``commands`` calls, reports come back from a long
``poll`` (awaited ObjectRefs: the engine's loop never blocks) and go to the shared
:mod:`.reports`, as the local runtime's socket reports do.

* A poll that raises ``RayActorError`` (``ray.kill``, a worker or node lost) is the
  agent's death (:mod:`.supervise` replaces it); a poll that does not answer within
  three heartbeats is ``agent_unreachable``, and when it answers again the reports
  it buffered go to ``agent_reconnected``.
* A restarted console finds the actors of its namespace by name, adopts those of live
  agents and kills the ones the log no longer counts as live.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psutil
import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from ..merge import BufferedReport
from ..models import LIVE_AGENT, AgentStatus
from .adoption import killpg_verified
from .fleet import Fleet, HostRecord
from .opening import RAY_ACTORS, Proving, tell
from .ray_agent import AgentActor
from .ray_cluster import SPEC_RESOURCE, actor_requests
from .reports import Reports
from .sampler import Sampler
from .supervise import Supervisor

if TYPE_CHECKING:
    from ..engine import Engine
    from ..models import TaskSpec

NODES_SETTING = "ray_agent_nodes"
"""Setting: agent -> {"node": "host (ip)", "pid": the actor's worker pid on that node}."""
LIMITS_SETTING = "ray_node_limits"
"""Setting: "host (ip)" -> the limit mechanisms its actors detected there."""
UNANSWERED_HEARTBEATS = 3
PLACEMENT_GRACE_S = 60.0
"""How long a new actor may take to be placed and started before its silence counts."""


@dataclass
class ActorHost(HostRecord):
    """What the console knows about one agent's actor."""

    handle: Any = None
    node: dict[str, Any] = field(default_factory=dict)
    local_node: bool = False
    ready: bool = False
    gone: bool = False
    batch_no: int = 0
    cursor: int = 0
    adopted: bool = False


class ActorLinks:
    """An actor: numbered command batches, ``ray.kill``; its task group only on this machine."""

    def ready(self, h: ActorHost) -> bool:
        return h.ready and not h.gone

    def deliver(self, h: ActorHost, batch: list[dict[str, Any]]) -> bool:
        """One numbered ``commands`` call; the actor runs the batches in number order."""
        try:
            h.handle.commands.remote(h.batch_no, batch)
        except Exception:  # noqa: BLE001 - Ray down raises no common type: keep the batch for the next try
            return False
        h.batch_no += 1
        return True

    def alive(self, h: ActorHost) -> bool:
        return not h.gone

    def kill(self, h: ActorHost) -> None:
        """ray.kill the actor; its task's group too where this console can see it (same node)."""
        self.kill_task_group(h)
        with contextlib.suppress(Exception):
            ray.kill(h.handle, no_restart=True)

    def kill_task_group(self, h: ActorHost) -> None:
        # The task's first process dies with its actor (PR_SET_PDEATHSIG); what it started
        # in its group is killed here when the node is this machine. On another node the
        # group is only reached through the actor.
        if h.local_node:
            killpg_verified(h.task_pgid, h.task_create_time)

    def measurable(self, h: ActorHost) -> bool:
        """psutil sees an actor's task only on this machine's node."""
        return h.local_node

    def save(self, h: ActorHost) -> None:
        """No ``processes`` row: an actor is found again by its name, not by a pid that
        may belong to another machine (where it runs is the ``ray_agent_nodes`` setting)."""

    def close(self, h: ActorHost) -> None:
        """Nothing to close: the polls end with the actor."""

    def release(self, h: ActorHost) -> None:
        """A detached actor that did not exit by itself is killed."""
        if not h.gone:
            self.kill(h)

    async def ended(self, h: ActorHost, timeout: float) -> bool:
        """An actor's end is seen by its polls (no event on this machine): checked every 50 ms."""
        deadline = time.monotonic() + timeout
        while not h.gone and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return h.gone


class RayActors:
    """Placing, adopting, polling and sampling the agents' actors."""

    def __init__(
        self,
        fleet: Fleet[ActorHost],
        links: ActorLinks,
        supervisor: Supervisor[ActorHost],
        reports: Reports[ActorHost],
        namespace: str,
        sampler: Sampler,
    ) -> None:
        self.fleet = fleet
        self.links = links
        self.supervisor = supervisor
        self.reports = reports
        self.namespace = namespace
        self.sampler = sampler
        self.adoptable: dict[str, Any] = {}
        """Live agents' actors found by name on opening (their handles)."""
        self.spec_resources: set[str] = set()
        self.nodes: dict[str, dict[str, Any]] = {}  # node ip -> last usage and limits
        self.resources: dict[str, dict[str, float]] = {}  # Ray's own view: total and available
        self.actor_started_s: list[float] = []

    # -- reconciling after a restart ---------------------------------------------------
    async def reconcile(self, engine: Engine) -> None:
        """Adopt the actors of live agents; kill the ones the log no longer counts as live.
        Finding the live agents' actors is said through :data:`~.opening.PROVING` when it
        starts and when it ends (as the local runtime's proofs are)."""
        loop = asyncio.get_running_loop()
        live = {a.id for a in engine.state.agents.values() if a.status in LIVE_AGENT}
        proving = Proving(len(live), RAY_ACTORS) if live else None
        if proving is not None:
            tell(proving)
        total = await loop.run_in_executor(None, ray.cluster_resources)
        self.spec_resources = {k for k in total if k.startswith(SPEC_RESOURCE)}
        names = await loop.run_in_executor(None, self._named_actors)
        for name in sorted(names):
            handle = await loop.run_in_executor(None, self._get_actor, name)
            if handle is None:
                continue
            if name in live:
                self.adoptable[name] = handle
            else:  # an actor the log no longer counts as live: do not leave it behind
                with contextlib.suppress(Exception):
                    ray.kill(handle, no_restart=True)
        if proving is not None:
            proving.ended(len(self.adoptable))
            tell(proving)

    def _named_actors(self) -> list[str]:
        return [
            a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a.get("namespace") == self.namespace
        ]

    def _get_actor(self, name: str) -> Any:
        try:
            return ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            return None

    # -- spawning -------------------------------------------------------------------------
    def actor_options(self, pool: str, tasks: list[TaskSpec]) -> dict[str, Any]:
        """Ray resource requests for an agent of ``pool``: the most any task it may run declares."""
        engine = self.fleet.engine
        specs = engine.state.pools[pool].specializations if engine is not None and pool in engine.state.pools else []
        return actor_requests(specs, tasks, self.spec_resources)

    def spawn(self, agent_id: str, pool: str, tasks: list[TaskSpec]) -> None:
        """Adopt the agent's actor found on opening, or ask Ray to place a new one."""
        fleet, timing = self.fleet, self.fleet.timing
        handle = self.adoptable.pop(agent_id, None)
        h = ActorHost(agent_id, address=f"{self.namespace}/{agent_id}", spawned_at=time.monotonic())
        if handle is not None:
            h.handle, h.adopted = handle, True
            fleet.adopted.append(agent_id)
        else:
            h.handle = AgentActor.options(
                name=agent_id, namespace=self.namespace, lifetime="detached", **self.actor_options(pool, tasks)
            ).remote(agent_id, timing.heartbeat_s, timing.sample_s, timing.stop_grace_s, timing.orphan_s)
        self.supervisor.replace(fleet.hosts.get(agent_id))
        fleet.hosts[agent_id] = h
        h.conn = asyncio.get_running_loop().create_task(self.connection(h))

    # -- the connection: hello, then polls (where an actor's reports are read) ---------
    async def connection(self, h: ActorHost) -> None:
        fleet = self.fleet
        heartbeat_s = fleet.timing.heartbeat_s
        try:
            hello = await self._hello(h)
        except (RayActorError, asyncio.CancelledError) as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._ended(h, exc)
            return
        if not h.adopted:
            self.actor_started_s.append(round(time.monotonic() - h.spawned_at, 3))
        h.node = {k: hello.get(k) for k in ("hostname", "ip", "node_id", "pid")}
        h.pid, h.create_time = hello.get("pid"), hello.get("create_time")
        h.local_node = (
            hello.get("hostname") == socket.gethostname() and abs(hello.get("boot_time", 0) - psutil.boot_time()) < 2
        )
        self.nodes.setdefault(str(hello.get("ip")), {})["limits"] = hello.get("limits")
        self._record_node()
        h.batch_no = int(hello.get("next_batch", 0))
        h.cursor = int(hello.get("seq", 0))  # what it said before this hello is in ``done``/``current``
        h.ready = True
        self.reports.on_report(h, self._here(h, hello))
        fleet.poke()  # send what waited for the actor to be placed
        answer_s = UNANSWERED_HEARTBEATS * heartbeat_s + 1.0
        while not h.dead:
            try:
                pending = asyncio.ensure_future(h.handle.poll.remote(h.cursor, heartbeat_s))
            except Exception:  # noqa: BLE001 - Ray itself unavailable (no common type): silent, try again
                self._unanswered(h)
                await asyncio.sleep(heartbeat_s)
                continue
            reports: list[dict[str, Any]] | None = None
            while reports is None and not h.dead:
                try:
                    reports = await asyncio.wait_for(asyncio.shield(pending), answer_s)
                except TimeoutError:
                    self._unanswered(h)
                except ActorUnavailableError:
                    self._unanswered(h)
                    await asyncio.sleep(heartbeat_s)
                    break  # ask again
                except RayActorError as exc:
                    self._ended(h, exc)
                    return
                except asyncio.CancelledError:
                    pending.cancel()
                    return
            if reports:
                h.cursor = max(r["seq"] for r in reports)
                self._batch(h, reports)

    def _record_node(self) -> None:
        """Each live agent's node, in the log (setting ``ray_agent_nodes``) for every console."""
        engine = self.fleet.engine
        if engine is None or engine.readonly:
            return
        live = {a.id for a in engine.state.agents.values() if a.status in LIVE_AGENT}
        hosts = self.fleet.hosts
        where = {
            a: {"node": node_label(x.node), "pid": x.node.get("pid")}
            for a, x in sorted(hosts.items())
            if a in live and x.node and not x.dead
        }
        if engine.state.settings.get(NODES_SETTING) != where:
            engine.set_setting(NODES_SETTING, where, actor=self.fleet.actor)
        limits = {
            node_label(x.node): self.nodes.get(str(x.node.get("ip")), {}).get("limits")
            for x in hosts.values()
            if x.node
        }
        if engine.state.settings.get(LIMITS_SETTING) != limits:
            engine.set_setting(LIMITS_SETTING, dict(sorted(limits.items())), actor=self.fleet.actor)

    async def _hello(self, h: ActorHost) -> dict[str, Any]:
        """The actor's first answer, once Ray has placed it and started its worker (seconds
        when many start at once). Until then, for up to ``PLACEMENT_GRACE_S``, the agent
        counts as starting, not silent: Ray has it and has not said it failed."""
        pending = asyncio.ensure_future(h.handle.hello.remote())
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(pending), self.fleet.timing.heartbeat_s)
            except TimeoutError:
                sink = self.fleet.sink
                if sink is not None and time.monotonic() - h.spawned_at < PLACEMENT_GRACE_S and not h.adopted:
                    sink.agent_heartbeat(h.agent)
            except asyncio.CancelledError:
                pending.cancel()
                raise

    def _unanswered(self, h: ActorHost) -> None:
        sink = self.fleet.sink
        if not h.lost and sink is not None and not h.retiring:
            h.lost = True
            sink.agent_unreachable(h.agent)

    def _ended(self, h: ActorHost, exc: BaseException) -> None:
        """The actor is gone: expected when retiring, else the agent died."""
        h.gone = True
        if h.retiring or self.fleet.closing:
            self.supervisor.gone(h)
            return
        self.supervisor.died(h, f"agent actor died ({_cause(exc)})")

    def _here(self, h: ActorHost, msg: dict[str, Any]) -> dict[str, Any]:
        """A task's pgid means something to this console only on its own machine."""
        if h.local_node:
            return msg
        msg = dict(msg)
        msg.pop("pgid", None)
        msg.pop("create_time", None)
        if isinstance(msg.get("current"), dict):
            msg["current"] = {k: v for k, v in msg["current"].items() if k not in ("pgid", "create_time")}
        return msg

    def _batch(self, h: ActorHost, reports: list[dict[str, Any]]) -> None:
        engine, sink = self.fleet.engine, self.fleet.sink
        if engine is None or sink is None:
            return
        a = engine.state.agents.get(h.agent)
        applied: set[int] = set()
        h.lost = False
        if a is not None and a.status is AgentStatus.UNREACHABLE:
            applied = self._reconnect(h, reports)
        for r in reports:
            if r["seq"] in applied:
                continue
            if r.get("t") == "usage":
                self._usage(h, r)
                continue
            self.reports.on_report(h, self._here(h, r))

    def _reconnect(self, h: ActorHost, reports: list[dict[str, Any]]) -> set[int]:
        """Back after silence: the task facts it buffered go to ``agent_reconnected``
        (applied once, in the actor's order); returns the reports so applied. A restored
        run's start the log lacks is recorded first, when the run began (the answer to
        its start sent again, or its end, says)."""
        fleet = self.fleet
        engine, sink = fleet.engine, fleet.sink
        assert engine is not None and sink is not None
        buffered: list[BufferedReport] = []
        unstarted: list[tuple[str, Any]] = []
        late: set[int] = set()
        partial: dict[str, Any] | None = None
        last_progress: BufferedReport | None = None
        task = None
        for r in reports:
            kind, task_id = r.get("t"), r.get("task")
            attempt: Any = r.get("attempt")
            if task_id is None or not fleet.owns_attempt(h.agent, task_id, attempt):
                continue
            if kind == "started" and fleet.restored:
                lacked = fleet.restored.get((task_id, attempt)) is False
                if not fleet.start_is_news(task_id, attempt):
                    continue  # a start the log holds: its group is taken when it is reported as usual
                if lacked and r.get("started_at") is not None:
                    unstarted.append((task_id, r["started_at"]))
                    late.add(r["seq"])
                    h.task_pgid, h.task_create_time = self._here(h, r).get("pgid"), self._here(h, r).get("create_time")
                    task = task_id
                    continue
            task = task_id
            if (
                kind in ("finished", "failed")
                and fleet.restored
                # a failure that says no start never ran; a finished run did (an older actor: no time)
                and (r.get("started_at") is not None or kind == "finished")
                and fleet.start_unrecorded(task_id, r.get("attempt"))
            ):
                unstarted.append((task_id, r.get("started_at")))  # its start the log lacks and the actor no longer has
            if kind in ("started", "finished", "failed"):
                output = None if kind == "started" else r.get("output")
                error = str(r.get("error", "failed")) if kind == "failed" else None
                buffered.append(BufferedReport(r["seq"], kind, task_id, output=output, error=error))
                if kind == "started":
                    h.task_pgid, h.task_create_time = self._here(h, r).get("pgid"), self._here(h, r).get("create_time")
                else:
                    h.task_pgid = h.task_create_time = None
            elif kind == "heartbeat" and r.get("changed"):
                last_progress = BufferedReport(
                    r["seq"], "progress", task_id, progress=float(r.get("progress", 0.0)), output=r.get("output")
                )
                partial = r.get("partial") or partial
        if last_progress is not None:
            buffered.append(last_progress)
            buffered.sort(key=lambda b: b.seq)
        for task_id, began in unstarted:  # it did start, when its end says (as Reports._ended records it)
            sink.task_started(h.agent, task_id, began)
        sink.agent_reconnected(h.agent, buffered)
        if partial and task is not None and fleet.owns_attempt(h.agent, task, engine.state.tasks[task].attempts):
            engine.task_progress(h.agent, task, engine.state.tasks[task].context.progress, None, partial)
        return {b.seq for b in buffered} | late

    def _usage(self, h: ActorHost, r: dict[str, Any]) -> None:
        """psutil on the node: the actor's tree for the agent, the node for the machine."""
        node = self.nodes.setdefault(str(r.get("node")), {})
        node.update(cpu_pct=r.get("node_cpu_pct"), memory_pct=r.get("node_memory_pct"), at=time.monotonic())
        h.last_report = time.monotonic()
        if self.fleet.sink is not None:
            self.fleet.sink.usage(h.agent, float(r.get("cpu_pct", 0.0)), float(r.get("rss_mb", 0.0)))

    # -- machine and cluster sampling --------------------------------------------------------
    async def sample_loop(self) -> None:
        """Every ``sample_s``: each node's usage as its agents last saw it, the cluster's
        average as the system's (the engine's liveness check runs there), Ray's resources."""
        loop = asyncio.get_running_loop()
        sample_s = self.fleet.timing.sample_s
        while True:
            await asyncio.sleep(sample_s)
            sink, engine = self.fleet.sink, self.fleet.engine
            if sink is None:
                continue
            now = time.monotonic()
            fresh = {ip: n for ip, n in self.nodes.items() if "at" in n and now - n["at"] < 3 * sample_s}
            if engine is not None:
                t = engine.clock.now()
                for ip, n in fresh.items():
                    engine.telemetry.record(t, "cpu_pct", f"node:{ip}", float(n["cpu_pct"]))
                    engine.telemetry.record(t, "memory_pct", f"node:{ip}", float(n["memory_pct"]))
            if fresh:
                cpu = sum(float(n["cpu_pct"]) for n in fresh.values()) / len(fresh)
                mem = sum(float(n["memory_pct"]) for n in fresh.values()) / len(fresh)
            else:
                cpu, mem = self.sampler.system()  # no agent reported: this machine
            sink.system_usage(round(cpu, 2), round(mem, 2))
            with contextlib.suppress(Exception):
                total, free = await loop.run_in_executor(None, _resources)
                self.resources = {"total": total, "available": free}
                if engine is not None:  # the cluster as Ray accounts it, for the console's header
                    t = engine.clock.now()
                    u = self.cluster_usage()
                    for name in ("cpus", "cpus_free", "memory_gb", "memory_gb_free"):
                        engine.telemetry.record(t, f"ray_{name}", "cluster", float(u[name]))

    def cluster_usage(self) -> dict[str, Any]:
        """The cluster's CPUs and memory as Ray accounts them (total, free), for the console."""
        total, free = self.resources.get("total", {}), self.resources.get("available", {})
        return {
            "cpus": total.get("CPU", 0.0),
            "cpus_free": free.get("CPU", 0.0),
            "memory_gb": round(total.get("memory", 0.0) / 1024**3, 2),
            "memory_gb_free": round(free.get("memory", 0.0) / 1024**3, 2),
            "nodes": len(self.nodes),
        }

    def node_of(self, agent_id: str) -> dict[str, Any]:
        """Where an agent's actor runs (hostname, ip, Ray node id, worker pid)."""
        h = self.fleet.hosts.get(agent_id)
        return dict(h.node) if h is not None else {}


def node_label(node: dict[str, Any]) -> str:
    return f"{node.get('hostname')} ({node.get('ip')})"


def _resources() -> tuple[dict[str, float], dict[str, float]]:
    return ray.cluster_resources(), ray.available_resources()


def _cause(exc: BaseException) -> str:
    """The useful sentence of a Ray actor error (they run to many lines)."""
    text = str(exc)
    for hint, said in (
        ("ray.kill", "killed by ray.kill"),
        ("node", "its node or worker was lost"),
        ("exit_actor", "it exited"),
        ("worker", "its worker process died"),
    ):
        if hint in text:
            return said
    return type(exc).__name__
