"""Payloads of ``/resource-manager``: amounts, allocation, reallocation, scaling, emergencies."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Duration, Payload, Switch


class ResourceQuery(Payload):
    resource_type: Literal["system", "agents", "workflows", "cpu", "memory", "storage", "tokens"] = "system"
    horizon: Duration = Field(1800.0, description="how far ahead a forecast looks")


class ResourceAmount(Payload):
    """An amount of resources; ``cpu`` and ``cpu_cores`` are the same thing."""

    cpu: float | None = Field(None, ge=0)
    cpu_cores: float | None = Field(None, ge=0)
    memory_gb: float | None = Field(None, ge=0)
    agents: int | None = Field(None, ge=0)

    @property
    def cores(self) -> float | None:
        return self.cpu_cores if self.cpu_cores is not None else self.cpu


class BudgetAmount(Payload):
    """A budget: money, tokens or both; ``warn_share`` where the warning is raised."""

    cost_usd: float | None = Field(None, gt=0)
    tokens: int | None = Field(None, gt=0)
    warn_share: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _some(self) -> BudgetAmount:
        if self.cost_usd is None and self.tokens is None:
            raise ValueError("a budget needs cost_usd, tokens or both")
        return self


class Allocate(ResourceAmount):
    workflow: str | None = None
    pool: str | None = Field(None, description="with budget: the pool's budget instead of a workflow's")
    budget: BudgetAmount | None = None


class Reallocate(Payload):
    from_workflow: str
    to_workflow: str
    agents: int = Field(0, ge=0)
    cpu_cores: float = Field(0.0, ge=0)
    memory_gb: float = Field(0.0, ge=0)


class Release(Payload):
    workflow: str | None = None
    what: Literal["guarantee", "allocation", "both"] = "both"


class Scale(Payload):
    pool: str
    size: int = Field(ge=0)


class EmergencyAnalysis(Payload):
    trigger: str = "manual"
    analysis_depth: Literal["quick", "standard", "comprehensive"] = "standard"
    immediate_action_required: bool = False
    affected_systems: list[Literal["cpu", "memory", "agent_pool", "agents", "storage", "network", "workflows"]] = Field(
        default=["cpu", "memory", "agent_pool"]
    )


class ReallocationAction(Payload):
    action: Literal[
        "pause_low_priority_workflows",
        "requeue_low_priority_workflows",
        "reduce_resource_allocation",
        "optimize_high_priority_workflow",
    ]
    affected: list[str] = Field(min_length=1)
    resource_recovery: dict[str, float] | None = Field(
        None, description="what the operator expects (echoed as theirs); the result reports what was measured"
    )
    reduction: ResourceAmount | None = None
    maintain_critical_path: bool = True
    optimization: Literal["emergency_efficiency_mode", "standard"] | None = None
    resource_guarantee: ResourceAmount | None = None

    @model_validator(mode="after")
    def _needs(self) -> ReallocationAction:
        if self.action == "reduce_resource_allocation" and self.reduction is None:
            raise ValueError("reduce_resource_allocation needs a 'reduction' such as {\"agents\": 2}")
        return self


class EmergencyReallocation(Payload):
    strategy: str = "intelligent_triage"
    actions: list[ReallocationAction] = Field(min_length=1)


class UpdateAgentManagement(Payload):
    failure_lessons: Literal["integrated", "ignored"] = "integrated"
    redundancy_improvements: bool = False
    health_monitoring_enhancements: bool = False
    predictive_failure_detection: Switch = "disabled"
