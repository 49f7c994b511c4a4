"""Domain model: agents, pools, workflows, phases, tasks, checkpoints, incidents, plans.

These are the shapes the projection holds. They are pydantic models so that the
state can be snapshotted, hashed and validated at the boundaries (workflow files,
commands, checkpoints) with one definition; tasks and their contexts, held by the
hundred thousand, are plain dataclasses that pydantic validates and dumps there
(:class:`_Record`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal, Self

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    field_validator,
    model_serializer,
)


class Band(StrEnum):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


BAND_RANK = {Band.CRITICAL: 3, Band.HIGH: 2, Band.MEDIUM: 1, Band.LOW: 0}


def band_of(priority: int) -> Band:
    """The seed's priority bands: CRITICAL 90-100, HIGH 70-89, MEDIUM 40-69, LOW 0-39."""
    if priority >= 90:
        return Band.CRITICAL
    if priority >= 70:
        return Band.HIGH
    if priority >= 40:
        return Band.MEDIUM
    return Band.LOW


class AgentStatus(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    PAUSED = "paused"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    RETIRED = "retired"


class WorkflowStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"


TERMINAL_WORKFLOW = {WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
LIVE_AGENT = {AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED, AgentStatus.UNREACHABLE}


# defer_build=True: a model neither a headless run nor the console validates, built at first use.
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Resources(_Model):
    """An amount of the three resources the scheduler allocates."""

    cpu_cores: float = Field(0.0, ge=0)
    memory_gb: float = Field(0.0, ge=0)
    agents: int = Field(0, ge=0)


class Pool(_Model):
    name: str
    specializations: list[str]
    min_size: int = Field(0, ge=0)
    max_size: int = Field(20, ge=0)


class Usage(_Model, defer_build=True):
    cpu_pct: float = 0.0
    memory_mb: float = 0.0


class Agent(_Model):
    id: str
    pool: str
    specializations: list[str]
    status: AgentStatus = AgentStatus.IDLE
    current_task: str | None = None
    last_heartbeat: float | None = None
    tasks_done: int = 0
    failures: int = 0
    backoff_until: float | None = None
    applied_seq: int = 0
    """Highest buffered-report sequence applied: reports are applied exactly once."""


class _Record:
    """A record the projection holds by the thousand (a task, its context): a plain
    dataclass, several times cheaper to build and change than a pydantic model. Pydantic
    still validates and dumps it at the boundaries (snapshots, archive records, events'
    payloads) from the same declaration: the same schema and the same output a model of
    these fields gives."""

    __slots__ = ()
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """A record from JSON-ready data, validated (ValidationError as a model's)."""
        return _adapter(cls).validate_python(data)

    def model_dump(self, *, mode: Literal["json", "python"] = "python") -> dict[str, Any]:
        """Its fields as a dict, in declaration order (what ``BaseModel.model_dump`` gives)."""
        return _adapter(type(self)).dump_python(self, mode=mode)


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(of: Any) -> TypeAdapter[Any]:
    """Pydantic's validator and serializer of a record type, built on first use."""
    ta = _ADAPTERS.get(of)
    if ta is None:
        ta = _ADAPTERS[of] = TypeAdapter(of)
    return ta


@dataclass
class TaskContext(_Record):
    """What an agent knows about a task: enough for a replacement to resume it.

    Most tasks hold one of two shared contexts (:data:`EMPTY_CONTEXT`, and
    :data:`DONE_CONTEXT` once completed) rather than one each: four objects fewer per
    task. A shared one refuses writes; :meth:`Task.own_context` gives the task its own
    copy to change."""

    shared: ClassVar[bool] = False
    """Held by many tasks (read-only): :class:`_SharedContext`."""
    inputs: dict[str, Any] = field(default_factory=dict)
    progress: float = 0.0
    partial_results: dict[str, Any] = field(default_factory=dict)
    last_output: list[str] = field(default_factory=list)


def _refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
    raise TypeError("a shared task context is read-only: change the task's own (Task.own_context)")


class _FixedDict(dict[str, Any]):
    """An empty dict of a shared context: encodes as ``{}``, refuses writes."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = update = setdefault = pop = popitem = clear = _refuse


class _FixedList(list[str]):
    """The empty output list of a shared context: encodes as ``[]``, refuses writes."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = append = extend = insert = remove = _refuse
    pop = clear = sort = reverse = _refuse


@dataclass(init=False, repr=False, eq=False)  # a dataclass of its own: orjson encodes it as one
class _SharedContext(TaskContext):
    """A context many tasks hold: read-only (attributes and containers), so that a write
    meant for one task cannot reach the others. Equal to a task's own context of the same
    values; copying one gives itself (nothing can change it)."""

    shared: ClassVar[bool] = True
    __setattr__ = __delattr__ = _refuse

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskContext):
            return NotImplemented
        return (self.inputs, self.progress, self.partial_results, self.last_output) == (
            other.inputs,
            other.progress,
            other.partial_results,
            other.last_output,
        )

    __hash__ = None  # type: ignore[assignment]

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self


def _shared_context(progress: float) -> TaskContext:
    ctx = object.__new__(_SharedContext)
    for name, value in (
        ("inputs", _FixedDict()),
        ("progress", progress),
        ("partial_results", _FixedDict()),
        ("last_output", _FixedList()),
    ):
        object.__setattr__(ctx, name, value)
    return ctx


EMPTY_CONTEXT = _shared_context(0.0)
"""The context of a task that has none of its own yet (no inputs, no progress)."""
DONE_CONTEXT = _shared_context(1.0)
"""The context of a task completed without inputs, output or results."""


class TaskSpec(_Model, defer_build=True):
    """A task as written in a workflow definition."""

    id: str
    specialization: str
    depends_on: list[str] = Field(default_factory=list)
    duration_s: float = Field(60.0, ge=0)
    cpu: float = Field(1.0, ge=0)
    memory_gb: float = Field(0.5, ge=0)
    critical: bool = False
    command: list[str] | str | None = None
    shell: bool = False
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float | None = None
    retries: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    interactive: bool = False
    """Its stdin is a pipe the operator can write to (``send-input``), not /dev/null."""
    tty: bool = False
    """It runs under a pseudo-terminal (interactive too): the console can show its screen."""
    repo: str | None = None
    """A git repository: the task runs in its own worktree of it, on its own branch."""


TASK_DEFAULTS = {
    k: f.get_default(call_default_factory=True) for k, f in TaskSpec.model_fields.items() if not f.is_required()
}
"""A :class:`TaskSpec` field left out: its value (read, never handed out: the lists and dicts are shared)."""


@dataclass
class Task(_Record):
    """A task of a live workflow (a plain record: :class:`_Record`)."""

    id: str
    workflow: str
    phase: str
    specialization: str
    depends_on: list[str] = field(default_factory=list)
    duration_s: float = 60.0
    cpu: float = 1.0
    memory_gb: float = 0.5
    status: TaskStatus = TaskStatus.PENDING
    agent: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    context: TaskContext = field(default_factory=lambda: EMPTY_CONTEXT)
    interactive: bool = False
    """Its stdin is a pipe (or its pty) the operator writes to with ``send-input``."""
    tty: bool = False
    waiting_input: str | None = None
    """While the running task waits for a human: how the agent host knows (cleared when it goes on)."""
    waiting_since: float | None = None
    worktree: str | None = None
    """The task's own git checkout (``workspace = "worktree"``), while it exists."""
    branch: str | None = None
    repo: str | None = None
    """The repository the worktree belongs to."""

    def own_context(self) -> TaskContext:
        """The task's context to change in place: a shared one is copied first."""
        ctx = self.context
        if ctx.shared:
            ctx = self.context = TaskContext(
                dict(ctx.inputs), ctx.progress, dict(ctx.partial_results), list(ctx.last_output)
            )
        return ctx

    @property
    def awaiting_input(self) -> bool:
        """The task is running and its agent host saw it wait for input."""
        return self.waiting_input is not None and self.status is TaskStatus.RUNNING


def tasks_json(tasks: Sequence[Task]) -> str:
    """Tasks as a JSON list of their fields in declaration order (an archive record's
    tasks): orjson over the dataclasses, pydantic's serializer where orjson cannot
    encode a value (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(tasks).decode()
    except TypeError:
        pass
    return _adapter(list[Task]).dump_json(tasks).decode()


class PhaseSpec(_Model):
    name: str
    tasks: list[TaskSpec]


class WorkflowSpec(_Model):
    """A workflow as submitted: validated before anything is created."""

    id: str
    name: str = ""
    priority: int = Field(50, ge=0, le=100)
    depends_on: list[str] = Field(default_factory=list)
    allocation: Resources = Field(default_factory=lambda: Resources(cpu_cores=2, memory_gb=4, agents=3))
    guarantee: Resources | None = None
    limits: Resources | None = None
    phases: list[PhaseSpec] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v) or ":" in v:
            raise ValueError("workflow id must be non-empty, without spaces or colons")
        return v


class Workflow(_Model):
    id: str
    name: str
    priority: int
    band: Band
    status: WorkflowStatus = WorkflowStatus.PENDING
    depends_on: list[str] = Field(default_factory=list)
    allocation: Resources
    base_allocation: Resources
    guarantee: Resources | None = None
    limits: Resources | None = None
    phases: list[str] = Field(default_factory=list)
    tasks: list[str] = Field(default_factory=list)
    created_at: float = 0.0
    created_seq: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    frozen: bool = False
    queued: bool = False
    stage_limit: Resources | None = None


class FinishedWorkflow(_Model):
    """A terminal workflow once it has left the hot state (and its last task has let go
    of its agent): what listings, dependency checks and status need. Its tasks are in
    the archive (the store's ``archive`` table), read on demand."""

    id: str
    name: str
    priority: int
    band: Band
    status: WorkflowStatus
    depends_on: list[str] = Field(default_factory=list)
    allocation: Resources
    phases: list[str] = Field(default_factory=list)
    created_at: float = 0.0
    created_seq: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    finished_seq: int = 0
    """The sequence number at which it left the hot state: the archive row's key."""
    task_count: int = 0
    task_status: dict[str, int] = Field(default_factory=dict)
    attempts: int = 0
    failed_tasks: list[str] = Field(default_factory=list)
    retried: dict[str, int] = Field(default_factory=dict)
    """Tasks that needed more than one attempt, with their attempts."""
    frozen: bool = False
    queued: bool = False
    guarantee: Resources | None = None
    stage_limit: Resources | None = None

    @property
    def progress(self) -> float:
        return self.task_status.get("completed", 0) / self.task_count if self.task_count else 1.0


class Checkpoint(_Model):
    id: int
    seq: int
    ts: float
    kind: str
    label: str = ""
    state_hash: str
    workflow: str | None = None


class ResumptionApplied(_Model, defer_build=True):
    step: int
    at: float
    utilisation: dict[str, float] = Field(default_factory=dict)
    """What the engine measured as the step applied (``Engine.utilisation``)."""


class AsWritten(BaseModel, defer_build=True):
    """A record that dumps only the fields its writer set: a log replays to the state
    hashes its checkpoints recorded, whatever fields the model gained since."""

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        return {k: v for k, v in dumped.items() if k in self.model_fields_set}


class _AsPlanned(_Model, AsWritten):
    """A part of a staged resumption: dumps only the fields it was planned with."""


class ResumptionStage(_AsPlanned):
    """A stage as the operator gave it, with the indexes of the steps planned from it."""

    stage: int
    action: str
    workflow: str | None = None
    pool: str | None = None
    """A ``release_pool`` stage's pool (a rate-limit hold), instead of a workflow."""
    resource_limit: str | None = None
    gradual_scaling: bool = False
    steps: list[int]


class StagedStep(_AsPlanned):
    """One concrete step of a staged resumption, on one workflow or one held pool.

    ``limit`` set to None lifts the workflow's stage limit; ``limit`` not set leaves it
    alone (:attr:`sets_limit`)."""

    stage: int
    what: str
    """The step in words, as the console and the step's event say it."""
    workflow: str | None = None
    resume: bool = False
    """Resume the workflow if it is paused."""
    limit: Resources | None = None
    allocation: Resources | None = None
    lift: bool = False
    """The step lifts a limit (``limit`` is None)."""
    pool: str | None = None
    """A held pool this step releases (``pool_agents`` of it, or the whole hold when None)."""
    pool_agents: int | None = None
    not_before: float | None = None
    """The step waits until this time (a pool's reset plus the hold period)."""

    @property
    def sets_limit(self) -> bool:
        return "limit" in self.model_fields_set


class Resumption(_Model, defer_build=True):
    """A staged resumption (``/workflow-recovery gradual-resumption``): its steps apply
    one at a time, each after utilisation has held under ``safe_pct`` for ``hold_s``."""

    id: str
    status: Literal["active", "completed", "aborted"] = "active"
    created_at: float
    created_by: str
    safe_pct: float
    hold_s: float
    checkpoint: int | None = None
    stages: list[ResumptionStage]
    """The stages as the operator gave them (workflow, action, limits)."""
    steps: list[StagedStep]
    """The concrete steps planned from the stages (``core.commands.resumption.plan_steps``)."""
    next_step: int = 0
    applied: list[ResumptionApplied] = Field(default_factory=list)
    finished_at: float | None = None
    reason: str | None = None
    held: bool | None = None
    """Held at its step (no automatic advance); None until it is first held or released."""

    def snapshot(self) -> dict[str, Any]:
        """JSON for the state snapshot; ``held`` appears once it has been set, as it
        always has, so that a log replays to the hash its checkpoints recorded."""
        d = self.model_dump(mode="json")
        if self.held is None:
            del d["held"]
        return d
