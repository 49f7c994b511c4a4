"""Incidents and plans as the projection holds them: what went wrong, what we propose
to do, how far we got.

An :class:`Incident` records a detected failure with its evidence; a :class:`Plan`
is an ordered list of slash commands (:class:`PlanStep`) that goes through the
approval gate and the executor. The projection folds them from INCIDENT_* and PLAN_*
events (``core.reducers``) and snapshots them with the rest of the state; the same
models validate them where they are built (``core.incidents``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .models import AsWritten


class PlanState(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    SKIPPED = "skipped"
    """A step's only: when it was due, every target it acts on had ended (a workflow
    finished, an agent gone, a task settled), so its command was not sent."""


TERMINAL_PLAN = {PlanState.REJECTED, PlanState.COMPLETED, PlanState.FAILED, PlanState.ROLLED_BACK}

STEP_PASSED = frozenset({PlanState.COMPLETED, PlanState.ROLLED_BACK, PlanState.SKIPPED})
"""Step states the executor moves past to the next step."""

Category = Literal["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"]


class _Model(BaseModel):
    # Built at first use: no incident model is validated on a run's path (core.models._Model).
    model_config = ConfigDict(extra="forbid", defer_build=True)


Number = int | float
"""A number as its writer gave it (an int stays an int: snapshots hash what was written)."""
Seconds = Number


class Kept(AsWritten):
    """A record kept as its writer wrote it (:class:`~core.models.AsWritten`), a key an
    older log carries that is not declared here included (``extra="allow"``)."""

    model_config = ConfigDict(extra="allow")


class IncidentOutcome(Kept):
    """How an incident ended (INCIDENT_RESOLVED's ``outcome``): a plan validated or not, a
    plan that failed, or an operator's resolve."""

    validated: bool | None = None
    result: str | None = None
    """``validated``, ``recovered_without_plan`` or ``not_validated``."""
    validations: dict[str, Any] | None = None
    """Each criterion's verdict details, by criterion."""
    recovery_time_s: Seconds | None = None
    detection_latency_s: Seconds | None = None
    plan_finished_s: Seconds | None = None
    reason: str | None = None
    quarantined_checkpoints: list[int] | None = None
    """Checkpoints a data recovery found differing from the log and set aside."""
    plan_id: str | None = None
    resolved_by: str | None = None
    """An operator's resolve (``/incident resolve``): who, their note, the status before."""
    note: str | None = None
    previous_status: str | None = None


class PlanOutcome(IncidentOutcome):
    """How a plan ended (PLAN_COMPLETED's ``outcome``, or its rejection or abort)."""

    rejected: bool | None = None
    aborted_by: str | None = None
    rollback: Any = None
    """The rollback an abort ran (its checkpoint and what it restored), if any."""


class FindingRecord(Kept):
    """The detector's finding an incident opened on (what ``/incident replan`` rebuilds it from)."""

    component: str = "incidents"
    scope: str = "incident"
    data: dict[str, Any] = Field(default_factory=dict)
    onset: Number | None = None


class KindEvidence(BaseModel):
    """A kind's view of an incident's evidence: the fields its readers use, typed, with
    the defaults they had (each kind declares its own in its module)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)


E = TypeVar("E", bound=KindEvidence)


class IncidentEvidence(Kept):
    """What an incident was opened on: the finding, each affected workflow's progress at
    detection, and the kind's own evidence (kept as written, read through the kind's typed
    view: :meth:`of`)."""

    finding: FindingRecord | None = None
    progress_at_detection: dict[str, Number] | None = None

    def of(self, view: type[E]) -> E:
        """The kind's evidence typed by its view (fields not written take the view's defaults)."""
        return view.model_validate(self.model_dump())

    def shown(self) -> dict[str, Any]:
        """JSON-ready for display: what the detector and the kind wrote first (in the order
        written), then the finding and the progress at detection."""
        dumped = self.model_dump(mode="json")
        first = [k for k in (self.model_extra or {}) if k in dumped]
        return {**{k: dumped[k] for k in first}, **{k: v for k, v in dumped.items() if k not in first}}


class StepCheck(_Model):
    """A check after a step: wait ``settle_s`` of simulated time, then compare a
    telemetry metric with its baseline; a regression beyond the limit aborts the plan
    and rolls it back (the gradual execution of the performance scenario)."""

    metric: str
    settle_s: float = Field(300.0, ge=0)
    higher_is_worse: bool = True
    max_regression_pct: float = Field(5.0, ge=0)


class PlanStep(_Model):
    """One slash command of a plan; it goes through the same states as its plan."""

    index: int = Field(ge=0)
    command: str = Field(min_length=2)
    title: str = ""
    category: Category = "destructive"
    approval: Literal["auto", "manual"] = "manual"
    state: PlanState = PlanState.PROPOSED
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    check: StepCheck | None = None
    gate: str | None = None
    """A validation (a criterion or shared gate of ``core.incidents.kinds.CATALOGUE``) that must pass before the step completes."""

    @property
    def to_run(self) -> bool:
        """Still to run: not started (its command not sent) and not called off by a reject or abort."""
        return self.state in (PlanState.PROPOSED, PlanState.APPROVED)


class Plan(_Model):
    id: str
    incident_id: str
    scenario: str = Field(min_length=1)
    """The incident kind (``core.incidents.kinds``)."""
    title: str
    strategy: str = ""
    steps: list[PlanStep]
    state: PlanState = PlanState.PROPOSED
    created_at: float = 0.0
    decided_by: str | None = None
    decided_at: float | None = None
    checkpoint: int | None = None
    """Checkpoint taken just before the plan's first step runs: the rollback target."""
    expected: dict[str, Any] = Field(default_factory=dict)
    outcome: PlanOutcome = Field(default_factory=PlanOutcome)
    edited_by: list[str] = Field(default_factory=list)


class IncidentNote(_Model):
    at: float
    by: str
    note: str = ""
    action: str | None = None


class Incident(_Model):
    id: str
    scenario: str = Field(min_length=1)
    type: str
    """The seed's detection event type, e.g. RESOURCE_EXHAUSTION."""
    severity: Literal["critical", "high", "medium", "low"]
    evidence: IncidentEvidence = Field(default_factory=IncidentEvidence)
    detected_at: float
    fault_at: float | None = None
    """When the fault began, if known (a drill knows; a detector estimates)."""
    status: Literal["open", "recovering", "resolved", "failed"] = "open"
    plans: list[str] = Field(default_factory=list)
    affected_workflows: list[str] = Field(default_factory=list)
    resolved_at: float | None = None
    outcome: IncidentOutcome = Field(default_factory=IncidentOutcome)
    criteria: list[str] = Field(default_factory=list)
    """The validations (the kind's criterion, from the catalogue) a plan must pass to resolve the incident,
    fixed from its kind when it opens; editing a plan does not change them."""
    validation_window_s: float | None = None
    """How long the criteria may take to hold once a plan's last step has run."""
    notes: list[IncidentNote] = Field(default_factory=list)
    """Operator notes (``/incident resolve ID --note``)."""
