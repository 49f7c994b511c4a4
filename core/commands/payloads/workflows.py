"""Payloads of workflows, checkpoints, events, tasks, ``/subagents`` and ``/debug``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import Label, Payload, Severity


class SubagentsContext(Payload):
    phase: str
    priority: Literal["critical", "high", "medium", "low"] = "medium"
    coordination: str = "parallel"
    optimization_focus: bool = False
    failure_tolerance: Literal["low", "medium", "high"] = "medium"


class SubagentTask(Payload):
    command: Literal[
        "/debug", "/resource-manager", "/performance-monitor", "/coordination-hub", "/workflow-recovery", "/x"
    ]
    operation: str | None = None
    scope: str
    analysis: str | None = None
    focus: list[str] = Field(default_factory=list)


class Subagents(Payload):
    context: SubagentsContext
    tasks: list[SubagentTask] = Field(min_length=1, max_length=16)


class Debug(Payload):
    scope: str = "system"
    analysis: str | None = None
    focus: list[str] = Field(default_factory=list)
    severity_at_least: Severity = "low"


class CreateWorkflow(Payload):
    """A workflow definition (see core.models.WorkflowSpec); ``start`` queues it at once."""

    id: str
    name: str = ""
    priority: int = Field(50, ge=0, le=100)
    depends_on: list[str] = Field(default_factory=list)
    allocation: dict[str, Any] | None = None
    guarantee: dict[str, Any] | None = None
    phases: list[dict[str, Any]] = Field(min_length=1)
    start: bool = False


class CheckpointRequest(Payload):
    kind: Literal["phase_complete", "incremental", "emergency", "manual"] = "manual"
    label: Label = ""


class RestoreRequest(Payload):
    checkpoint: int | Literal["latest", "latest_verified"] = "latest_verified"
    mode: Literal["full", "partial", "selective"] = "full"
    workflows: list[str] = Field(default_factory=list)


class RollbackPreviewRequest(Payload):
    checkpoint: int | Literal["latest", "latest_verified"] = "latest_verified"
    workflows: list[str] = Field(default_factory=list, description="only these workflows (default: all)")


class CheckpointRef(Payload):
    checkpoint: int | Literal["latest"] = "latest"


class CleanupCheckpoints(Payload):
    keep: int = Field(5, ge=1, description="verified checkpoints to keep listed as restore points")


class AssignAgents(Payload):
    agents: int | list[str]


class Redistribute(Payload):
    from_agents: list[str] = Field(
        default_factory=list, description="agents whose tasks move (default: unreachable or slow ones)"
    )
    slow_factor: float = Field(
        1.5, gt=1, description="an agent counts as slow when its progress rate is this much under plan"
    )


class PublishEvent(Payload):
    type: str
    component: str
    scope: str
    data: dict[str, Any] = Field(default_factory=dict)


class SubscribeEvent(Payload):
    types: list[str] = Field(min_length=1)
    name: str = "operator"


class GetEvents(Payload):
    types: list[str] = Field(default_factory=list)
    since: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=1000)
    workflow: str | None = None
    subscription: str | None = Field(None, description="only the event types of this subscription (subscribe-event)")


class SaveState(Payload):
    label: Label = ""


class LoadState(Payload):
    checkpoint: int | Literal["latest", "latest_verified"] = "latest_verified"


class Freeze(Payload):
    frozen: bool = True


class SendInput(Payload):
    """Text for a running task's stdin (a line unless ``newline`` is false)."""

    task: str = Field(min_length=1)
    text: str = Field(max_length=4096)
    newline: bool = True


class TaskRefPayload(Payload):
    """One task, named by its id."""

    task: str = Field(min_length=1)
