"""The event catalogue: every event type the engine knows, declared once.

A declaration gives the type's name (what is emitted and stored), the component that
emits it, the model its data must satisfy when it comes from outside, the fold that
applies it to the state, its severity and a one-line summary for readable logs. Emit
sites pass the declaration (``emit(TASK_STARTED, ...)``); it is a ``str`` equal to its
name, so events keep plain names on the wire and in the store. Adding an event type is
one :class:`~core.event_catalogue.EventType` here (or ``EVENTS.declare`` for a test's toy
type); what a type and the catalogue are is in :mod:`core.event_catalogue`.

The catalogue sits above what it composes: payload models (``event_data``), folds
(``reducers``, ``work_reducers``, ``task_reducers``), summaries; none of them imports it. A
:class:`~core.projection.State` is given ``EVENTS.folds`` by whoever builds it.
"""

from __future__ import annotations

from typing import Any

from . import event_data as data
from . import event_summaries as text
from . import incident_summaries as incident_text
from . import reducers as ops
from . import task_reducers as tasks
from . import work_reducers as work
from .event_catalogue import Catalogue, Escalation, EventType
from .event_summaries import Summary
from .events import Event, Severity
from .models import WorkflowStatus
from .projection import Fold, State
from .usage import event_data as usage_data
from .usage import folds as usage_folds
from .usage import summaries as usage_text

# -- the declarations -------------------------------------------------------------

# The fleet: pools and agents.
POOL_CREATED = EventType(
    "POOL_CREATED", "resource", payload=data.PoolCreated, fold=work.pool_created, summary=text.pool_created
)
POOL_RESIZED = EventType(
    "POOL_RESIZED", "resource", payload=data.PoolResized, fold=work.pool_resized, summary=text.pool_resized
)
AGENT_ALLOCATED = EventType(
    "AGENT_ALLOCATED", "resource", payload=data.AgentAllocated, fold=work.agent_allocated, summary=text.agent_allocated
)
AGENT_DEALLOCATED = EventType(
    "AGENT_DEALLOCATED", "resource", payload=data.AgentRef, fold=work.agent_retired, summary=text.agent_retired
)
AGENT_ERROR = EventType(
    "AGENT_ERROR",
    "agent",
    payload=data.AgentRef,
    fold=work.agent_failed,
    severity=Severity.HIGH,
    summary=text.agent_error,
)
AGENT_TIMEOUT = EventType(
    "AGENT_TIMEOUT",
    "network",
    payload=data.AgentRef,
    fold=work.agent_unreachable,
    severity=Severity.HIGH,
    summary=text.agent_timeout,
)
AGENT_RECONNECTED = EventType(
    "AGENT_RECONNECTED",
    "network",
    payload=data.AgentRef,
    fold=work.agent_reconnected,
    summary=text.agent_reconnected,
)
AGENT_BACKOFF = EventType(
    "AGENT_BACKOFF", "resource", payload=data.AgentBackoff, fold=work.agent_backoff, summary=text.agent_backoff
)
AGENT_SEQ_APPLIED = EventType(
    "AGENT_SEQ_APPLIED",
    "network",
    payload=data.AgentSeqApplied,
    fold=work.seq_applied,
    summary=text.agent_seq_applied,
)
AGENT_PERFORMANCE_ALERT = EventType(
    "AGENT_PERFORMANCE_ALERT", "agent", severity=Severity.MEDIUM, summary=text.performance_alert
)
PARTITION_MERGED = EventType("PARTITION_MERGED", "network", summary=text.partition_merged)

# Workflows and their resources.
WORKFLOW_CREATED = EventType(
    "WORKFLOW_CREATED",
    "coordination",
    payload=data.WorkflowCreated,
    fold=work.workflow_created,
    summary=text.workflow_created,
)


def _workflow(name: str, fold: Fold | None, summary: Summary, severity: Severity = Severity.INFO) -> EventType:
    return EventType(name, "coordination", payload=data.WorkflowRef, fold=fold, severity=severity, summary=summary)


WORKFLOW_STARTED = _workflow("WORKFLOW_STARTED", work.wf_status(WorkflowStatus.RUNNING), text.workflow("started"))
WORKFLOW_RESUMED = _workflow("WORKFLOW_RESUMED", work.wf_status(WorkflowStatus.RUNNING), text.workflow("resumed"))
WORKFLOW_PAUSED = _workflow("WORKFLOW_PAUSED", work.wf_status(WorkflowStatus.PAUSED), text.workflow("paused"))
WORKFLOW_COMPLETED = _workflow(
    "WORKFLOW_COMPLETED", work.wf_status(WorkflowStatus.COMPLETED), text.workflow("completed")
)
WORKFLOW_FAILED = _workflow(
    "WORKFLOW_FAILED", work.wf_status(WorkflowStatus.FAILED), text.workflow("failed"), Severity.HIGH
)
WORKFLOW_CANCELLED = _workflow(
    "WORKFLOW_CANCELLED", work.wf_status(WorkflowStatus.CANCELLED), text.workflow("cancelled")
)
WORKFLOW_QUEUED = _workflow("WORKFLOW_QUEUED", work.wf_queued, text.workflow("queued"))
WORKFLOW_FROZEN = EventType(
    "WORKFLOW_FROZEN", "coordination", payload=data.WorkflowFrozen, fold=work.wf_frozen, summary=text.workflow_frozen
)
PHASE_STARTED = EventType("PHASE_STARTED", "coordination", summary=text.phase("started"))
PHASE_COMPLETED = EventType("PHASE_COMPLETED", "coordination", summary=text.phase("completed"))
RESOURCE_ALLOCATED = EventType(
    "RESOURCE_ALLOCATED",
    "resource",
    payload=data.ResourceAllocated,
    fold=work.allocated,
    summary=text.resources("allocation", "allocation"),
)
RESOURCE_DEALLOCATED = EventType(
    "RESOURCE_DEALLOCATED",
    "resource",
    payload=data.ResourceAllocated,
    fold=work.deallocated,
    summary=text.resources("allocation", "allocation"),
)
RESOURCE_RESERVED = EventType(
    "RESOURCE_RESERVED",
    "resource",
    payload=data.ResourceReserved,
    fold=work.reserved,
    summary=text.resources("guarantee", "guarantee"),
)
RESOURCE_LIMITED = EventType(
    "RESOURCE_LIMITED",
    "resource",
    payload=data.ResourceLimited,
    fold=work.limited,
    summary=text.resources("limit", "limit"),
)
RESOURCE_OPTIMIZED = EventType("RESOURCE_OPTIMIZED", "resource")
RESOURCE_THRESHOLD = EventType("RESOURCE_THRESHOLD", "resource", severity=Severity.MEDIUM, summary=text.threshold)
SYSTEM_THRESHOLD = EventType("SYSTEM_THRESHOLD", "system", severity=Severity.MEDIUM, summary=text.threshold)

# Tasks.
TASK_ASSIGNED = EventType(
    "TASK_ASSIGNED", "coordination", payload=data.TaskAssigned, fold=tasks.task_assigned, summary=text.task_assigned
)
TASK_STARTED = EventType(
    "TASK_STARTED", "agent", payload=data.TaskStarted, fold=tasks.task_started, summary=text.task_started
)
TASK_PROGRESS = EventType(
    "TASK_PROGRESS", "agent", payload=data.TaskProgress, fold=tasks.task_progress, summary=text.task_progress
)
TASK_COMPLETED = EventType(
    "TASK_COMPLETED", "agent", payload=data.TaskRef, fold=tasks.task_completed, summary=text.task_completed
)
TASK_FAILED = EventType(
    "TASK_FAILED",
    "agent",
    payload=data.TaskFailed,
    fold=tasks.task_failed,
    severity=Severity.MEDIUM,
    summary=text.task_failed,
)
TASK_TIMEOUT = EventType(
    "TASK_TIMEOUT", "agent", payload=data.TaskFailed, fold=tasks.task_failed, summary=text.task_failed
)
TASK_REASSIGNED = EventType(
    "TASK_REASSIGNED",
    "coordination",
    payload=data.TaskReassigned,
    fold=tasks.task_reassigned,
    summary=text.task_reassigned,
)
TASK_PAUSED = EventType(
    "TASK_PAUSED", "coordination", payload=data.TaskRef, fold=tasks.task_paused, summary=text.task("paused")
)
TASK_RESUMED = EventType(
    "TASK_RESUMED", "coordination", payload=data.TaskRef, fold=tasks.task_resumed, summary=text.task("resumed")
)
TASK_CONTEXT_TRANSFERRED = EventType(
    "TASK_CONTEXT_TRANSFERRED",
    "coordination",
    payload=data.ContextTransferred,
    fold=tasks.context_transferred,
    summary=text.task("context transferred"),
)
TASK_LIMITED = EventType("TASK_LIMITED", "resource")
TASK_WAITING_INPUT = EventType(
    "TASK_WAITING_INPUT",
    "agent",
    payload=data.TaskInputWait,
    fold=tasks.task_waiting_input,
    severity=Severity.MEDIUM,
    summary=text.waiting_input,
)
TASK_INPUT_RESUMED = EventType(
    "TASK_INPUT_RESUMED",
    "agent",
    payload=data.TaskAssigned,
    fold=tasks.task_input_resumed,
    summary=text.task("went on"),
)
TASK_INPUT_SENT = EventType("TASK_INPUT_SENT", "coordination", payload=data.TaskInputSent, summary=text.input_sent)
TASK_WORKTREE = EventType(
    "TASK_WORKTREE", "agent", payload=data.TaskWorktree, fold=tasks.task_worktree, summary=text.worktree
)

# Usage of AI agents: tokens and money per task, budgets, rate-limit holds on pools.
TASK_USAGE = EventType(
    "TASK_USAGE", "agent", payload=usage_data.TaskUsage, fold=usage_folds.task_usage, summary=usage_text.task_usage
)
USAGE_LINES_IGNORED = EventType(
    "USAGE_LINES_IGNORED", "agent", payload=usage_data.UsageLinesIgnored, fold=usage_folds.lines_ignored,
    severity=Severity.MEDIUM, summary=usage_text.lines_ignored,
)  # fmt: skip
BUDGET_SET = EventType(
    "BUDGET_SET", "resource", payload=usage_data.BudgetSet, fold=usage_folds.budget_set, summary=usage_text.budget_set
)
BUDGET_WARNING = EventType(
    "BUDGET_WARNING", "resource", payload=usage_data.BudgetRef, fold=usage_folds.budget_warned,
    severity=Severity.MEDIUM, summary=usage_text.budget_reached("reached its warning share"),
)  # fmt: skip
BUDGET_EXCEEDED = EventType(
    "BUDGET_EXCEEDED", "resource", payload=usage_data.BudgetRef, fold=usage_folds.budget_exceeded,
    severity=Severity.HIGH, summary=usage_text.budget_reached("reached its budget"),
)  # fmt: skip
POOL_RATE_LIMITED = EventType(
    "POOL_RATE_LIMITED", "agent_pool", payload=usage_data.PoolRateLimited, fold=usage_folds.pool_rate_limited,
    severity=Severity.HIGH, summary=usage_text.pool_rate_limited,
)  # fmt: skip
POOL_HOLD_CHANGED = EventType(
    "POOL_HOLD_CHANGED", "agent_pool", payload=usage_data.PoolHoldChanged, fold=usage_folds.pool_hold_changed,
    summary=usage_text.pool_hold_changed,
)  # fmt: skip

# Checkpoints, rollbacks, settings, commands.
CHECKPOINT_CREATED = EventType(
    "CHECKPOINT_CREATED",
    "coordination",
    payload=data.CheckpointCreated,
    fold=work.checkpoint,
    summary=text.checkpoint_created,
)
CHECKPOINTS_PRUNED = EventType(
    "CHECKPOINTS_PRUNED",
    "coordination",
    payload=data.CheckpointsPruned,
    fold=ops.checkpoints_pruned,
    summary=text.checkpoints_pruned,
)
STATE_REPAIRED = EventType(
    "STATE_REPAIRED",
    "system",
    severity=Severity.HIGH,
    injectable=False,
    summary=text.state_repaired,
)
"""``opsdeck repair`` rebuilt the log: what was kept, what was dropped (folds nothing)."""
STATE_RESTORED = EventType(
    "STATE_RESTORED", "coordination", fold=work.restored, injectable=False, summary=text.state_restored
)
SETTING_CHANGED = EventType(
    "SETTING_CHANGED",
    "system",
    payload=data.SettingChanged,
    fold=work.setting,
    # A drill that ended without its fault being detected: the detection failed.
    escalations=(Escalation(Severity.HIGH, (("key", "drill"), ("value.outcome", "not_detected"))),),
    summary=text.setting_changed,
)
COMMAND_EXECUTED = EventType(
    "COMMAND_EXECUTED", "command", fold=work.command, injectable=False, summary=text.command_executed
)
COMMAND_REJECTED = EventType("COMMAND_REJECTED", "command", severity=Severity.MEDIUM)
SYSTEM_STARTUP = EventType("SYSTEM_STARTUP", "system")
OWNERSHIP_TRUSTED = EventType("OWNERSHIP_TRUSTED", "system", severity=Severity.HIGH)
SYSTEM_ERROR = EventType("SYSTEM_ERROR", "incidents", severity=Severity.HIGH, summary=text.system_error)
LEARNING_RECORDED = EventType(
    "LEARNING_RECORDED", "coordination", payload=data.LearningRecorded, fold=ops.learning, summary=text.learning
)

# Staged resumptions.
RESUMPTION_CREATED = EventType(
    "RESUMPTION_CREATED",
    "coordination",
    payload=data.ResumptionCreated,
    fold=ops.resumption_created,
    summary=text.resumption("created"),
)
RESUMPTION_STEP_APPLIED = EventType(
    "RESUMPTION_STEP_APPLIED",
    "coordination",
    payload=data.ResumptionStep,
    fold=ops.resumption_step,
    summary=text.resumption("applied step"),
)
RESUMPTION_HELD = EventType(
    "RESUMPTION_HELD",
    "coordination",
    payload=data.ResumptionHeld,
    fold=ops.resumption_held,
    summary=text.resumption_held,
)
RESUMPTION_COMPLETED = EventType(
    "RESUMPTION_COMPLETED",
    "coordination",
    payload=data.ResumptionRef,
    fold=ops.resumption_done("completed"),
    summary=text.resumption("completed"),
)
RESUMPTION_ABORTED = EventType(
    "RESUMPTION_ABORTED",
    "coordination",
    payload=data.ResumptionRef,
    fold=ops.resumption_done("aborted"),
    summary=text.resumption("aborted"),
)

# Incidents and their plans.
INCIDENT_OPENED = EventType(
    "INCIDENT_OPENED",
    "incidents",
    payload=data.IncidentOpened,
    fold=ops.incident_opened,
    summary=text.incident_opened,
)
INCIDENT_RESOLVED = EventType(
    "INCIDENT_RESOLVED",
    "incidents",
    payload=data.IncidentRef,
    fold=ops.incident_resolved,
    # An incident that ends "failed": its plan's validation failed or the plan was aborted.
    escalations=(Escalation(Severity.HIGH, (("status", "failed"),)),),
    summary=text.incident_resolved,
)
INCIDENT_NOTED = EventType(
    "INCIDENT_NOTED", "incidents", payload=data.IncidentNoted, fold=ops.incident_noted, summary=text.incident_noted
)
INCIDENT_REOPENED = EventType(
    "INCIDENT_REOPENED",
    "incidents",
    payload=data.IncidentRef,
    fold=ops.incident_reopened,
    summary=text.incident("reopened"),
)
PLAN_PROPOSED = EventType(
    "PLAN_PROPOSED", "incidents", payload=data.PlanProposed, fold=ops.plan_proposed, summary=text.plan_proposed
)


def _plan(
    name: str,
    fold: Fold,
    payload: type[data.EventData],
    summary: Summary,
    severity: Severity = Severity.INFO,
    escalations: tuple[Escalation, ...] = (),
) -> EventType:
    return EventType(
        name, "incidents", payload=payload, fold=fold, severity=severity, escalations=escalations, summary=summary
    )


PLAN_APPROVED = _plan("PLAN_APPROVED", ops.plan_approved, data.PlanRef, text.plan("approved"))
PLAN_REJECTED = _plan("PLAN_REJECTED", ops.plan_rejected, data.PlanRef, text.plan("rejected"))
PLAN_EDITED = _plan("PLAN_EDITED", ops.plan_edited, data.PlanEdited, text.plan("edited"))
PLAN_EXECUTION_STARTED = _plan("PLAN_EXECUTION_STARTED", ops.plan_started, data.PlanRef, text.plan("started"))
PLAN_STEP_STARTED = _plan("PLAN_STEP_STARTED", ops.step_started, data.PlanStepRef, text.plan_step("started"))
PLAN_STEP_COMPLETED = _plan("PLAN_STEP_COMPLETED", ops.step_completed, data.PlanStepRef, text.plan_step("completed"))
# A recovery that failed or was stopped is what the operator must see first: high.
PLAN_STEP_FAILED = _plan("PLAN_STEP_FAILED", ops.step_failed, data.PlanStepRef, text.plan_step("failed"), Severity.HIGH)
# Not run: every target the step acts on had ended when it was due (core.incidents.preconditions).
PLAN_STEP_SKIPPED = _plan(
    "PLAN_STEP_SKIPPED", ops.step_skipped, data.PlanStepRef, text.plan_step("skipped", why="reason")
)
PLAN_ABORTED = _plan("PLAN_ABORTED", ops.plan_aborted, data.PlanRef, text.plan("aborted"), Severity.HIGH)
# A plan that ran to its end but is NOT VALIDATED (its criterion failed, or held without the plan's credit).
PLAN_COMPLETED = _plan(
    "PLAN_COMPLETED",
    ops.plan_completed,
    data.PlanCompleted,
    text.plan_completed,
    escalations=(Escalation(Severity.HIGH, (("outcome.validated", False),)),),
)
PLAN_VALIDATION_STARTED = EventType("PLAN_VALIDATION_STARTED", "incidents", summary=text.plan("validation started"))

# What detectors find (their data may grade the severity), what playbooks announce,
# what validation concludes, drills.
RESOURCE_EXHAUSTION = EventType(
    "RESOURCE_EXHAUSTION", "system", severity=Severity.CRITICAL, summary=incident_text.finding
)
AGENT_POOL_FAILURE = EventType(
    "AGENT_POOL_FAILURE", "agent_pool", severity=Severity.CRITICAL, summary=incident_text.finding
)
DATA_INTEGRITY_ALERT = EventType(
    "DATA_INTEGRITY_ALERT", "data", severity=Severity.CRITICAL, summary=incident_text.finding
)
COMMUNICATION_FAILURE = EventType(
    "COMMUNICATION_FAILURE", "network", severity=Severity.HIGH, summary=incident_text.finding
)
PERFORMANCE_DEGRADATION_DETECTED = EventType(
    "PERFORMANCE_DEGRADATION_DETECTED", "performance", severity=Severity.HIGH, summary=incident_text.finding
)
EMERGENCY_RESPONSE_ACTIVATED = EventType(
    "EMERGENCY_RESPONSE_ACTIVATED", "system", summary=incident_text.plan_announcement
)
RECOVERY_PLAN_GENERATED = EventType("RECOVERY_PLAN_GENERATED", "coordination", summary=incident_text.plan_announcement)
OPTIMIZATION_STRATEGY_GENERATED = EventType(
    "OPTIMIZATION_STRATEGY_GENERATED", "performance", summary=incident_text.plan_announcement
)
DATA_RECOVERY_STRATEGY = EventType("DATA_RECOVERY_STRATEGY", "coordination", summary=incident_text.plan_announcement)
RESILIENT_COORDINATION_ACTIVATED = EventType(
    "RESILIENT_COORDINATION_ACTIVATED", "network", summary=incident_text.plan_announcement
)
EMERGENCY_RESPONSE_COMPLETED = EventType("EMERGENCY_RESPONSE_COMPLETED", "system", summary=incident_text.plan_concluded)
RECOVERY_VALIDATION_COMPLETED = EventType(
    "RECOVERY_VALIDATION_COMPLETED", "coordination", summary=incident_text.plan_concluded
)
OPTIMIZATION_COMPLETED = EventType("OPTIMIZATION_COMPLETED", "performance", summary=incident_text.plan_concluded)
DATA_RECOVERY_COMPLETED = EventType("DATA_RECOVERY_COMPLETED", "coordination", summary=incident_text.plan_concluded)
NETWORK_RECOVERY_COMPLETED = EventType("NETWORK_RECOVERY_COMPLETED", "network", summary=incident_text.plan_concluded)
MONITORING_WINDOW_CLOSED = EventType("MONITORING_WINDOW_CLOSED", "performance")
DRILL_FAULT_INJECTED = EventType("DRILL_FAULT_INJECTED", "system", summary=text.drill_fault)
DRILL_FAULT_CONFIRMED = EventType("DRILL_FAULT_CONFIRMED", "system", summary=text.drill_fault_confirmed)


EVENTS = Catalogue(v for v in list(globals().values()) if isinstance(v, EventType))
"""Every event type the engine knows."""


def severity_of(ev: Event) -> Severity:
    return EVENTS.severity(ev.type, ev.data)


def summarise(ev: Event) -> str:
    return EVENTS.summarise(ev)


def known_types() -> set[str]:
    """Event types the engine knows (for filters that must refuse a type that can match nothing)."""
    return EVENTS.names()


def check_event(state: State, type_: str, payload: dict[str, Any]) -> None:
    EVENTS.check(state, type_, payload)
