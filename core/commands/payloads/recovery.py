"""Payloads of recovery: cleanup, staged resumption, dependency recovery, context transfer, data protection."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Duration, Payload, Percent, Switch

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
