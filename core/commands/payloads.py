"""Payload models: the JSON each operation accepts, checked field by field.

Unknown fields are refused (a typo must not be silently ignored), words such as
durations (``"2h"``) and percentages (``"20_percent"``) are converted to numbers
here, once, so that the operations work with concrete values.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

_DUR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_ISO_RE = re.compile(
    r"^\s*P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?\s*$", re.I
)
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


MAX_DURATION_S = 30 * 24 * 3600.0
"""The longest duration accepted anywhere (30 days): the simulated clock runs through
every event of a duration, so an unbounded one would run for hours and fill memory."""


def parse_duration(v: Any) -> float:
    """``90``, ``"30s"``, ``"15m"``, ``"2h"``, ``"1d"``, ISO 8601 ``"PT2H"``/``"P1DT30M"``
    -> seconds (finite, at most 30 days)."""
    if isinstance(v, bool):
        raise ValueError("expected a duration such as 30s, 15m, 2h or PT2H")
    secs: float | None = None
    if isinstance(v, (int, float)):
        secs = float(v)
    elif isinstance(v, str):
        m = _DUR_RE.match(v)
        iso = _ISO_RE.match(v) if m is None else None
        if m:
            secs = float(m.group(1)) * _UNIT[m.group(2)]
        elif iso and any(iso.groups()):
            d, h, mi, sec = (float(x) if x else 0.0 for x in iso.groups())
            secs = d * 86400.0 + h * 3600.0 + mi * 60.0 + sec
    if secs is None:
        raise ValueError(f"expected a duration such as 30s, 15m, 2h or PT2H, got {v!r}")
    if secs < 0:
        raise ValueError("a duration cannot be negative")
    if not secs <= MAX_DURATION_S:  # also NaN
        raise ValueError(f"{v!r} is longer than the longest duration accepted, 30 days")
    return secs


_PCT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:_?percent|%)?\s*$")


def parse_percent(v: Any) -> float:
    """``20``, ``"20%"``, ``"20_percent"`` -> 20.0."""
    if isinstance(v, bool):
        raise ValueError("expected a percentage such as 20_percent")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        m = _PCT_RE.match(v)
        if m:
            return float(m.group(1))
    raise ValueError(f"expected a percentage such as 20_percent or 20%, got {v!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]
Percent = Annotated[float, BeforeValidator(parse_percent)]
Switch = Literal["enabled", "disabled"]
Severity = Literal["critical", "high", "medium", "low"]


class Payload(BaseModel):
    """A command's JSON argument. List defaults are given as values: pydantic copies them
    for each instance, and mypy checks them against the field's Literal type."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Empty(Payload):
    """No payload fields."""


WINDOW_FIELDS = ("time_period", "time_horizon", "since", "window")


class Windowed(Payload):
    """A time window back from now, under any of the names operators use for it."""

    time_period: Duration | None = Field(None, description="look back this far: 1h, 30m, PT2H")
    time_horizon: Duration | None = Field(None, description="the same as time_period")
    since: Duration | None = Field(None, description="the same as time_period")
    window: Duration | None = Field(None, description="the same as time_period")

    @model_validator(mode="after")
    def _one_window(self) -> Windowed:
        given = {f: getattr(self, f) for f in WINDOW_FIELDS if getattr(self, f) is not None}
        if len(set(given.values())) > 1:
            raise ValueError(f"give one time window, not {', '.join(f'{k}={v:g}s' for k, v in given.items())}")
        if any(v <= 0 for v in given.values()):
            raise ValueError("a time window must be longer than 0")
        return self

    def window_given(self) -> tuple[str, float] | None:
        """(the field named, seconds) or None when no window was given."""
        for f in WINDOW_FIELDS:
            v = getattr(self, f)
            if v is not None:
                return f, float(v)
        return None


class AnalysisRequest(Windowed):
    """What an analysis looks at: a scope word and focus words choosing analyses, and
    optionally a time window (the analyses over time series compute over it only)."""

    scope: str | None = Field(None, description="what is analysed (free text, echoed in the report)")
    analysis: str | None = Field(None, description="the kind of analysis (chooses analyses like focus)")
    focus: list[str] = Field(default_factory=list, description="focus words, e.g. memory_leaks, critical_path_analysis")
    workflows: list[str] = Field(default_factory=list, description="restrict to these workflows")


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


CleanupAction = Literal[
    "aggressive_garbage_collection", "temp_file_cleanup", "cache_purging", "idle_process_termination"
]


class EmergencyCleanup(Payload):
    scope: Literal["system_wide", "pool"] = "system_wide"
    pool: str | None = None
    actions: list[CleanupAction] = Field(
        default=[
            "aggressive_garbage_collection",
            "temp_file_cleanup",
            "cache_purging",
            "idle_process_termination",
        ]
    )
    resource_recovery_target: dict[Literal["memory", "storage", "cpu", "agents"], Percent] = Field(default_factory=dict)


class Stage(Payload):
    stage: int = Field(ge=1)
    action: Literal[
        "resume_paused_workflow", "restore_full_allocation", "resume_workflow", "lift_limits", "release_pool"
    ]
    workflow: str | None = None
    pool: str | None = Field(None, description="release_pool: a pool held after a rate limit")
    agents: int | None = Field(None, ge=1, description="release_pool: agents that may work (none: lift the hold)")
    resource_limit: Literal["conservative", "moderate", "full"] | None = None
    gradual_scaling: bool = False
    validation_checkpoints: bool = False
    monitoring: Literal["real_time", "standard", "enhanced"] | None = None

    @model_validator(mode="after")
    def _target(self) -> Stage:
        if self.action == "release_pool":
            if not self.pool:
                raise ValueError("a release_pool stage names its pool")
        elif not self.workflow:
            raise ValueError(f"a {self.action} stage names its workflow")
        return self


class GradualResumption(Payload):
    resumption_strategy: Literal["staged_recovery", "immediate"] = "staged_recovery"
    monitoring_level: Literal["basic", "standard", "enhanced"] = "standard"
    safety_checks: Literal["basic", "standard", "comprehensive"] = "standard"
    safe_threshold: float | None = Field(
        None, gt=0, le=100, description="utilisation % under which a stage counts as stable"
    )
    hold: Duration | None = Field(None, description="how long utilisation must stay under the threshold")
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> GradualResumption:
        nums = [s.stage for s in self.stages]
        if nums != sorted(nums) or len(set(nums)) != len(nums):
            raise ValueError(f"stages must be numbered in increasing order without repeats, got {nums}")
        return self


class MonitoringRequest(Payload):
    """Generic monitoring settings (monitor, alerts thresholds)."""

    duration: Duration = 3600.0
    interval: Duration = 30.0
    metrics: list[str] = Field(default_factory=lambda: ["cpu", "memory", "agents", "throughput"])
    alert_sensitivity: Literal["low", "medium", "high"] = "medium"


class PostEmergencyMonitoring(Payload):
    monitoring_duration: Duration = 3600.0
    alert_sensitivity: Literal["low", "medium", "high"] = "medium"
    metrics_focus: list[
        Literal["resource_stability", "performance_regression", "early_warning_indicators", "throughput"]
    ] = Field(default=["resource_stability"])
    auto_optimization: bool = False


class AnalyzeCascadeFailure(Payload):
    failure_scope: str = "agent_pool_cascade"
    dependency_analysis: bool = True
    impact_assessment: Literal["basic", "comprehensive"] = "comprehensive"
    recovery_prioritization: Literal["dependency_aware", "priority"] = "dependency_aware"


class DependencyRecoveryAction(Payload):
    action: Literal["immediate_agent_replacement", "dependency_chain_recovery", "enhanced_monitoring_activation"]
    failed_agents: list[str] = Field(default_factory=list)
    replacement_pool: str | None = None
    specialization_matching: bool = True
    context_transfer: Literal["none", "basic", "comprehensive"] = "comprehensive"
    primary_workflow: str | None = None
    dependent_workflow: str | None = None
    recovery_order: Literal["dependency_priority", "priority"] = "dependency_priority"
    checkpoint_restoration: bool = False
    scope: str | None = None
    monitoring_level: Literal["standard", "enhanced", "comprehensive"] | None = None
    failure_prediction: Switch | None = None

    @model_validator(mode="after")
    def _needs(self) -> DependencyRecoveryAction:
        if self.action == "dependency_chain_recovery" and not self.primary_workflow:
            raise ValueError("dependency_chain_recovery needs 'primary_workflow'")
        return self


class ExecuteDependencyRecovery(Payload):
    recovery_strategy: str = "intelligent_redistribution"
    dependency_preservation: bool = True
    workflow_continuity: Literal["maximum", "standard"] = "maximum"
    recovery_actions: list[DependencyRecoveryAction] = Field(min_length=1)


class TransferContext(Payload):
    failed_agents: list[str] = Field(min_length=1)
    replacement_agents: list[str] = Field(default_factory=list)
    context_transfer: Literal["progress_only", "complete_state_and_history"] = "complete_state_and_history"
    validation: Literal["basic", "comprehensive"] = "comprehensive"
    rollback_capability: Switch = "enabled"

    @model_validator(mode="after")
    def _pairs(self) -> TransferContext:
        if self.replacement_agents and len(self.replacement_agents) != len(self.failed_agents):
            raise ValueError(
                f"replacement_agents must pair with failed_agents: {len(self.failed_agents)} failed, {len(self.replacement_agents)} replacements"
            )
        return self


class PostFailureLearning(Payload):
    failure_analysis: Literal["basic", "comprehensive"] = "comprehensive"
    lesson_extraction: bool = True
    prevention_strategy_updates: bool = False
    knowledge_base_updates: bool = True
    team_knowledge_sharing: bool = False
    window: Duration = Field(6 * 3600.0, description="how far back to learn from")


class UpdateAgentManagement(Payload):
    failure_lessons: Literal["integrated", "ignored"] = "integrated"
    redundancy_improvements: bool = False
    health_monitoring_enhancements: bool = False
    predictive_failure_detection: Switch = "disabled"


class ComprehensiveAnalysis(Payload):
    analysis_scope: str = "system_wide"
    time_horizon: Duration = 3600.0
    correlation_analysis: bool = True
    bottleneck_identification: bool = True
    optimization_opportunities: bool = True


OptimizationActionName = Literal[
    "intelligent_resource_rebalancing",
    "predictive_resource_allocation",
    "conflict_reduction_optimization",
    "event_batching_optimization",
    "state_sync_optimization",
    "agent_communication_optimization",
    "parallel_execution_optimization",
    "dependency_optimization",
    "checkpoint_optimization",
]


class OptimizationLayer(Payload):
    layer: Literal["resource_allocation_optimization", "coordination_optimization", "workflow_optimization"]
    actions: list[OptimizationActionName] = Field(min_length=1)
    expected_improvement: Percent | None = None


class ExecuteOptimization(Payload):
    optimization_strategy: str = "comprehensive_multi_layer"
    implementation: Literal["immediate", "gradual_with_validation"] = "gradual_with_validation"
    optimization_layers: list[OptimizationLayer] = Field(min_length=1)


class RealTimeOptimizationMonitoring(Payload):
    monitoring_granularity: Duration = 30.0
    optimization_validation: Literal["continuous", "periodic"] = "continuous"
    adaptive_tuning: Switch = "enabled"
    rollback_capability: Literal["automatic", "manual", "disabled"] = "manual"
    duration: Duration = 3600.0


_TRIGGER_RE = re.compile(
    r"^(performance_degradation|resource_utilization_above|response_time_degradation)_(\d+(?:\.\d+)?)_percent$"
)


class EnableContinuousLearning(Payload):
    learning_scope: str = "optimization_patterns"
    adaptation_frequency: Literal["real_time", "hourly", "daily"] = "real_time"
    performance_prediction: Switch = "enabled"
    auto_optimization_triggers: list[str] = Field(default_factory=list)

    @field_validator("auto_optimization_triggers")
    @classmethod
    def _triggers(cls, v: list[str]) -> list[str]:
        for t in v:
            if not _TRIGGER_RE.match(t):
                raise ValueError(
                    f"trigger {t!r} is not <performance_degradation|resource_utilization_above|response_time_degradation>_<N>_percent"
                )
        return v

    def thresholds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for t in self.auto_optimization_triggers:
            m = _TRIGGER_RE.match(t)
            assert m
            out[m.group(1)] = float(m.group(2))
        return out


ProtectionAction = Literal[
    "create_emergency_checkpoint",
    "freeze_state_modifications",
    "activate_backup_validation",
    "enable_transaction_logging",
]


class EmergencyDataProtection(Payload):
    protection_level: Literal["standard", "high", "maximum"] = "maximum"
    affected_workflow: str | None = None
    immediate_actions: list[ProtectionAction] = Field(
        default=[
            "create_emergency_checkpoint",
            "freeze_state_modifications",
            "activate_backup_validation",
            "enable_transaction_logging",
        ]
    )


class RecoveryStep(Payload):
    step: Literal["state_corruption_isolation", "clean_state_restoration", "delta_reconstruction"]
    action: Literal[
        "identify_corrupted_state_segments", "restore_from_validated_checkpoint", "reconstruct_changes_since_checkpoint"
    ]
    validation: str | None = None
    checkpoint: Literal["latest_verified_checkpoint"] | int = "latest_verified_checkpoint"
    method: Literal["transaction_log_replay"] | None = None


class ExecuteDataRecovery(Payload):
    recovery_strategy: str = "intelligent_selective_recovery"
    data_preservation: Literal["maximum", "standard"] = "maximum"
    validation_level: Literal["basic", "comprehensive"] = "comprehensive"
    workflows: list[str] = Field(
        default_factory=list, description="workflows to recover (default: frozen ones, else all)"
    )
    unfreeze: bool = Field(True, description="lift data-protection freezes once the recovered state verifies")
    recovery_steps: list[RecoveryStep] = Field(
        default_factory=lambda: [
            RecoveryStep(step="state_corruption_isolation", action="identify_corrupted_state_segments"),
            RecoveryStep(step="clean_state_restoration", action="restore_from_validated_checkpoint"),
            RecoveryStep(
                step="delta_reconstruction",
                action="reconstruct_changes_since_checkpoint",
                method="transaction_log_replay",
            ),
        ]
    )


class EnhancedIntegrityMonitoring(Payload):
    monitoring_level: Literal["standard", "high", "paranoid"] = "high"
    validation_frequency: Literal["every_operation", "every_minute", "hourly"] = "every_minute"
    checkpoint_frequency: Literal["relaxed", "normal", "aggressive", "paranoid"] = "normal"
    corruption_detection: Literal["real_time", "periodic"] = "periodic"
    auto_recovery: Switch = "disabled"


class EnhancedProtection(Payload):
    protection_enhancements: list[
        Literal[
            "transaction_atomicity_guarantees",
            "state_checksumming",
            "real_time_consistency_monitoring",
            "automated_backup_validation",
        ]
    ] = Field(default_factory=list)
    monitoring_improvements: list[
        Literal["state_change_auditing", "synchronization_validation", "corruption_prediction", "integrity_alerting"]
    ] = Field(default_factory=list)


class NetworkFailureAnalysis(Payload):
    failure_scope: str = "partial_partition"
    affected_components: list[Literal["agent_communication", "event_distribution", "state_synchronization"]] = Field(
        default=["agent_communication"]
    )
    adaptation_strategy: str = "resilient_coordination"


class Adaptation(Payload):
    adaptation: Literal["event_caching_and_replay", "agent_autonomy_increase", "state_synchronization_enhancement"]
    scope: str | None = None
    reliability: str | None = None
    capability: str | None = None
    mechanism: str | None = None


class ActivateDistributedProtocols(Payload):
    protocol_mode: Literal["network_resilient", "standard"] = "network_resilient"
    communication_strategy: str = "multi_path_redundant"
    coordination_adaptations: list[Adaptation] = Field(default_factory=list)


class NetworkResilienceMonitoring(Payload):
    monitoring_scope: str = "network_health_prediction"
    prediction_horizon: Duration = 1800.0
    failure_prediction: Switch = "enabled"
    auto_adaptation: Literal["immediate", "manual"] = "manual"


class NetworkResilience(Payload):
    resilience_enhancements: list[
        Literal[
            "permanent_mesh_topology",
            "adaptive_routing_protocols",
            "network_failure_prediction",
            "automatic_failover_mechanisms",
        ]
    ] = Field(default_factory=list)
    monitoring_improvements: list[
        Literal["network_health_dashboards", "connectivity_alerting", "bandwidth_optimization", "latency_monitoring"]
    ] = Field(default_factory=list)


class CommunicationRedundancy(Payload):
    scope: str | None = None
    focus: list[str] = Field(default_factory=list)
    reassign_after: Duration = Field(90.0, description="how long an agent may stay unreachable before its task moves")
    replace_unreachable: bool = Field(
        False, description="add an agent in the same pool for each unreachable one (capacity while cut off)"
    )


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


MAX_LABEL_CHARS = 200
"""The longest checkpoint label: a label is kept with its checkpoint and shown in
lists, so it is a name, not a document."""

Label = Annotated[str, Field(max_length=MAX_LABEL_CHARS, description=f"a name, at most {MAX_LABEL_CHARS} characters")]


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


class WindowRequest(Payload):
    window: Duration = Field(1800.0, description="how far back to look")
    baseline: Duration = Field(1800.0, description="the earlier window compared against (regression)")


class SaveState(Payload):
    label: Label = ""


class LoadState(Payload):
    checkpoint: int | Literal["latest", "latest_verified"] = "latest_verified"


class Freeze(Payload):
    frozen: bool = True


class StatusRequest(Payload):
    verbose: bool = False


class SendInput(Payload):
    """Text for a running task's stdin (a line unless ``newline`` is false)."""

    task: str = Field(min_length=1)
    text: str = Field(max_length=4096)
    newline: bool = True


class TaskRefPayload(Payload):
    """One task, named by its id."""

    task: str = Field(min_length=1)
