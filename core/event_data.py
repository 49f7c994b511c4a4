"""What each folded event type needs in its data: the boundary check for injected events.

Script event lines and ``/coordination-hub publish-event`` hand the engine events
from outside. Before one is applied, its data is validated here (pydantic: the
fields its reducer reads, with their types) and the things it names must exist
(the agent, task, workflow, pool, plan, incident or resumption). A failure says
which field and why, and nothing is applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .models import Pool, Resources, TaskContext, WorkflowSpec

if TYPE_CHECKING:
    from .projection import State


class EventDataError(ValueError):
    """Event data its reducer cannot fold; ``field`` names the culprit."""

    def __init__(self, type_: str, field: str, message: str) -> None:
        super().__init__(f"{type_}: data.{field}: {message}" if field else f"{type_}: {message}")
        self.type = type_
        self.field = field
        self.message = message


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow", strict=False)
    refs: ClassVar[dict[str, str]] = {}
    """field -> the State collection it must name."""


class _Agent(_Data):
    agent: str
    refs = {"agent": "agents"}


class _Backoff(_Agent):
    until: float


class _SeqApplied(_Agent):
    seq: int


class _AgentAllocated(_Data):
    agent: str
    pool: str
    specializations: list[str]
    refs = {"pool": "pools"}


class _PoolCreated(_Data):
    pool: Pool


class _PoolResized(_Data):
    pool: str
    min_size: int | None = None
    max_size: int | None = None
    refs = {"pool": "pools"}


class _WorkflowCreated(_Data):
    spec: WorkflowSpec


class _Workflow(_Data):
    workflow_id: str
    refs = {"workflow_id": "workflows"}


class _Frozen(_Workflow):
    frozen: bool = True


class _Allocated(_Workflow):
    allocation: Resources
    base: bool = False


class _Reserved(_Workflow):
    guarantee: Resources | None = None


class _Limited(_Workflow):
    limit: Resources | None = None


class _TaskStarted(_Data):
    agent: str | None = None


class _Task(_Data):
    task: str
    refs = {"task": "tasks"}


class _TaskAssigned(_Task):
    agent: str
    refs = {"task": "tasks", "agent": "agents"}


class _TaskProgress(_Task):
    progress: float | None = None
    output: list[str] | None = None
    partial: dict[str, Any] | None = None


class _TaskFailed(_Task):
    output: list[str] | None = None
    retry: bool = False


class _TaskReassigned(_Task):
    context: TaskContext | None = None


class _ContextTransferred(_Task):
    context: TaskContext


class _Checkpoint(_Data):
    id: int
    seq: int
    kind: str
    label: str = ""
    state_hash: str
    workflow: str | None = None


class _Setting(_Data):
    key: str
    value: Any


class _IncidentBody(_Data):
    id: str


class _IncidentOpened(_Data):
    incident: _IncidentBody


class _Incident(_Data):
    incident_id: str
    outcome: dict[str, Any] = {}
    refs = {"incident_id": "incidents"}


class _IncidentNoted(_Data):
    incident_id: str
    note: str = ""
    action: str | None = None
    refs = {"incident_id": "incidents"}


class _PlanBody(_Data):
    id: str
    incident_id: str
    steps: list[dict[str, Any]]


class _PlanProposed(_Data):
    plan: _PlanBody


class _Plan(_Data):
    plan_id: str
    refs = {"plan_id": "plans"}


class _PlanEdited(_Plan):
    steps: list[dict[str, Any]]


class _PlanCompleted(_Plan):
    outcome: dict[str, Any] = {}


class _PlanStep(_Plan):
    step: int


class _ResumptionCreated(_Data):
    id: str
    safe_pct: float
    hold_s: float
    stages: list[Any]
    steps: list[Any]


class _Resumption(_Data):
    id: str
    refs = {"id": "resumptions"}


class _ResumptionStep(_Resumption):
    step: int


class _ResumptionHeld(_Resumption):
    held: bool


class _Learning(_Data):
    policy: dict[str, Any] | None = None


class _Pruned(_Data):
    ids: list[int] = []


SCHEMAS: dict[str, type[_Data]] = {
    "POOL_CREATED": _PoolCreated,
    "POOL_RESIZED": _PoolResized,
    "AGENT_ALLOCATED": _AgentAllocated,
    "AGENT_DEALLOCATED": _Agent,
    "AGENT_ERROR": _Agent,
    "AGENT_TIMEOUT": _Agent,
    "AGENT_RECONNECTED": _Agent,
    "AGENT_BACKOFF": _Backoff,
    "AGENT_SEQ_APPLIED": _SeqApplied,
    "WORKFLOW_CREATED": _WorkflowCreated,
    "WORKFLOW_STARTED": _Workflow,
    "WORKFLOW_RESUMED": _Workflow,
    "WORKFLOW_PAUSED": _Workflow,
    "WORKFLOW_COMPLETED": _Workflow,
    "WORKFLOW_FAILED": _Workflow,
    "WORKFLOW_CANCELLED": _Workflow,
    "WORKFLOW_QUEUED": _Workflow,
    "WORKFLOW_FROZEN": _Frozen,
    "RESOURCE_ALLOCATED": _Allocated,
    "RESOURCE_DEALLOCATED": _Allocated,
    "RESOURCE_RESERVED": _Reserved,
    "RESOURCE_LIMITED": _Limited,
    "TASK_ASSIGNED": _TaskAssigned,
    "TASK_STARTED": _TaskStarted,
    "TASK_PROGRESS": _TaskProgress,
    "TASK_COMPLETED": _Task,
    "TASK_FAILED": _TaskFailed,
    "TASK_TIMEOUT": _TaskFailed,
    "TASK_REASSIGNED": _TaskReassigned,
    "TASK_PAUSED": _Task,
    "TASK_RESUMED": _Task,
    "TASK_CONTEXT_TRANSFERRED": _ContextTransferred,
    "CHECKPOINT_CREATED": _Checkpoint,
    "SETTING_CHANGED": _Setting,
    "INCIDENT_OPENED": _IncidentOpened,
    "INCIDENT_RESOLVED": _Incident,
    "INCIDENT_NOTED": _IncidentNoted,
    "INCIDENT_REOPENED": _Incident,
    "PLAN_PROPOSED": _PlanProposed,
    "PLAN_APPROVED": _Plan,
    "PLAN_REJECTED": _Plan,
    "PLAN_EDITED": _PlanEdited,
    "PLAN_EXECUTION_STARTED": _Plan,
    "PLAN_STEP_STARTED": _PlanStep,
    "PLAN_STEP_COMPLETED": _PlanStep,
    "PLAN_STEP_FAILED": _PlanStep,
    "PLAN_ABORTED": _Plan,
    "PLAN_COMPLETED": _PlanCompleted,
    "RESUMPTION_CREATED": _ResumptionCreated,
    "RESUMPTION_STEP_APPLIED": _ResumptionStep,
    "RESUMPTION_HELD": _ResumptionHeld,
    "RESUMPTION_COMPLETED": _Resumption,
    "RESUMPTION_ABORTED": _Resumption,
    "CHECKPOINTS_PRUNED": _Pruned,
    "LEARNING_RECORDED": _Learning,
}

NOT_INJECTABLE = frozenset({"STATE_RESTORED", "COMMAND_EXECUTED"})
"""Recorded only by the engine: a rollback's snapshot and the command audit trail."""


def check_event(state: State, type_: str, data: dict[str, Any]) -> None:
    """Raise EventDataError unless ``data`` is what the reducer of ``type_`` can fold in ``state``."""
    if type_ in NOT_INJECTABLE:
        raise EventDataError(type_, "", "recorded only by the engine; it cannot be injected")
    schema = SCHEMAS.get(type_)
    if schema is None:
        return  # no reducer reads it: it is counted as observed, whatever its data
    try:
        model = schema.model_validate(data)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        field = ".".join(str(x) for x in e["loc"])
        raise EventDataError(type_, field, e["msg"].lower()) from None
    for field, collection in schema.refs.items():
        value = getattr(model, field)
        if value not in getattr(state, collection):
            raise EventDataError(type_, field, f"no {collection[:-1]} {value!r}")
    _check_more(state, type_, model)


def _check_more(state: State, type_: str, model: _Data) -> None:
    if isinstance(model, _WorkflowCreated):
        spec = model.spec
        if state.knows(spec.id):
            raise EventDataError(type_, "spec.id", f"workflow {spec.id!r} exists")
        names: set[str] = set()
        for phase in spec.phases:
            for t in phase.tasks:
                if t.id in names or any(d not in names for d in t.depends_on):
                    raise EventDataError(
                        type_, "spec.phases", f"task {t.id!r} repeats or depends on a later/unknown task"
                    )
                names.add(t.id)
    elif isinstance(model, _PoolCreated) and model.pool.name in state.pools:
        raise EventDataError(type_, "pool.name", f"pool {model.pool.name!r} exists")
    elif isinstance(model, _AgentAllocated) and model.agent in state.agents:
        raise EventDataError(type_, "agent", f"agent {model.agent!r} exists")
    elif isinstance(model, _PlanStep):
        steps = state.plans[model.plan_id].get("steps") or []
        if not 0 <= model.step < len(steps):
            raise EventDataError(type_, "step", f"plan {model.plan_id!r} has no step {model.step}")
    elif isinstance(model, _PlanProposed) and model.plan.id in state.plans:
        raise EventDataError(type_, "plan.id", f"plan {model.plan.id!r} exists")
    elif isinstance(model, _IncidentOpened) and model.incident.id in state.incidents:
        raise EventDataError(type_, "incident.id", f"incident {model.incident.id!r} exists")
