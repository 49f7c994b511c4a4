"""What each folded event type needs in its data: the boundary check for injected events.

Script event lines and ``/coordination-hub publish-event`` hand the engine events
from outside. Before one is applied, its data is validated here (pydantic: the
fields its reducer reads, with their types) and the things it names must exist
(the agent, task, workflow, pool, plan, incident or resumption). A failure says
which field and why, and nothing is applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .incident_models import Incident, Plan, PlanStep
from .models import Pool, Resources, ResumptionStage, StagedStep, TaskContext, WorkflowSpec

if TYPE_CHECKING:
    from .projection import State


class EventDataError(ValueError):
    """Event data its reducer cannot fold; ``field`` names the culprit."""

    def __init__(self, type_: str, field: str, message: str) -> None:
        super().__init__(f"{type_}: data.{field}: {message}" if field else f"{type_}: {message}")
        self.type = type_
        self.field = field
        self.message = message


class EventData(BaseModel):
    model_config = ConfigDict(extra="allow", strict=False, defer_build=True)
    refs: ClassVar[dict[str, str]] = {}
    """field -> the State collection it must name."""

    def conflict(self, state: State) -> tuple[str, str] | None:
        """(field, why) when this data cannot fold into ``state`` beyond its ``refs``."""
        return None


class AgentRef(EventData):
    agent: str
    refs = {"agent": "agents"}


class AgentBackoff(AgentRef):
    until: float


class AgentSeqApplied(AgentRef):
    seq: int


class AgentAllocated(EventData):
    agent: str
    pool: str
    specializations: list[str]
    refs = {"pool": "pools"}

    def conflict(self, state: State) -> tuple[str, str] | None:
        return ("agent", f"agent {self.agent!r} exists") if self.agent in state.agents else None


class PoolCreated(EventData):
    pool: Pool

    def conflict(self, state: State) -> tuple[str, str] | None:
        return ("pool.name", f"pool {self.pool.name!r} exists") if self.pool.name in state.pools else None


class PoolResized(EventData):
    pool: str
    min_size: int | None = None
    max_size: int | None = None
    refs = {"pool": "pools"}


class WorkflowCreated(EventData):
    spec: WorkflowSpec

    def conflict(self, state: State) -> tuple[str, str] | None:
        spec = self.spec
        if state.knows(spec.id):
            return "spec.id", f"workflow {spec.id!r} exists"
        names: set[str] = set()
        for phase in spec.phases:
            for t in phase.tasks:
                if t.id in names or any(d not in names for d in t.depends_on):
                    return "spec.phases", f"task {t.id!r} repeats or depends on a later/unknown task"
                names.add(t.id)
        return None


class WorkflowRef(EventData):
    workflow_id: str
    refs = {"workflow_id": "workflows"}


class WorkflowFrozen(WorkflowRef):
    frozen: bool = True


class ResourceAllocated(WorkflowRef):
    allocation: Resources
    base: bool = False


class ResourceReserved(WorkflowRef):
    guarantee: Resources | None = None


class ResourceLimited(WorkflowRef):
    limit: Resources | None = None


class TaskStarted(EventData):
    agent: str | None = None


class TaskRef(EventData):
    task: str
    refs = {"task": "tasks"}


class TaskAssigned(TaskRef):
    agent: str
    refs = {"task": "tasks", "agent": "agents"}


class TaskProgress(TaskRef):
    progress: float | None = None
    output: list[str] | None = None
    partial: dict[str, Any] | None = None


class TaskInputWait(TaskAssigned):
    reason: str = Field(max_length=500)


class TaskInputSent(TaskAssigned):
    size: int = Field(ge=0)
    """Bytes written to the task's stdin."""
    text: str = Field(max_length=4096)


class TaskWorktree(TaskRef):
    path: str | None = None
    branch: str | None = None
    repo: str | None = None
    outcome: str | None = None
    """"opened", "merged" (and the commit), "discarded", "pruned"."""
    commit: str | None = None


class TaskFailed(TaskRef):
    output: list[str] | None = None
    retry: bool = False


class TaskReassigned(TaskRef):
    context: TaskContext | None = None


class ContextTransferred(TaskRef):
    context: TaskContext


class CheckpointCreated(EventData):
    id: int
    seq: int
    kind: str
    label: str = ""
    state_hash: str
    workflow: str | None = None


class SettingChanged(EventData):
    key: str
    value: Any


class IncidentOpened(EventData):
    incident: Incident

    def conflict(self, state: State) -> tuple[str, str] | None:
        inc = self.incident.id
        return ("incident.id", f"incident {inc!r} exists") if inc in state.incidents else None


class IncidentRef(EventData):
    incident_id: str
    outcome: dict[str, Any] = {}
    refs = {"incident_id": "incidents"}


class IncidentNoted(EventData):
    incident_id: str
    note: str = ""
    action: str | None = None
    refs = {"incident_id": "incidents"}


class PlanProposed(EventData):
    plan: Plan

    def conflict(self, state: State) -> tuple[str, str] | None:
        return ("plan.id", f"plan {self.plan.id!r} exists") if self.plan.id in state.plans else None


class PlanRef(EventData):
    plan_id: str
    refs = {"plan_id": "plans"}


class PlanEdited(PlanRef):
    steps: list[PlanStep]


class PlanCompleted(PlanRef):
    outcome: dict[str, Any] = {}


class PlanStepRef(PlanRef):
    step: int

    def conflict(self, state: State) -> tuple[str, str] | None:
        steps = state.plans[self.plan_id].steps
        return None if 0 <= self.step < len(steps) else ("step", f"plan {self.plan_id!r} has no step {self.step}")


class ResumptionCreated(EventData):
    id: str
    safe_pct: float
    hold_s: float
    stages: list[ResumptionStage]
    steps: list[StagedStep]


class ResumptionRef(EventData):
    id: str
    refs = {"id": "resumptions"}


class ResumptionStep(ResumptionRef):
    step: int


class ResumptionHeld(ResumptionRef):
    held: bool


class LearningRecorded(EventData):
    policy: dict[str, Any] | None = None


class CheckpointsPruned(EventData):
    ids: list[int] = []


def check_data(state: State, type_: str, schema: type[EventData], data: dict[str, Any]) -> None:
    """Raise EventDataError unless ``data`` is what ``schema`` (the payload of ``type_``)
    holds and everything it names exists in ``state``."""
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
    problem = model.conflict(state)
    if problem is not None:
        raise EventDataError(type_, *problem)
