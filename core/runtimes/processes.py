"""What the local and Ray runtimes share: the runtime contract's operations that both
answer the same way, through the parts both are composed of.

:class:`ProcessRuntime` is a base with those defaults: the agents' pool and processes
(``fleet``), the tasks (``dispatch``), an agent's end and shutdown (``supervisor``),
and the simulated world's faults, which a runtime of real processes refuses. Each
runtime builds its parts and adds what differs (its transport, its hosts, placement,
its real faults); neither runtime inherits the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic

from ..clock import WallClock
from ..event_types import WORKFLOW_CREATED
from ..models import Task
from . import NotApplicable
from .dispatch import Dispatch
from .fleet import Fleet, H, Links, Timing
from .limits import Mechanisms
from .reports import Reports
from .sampler import TaskMeasure
from .supervise import Supervisor

if TYPE_CHECKING:
    from ..engine import Engine


def simulated_only(runtime: str, what: str) -> str:
    """Why a runtime of real processes refuses one of the simulated world's faults."""
    return f"the {runtime} runtime cannot {what}: that fault exists only on the simulated runtime"


class ProcessRuntime(Generic[H]):
    """The delegations a runtime of real agent processes answers through its parts."""

    name: str
    gone_reason: str
    """Why an agent recorded as live is failed when a restarted console cannot adopt it."""
    timing: Timing
    mechanisms: Mechanisms
    clock: WallClock
    fleet: Fleet[H]
    links: Links[H]
    dispatch: Dispatch
    supervisor: Supervisor
    reports: Reports

    # -- what the parts hold, for the console and tests ----------------------------------
    @property
    def hosts(self) -> dict[str, H]:
        return self.fleet.hosts

    @property
    def heartbeat_s(self) -> float:
        return self.timing.heartbeat_s

    def now(self) -> float:
        return self.clock.now()

    async def learn_commands(self, engine: Engine) -> None:
        """The first part of ``prepare``: the engine these parts report to, the task
        commands of the workflows in the log (then of each workflow as it is folded), and
        which running runs' starts the log holds (:meth:`Fleet.learn_restored`)."""
        self.fleet.engine = engine
        if engine.store is not None:
            for ev in await engine.store.read_events(types=[WORKFLOW_CREATED]):
                self.dispatch.learn(ev.data["spec"])
        engine.observe(self.dispatch.on_event)
        await self.fleet.learn_restored(engine)

    # -- agents -------------------------------------------------------------------------
    def retire_agent(self, agent_id: str) -> None:
        self.supervisor.retire_agent(agent_id)

    def replenish(self, pool: str, target: int | None = None) -> list[str]:
        return self.fleet.replenish(pool, target)

    def ping_agent(self, agent_id: str) -> None:
        self.dispatch.ping_agent(agent_id)

    def host_pids(self) -> dict[str, int]:
        """Live agents' host pids (an actor's worker pid, on its node), for tests and the console."""
        return self.fleet.host_pids()

    def host_process(self, agent_id: str) -> tuple[int, float] | None:
        return self.fleet.host_process(agent_id, self.links)

    def host_starting(self, agent_id: str) -> bool:
        return self.fleet.host_starting(agent_id)

    def task_pgid(self, agent_id: str) -> int | None:
        return self.fleet.task_pgid(agent_id)

    # -- tasks ----------------------------------------------------------------------------
    def attempts_allowed(self, task_id: str) -> int | None:
        return self.dispatch.attempts_allowed(task_id)

    def start_task(self, agent_id: str, task: Task) -> None:
        self.dispatch.start_task(agent_id, task)

    def pause_task(self, agent_id: str, task_id: str) -> None:
        self.dispatch.pause_task(agent_id, task_id)

    def resume_task(self, agent_id: str, task_id: str) -> None:
        self.dispatch.resume_task(agent_id, task_id)

    def stop_task(self, agent_id: str, task_id: str) -> None:
        self.dispatch.stop_task(agent_id, task_id)

    async def send_input(self, agent_id: str, task_id: str, data: bytes) -> int:
        return await self.dispatch.io.send_input(agent_id, task_id, data)

    def task_output(self, agent_id: str, task_id: str, attempt: int) -> Path | None:
        return self.dispatch.io.task_output(agent_id, task_id, attempt)

    def task_repo(self, task_id: str) -> str | None:
        return self.dispatch.task_repo(task_id)

    def worktree_root(self) -> Path | None:
        return self.dispatch.io.worktree_root

    async def relimit(
        self, targets: list[tuple[str, str, dict[str, Any]]], timeout_s: float = 5.0
    ) -> list[dict[str, Any]]:
        return await self.dispatch.relimit(targets, timeout_s)

    def measure_task(
        self, agent_id: str, task_id: str, pid: int | None = None, create_time: float | None = None
    ) -> TaskMeasure | None:
        return self.dispatch.measure_task(agent_id, task_id, pid, create_time)

    # -- housekeeping ---------------------------------------------------------------------
    def purge_caches(self) -> dict[str, float]:
        """No caches of its own (the store's are reclaimed by the cleanup through ``Store.reclaim``)."""
        return {}

    def temp_dir(self, task_id: str, attempt: int) -> Path:
        return self.dispatch.temp_dir(task_id, attempt)

    def cleanup_temp(self) -> dict[str, Any]:
        """This machine's task temp directories (another node's are its own)."""
        return self.dispatch.cleanup_temp()

    # -- the simulated world's faults: refused -------------------------------------------
    def slow_agent(self, agent_id: str, factor: float) -> None:
        raise NotApplicable(simulated_only(self.name, "slow an agent down"))

    def slowdown(self, agent_id: str) -> float | None:
        raise NotApplicable(simulated_only(self.name, "model an agent's slowdown"))

    def load_spike(self, cpu_cores: float, memory_gb: float, duration_s: float | None = None) -> None:
        raise NotApplicable(simulated_only(self.name, "add load outside the fleet's tasks"))

    def leak(self, agent_id: str, mb_per_s: float) -> None:
        raise NotApplicable(simulated_only(self.name, "make an agent leak memory"))

    def degrade(self, rate_per_s: float) -> None:
        raise NotApplicable(simulated_only(self.name, "degrade every task's speed"))

    def restore_speed(self) -> None:
        raise NotApplicable(simulated_only(self.name, "restore a degraded speed"))
