"""Operations on workflows and their tasks: create, start, pause, resume, cancel.

Each operation checks first and then changes: a refused one raises
:class:`~core.engine.EngineError` and emits nothing. The runtime is told to pause,
resume or stop tasks after the events that say so are folded.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from ..event_types import (
    TASK_PAUSED,
    TASK_REASSIGNED,
    TASK_RESUMED,
    WORKFLOW_CANCELLED,
    WORKFLOW_CREATED,
    WORKFLOW_FROZEN,
    WORKFLOW_PAUSED,
    WORKFLOW_QUEUED,
    WORKFLOW_RESUMED,
)
from ..models import TERMINAL_WORKFLOW, PhaseSpec, TaskSpec, TaskStatus, Workflow, WorkflowSpec, WorkflowStatus
from .log import EngineError

if TYPE_CHECKING:
    from .contract import EngineCore

SUBMIT_CHUNK = 2000
_TASK_LIST = TypeAdapter(list[TaskSpec])


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic GC while building many objects that are not garbage."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


GC_THRESHOLDS = (50_000, 20, 100)
"""Collector thresholds once an engine is open: a generation-0 pass every 50,000
allocations rather than 700 (an engine allocates many short-lived objects per event,
and each young pass also walks the survivors), and old generations collected less."""


def settle_gc() -> None:
    """After the projection is rebuilt: what was loaded lives as long as the engine, so
    it is moved out of the cyclic collector's reach (``gc.freeze``; reference counting
    still frees it), and the thresholds become :data:`GC_THRESHOLDS`. One full
    collection first, so that no garbage is frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class WorkflowOps:
    """The workflow operations of one engine."""

    def __init__(self, engine: EngineCore) -> None:
        self.engine = engine

    def live(self, wf_id: str) -> Workflow:
        """A live workflow; a finished one is refused (it has left the hot state)."""
        state = self.engine.state
        wf = state.workflows.get(wf_id)
        if wf is None:
            done = state.finished.get(wf_id)
            if done is not None:
                raise EngineError(
                    "INVALID_STATE",
                    f"workflow {wf_id!r} is already {done.status.value}",
                    {"workflow_id": wf_id, "status": done.status.value},
                )
            raise EngineError("WORKFLOW_NOT_FOUND", f"no workflow {wf_id!r}", {"known": state.all_workflow_ids()})
        return wf

    def changeable(self, wf_id: str) -> Workflow:
        """A live workflow that is not frozen (a frozen one refuses state changes)."""
        wf = self.live(wf_id)
        if wf.frozen:
            raise EngineError(
                "WORKFLOW_FROZEN",
                f"workflow {wf_id!r} is frozen for data protection: state changes are refused until it is unfrozen",
                {"workflow_id": wf_id},
            )
        return wf

    def create(self, spec: WorkflowSpec | dict[str, Any], actor: str | None = None) -> str:
        """Validate a workflow once and record it. The cyclic GC is held off meanwhile: a
        big workflow allocates many objects, none of them garbage, and each collection
        would walk them all again (superlinear)."""
        with gc_paused():
            if isinstance(spec, dict):
                spec = WorkflowSpec.model_validate(spec)
            return self._record(spec, spec.model_dump(mode="json", exclude_defaults=True), actor)

    async def submit(self, raw: dict[str, Any], actor: str | None = None) -> str:
        """:meth:`create` for a running console: tasks are validated and encoded in
        chunks, yielding to the event loop between them, so a submission of 100k
        tasks does not freeze the screen. Validation errors are those of
        ``WorkflowSpec`` (whole-spec field paths)."""
        phases = raw.get("phases")
        if not isinstance(phases, list) or not all(
            isinstance(p, dict) and isinstance(p.get("tasks", []), list) for p in phases
        ):
            return self.create(raw, actor)
        head = WorkflowSpec.model_validate({**raw, "phases": []})
        built: list[PhaseSpec] = []
        dumped: list[dict[str, Any]] = []
        for ph in phases:
            shell = PhaseSpec.model_validate({**ph, "tasks": []})
            tasks: list[TaskSpec] = []
            encoded: list[dict[str, Any]] = []
            rows = ph.get("tasks", [])
            for i in range(0, len(rows), SUBMIT_CHUNK):
                try:
                    with gc_paused():
                        part = _TASK_LIST.validate_python(rows[i : i + SUBMIT_CHUNK])
                        encoded += _TASK_LIST.dump_python(part, mode="json", exclude_defaults=True)
                except ValidationError:
                    WorkflowSpec.model_validate(raw)  # the same error, with its path in the whole spec
                    raise
                tasks += part
                await asyncio.sleep(0)
            shell.tasks = tasks
            built.append(shell)
            dumped.append({**shell.model_dump(mode="json", exclude_defaults=True, exclude={"tasks"}), "tasks": encoded})
        head.phases = built
        data = head.model_dump(mode="json", exclude_defaults=True)
        data["phases"] = dumped
        with gc_paused():
            return self._record(head, data, actor)

    def _record(self, spec: WorkflowSpec, data: dict[str, Any], actor: str | None) -> str:
        e = self.engine
        state = e.state
        if state.knows(spec.id):
            raise EngineError("WORKFLOW_EXISTS", f"workflow {spec.id!r} exists")
        names: set[str] = set()
        for phase in spec.phases:
            for t in phase.tasks:
                if t.id in names:
                    raise EngineError("INVALID_WORKFLOW", f"task id {t.id!r} appears twice in {spec.id!r}")
                for d in t.depends_on:
                    if d not in names:
                        raise EngineError(
                            "INVALID_WORKFLOW",
                            f"task {t.id!r} depends on {d!r}, which is not an earlier task of {spec.id!r}",
                        )
                names.add(t.id)
        for d in spec.depends_on:
            if not state.knows(d):
                raise EngineError("WORKFLOW_NOT_FOUND", f"{spec.id!r} depends on unknown workflow {d!r}")
        lim = e.config.workflow_limits
        a = spec.allocation
        if a.cpu_cores > lim.cpu_cores or a.memory_gb > lim.memory_gb or a.agents > lim.agents:
            raise EngineError(
                "RESOURCE_LIMIT",
                f"allocation {a.model_dump()} exceeds the per-workflow limit {lim.model_dump(exclude={'max_duration_s'})}",
            )
        e.emit(WORKFLOW_CREATED, "coordination", "workflow", {"workflow_id": spec.id, "spec": data}, actor=actor)
        return spec.id

    def start(self, wf_id: str, actor: str | None = None) -> None:
        e = self.engine
        wf = self.changeable(wf_id)
        if wf.status is not WorkflowStatus.PENDING:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is {wf.status.value}, not pending")
        if not wf.queued:
            e.emit(WORKFLOW_QUEUED, "coordination", "workflow", {"workflow_id": wf_id}, actor=actor)
        e.bridge.admit()
        e.request_dispatch()

    def pause(self, wf_id: str, actor: str | None = None, reason: str = "operator") -> list[str]:
        """Stop dispatch to the workflow and pause its running tasks through the runtime."""
        e = self.engine
        wf = self.changeable(wf_id)
        if wf.status is not WorkflowStatus.RUNNING:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is {wf.status.value}, not running")
        e.emit(WORKFLOW_PAUSED, "coordination", "workflow", {"workflow_id": wf_id, "reason": reason}, actor=actor)
        paused = []
        for key in sorted(e.state.running_by_wf.get(wf_id, ())):
            t = e.state.tasks[key]
            if t.status is TaskStatus.RUNNING and t.agent:
                e.emit(TASK_PAUSED, "coordination", "execution", {"task": key, "agent": t.agent}, actor=actor)
                if e.runtime is not None:
                    e.runtime.pause_task(t.agent, key)
                paused.append(key)
        return paused

    def resume(self, wf_id: str, actor: str | None = None) -> list[str]:
        e = self.engine
        wf = self.changeable(wf_id)
        if wf.status is not WorkflowStatus.PAUSED:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is {wf.status.value}, not paused")
        e.emit(WORKFLOW_RESUMED, "coordination", "workflow", {"workflow_id": wf_id}, actor=actor)
        resumed = []
        for key in sorted(e.state.running_by_wf.get(wf_id, ())):
            t = e.state.tasks[key]
            if t.status is TaskStatus.PAUSED and t.agent:
                e.emit(TASK_RESUMED, "coordination", "execution", {"task": key, "agent": t.agent}, actor=actor)
                if e.runtime is not None:
                    e.runtime.resume_task(t.agent, key)
                resumed.append(key)
        e.request_dispatch()
        return resumed

    def release_task(self, key: str, reason: str = "released", actor: str | None = None) -> str | None:
        """Take a task off its agent (stopping it) and put it back in the queue."""
        e = self.engine
        t = e.state.tasks.get(key)
        if t is None:
            raise EngineError("TASK_NOT_FOUND", f"no task {key!r}")
        if t.status not in (TaskStatus.RUNNING, TaskStatus.PAUSED) or not t.agent:
            return None
        agent = t.agent
        if e.runtime is not None:
            e.runtime.stop_task(agent, key)
        e.emit(
            TASK_REASSIGNED,
            "coordination",
            "scheduler",
            {"task": key, "from": agent, "reason": reason, "progress": t.context.progress},
            actor=actor,
        )
        e.request_dispatch()
        return agent

    def cancel(self, wf_id: str, actor: str | None = None) -> None:
        e = self.engine
        wf = self.changeable(wf_id)
        if wf.status in TERMINAL_WORKFLOW:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is already {wf.status.value}")
        for key in sorted(e.state.running_by_wf.get(wf_id, ())):
            e.release_task(key, reason="workflow_cancelled", actor=actor)
        e.emit(WORKFLOW_CANCELLED, "coordination", "workflow", {"workflow_id": wf_id}, actor=actor)
        e.request_dispatch()

    def freeze(self, wf_id: str, frozen: bool = True, actor: str | None = None) -> None:
        self.live(wf_id)
        self.engine.emit(
            WORKFLOW_FROZEN, "coordination", "state_protection", {"workflow_id": wf_id, "frozen": frozen}, actor=actor
        )
