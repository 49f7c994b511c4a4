"""Runtimes are adapters: the engine drives them and they report facts back.

The engine never knows whether an agent is simulated or a real process. It calls
the :class:`Runtime` methods; the runtime calls the :class:`RuntimeSink` methods
(implemented by the engine) when something happens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # kept out of the import: the agent host process starts without pydantic
    from ..models import Agent, Task
    from .sampler import TaskMeasure


class RuntimeSink(Protocol):
    """What a runtime may report. All times are the runtime's clock."""

    def task_started(self, agent_id: str, task_id: str) -> None: ...

    def task_progress(self, agent_id: str, task_id: str, progress: float, output: list[str] | None = None) -> None: ...

    def task_finished(
        self, agent_id: str, task_id: str, output: list[str] | None = None, result: Any = None
    ) -> None: ...

    def task_failed(self, agent_id: str, task_id: str, error: str, output: list[str] | None = None) -> None: ...

    def agent_failed(self, agent_id: str, error: str) -> None: ...

    def agent_heartbeat(self, agent_id: str) -> None: ...

    def agent_unreachable(self, agent_id: str) -> None: ...

    def agent_reconnected(self, agent_id: str, buffered: list[dict[str, Any]]) -> None: ...

    def usage(self, agent_id: str, cpu_pct: float, memory_mb: float) -> None: ...

    def system_usage(self, cpu_pct: float, memory_pct: float) -> None: ...


class Runtime(Protocol):
    """The controls the engine has over agents and their tasks."""

    name: str

    def attach(self, sink: RuntimeSink) -> None: ...

    def spawn_agent(self, agent: Agent) -> None: ...

    def retire_agent(self, agent_id: str) -> None: ...

    def start_task(self, agent_id: str, task: Task) -> None: ...

    def pause_task(self, agent_id: str, task_id: str) -> None: ...

    def resume_task(self, agent_id: str, task_id: str) -> None: ...

    def stop_task(self, agent_id: str, task_id: str) -> None: ...

    def purge_caches(self) -> dict[str, float]: ...

    def cleanup_temp(self) -> dict[str, Any] | None:
        """Delete finished task runs' temp files; None where tasks write no files (sim)."""
        ...

    def now(self) -> float: ...

    def measure_task(
        self, agent_id: str, task_id: str, pid: int | None = None, create_time: float | None = None
    ) -> TaskMeasure | None:
        """The task's processes measured now (``pid``/``create_time``: the ones measured
        before, to tell whether they are gone); None when none exist any more."""
        ...
