"""Payloads of monitoring and optimization: thresholds, performance, learning, network resilience."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from .base import Duration, Payload, Percent, Switch


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
