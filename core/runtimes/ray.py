"""The Ray runtime: each agent is a Ray actor, placed by Ray where the cluster has room.

The engine drives it exactly as it drives the local runtime, and most of the local
runtime's rules carry over unchanged because it is composed of the same parts
(:mod:`.fleet`): write-ahead commands, the projection as the truth on (re)connection,
idempotent ``start`` per (task, attempt) (:mod:`.dispatch`), the report handling
(:mod:`.reports`), the retry policy when an agent dies (:mod:`.supervise`).

What differs is the transport (:mod:`.ray_actors`: actors, numbered command calls,
polls) and the cluster (:mod:`.ray_cluster`):

* Resources: the actor asks Ray for the largest ``cpu`` / ``memory_gb`` any task of its
  pool's specializations declares; a pool's specializations become custom resources
  ``opsdeck_spec_<name>`` where the cluster declares them (a node started with
  ``ray start --resources '{"opsdeck_spec_build": 100}'``). Ray's accounting is
  logical; the limits that are enforced are the agent host's, detected on each node
  (cgroup v2 or RLIMIT_AS + RSS watchdog, cgroup cpu.max or niceness) and shown per node.
* Faults: killing an agent is ``ray.kill`` of its actor (on any node); cutting one off
  stops its worker process, which this console can do only on its own machine: for an
  actor on another node it says so (:class:`~core.runtimes.NotApplicable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from ..clock import WallClock
from ..config import Config
from ..models import Agent
from ..private import private_dir
from ..workflow_file import WorkflowFile, WorkflowFileError
from . import Capabilities, NotApplicable, RuntimeSink
from .adoption import kill_verified
from .dispatch import Dispatch
from .fleet import Fleet, Timing
from .launching import run_dir_for
from .limits import detect
from .opening import open_with
from .processes import ProcessRuntime
from .ray_actors import LIMITS_SETTING, ActorHost, ActorLinks, RayActors
from .ray_cluster import (
    SPEC_RESOURCE,
    RayCluster,
    check_address,
    fleet_requests,
    loopback_only,
    placement_problems,
)
from .reports import Reports
from .sampler import Sampler
from .supervise import Supervisor

if TYPE_CHECKING:
    from ..engine import Engine
    from ..models import WorkflowSpec

__all__ = ["RayCluster", "RayRuntime", "check_address", "loopback_only", "namespace_for", "open_ray"]


def namespace_for(db: str | Path) -> str:
    """One Ray namespace per database: a restarted host finds its own actors, nobody else's."""
    return "opsdeck-" + hashlib.sha1(str(Path(db).resolve()).encode()).hexdigest()[:16]


class RayRuntime(ProcessRuntime[ActorHost]):
    """Agents as Ray actors; tasks as process groups on the actors' nodes: a facade over
    the shared parts (``fleet``, ``dispatch``, ``reports``, ``supervisor``) and ``actors``."""

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
        self.run_dir = private_dir(run_dir_for(db))
        self.cluster = cluster
        self.namespace = namespace_for(db)
        self.timing = Timing(heartbeat_s, sample_s, stop_grace_s, orphan_s)
        self.mechanisms = detect()  # this machine's; each node's are its actors' (``ray_node_limits``)
        self.clock = WallClock()
        sampler = Sampler()
        self.fleet: Fleet[ActorHost] = Fleet(self.timing, actor=f"{self.name}-runtime")
        self.links = ActorLinks()
        self.dispatch = Dispatch(self.fleet, self.links, self.run_dir, self.mechanisms, sampler)
        self.supervisor = Supervisor(self.fleet, self.links, self.dispatch)
        self.reports = Reports(self.fleet, self.links, self.dispatch)
        self.actors = RayActors(self.fleet, self.links, self.supervisor, self.reports, self.namespace, sampler)
        self.adopted = self.fleet.adopted
        self.recovered = self.fleet.recovered
        self.left_running = self.fleet.left_running

    # -- what the parts hold, for the console and tests ----------------------------------
    @property
    def actor_started_s(self) -> list[float]:
        """Seconds from asking Ray for each new actor to its first answer."""
        return self.actors.actor_started_s

    # -- preparing and wiring -------------------------------------------------------------
    async def prepare(self, engine: Engine) -> None:
        """Before attach: learn task commands from the log, adopt the actors of live agents."""
        await self.learn_commands(engine)
        await self.actors.reconcile(engine)
        self.supervisor.fail_unadopted(engine, self.actors.adoptable, self.gone_reason, {})

    def attach(self, sink: RuntimeSink) -> None:
        self.fleet.sink = sink
        self.fleet.start(self.links, self.actors.sample_loop)

    async def machine_capacity(self) -> tuple[float, float, str]:
        """The cluster's CPUs and memory as Ray counts them."""
        total = await asyncio.get_running_loop().run_in_executor(None, ray.cluster_resources)
        return float(total.get("CPU", 0.0)), float(total.get("memory", 0.0)) / 2**30, "cluster"

    def describe(self) -> dict[str, Any]:
        """How this runtime places and limits (the limits themselves are probed on each
        node by its actors and recorded as they answer: ``ray_node_limits``)."""
        return {
            "runtime": self.name,
            "cluster": self.capabilities.cluster,
            "address": self.cluster.address or "local instance",
            "namespace": self.namespace,
            "specialization_placement": self._placement(),
            "ray_resources": f"logical (Ray's accounting); the enforced limits are per node: setting {LIMITS_SETTING}",
            "heartbeat_s": self.timing.heartbeat_s,
            "sample_s": self.timing.sample_s,
            "stop_grace_s": self.timing.stop_grace_s,
        }

    def _placement(self) -> str:
        declared = self.actors.spec_resources
        if declared:
            return f"custom resources {sorted(declared)}"
        return f"none: the cluster declares no {SPEC_RESOURCE}* resources"

    def limits_line(self) -> str:
        m = self.mechanisms
        return (
            f"runtime ray on {self.cluster.where()} (namespace {self.namespace}); Ray's resources are logical, the "
            f"limits are enforced on each node by the agent's task runner (this machine: memory={m.memory} "
            f"cpu={m.cpu}); specialization placement: {self._placement()}"
        )

    def cluster_usage(self) -> dict[str, Any]:
        return self.actors.cluster_usage()

    def node_of(self, agent_id: str) -> dict[str, Any]:
        return self.actors.node_of(agent_id)

    # -- agents -------------------------------------------------------------------------
    def spawn_agent(self, agent: Agent) -> None:
        self.actors.spawn(agent.id, agent.pool, list(self.dispatch.specs.values()))

    # -- housekeeping ---------------------------------------------------------------------
    async def shutdown(self, release: bool = True) -> None:
        """Retire every actor (their tasks stop), then leave Ray (stopping it if we started it)."""
        await self.supervisor.shutdown(release)
        await asyncio.get_running_loop().run_in_executor(None, self.cluster.leave)

    # -- real faults ----------------------------------------------------------------------
    def fail_agent(self, agent_id: str, error: str = "process crashed") -> None:
        """``ray.kill`` the agent's actor (on whatever node), as a crash: its task's first
        process dies with it, and its death is noticed the way any actor's is (its poll
        raises; what is left of the task's group is then killed where this host sees it)."""
        h = self.fleet.hosts.get(agent_id)
        if h is not None and not h.dead:
            with contextlib.suppress(Exception):  # Ray down raises no common type: the actor is then gone anyway
                ray.kill(h.handle, no_restart=True)

    def partition(self, agent_ids: list[str]) -> None:
        """SIGSTOP the actors' worker processes: possible only for actors on this machine;
        for any other the whole request is refused, and nothing is stopped."""
        hosts = [h for a in agent_ids if (h := self.fleet.hosts.get(a)) is not None and not h.dead]
        remote = [h.agent for h in hosts if not (h.local_node and h.pid and h.create_time)]
        if remote:
            raise NotApplicable(
                f"the ray runtime cannot cut off {', '.join(remote)}: their actors do not run on this machine "
                "(or have not answered yet), and a worker on another node cannot be stopped from here"
            )
        for h in hosts:
            assert h.pid is not None and h.create_time is not None
            kill_verified(h.pid, h.create_time, signal.SIGSTOP)

    def heal(self, agent_ids: list[str] | None = None) -> None:
        """SIGCONT the stopped workers (on this machine)."""
        for a, h in self.fleet.hosts.items():
            if (agent_ids is None or a in agent_ids) and not h.dead and h.local_node and h.pid and h.create_time:
                kill_verified(h.pid, h.create_time, signal.SIGCONT)


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
