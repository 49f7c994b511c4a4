"""The Ray runtime: each agent is a Ray actor, placed by Ray where the cluster has room.

The engine drives it exactly as it drives the local runtime, and most of the local
runtime's rules carry over unchanged because this *is* the local runtime with another
transport (a :class:`~core.runtimes.local.LocalRuntime` subclass): write-ahead
commands, the projection as the truth on (re)connection, idempotent ``start`` per
(task, attempt), the retry policy when an agent dies, the report handling.

What differs:

* An agent is an :class:`~core.runtimes.ray_agent.AgentActor` (detached, named
  ``<agent id>`` in a namespace derived from the database path) that runs the agent
  host's task runner on its node; commands go as numbered ``commands`` calls, reports
  come back from a long ``poll`` (awaited ObjectRefs: the engine's loop never blocks).
* Resources: the actor asks Ray for the largest ``cpu`` / ``memory_gb`` any task of its
  pool's specializations declares; a pool's specializations become custom resources
  ``opsdeck_spec_<name>`` where the cluster declares them (a node started with
  ``ray start --resources '{"opsdeck_spec_build": 100}'``). Ray's accounting is
  logical; the limits that are enforced are the agent host's, detected on each node
  (cgroup v2 or RLIMIT_AS + RSS watchdog, cgroup cpu.max or niceness) and shown per node.
* Failures: a poll that raises ``RayActorError`` (``ray.kill``, a worker or node lost)
  is ``agent_failed`` and a replacement actor is started; a poll that does not answer
  within three heartbeats is ``agent_unreachable``, and when it answers again the
  reports it buffered go to ``agent_reconnected``.
* A restarted host finds the actors of its namespace by name (``ray.get_actor``),
  adopts those of live agents (their hello says what they run and finished) and kills
  the ones the log no longer counts as live.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import hashlib
import ipaddress
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import ray
from ray._private import ray_constants
from ray._private import services as ray_services
from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
from ray.exceptions import ActorUnavailableError, RayActorError

from ..config import Config
from ..models import LIVE_AGENT, Agent, AgentStatus
from ..workflow_file import WorkflowFile, WorkflowFileError
from . import Capabilities
from .local import LocalRuntime, _Host, open_with, run_dir_for
from .ray_agent import AgentActor
from .sampler import same_process

if TYPE_CHECKING:
    from ..engine import Engine
    from ..models import TaskSpec, WorkflowSpec

SPEC_RESOURCE = "opsdeck_spec_"
NODES_SETTING = "ray_agent_nodes"
"""Setting: agent -> {"node": "host (ip)", "pid": the actor's worker pid on that node}."""
LIMITS_SETTING = "ray_node_limits"
"""Setting: "host (ip)" -> the limit mechanisms its actors detected there."""
UNANSWERED_HEARTBEATS = 3
TEMP_PREFIX = "opsdeck-ray-"
JOIN_PROBE_S = 5.0
PLACEMENT_GRACE_S = 60.0
"""How long a new actor may take to be placed and started before its silence counts."""
JOIN_TIMEOUT_S = 120.0


def namespace_for(db: str | Path) -> str:
    """One Ray namespace per database: a restarted host finds its own actors, nobody else's."""
    return "opsdeck-" + hashlib.sha1(str(Path(db).resolve()).encode()).hexdigest()[:16]


@dataclass
class RayCluster:
    """This process's connection to Ray, and whether it started the cluster itself."""

    address: str | None
    started: bool = False
    connected: bool = False
    temp_dir: str | None = None
    init_s: float = 0.0
    num_cpus: int = 0

    owner: threading.Thread | None = None
    release: threading.Event = field(default_factory=threading.Event)

    @classmethod
    async def open(cls, address: str | None, num_cpus: int, resources: dict[str, float]) -> RayCluster:
        """:meth:`join` on a thread of its own that lives until :meth:`leave`, without
        blocking the event loop. Two reasons for the thread: Ray replaces the SIGTERM
        handler only when started on the main thread, and the processes of a local
        instance are tied to the thread that started them (they are killed when it ends)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[RayCluster] = loop.create_future()

        def settle(result: RayCluster | None, exc: BaseException | None) -> None:
            if ready.done():
                return
            if exc is not None:
                ready.set_exception(exc)
            else:
                ready.set_result(result)  # type: ignore[arg-type]

        def own() -> None:
            try:
                c = cls.join(address, num_cpus, resources)
            except BaseException as exc:  # noqa: BLE001 - crosses the thread: the awaiting coroutine re-raises it
                loop.call_soon_threadsafe(settle, None, exc)
                return
            c.owner = threading.current_thread()
            loop.call_soon_threadsafe(settle, c, None)
            c.release.wait()
            c._disconnect()

        threading.Thread(target=own, name="opsdeck-ray", daemon=True).start()
        try:
            return await asyncio.wait_for(ready, JOIN_TIMEOUT_S)
        except TimeoutError:
            raise ConnectionError(
                f"Ray did not come up within {JOIN_TIMEOUT_S:g} s at {address or 'a local instance'}"
            ) from None

    @classmethod
    def join(cls, address: str | None, num_cpus: int, resources: dict[str, float]) -> RayCluster:
        """Start a local instance (``address`` None) or join ``address`` (``auto`` or HOST:PORT).
        Blocking (seconds); :meth:`open` calls it on its own thread."""
        c = cls(address)
        if ray.is_initialized():  # this process is already a driver (tests share one): reuse it
            return c
        t0 = time.monotonic()
        # Ray's core would install its own SIGTERM handler in this process (over the
        # host's, which stops the run cleanly): the host keeps its own. The constant was
        # read when ray was imported; the variable reaches the processes Ray starts.
        os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"] = "1"
        ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
        # ray.init enables faulthandler on sys.stderr, which under the console is Textual's
        # capture (no file descriptor): give it the real stderr first.
        if not faulthandler.is_enabled() and sys.__stderr__ is not None:
            with contextlib.suppress(ValueError, OSError):
                faulthandler.enable(file=sys.__stderr__, all_threads=False)
        if address is None:
            # A private, short temp dir (Ray's socket paths are length-limited) on loopback:
            # never joins another user's instance, never listens beyond this machine.
            _sweep_temp_dirs()
            c.temp_dir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir="/tmp")
            loopback_only()
            try:
                ray.init(
                    address="local",
                    num_cpus=num_cpus,
                    resources=resources or None,
                    include_dashboard=False,
                    _temp_dir=c.temp_dir,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
            except BaseException:
                shutil.rmtree(c.temp_dir, ignore_errors=True)
                raise
            c.started, c.num_cpus = True, num_cpus
        else:
            check_address(address)
            concrete = resolve_address(address)
            if is_loopback(concrete):  # a head on 127.0.0.1 serves this machine only: so does this driver
                loopback_only()
            # Ray turns its cluster-token auth on by itself only for a cluster it finds on its
            # own; for an explicit address, do what it does then (a token in ~/.ray/auth_token,
            # RAY_AUTH_MODE unset: use it).
            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
            ray.init(address=concrete, log_to_driver=False, logging_level=logging.ERROR)
        c.connected = True
        c.init_s = round(time.monotonic() - t0, 3)
        return c

    def where(self) -> str:
        if self.started:
            return f"a local Ray instance ({self.temp_dir}, {self.num_cpus} logical CPUs on {os.cpu_count()} cores)"
        return self.address or "the Ray instance this process already drives"

    def leave(self) -> None:
        """Disconnect; a cluster this process started is stopped, a joined one never is.
        Blocking: from the event loop, run it in an executor."""
        if self.owner is not None:
            self.release.set()
            self.owner.join(60.0)
            return
        self._disconnect()

    def _disconnect(self) -> None:
        if self.connected:
            ray.shutdown()
            self.connected = False
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None


@dataclass
class _Actor(_Host):
    """What the console knows about one agent's actor."""

    handle: Any = None
    node: dict[str, Any] = field(default_factory=dict)
    local_node: bool = False
    ready: bool = False
    gone: bool = False
    batch_no: int = 0
    cursor: int = 0
    adopted: bool = False


class RayRuntime(LocalRuntime):
    """Agents as Ray actors; tasks as process groups on the actors' nodes."""

    name = "ray"
    capabilities = Capabilities(processes=True, simulated=False, cluster=True)
    gone_reason = "agent actor gone while the console was down"

    def __init__(
        self,
        db: str | Path,
        cluster: RayCluster,
        heartbeat_s: float = 1.0,
        sample_s: float = 1.0,
        stop_grace_s: float = 5.0,
        orphan_s: float = 3600.0,
    ) -> None:
        super().__init__(
            run_dir_for(db), heartbeat_s=heartbeat_s, sample_s=sample_s, stop_grace_s=stop_grace_s, orphan_s=orphan_s
        )
        self.cluster = cluster
        self.namespace = namespace_for(db)
        self.hosts: dict[str, _Actor] = {}  # type: ignore[assignment]
        self.spec_resources: set[str] = set()
        self.nodes: dict[str, dict[str, Any]] = {}  # node ip -> last usage and limits
        self.resources: dict[str, dict[str, float]] = {}  # Ray's own view: total and available
        self.actor_started_s: list[float] = []

    async def machine_capacity(self) -> tuple[float, float, str]:
        """The cluster's CPUs and memory as Ray counts them."""
        total = await asyncio.get_running_loop().run_in_executor(None, ray.cluster_resources)
        return float(total.get("CPU", 0.0)), float(total.get("memory", 0.0)) / 2**30, "cluster"

    # -- reconciling after a restart ---------------------------------------------------
    async def _reconcile(self, engine: Engine) -> None:
        loop = asyncio.get_running_loop()
        total = await loop.run_in_executor(None, ray.cluster_resources)
        self.spec_resources = {k for k in total if k.startswith(SPEC_RESOURCE)}
        names = await loop.run_in_executor(None, self._named_actors)
        live = {a.id for a in engine.state.agents.values() if a.status in LIVE_AGENT}
        for name in sorted(names):
            handle = await loop.run_in_executor(None, self._get_actor, name)
            if handle is None:
                continue
            if name in live:
                self._adoptable[name] = handle
            else:  # an actor the log no longer counts as live: do not leave it behind
                with contextlib.suppress(Exception):
                    ray.kill(handle, no_restart=True)

    def _named_actors(self) -> list[str]:
        return [
            a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a.get("namespace") == self.namespace
        ]

    def _get_actor(self, name: str) -> Any:
        try:
            return ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            return None

    # -- agents --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """How this runtime places and limits (the limits themselves are probed on each
        node by its actors and recorded as they answer: ``ray_node_limits``)."""
        placement = (
            f"custom resources {sorted(self.spec_resources)}"
            if self.spec_resources
            else f"none: the cluster declares no {SPEC_RESOURCE}* resources"
        )
        return {
            "runtime": self.name,
            "cluster": self.capabilities.cluster,
            "address": self.cluster.address or "local instance",
            "namespace": self.namespace,
            "specialization_placement": placement,
            "ray_resources": f"logical (Ray's accounting); the enforced limits are per node: setting {LIMITS_SETTING}",
            "heartbeat_s": self.heartbeat_s,
            "sample_s": self.sample_s,
            "stop_grace_s": self.stop_grace_s,
        }

    def limits_line(self) -> str:
        m = self.mechanisms
        where = self.cluster.where()
        return (
            f"runtime ray on {where} (namespace {self.namespace}); Ray's resources are logical, the limits are "
            f"enforced on each node by the agent's task runner (this machine: memory={m.memory} cpu={m.cpu}); "
            f"specialization placement: {self.describe()['specialization_placement']}"
        )

    def actor_options(self, pool: str) -> dict[str, Any]:
        """Ray resource requests for an agent of ``pool``: the most any task it may run declares."""
        engine = self.engine
        specs = engine.state.pools[pool].specializations if engine is not None and pool in engine.state.pools else []
        return actor_requests(specs, list(self.specs.values()), self.spec_resources)

    def spawn_agent(self, agent: Agent) -> None:
        handle = self._adoptable.pop(agent.id, None)
        h = _Actor(agent.id, address=f"{self.namespace}/{agent.id}", spawned_at=time.monotonic())
        if handle is not None:
            h.handle, h.adopted = handle, True
            self.adopted.append(agent.id)
        else:
            h.handle = AgentActor.options(
                name=agent.id, namespace=self.namespace, lifetime="detached", **self.actor_options(agent.pool)
            ).remote(agent.id, self.heartbeat_s, self.sample_s, self.stop_grace_s, self.orphan_s)
        old = self.hosts.get(agent.id)
        if old is not None and not old.dead:
            self._kill_host(old)
        self.hosts[agent.id] = h
        h.conn = asyncio.get_running_loop().create_task(self._connection(h))

    def _save(self, h: _Host) -> None:
        """No ``processes`` row: an actor is found again by its name, not by a pid that
        may belong to another machine (where it runs is the ``ray_agent_nodes`` setting)."""

    def _alive(self, h: _Host) -> bool:
        return isinstance(h, _Actor) and not h.gone

    def _measurable(self, h: _Host) -> bool:
        """psutil sees an actor's task only on this machine's node."""
        return isinstance(h, _Actor) and h.local_node

    def _kill_host(self, h: _Host) -> None:
        """ray.kill the actor; its task's group too where this console can see it (same node)."""
        assert isinstance(h, _Actor)
        self._kill_task_group(h)
        with contextlib.suppress(Exception):
            ray.kill(h.handle, no_restart=True)

    def _kill_task_group(self, h: _Actor) -> None:
        # The task's first process dies with its actor (PR_SET_PDEATHSIG); what it started
        # in its group is killed here when the node is this machine. On another node the
        # group is only reached through the actor.
        if h.local_node and h.task_pgid and h.task_create_time and same_process(h.task_pgid, h.task_create_time):
            with contextlib.suppress(OSError):
                os.killpg(h.task_pgid, signal.SIGKILL)

    def _ready(self, h: _Host) -> bool:
        return isinstance(h, _Actor) and h.ready and not h.gone

    def _deliver(self, h: _Host, batch: list[dict[str, Any]]) -> bool:
        """One numbered ``commands`` call; the actor runs the batches in number order."""
        assert isinstance(h, _Actor)
        try:
            h.handle.commands.remote(h.batch_no, batch)
        except Exception:  # noqa: BLE001 - Ray down raises no common type: keep the batch for the next try
            return False
        h.batch_no += 1
        return True

    # -- the connection: hello, then polls -------------------------------------------------
    async def _connection(self, h: _Host) -> None:
        assert isinstance(h, _Actor)
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
        self._record_node(h)
        h.batch_no = int(hello.get("next_batch", 0))
        h.cursor = int(hello.get("seq", 0))  # what it said before this hello is in ``done``/``current``
        h.ready = True
        self._on_report(h, self._here(h, hello))
        self._poke()  # send what waited for the actor to be placed
        answer_s = UNANSWERED_HEARTBEATS * self.heartbeat_s + 1.0
        while not h.dead:
            try:
                pending = asyncio.ensure_future(h.handle.poll.remote(h.cursor, self.heartbeat_s))
            except Exception:  # noqa: BLE001 - Ray itself unavailable (no common type): silent, try again
                self._unanswered(h)
                await asyncio.sleep(self.heartbeat_s)
                continue
            reports: list[dict[str, Any]] | None = None
            while reports is None and not h.dead:
                try:
                    reports = await asyncio.wait_for(asyncio.shield(pending), answer_s)
                except TimeoutError:
                    self._unanswered(h)
                except ActorUnavailableError:
                    self._unanswered(h)
                    await asyncio.sleep(self.heartbeat_s)
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

    def _record_node(self, h: _Actor) -> None:
        """Each live agent's node, in the log (setting ``ray_agent_nodes``) for every console."""
        engine = self.engine
        if engine is None or engine.readonly:
            return
        live = {a.id for a in engine.state.agents.values() if a.status in LIVE_AGENT}
        where = {
            a: {"node": node_label(x.node), "pid": x.node.get("pid")}
            for a, x in sorted(self.hosts.items())
            if a in live and x.node and not x.dead
        }
        if engine.state.settings.get(NODES_SETTING) != where:
            engine.set_setting(NODES_SETTING, where, actor="ray-runtime")
        limits = {
            node_label(x.node): self.nodes.get(str(x.node.get("ip")), {}).get("limits")
            for x in self.hosts.values()
            if x.node
        }
        if engine.state.settings.get(LIMITS_SETTING) != limits:
            engine.set_setting(LIMITS_SETTING, dict(sorted(limits.items())), actor="ray-runtime")

    async def _hello(self, h: _Actor) -> dict[str, Any]:
        """The actor's first answer, once Ray has placed it and started its worker (seconds
        when many start at once). Until then, for up to ``PLACEMENT_GRACE_S``, the agent
        counts as starting, not silent: Ray has it and has not said it failed."""
        pending = asyncio.ensure_future(h.handle.hello.remote())
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(pending), self.heartbeat_s)
            except TimeoutError:
                if self.sink is not None and time.monotonic() - h.spawned_at < PLACEMENT_GRACE_S and not h.adopted:
                    self.sink.agent_heartbeat(h.agent)
            except asyncio.CancelledError:
                pending.cancel()
                raise

    def _unanswered(self, h: _Actor) -> None:
        if not h.lost and self.sink is not None and not h.retiring:
            h.lost = True
            self.sink.agent_unreachable(h.agent)

    def _ended(self, h: _Actor, exc: BaseException) -> None:
        """The actor is gone: expected when retiring, else the agent died."""
        h.gone = True
        if h.retiring or self.closing:
            self._gone(h)
            return
        self._kill_task_group(h)
        self._died(h, f"agent actor died ({_cause(exc)})")

    def _here(self, h: _Actor, msg: dict[str, Any]) -> dict[str, Any]:
        """A task's pgid means something to this console only on its own machine."""
        if h.local_node:
            return msg
        msg = dict(msg)
        msg.pop("pgid", None)
        msg.pop("create_time", None)
        if isinstance(msg.get("current"), dict):
            msg["current"] = {k: v for k, v in msg["current"].items() if k not in ("pgid", "create_time")}
        return msg

    def _batch(self, h: _Actor, reports: list[dict[str, Any]]) -> None:
        engine, sink = self.engine, self.sink
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
            self._on_report(h, self._here(h, r))

    def _reconnect(self, h: _Actor, reports: list[dict[str, Any]]) -> set[int]:
        """Back after silence: the task facts it buffered go to ``agent_reconnected``
        (applied once, in the actor's order); returns the reports so applied."""
        assert self.engine is not None and self.sink is not None
        buffered: list[dict[str, Any]] = []
        partial: dict[str, Any] | None = None
        last_progress: dict[str, Any] | None = None
        task = None
        for r in reports:
            kind, task_id = r.get("t"), r.get("task")
            if not self._owns_attempt(h.agent, task_id, r.get("attempt")):
                continue
            task = task_id
            if kind in ("started", "finished", "failed"):
                item = {"seq": r["seq"], "kind": kind, "task_id": task_id}
                if kind != "started":
                    item["output"] = r.get("output")
                if kind == "failed":
                    item["error"] = str(r.get("error", "failed"))
                buffered.append(item)
                if kind == "started":
                    h.task_pgid, h.task_create_time = self._here(h, r).get("pgid"), self._here(h, r).get("create_time")
                else:
                    h.task_pgid = h.task_create_time = None
            elif kind == "heartbeat" and r.get("changed"):
                last_progress = {
                    "seq": r["seq"],
                    "kind": "progress",
                    "task_id": task_id,
                    "progress": float(r.get("progress", 0.0)),
                    "output": r.get("output"),
                }
                partial = r.get("partial") or partial
        if last_progress is not None:
            buffered.append(last_progress)
            buffered.sort(key=lambda b: b["seq"])
        self.sink.agent_reconnected(h.agent, buffered)
        if partial and task is not None and self._owns_attempt(h.agent, task, self.engine.state.tasks[task].attempts):
            self.engine.task_progress(h.agent, task, self.engine.state.tasks[task].context.progress, None, partial)
        return {b["seq"] for b in buffered}

    def _usage(self, h: _Actor, r: dict[str, Any]) -> None:
        """psutil on the node: the actor's tree for the agent, the node for the machine."""
        node = self.nodes.setdefault(str(r.get("node")), {})
        node.update(cpu_pct=r.get("node_cpu_pct"), memory_pct=r.get("node_memory_pct"), at=time.monotonic())
        h.last_report = time.monotonic()
        if self.sink is not None:
            self.sink.usage(h.agent, float(r.get("cpu_pct", 0.0)), float(r.get("rss_mb", 0.0)))

    # -- machine and cluster sampling --------------------------------------------------------
    async def _sample_loop(self) -> None:
        """Every ``sample_s``: each node's usage as its agents last saw it, the cluster's
        average as the system's (the engine's liveness check runs there), Ray's resources."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.sample_s)
            sink, engine = self.sink, self.engine
            if sink is None:
                continue
            now = time.monotonic()
            fresh = {ip: n for ip, n in self.nodes.items() if "at" in n and now - n["at"] < 3 * self.sample_s}
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
        h = self.hosts.get(agent_id)
        return dict(h.node) if h is not None else {}

    # -- ending -----------------------------------------------------------------------------
    async def shutdown(self, release: bool = True) -> None:
        """Retire every actor (their tasks stop), then leave Ray (stopping it if we started it)."""
        await super().shutdown(release)
        for h in self.hosts.values():  # a detached actor that did not exit by itself is killed
            if not h.gone:
                self._kill_host(h)
        await asyncio.get_running_loop().run_in_executor(None, self.cluster.leave)

    def host_pids(self) -> dict[str, int]:
        """Live agents' actor worker pids (on their nodes)."""
        return {a: h.pid for a, h in self.hosts.items() if not h.dead and h.pid is not None}


def resolve_address(address: str) -> str:
    """``auto`` as Ray resolves it (``RAY_ADDRESS``, then the cluster this machine's
    ``ray start`` made); ConnectionError when there is none. Other addresses as given."""
    if address != "auto":
        return address
    found = ray_services.get_ray_address_from_environment("auto", None)
    if not found:
        raise ConnectionError(
            "--address auto: no Ray cluster was started on this machine (`ray start --head`) and RAY_ADDRESS is not set"
        )
    return str(found)


def is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(address: str) -> None:
    """ConnectionError, saying why, unless ``address`` (``auto`` resolved) is a HOST:PORT
    that answers: fail at once, before anything is created (Ray itself retries for minutes)."""
    address = resolve_address(address)
    if "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConnectionError(f"--address {address!r} is not auto or HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=JOIN_PROBE_S).close()
    except OSError as exc:
        raise ConnectionError(
            f"nothing answers at {address} ({exc.strerror or exc}); start the head with "
            f"`ray start --head` and pass the address it prints"
        ) from None


def _sweep_temp_dirs() -> None:
    """Remove the temp dirs of local instances whose host was killed (SIGKILL leaves
    them): ours, older than two minutes, and no live process mentions them."""
    now = time.time()
    mine = [
        d
        for d in Path("/tmp").glob(TEMP_PREFIX + "*")
        if d.is_dir() and d.stat().st_uid == os.getuid() and now - d.stat().st_mtime > 120
    ]  # not one being set up
    if not mine:
        return
    in_use: set[str] = set()
    for p in psutil.process_iter(["cmdline"]):
        line = " ".join(p.info.get("cmdline") or [])
        in_use.update(str(d) for d in mine if str(d) in line)
    for d in mine:
        if str(d) not in in_use:
            shutil.rmtree(d, ignore_errors=True)


def loopback_only() -> None:
    """A local instance serves this machine only: Ray's single-machine mode (its switch for
    platforms without cluster support) makes every process use 127.0.0.1 instead of the
    machine's network address. The variable reaches the processes Ray starts; the module
    constant was read when ray was imported, so it is set too."""
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def node_label(node: dict[str, Any]) -> str:
    return f"{node.get('hostname')} ({node.get('ip')})"


def actor_requests(specializations: list[str], tasks: list[TaskSpec], spec_resources: set[str]) -> dict[str, Any]:
    """``num_cpus`` / ``memory`` / custom ``resources`` for an actor of a pool with these
    specializations: the most any of ``tasks`` it may run declares."""
    mine = [t for t in tasks if t.specialization in specializations]
    cpu = max((t.cpu for t in mine), default=0.0)
    mem = max((t.memory_gb for t in mine), default=0.0)
    opts: dict[str, Any] = {"num_cpus": cpu}
    if mem > 0:
        opts["memory"] = int(mem * 1024**3)
    res = {SPEC_RESOURCE + s: 0.001 for s in sorted(specializations) if SPEC_RESOURCE + s in spec_resources}
    if res:
        opts["resources"] = res
    return opts


def fleet_requests(wfile: WorkflowFile, specs: list[WorkflowSpec], declared: set[str]) -> tuple[float, float]:
    """(CPUs, memory bytes) Ray must hold for every pool's ``size`` actors at once."""
    tasks = [t for spec in specs for ph in spec.phases for t in ph.tasks]
    cpu = mem = 0.0
    for p in wfile.pools:
        want = actor_requests(list(p.specializations), tasks, declared)
        cpu += p.size * want["num_cpus"]
        mem += p.size * want.get("memory", 0)
    return cpu, mem


def placement_problems(wfile: WorkflowFile, specs: list[WorkflowSpec], nodes: list[dict[str, Any]]) -> list[str]:
    """What Ray could never place: a pool's actor that no live node can hold, or the
    fleet beyond the cluster's total (the actors would wait forever)."""
    alive = [n.get("Resources") or {} for n in nodes if n.get("Alive")]
    declared = {k for r in alive for k in r if k.startswith(SPEC_RESOURCE)}
    tasks = [t for spec in specs for ph in spec.phases for t in ph.tasks]
    problems = []
    cpu, mem = fleet_requests(wfile, specs, declared)
    have_cpu, have_mem = sum(r.get("CPU", 0.0) for r in alive), sum(r.get("memory", 0.0) for r in alive)
    if cpu > have_cpu + 1e-9 or mem > have_mem:
        problems.append(
            f"pools: key 'size': the pools' {sum(p.size for p in wfile.pools)} agents need {cpu:g} CPU and "
            f"{mem / 1024**3:.1f} GB memory together (each agent: the most its pool's tasks declare); "
            f"the Ray cluster has {have_cpu:g} CPU and {have_mem / 1024**3:.1f} GB"
        )
    for i, p in enumerate(wfile.pools):
        want = actor_requests(list(p.specializations), tasks, declared)
        need = {"CPU": want["num_cpus"], "memory": want.get("memory", 0), **want.get("resources", {})}
        if not any(all(r.get(k, 0.0) >= v for k, v in need.items() if v) for r in alive):
            biggest = max(alive, key=lambda r: r.get("CPU", 0.0), default={})
            problems.append(
                f"pools[{i}] {p.name!r}: its agents need {want['num_cpus']:g} CPU, "
                f"{want.get('memory', 0) / 1024**3:g} GB memory{' and ' + ', '.join(want['resources']) if want.get('resources') else ''} "
                f"(the most its tasks declare) and no Ray node has that much (the largest: {biggest.get('CPU', 0.0):g} CPU, "
                f"{biggest.get('memory', 0.0) / 1024**3:.1f} GB)"
            )
    return problems


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


async def open_ray(
    db: str | Path,
    wfile: WorkflowFile,
    specs: list[WorkflowSpec],
    config: Config | None = None,
    address: str | None = None,
    stop_grace_s: float | None = None,
    subscriber: Any = None,
) -> tuple[Engine, RayRuntime]:
    """Open ``db`` on the Ray runtime (a local instance, or the cluster at ``address``)
    and bring it to the workflow file, as :func:`~core.runtimes.local.open_local` does."""
    rt = wfile.runtime

    async def make(config: Config) -> RayRuntime:
        offered = {SPEC_RESOURCE + s: 1000.0 for p in wfile.pools for s in p.specializations}
        # A local instance gets the machine's cores as logical CPUs, or what the file's
        # fleet asks for if that is more (the local runtime, too, runs it on these cores).
        num_cpus = max(os.cpu_count() or 1, math.ceil(fleet_requests(wfile, specs, set(offered))[0] - 1e-9))
        cluster = await RayCluster.open(address, num_cpus, offered)
        problems = placement_problems(wfile, specs, await asyncio.get_running_loop().run_in_executor(None, ray.nodes))
        if problems:  # before the database is opened: nothing was created
            await asyncio.get_running_loop().run_in_executor(None, cluster.leave)
            raise WorkflowFileError("workflow file", problems)
        return RayRuntime(
            db,
            cluster,
            heartbeat_s=rt.heartbeat_s,
            sample_s=rt.sample_s,
            stop_grace_s=rt.stop_grace_s if stop_grace_s is None else stop_grace_s,
        )

    return await open_with(make, db, wfile, specs, config, subscriber)
