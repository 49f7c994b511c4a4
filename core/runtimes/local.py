"""The local runtime: agents are real OS processes on this machine.

Each agent is an :mod:`agent host <core.runtimes.agent_host>` process in its own
session, reached over a unix socket in the run's private directory next to the
database (0700; a short private directory when that path would be too long). Every
connection is authenticated both ways (:mod:`.handshake`: the peer's uid, and the
run's secret) before the console sends anything. The engine drives this
runtime exactly as it drives the simulated one; the facts come from the hosts'
reports (started, heartbeat with progress, exit status) and from psutil.

Three rules keep a run correct across crashes:

* Write-ahead: a command reaches a host only after the engine has flushed the
  events that led to it, so a host never runs an assignment the log does not hold.
* The projection is the truth: on (re)connection a host says what it runs and what
  it finished; a finished run the log has not recorded is applied, a run the log
  does not assign is stopped, and ``start`` is idempotent per (task, attempt) on
  the host, so no completed task runs again.
* Processes are identified by pid AND create time (the ``processes`` table), never
  by pid alone: a restarted console adopts live hosts and fails the gone ones.
  A row is trusted only when it carries this run's MAC (keyed by the run's secret in
  the private run directory: whoever can write the database cannot forge one) and
  the live process still matches it: its start time, our uid and, for a host, its
  proof on its socket (the run's secret, from the row's pid: :mod:`.adoption`).
  Nothing else is adopted or signalled: a root process listed in a database another
  user wrote is left alone.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from ..clock import WallClock
from ..config import Config
from ..models import Agent, WorkflowSpec
from ..private import private_dir
from . import Capabilities, RuntimeSink
from .adoption import Adoption
from .dispatch import Dispatch
from .fleet import Fleet, Timing
from .handshake import load_or_create_secret
from .launching import run_dir_for
from .limits import Mechanisms, detect
from .local_hosts import LocalHosts, LocalLinks, ProcessHost
from .opening import open_with
from .processes import ProcessRuntime
from .reports import Reports
from .sampler import Sampler
from .supervise import Supervisor

if TYPE_CHECKING:
    from ..engine import Engine
    from ..workflow_file import WorkflowFile

__all__ = ["LocalRuntime", "open_local", "run_dir_for"]


class LocalRuntime(ProcessRuntime[ProcessHost]):
    """Real agents on this machine: a facade over the parts it is composed of.

    ``fleet`` (hosts, outbox), ``dispatch`` (task commands), ``reports`` (what hosts
    say), ``supervisor`` (an agent's end, shutdown) and ``local`` (the host processes:
    spawning, sockets, sampling)."""

    name = "local"
    capabilities = Capabilities(processes=True, simulated=False, cluster=False)
    gone_reason = "agent process gone while the console was down"

    def __init__(
        self,
        run_dir: str | Path,
        heartbeat_s: float = 1.0,
        sample_s: float = 1.0,
        stop_grace_s: float = 5.0,
        orphan_s: float = 3600.0,
        mechanisms: Mechanisms | None = None,
    ) -> None:
        self.run_dir = private_dir(run_dir)
        self.timing = Timing(heartbeat_s, sample_s, stop_grace_s, orphan_s)
        self.mechanisms = mechanisms or detect()
        self.clock = WallClock()
        sampler = Sampler()
        self.fleet: Fleet[ProcessHost] = Fleet(self.timing, actor=f"{self.name}-runtime")
        self.adoption = Adoption(load_or_create_secret(self.run_dir))
        links = LocalLinks(self.fleet, self.adoption)
        self.dispatch = Dispatch(self.fleet, links, self.run_dir, self.mechanisms, sampler, self.run_dir / "output")
        self.supervisor = Supervisor(self.fleet, links, self.dispatch)
        self.reports = Reports(self.fleet, links, self.dispatch)
        self.local = LocalHosts(
            self.fleet, links, self.supervisor, self.reports, self.run_dir, self.mechanisms, sampler
        )
        self.links = links
        self.adopted = self.fleet.adopted
        self.recovered = self.fleet.recovered
        self.left_running = self.fleet.left_running

    # -- what the parts hold, for the console and tests ----------------------------------
    @property
    def security_failures(self) -> list[str]:
        """Peers refused on an agent's socket, rows not trusted (nothing was signalled)."""
        return self.adoption.security_failures

    @property
    def sample_s(self) -> float:
        return self.timing.sample_s

    @property
    def stop_grace_s(self) -> float:
        return self.timing.stop_grace_s

    # -- preparing and wiring -------------------------------------------------------------
    async def prepare(self, engine: Engine) -> None:
        """Before attach: learn task commands from the log, sort stored hosts into adopt/fail."""
        await self.learn_commands(engine)
        await self.adoption.reconcile(engine)
        self.supervisor.fail_unadopted(engine, self.adoption.adoptable, self.gone_reason, self.adoption.untrusted)

    def attach(self, sink: RuntimeSink) -> None:
        """Start reporting to ``sink`` (after :meth:`prepare`, which gave the engine)."""
        self.fleet.sink = sink
        self.fleet.start(self.links, self.local.sample_loop)

    def describe(self) -> dict[str, Any]:
        """What the console shows about this runtime: the limit mechanisms in force."""
        return {
            "runtime": self.name,
            "cluster": self.capabilities.cluster,
            **self.mechanisms.describe(),
            "heartbeat_s": self.timing.heartbeat_s,
            "sample_s": self.timing.sample_s,
            "stop_grace_s": self.timing.stop_grace_s,
        }

    def limits_line(self) -> str:
        """One line for the operator: which mechanism enforces each limit."""
        m = self.mechanisms
        return f"limits memory={m.memory} cpu={m.cpu}"

    async def machine_capacity(self) -> tuple[float, float, str]:
        """This machine's cores and memory: the capacity unless the config sets one."""
        return float(os.cpu_count() or 1), psutil.virtual_memory().total / 2**30, "machine"

    # -- agents -------------------------------------------------------------------------
    def spawn_agent(self, agent: Agent) -> None:
        self.local.spawn(agent.id)

    # -- housekeeping ---------------------------------------------------------------------
    def shared_dir(self) -> Path:
        return self.dispatch.shared_dir()

    async def shutdown(self, release: bool = True) -> None:
        """Stop every agent and task; leave no process behind (see :meth:`Supervisor.shutdown`)."""
        self.local.launcher.stop_forking()  # hosts not yet forked never start
        await self.supervisor.shutdown(release)
        await self.local.close()

    # -- real faults (drills on real processes) ------------------------------------------
    def fail_agent(self, agent_id: str, error: str = "process crashed") -> None:
        """SIGKILL the agent's host process; its death is noticed as any crash is."""
        self.local.fail_agent(agent_id)

    def partition(self, agent_ids: list[str]) -> None:
        """Cut agents off for real: SIGSTOP their host processes (their tasks, in their
        own process groups, keep running; the hosts answer nothing)."""
        self.local.signal_hosts(agent_ids, signal.SIGSTOP)

    def heal(self, agent_ids: list[str] | None = None) -> None:
        """SIGCONT the hosts: they read what was sent meanwhile and report again."""
        self.local.signal_hosts(agent_ids, signal.SIGCONT)


async def open_local(
    db: str | Path,
    wfile: WorkflowFile,
    specs: list[WorkflowSpec],
    config: Config | None = None,
    stop_grace_s: float | None = None,
    subscriber: Any = None,
    mechanisms: Mechanisms | None = None,
) -> tuple[Engine, LocalRuntime]:
    """Open ``db`` on the local runtime and bring it to the workflow file.

    Pools and workflows the database does not have yet are created (and queued); those
    it has are resumed as they are. Hosts left by a killed console are adopted or
    failed. Each pool gets its ``size`` agents. Allocations are checked against the
    per-workflow limits before anything is created.
    """
    rt = wfile.runtime

    async def make(config: Config) -> LocalRuntime:
        return LocalRuntime(
            run_dir_for(db),
            heartbeat_s=rt.heartbeat_s,
            sample_s=rt.sample_s,
            stop_grace_s=rt.stop_grace_s if stop_grace_s is None else stop_grace_s,
            mechanisms=mechanisms,
        )

    return await open_with(make, db, wfile, specs, config, subscriber)
