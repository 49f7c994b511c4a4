"""Runtimes are adapters: the engine drives them and they report facts back.

The engine never knows whether an agent is simulated or a real process. It calls
the :class:`Runtime` methods; the runtime calls the :class:`RuntimeSink` methods
(implemented by the engine) when something happens.

Every capability the engine, commands, incidents, drills and console use is a
member of :class:`Runtime`, implemented by every runtime: what one cannot do it
says by raising :class:`NotApplicable` (or answering None where the protocol says
so), and :class:`Capabilities` declares what its agents and tasks are, so callers
decide from declarations, never by probing attributes or comparing names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # kept out of the import: the agent host process starts without pydantic
    from ..merge import BufferedReport
    from ..models import Agent, Task
    from .sampler import TaskMeasure


class RuntimeSink(Protocol):
    """What a runtime may report. All times are the runtime's clock."""

    def task_started(self, agent_id: str, task_id: str, at: float | None = None) -> None:
        """The run began: now, or at ``at`` (seconds since the epoch) when the runtime
        learnt of it late (a console that restarted, a connection that dropped the report)."""
        ...

    def task_progress(self, agent_id: str, task_id: str, progress: float, output: list[str] | None = None) -> None: ...

    def task_finished(
        self,
        agent_id: str,
        task_id: str,
        output: list[str] | None = None,
        result: Any = None,
        ran_s: float | None = None,
    ) -> None:
        """The task's run ended well; ``ran_s``: its start to its end as the runtime
        measured it, where it did (its reports may reach the engine later than they happened)."""
        ...

    def task_failed(self, agent_id: str, task_id: str, error: str, output: list[str] | None = None) -> None: ...

    def agent_failed(self, agent_id: str, error: str) -> None: ...

    def task_workspace(self, agent_id: str, task_id: str, path: str, branch: str, repo: str) -> None:
        """The task runs in its own git worktree ``path`` on ``branch`` of ``repo``."""
        ...

    def task_input_wait(self, agent_id: str, task_id: str, reason: str | None) -> None:
        """The task waits for input (``reason``: how the host knows) or went on (None)."""
        ...

    def agent_heartbeat(self, agent_id: str) -> None: ...

    def agent_unreachable(self, agent_id: str) -> None: ...

    def agent_reconnected(self, agent_id: str, buffered: list[BufferedReport]) -> None: ...

    def usage(self, agent_id: str, cpu_pct: float, memory_mb: float) -> None: ...

    def system_usage(self, cpu_pct: float, memory_pct: float) -> None: ...


class NotApplicable(Exception):
    """An operation this runtime cannot do: the message says which and why (it is
    reported as such, never claimed as done)."""


@dataclass(frozen=True)
class Capabilities:
    """What a runtime's agents and tasks are, declared once per runtime."""

    processes: bool
    """Tasks are OS processes on a machine: OS limits apply (relimit), pause is
    SIGSTOP, each run has a temp directory, faults act on real processes."""
    simulated: bool
    """Agents and tasks exist only in the model: usage is modelled, and the world's
    own faults (slow agents, load spikes, leaks, degradation) can be injected."""
    cluster: bool
    """Agents are placed on a cluster's nodes (not necessarily this machine)."""


class Runtime(Protocol):
    """The controls the engine, commands, incidents and console have over agents and tasks."""

    name: str
    """The runtime's kind, for display ("sim", "local", "ray"); decisions use :attr:`capabilities`."""
    capabilities: Capabilities
    adopted: list[str]
    """Agents whose processes outlived a previous host and were taken over on opening."""
    recovered: list[str]
    """Agents the log counted as live whose processes were gone on opening (failed, tasks recovered)."""
    left_running: list[str]
    """Hosts this runtime started that its shutdown could not end (agent and pid): empty after a clean one."""

    def attach(self, sink: RuntimeSink) -> None: ...

    def now(self) -> float: ...

    def describe(self) -> dict[str, Any]:
        """What the console shows about this runtime (recorded in the settings)."""
        ...

    def limits_line(self) -> str:
        """One line for the operator: which mechanism enforces each limit (or that none does)."""
        ...

    # -- agents and tasks -------------------------------------------------------------
    def spawn_agent(self, agent: Agent) -> None: ...

    def retire_agent(self, agent_id: str) -> None: ...

    def start_task(self, agent_id: str, task: Task) -> None: ...

    def pause_task(self, agent_id: str, task_id: str) -> None: ...

    def resume_task(self, agent_id: str, task_id: str) -> None: ...

    def stop_task(self, agent_id: str, task_id: str) -> None: ...

    def ping_agent(self, agent_id: str) -> None:
        """An active health check: a live, reachable agent answers with a heartbeat."""
        ...

    def host_process(self, agent_id: str) -> tuple[int, float] | None:
        """The agent's host process on this machine (pid, create time), for checks that
        read the OS process table; None where there is none here (simulated agents, an
        actor on another node, an agent this runtime never held)."""
        ...

    def host_starting(self, agent_id: str) -> bool:
        """The agent's host was started and has no pid yet (its launcher has not answered):
        not gone, only not yet in the process table."""
        ...

    def attempts_allowed(self, task_id: str) -> int | None:
        """The task's own retry policy (attempts), or None: the engine's config decides."""
        ...

    async def relimit(self, targets: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Apply new CPU limits to running tasks ``(agent, task, limits)`` in place and
        say what each got; NotApplicable where tasks are not OS processes."""
        ...

    async def send_input(self, agent_id: str, task_id: str, data: bytes) -> int:
        """Write ``data`` to the running task's stdin; the bytes its agent host wrote.
        NotApplicable where tasks have no stdin (simulated, or not interactive)."""
        ...

    def task_output(self, agent_id: str, task_id: str, attempt: int) -> Path | None:
        """The file holding the whole output of one attempt of a task, None where the
        runtime keeps none (simulated tasks print nothing; Ray keeps lines only)."""
        ...

    def task_repo(self, task_id: str) -> str | None:
        """The git repository the task works in a worktree of (``workspace = "worktree"``),
        None for a task without one (and on runtimes without worktrees)."""
        ...

    def worktree_root(self) -> Path | None:
        """Where the runtime keeps its tasks' worktrees, None where it keeps none."""
        ...

    # -- housekeeping -------------------------------------------------------------------
    def purge_caches(self) -> dict[str, float]: ...

    def cleanup_temp(self) -> dict[str, Any] | None:
        """Delete finished task runs' temp files; None where tasks write no files (sim)."""
        ...

    async def shutdown(self, release: bool = True) -> None:
        """Stop every agent and task this runtime started (``release``: the log records it)."""
        ...

    # -- faults (drills, scripts) ------------------------------------------------------
    def fail_agent(self, agent_id: str, error: str = "process crashed") -> None: ...

    def partition(self, agent_ids: list[str]) -> None:
        """Cut agents off: alive and working, but nothing they say arrives."""
        ...

    def heal(self, agent_ids: list[str] | None = None) -> None: ...

    def slow_agent(self, agent_id: str, factor: float) -> None:
        """The agent's tasks take ``factor`` times as long (simulated runtimes only)."""
        ...

    def slowdown(self, agent_id: str) -> float | None:
        """The factor the agent's tasks are slowed by now (1.0: normal), None for an agent
        the runtime does not hold (simulated runtimes only)."""
        ...

    def load_spike(self, cpu_cores: float, memory_gb: float, duration_s: float | None = None) -> None:
        """Load outside the fleet's tasks (simulated runtimes only)."""
        ...

    def leak(self, agent_id: str, mb_per_s: float) -> None:
        """The agent's memory grows (simulated runtimes only)."""
        ...

    def degrade(self, rate_per_s: float) -> None:
        """Every task gets slower over time (simulated runtimes only)."""
        ...

    def restore_speed(self) -> None:
        """Undo :meth:`degrade` (simulated runtimes only)."""
        ...

    def measure_task(
        self, agent_id: str, task_id: str, pid: int | None = None, create_time: float | None = None
    ) -> TaskMeasure | None:
        """The task's processes measured now (``pid``/``create_time``: the ones measured
        before, to tell whether they are gone); None when none exist any more."""
        ...
