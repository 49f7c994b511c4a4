"""Playbooks: for each scenario, a plan of slash commands computed from the state.

Nothing here is a template with fixed names: which workflows are paused, reduced or
guaranteed follows from their priority bands, what they hold now and their critical
paths; replacement agents follow the failed agents' pools and specializations; the
optimisation layers and their expected improvements follow from the measured trend.
The commands use the seed's payload shapes so an operator can read and edit them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..commands.pace import bottleneck
from ..models import BAND_RANK, AgentStatus, Band, TaskStatus, WorkflowStatus
from .detectors import Finding

if TYPE_CHECKING:
    from ..engine import Engine


@dataclass
class StepDraft:
    command: str
    title: str
    gate: str | None = None
    """A validation the executor must see pass after this step before continuing."""
    check: dict[str, Any] | None = None


@dataclass
class PlanDraft:
    title: str
    strategy: str
    steps: list[StepDraft]
    expected: dict[str, Any] = field(default_factory=dict)
    announce: tuple[str, str, str, dict[str, Any]] | None = None
    """The seed's strategy event (type, component, scope, data), emitted with the plan."""


def cmd(
    component: str, operation: str, *payloads: Any, flags: tuple[str, ...] = (), workflow: str | None = None
) -> str:
    """A slash command with JSON payloads in single quotes (JSON never holds one)."""
    parts = [f"/{component}"]
    if operation:
        parts.append(operation)
    if workflow:
        parts.append(workflow)
    for p in payloads:
        text = json.dumps(p, separators=(", ", ": "))
        if "'" in text:
            raise ValueError("a payload may not contain a single quote")
        parts.append(f"'{text}'")
    parts += [f"--{f}" for f in flags]
    return " ".join(parts)


def _dur(seconds: float) -> str:
    m = max(1, round(seconds / 60.0))
    return f"{m}m" if m < 120 else f"{round(m / 60)}h"


def past_recovery(engine: Engine, scenario: str) -> float | None:
    """Median measured recovery time of earlier resolved incidents of the scenario:
    once the fleet has history, estimates come from what actually happened."""
    times = _past_times(engine, scenario)
    if not times:
        return None
    m = len(times) // 2
    return times[m] if len(times) % 2 else (times[m - 1] + times[m]) / 2


def _past_times(engine: Engine, scenario: str) -> list[float]:
    return sorted(
        float(i["outcome"]["recovery_time_s"])
        for i in engine.state.incidents.values()
        if i["scenario"] == scenario
        and i["status"] == "resolved"
        and i.get("outcome", {}).get("recovery_time_s") is not None
    )


def estimate(engine: Engine, scenario: str, model_s: float, model: str) -> tuple[float, str]:
    """An estimate and its basis: the median of earlier incidents of the same kind when
    there are any (the history in the state), else the model named, labelled so."""
    past = past_recovery(engine, scenario)
    if past is not None:
        return past, f"median of {len(_past_times(engine, scenario))} earlier {scenario} incident(s)"
    return model_s, f"no history; model: {model}"


# -- 1. resource exhaustion --------------------------------------------------------


def reallocation(engine: Engine) -> dict[str, Any]:
    """Which workflows to pause, reduce and guarantee so that every resource falls
    under the safe threshold: lowest bands give way first; critical paths are kept;
    the highest-priority CRITICAL workflow gets a guarantee of what it holds."""
    s = engine.state
    cap = engine.config.capacity
    safe = engine.config.thresholds.safe / 100.0
    u = engine.utilisation()
    need_cpu = u["cpu"] / 100.0 * cap.cpu_cores - safe * cap.cpu_cores
    need_mem = u["memory"] / 100.0 * cap.memory_gb - safe * cap.memory_gb
    running = [w for w in s.workflows.values() if w.status is WorkflowStatus.RUNNING]
    running.sort(key=lambda w: (BAND_RANK[w.band], w.priority, w.id))
    pause: list[dict[str, Any]] = []
    reduce: list[dict[str, Any]] = []
    freed_cpu = freed_mem = 0.0
    freed_agents = 0

    def enough() -> bool:
        return freed_cpu >= need_cpu and freed_mem >= need_mem

    for w in running:
        if enough() or w.band is not Band.LOW:
            continue
        use = s.in_use(w.id)
        pause.append(
            {
                "workflow": w.id,
                "priority": w.priority,
                "band": w.band.value,
                "cpu": round(use.cpu_cores, 2),
                "memory_gb": round(use.memory_gb, 2),
                "agents": use.agents,
            }
        )
        freed_cpu += use.cpu_cores
        freed_mem += use.memory_gb
        freed_agents += use.agents
    for w in running:
        if enough() or w.band in (Band.LOW, Band.CRITICAL) or len(running) < 2:
            continue
        path = set(s.critical_path(w.id))
        keep = [
            s.tasks[k] for k in s.running_by_wf.get(w.id, ()) if k in path and s.tasks[k].status is TaskStatus.RUNNING
        ]
        use = s.in_use(w.id)
        kept_cpu = sum(t.cpu for t in keep)
        kept_mem = sum(t.memory_gb for t in keep)
        r_agents = max(0, w.allocation.agents - max(len(keep), 1))
        r_mem = max(0.0, w.allocation.memory_gb - max(kept_mem, 1.0))
        r_cpu = max(0.0, w.allocation.cpu_cores - max(kept_cpu, 0.5))
        if r_agents == 0 and r_mem <= 0:
            continue
        reduce.append(
            {
                "workflow": w.id,
                "priority": w.priority,
                "band": w.band.value,
                "reduction": {"agents": r_agents, "memory_gb": round(r_mem, 1), "cpu": round(r_cpu, 1)},
                "critical_path": sorted(path)[:5],
                "kept_tasks": sorted(t.id for t in keep),
            }
        )
        freed_cpu += use.cpu_cores - kept_cpu
        freed_mem += use.memory_gb - kept_mem
        freed_agents += use.agents - len(keep)
    crit = [w for w in running if w.band is Band.CRITICAL]
    guarantee = None
    if crit:
        top = max(crit, key=lambda w: (w.priority, w.id))
        use = s.in_use(top.id)
        guarantee = {
            "workflow": top.id,
            "priority": top.priority,
            "cpu": round(max(use.cpu_cores, min(top.allocation.cpu_cores, cap.cpu_cores * safe / 2)), 1),
            "memory_gb": round(max(use.memory_gb, min(top.allocation.memory_gb, cap.memory_gb * safe / 2)), 1),
        }
    return {
        "need": {"cpu_cores": round(max(need_cpu, 0.0), 2), "memory_gb": round(max(need_mem, 0.0), 2)},
        "pause": pause,
        "reduce": reduce,
        "guarantee": guarantee,
        "projected_recovery": {
            "cpu_cores": round(freed_cpu, 2),
            "memory_gb": round(freed_mem, 2),
            "agents": freed_agents,
        },
    }


def resource_exhaustion(engine: Engine, finding: Finding) -> PlanDraft:
    cap = engine.config.capacity
    th = engine.config.thresholds
    plan = reallocation(engine)
    actions: list[dict[str, Any]] = []
    if plan["pause"]:
        actions.append(
            {
                "action": "pause_low_priority_workflows",
                "affected": [p["workflow"] for p in plan["pause"]],
                "resource_recovery": {
                    "cpu": round(sum(p["cpu"] for p in plan["pause"]) / cap.cpu_cores * 100, 1),
                    "memory": round(sum(p["memory_gb"] for p in plan["pause"]) / cap.memory_gb * 100, 1),
                    "agents": sum(p["agents"] for p in plan["pause"]),
                },
            }
        )
    for r in plan["reduce"]:
        actions.append(
            {
                "action": "reduce_resource_allocation",
                "affected": [r["workflow"]],
                "reduction": {
                    "agents": r["reduction"]["agents"],
                    "memory_gb": r["reduction"]["memory_gb"],
                    "cpu": r["reduction"]["cpu"],
                },
                "maintain_critical_path": True,
            }
        )
    if plan["guarantee"]:
        g = plan["guarantee"]
        actions.append(
            {
                "action": "optimize_high_priority_workflow",
                "affected": [g["workflow"]],
                "optimization": "emergency_efficiency_mode",
                "resource_guarantee": {"cpu": g["cpu"], "memory_gb": g["memory_gb"]},
            }
        )
    over = finding.evidence.get("resources_over", [])
    systems = ["agent_pool" if r == "agents" else r for r in over]
    u = engine.utilisation()
    mem_target = max(0.0, u["memory"] - th.safe)
    stages: list[dict[str, Any]] = []
    for i, p in enumerate(plan["pause"], start=1):
        stages.append(
            {
                "stage": i,
                "action": "resume_paused_workflow",
                "workflow": p["workflow"],
                "resource_limit": "conservative",
                "monitoring": "real_time",
            }
        )
    for r in plan["reduce"]:
        stages.append(
            {
                "stage": len(stages) + 1,
                "action": "restore_full_allocation",
                "workflow": r["workflow"],
                "gradual_scaling": True,
                "validation_checkpoints": True,
            }
        )
    estimated, basis = estimate(
        engine,
        "resource-exhaustion",
        th.stable_hold_s + engine.config.intervals.sample_s * th.exhaustion_samples,
        "the reallocation acts at once, then the hold period and the detection samples",
    )
    steps = [
        StepDraft(
            cmd(
                "resource-manager",
                "emergency-analysis",
                {
                    "trigger": "critical_resource_exhaustion",
                    "analysis_depth": "comprehensive",
                    "immediate_action_required": True,
                    "affected_systems": systems,
                },
            ),
            "emergency analysis of the exhausted resources",
        ),
        StepDraft(
            cmd(
                "subagents",
                "",
                {"phase": "emergency_analysis", "priority": "critical", "coordination": "emergency_parallel"},
                [
                    {
                        "command": "/debug",
                        "scope": "system_resource_exhaustion",
                        "analysis": "resource_leak_detection",
                        "focus": ["memory_leaks", "cpu_spinning", "agent_deadlocks"],
                    },
                    {
                        "command": "/resource-manager",
                        "operation": "analyze-utilization",
                        "scope": "emergency_triage",
                        "focus": ["bottleneck_identification", "reallocation_opportunities"],
                    },
                    {
                        "command": "/performance-monitor",
                        "operation": "emergency-assessment",
                        "scope": "system_health_critical",
                        "focus": ["immediate_optimizations", "emergency_scaling"],
                    },
                ],
                flags=("emergency",),
            ),
            "parallel emergency analysis",
        ),
        StepDraft(
            cmd("resource-manager", "emergency-reallocation", {"strategy": "intelligent_triage", "actions": actions}),
            "pause / reduce / guarantee by priority band and critical path",
        ),
        StepDraft(
            cmd(
                "coordination-hub",
                "emergency-cleanup",
                {
                    "scope": "system_wide",
                    "actions": [
                        "aggressive_garbage_collection",
                        "temp_file_cleanup",
                        "cache_purging",
                        "idle_process_termination",
                    ],
                    "resource_recovery_target": {"memory": f"{round(mem_target)}_percent", "storage": "15_percent"},
                },
            ),
            "emergency cleanup",
            gate="utilisation_safe",
        ),
    ]
    if stages:
        steps.append(
            StepDraft(
                cmd(
                    "workflow-recovery",
                    "gradual-resumption",
                    {
                        "resumption_strategy": "staged_recovery",
                        "monitoring_level": "enhanced",
                        "safety_checks": "comprehensive",
                        "stages": stages,
                    },
                ),
                "staged resumption of paused and reduced workflows",
                gate="resumption_done",
            )
        )
    steps.append(
        StepDraft(
            cmd(
                "performance-monitor",
                "post-emergency-monitoring",
                {
                    "monitoring_duration": _dur(max(2 * 3600.0, 4 * estimated)),
                    "alert_sensitivity": "high",
                    "metrics_focus": ["resource_stability", "performance_regression", "early_warning_indicators"],
                    "auto_optimization": False,
                },
            ),
            "post-emergency monitoring",
        )
    )
    affected = finding.affected_workflows
    return PlanDraft(
        title=f"Emergency reallocation: pause {len(plan['pause'])}, reduce {len(plan['reduce'])}, guarantee {1 if plan['guarantee'] else 0}",
        strategy="intelligent_triage",
        steps=steps,
        expected={"reallocation": plan, "estimated_recovery_s": estimated},
        announce=(
            "EMERGENCY_RESPONSE_ACTIVATED",
            "system",
            "resource_management",
            {
                "response_level": "critical",
                "estimated_recovery_time": _dur(estimated),
                "estimate_basis": basis,
                "affected_workflows": len(affected),
            },
        ),
    )


# -- 2. agent pool cascade ---------------------------------------------------------


def replacements(engine: Engine, failed: list[str]) -> list[dict[str, Any]]:
    """One replacement per failed agent, in the same pool with the same specializations;
    ids are the ones the engine will allocate next."""
    s = engine.state
    out = []
    n = len(s.agents)
    taken = set(s.agents)
    for a_id in failed:
        a = s.agents[a_id]
        n += 1
        while f"agent_{n:03d}" in taken:
            n += 1
        rid = f"agent_{n:03d}"
        taken.add(rid)
        out.append({"failed": a_id, "replacement": rid, "pool": a.pool, "specializations": list(a.specializations)})
    return out


def dependency_order(engine: Engine, workflows: list[str]) -> list[str]:
    """Workflows ordered so that each comes after those it depends on."""
    s = engine.state
    order: list[str] = []
    seen: set[str] = set()

    def visit(w: str) -> None:
        wf = s.any_workflow(w)
        if w in seen or wf is None:
            return
        seen.add(w)
        for d in wf.depends_on:
            if d in workflows:
                visit(d)
        order.append(w)

    for w in sorted(workflows, key=lambda x: -s.any_workflow(x).priority if s.knows(x) else 0):  # type: ignore[union-attr]
        visit(w)
    return order


def agent_cascade(engine: Engine, finding: Finding) -> PlanDraft:
    s = engine.state
    failed = list(finding.data["failed_agents"])
    reps = replacements(engine, failed)
    order = dependency_order(engine, finding.affected_workflows)
    actions: list[dict[str, Any]] = [
        {
            "action": "immediate_agent_replacement",
            "failed_agents": failed,
            "replacement_pool": "emergency_agents",
            "specialization_matching": True,
            "context_transfer": "comprehensive",
        }
    ]
    for b in order:
        for a in s.any_workflow(b).depends_on:  # type: ignore[union-attr]
            if a in order:
                actions.append(
                    {
                        "action": "dependency_chain_recovery",
                        "primary_workflow": a,
                        "dependent_workflow": b,
                        "recovery_order": "dependency_priority",
                        "checkpoint_restoration": True,
                    }
                )
    actions.append(
        {
            "action": "enhanced_monitoring_activation",
            "scope": "recovered_workflows",
            "monitoring_level": "comprehensive",
            "failure_prediction": "enabled",
        }
    )
    interrupted = finding.evidence.get("interrupted_tasks", [])
    remaining = [s.tasks[t].duration_s * (1 - s.tasks[t].context.progress) for t in interrupted if t in s.tasks]
    estimated, basis = estimate(
        engine,
        "agent-cascade",
        engine.config.intervals.heartbeat_s * 2,
        "replacements start at once; two heartbeats until their tasks report progress",
    )
    expected_done = max(remaining, default=0.0)
    steps = [
        StepDraft(
            cmd(
                "workflow-recovery",
                "analyze-cascade-failure",
                {
                    "failure_scope": "agent_pool_cascade",
                    "dependency_analysis": True,
                    "impact_assessment": "comprehensive",
                    "recovery_prioritization": "dependency_aware",
                },
            ),
            "cascade and dependency analysis",
        ),
        StepDraft(
            cmd(
                "subagents",
                "",
                {"phase": "failure_investigation", "priority": "critical", "coordination": "failure_analysis_parallel"},
                [
                    {
                        "command": "/debug",
                        "scope": "agent_failure_root_cause",
                        "analysis": "comprehensive_agent_diagnostics",
                        "focus": ["process_health", "resource_exhaustion", "communication_failures"],
                    },
                    {
                        "command": "/coordination-hub",
                        "operation": "dependency-analysis",
                        "scope": "affected_workflow_dependencies",
                        "focus": ["critical_path_analysis", "dependency_chain_mapping"],
                    },
                    {
                        "command": "/resource-manager",
                        "operation": "agent-pool-assessment",
                        "scope": "remaining_capacity_analysis",
                        "focus": ["available_agents", "reallocation_possibilities", "scaling_options"],
                    },
                ],
                flags=("critical-failure",),
            ),
            "parallel failure investigation",
        ),
        StepDraft(
            cmd(
                "coordination-hub",
                "execute-dependency-recovery",
                {
                    "recovery_strategy": "intelligent_redistribution",
                    "dependency_preservation": True,
                    "workflow_continuity": "maximum",
                    "recovery_actions": actions,
                },
            ),
            "replace agents by specialization; recover in dependency order",
        ),
        StepDraft(
            cmd(
                "workflow-recovery",
                "transfer-context",
                {
                    "failed_agents": failed,
                    "replacement_agents": [r["replacement"] for r in reps],
                    "context_transfer": "complete_state_and_history",
                    "validation": "comprehensive",
                    "rollback_capability": "enabled",
                },
            ),
            "transfer task context to the replacements",
            gate="cascade_recovered",
        ),
        StepDraft(
            cmd(
                "workflow-recovery",
                "post-failure-learning",
                {
                    "failure_analysis": "comprehensive",
                    "lesson_extraction": True,
                    "prevention_strategy_updates": True,
                    "knowledge_base_updates": True,
                    "team_knowledge_sharing": True,
                },
            ),
            "post-failure learning",
        ),
        StepDraft(
            cmd(
                "resource-manager",
                "update-agent-management",
                {
                    "failure_lessons": "integrated",
                    "redundancy_improvements": True,
                    "health_monitoring_enhancements": True,
                    "predictive_failure_detection": "enabled",
                },
            ),
            "update agent management",
        ),
    ]
    return PlanDraft(
        title=f"Replace {len(failed)} agents, recover {len(order)} workflows in dependency order",
        strategy="dependency_aware_redistribution",
        steps=steps,
        expected={
            "replacements": reps,
            "recovery_order": order,
            "estimated_recovery_s": estimated,
            "interrupted_work_left_s": round(expected_done, 1),
        },
        announce=(
            "RECOVERY_PLAN_GENERATED",
            "coordination",
            "dependency_recovery",
            {
                "strategy": "dependency_aware_redistribution",
                "estimated_time": _dur(estimated),
                "estimate_basis": basis,
                "workflow_continuity": "maintained" if order else "not_applicable",
            },
        ),
    )


# -- 3. performance degradation ----------------------------------------------------


def performance_degradation(engine: Engine, finding: Finding) -> PlanDraft:
    s = engine.state
    trends = finding.evidence.get("trends", {})
    eff = trends.get("efficiency", {})
    span = float(eff.get("span_s", 3600.0))
    drop = max(0.0, -float(eff.get("change_pct", 0.0)))
    bn = bottleneck(engine, engine.clock.now() - span)
    slow = bn["slow"]
    # The model: replacing the slow agents is worth bn["expected_pct"]; what the trend
    # lost beyond that is left to the allocation and coordination layers.
    rest = max(drop - bn["expected_pct"], 0.0)
    layers = [
        {
            "layer": "resource_allocation_optimization",
            "actions": [
                "intelligent_resource_rebalancing",
                "predictive_resource_allocation",
                "conflict_reduction_optimization",
            ],
            "expected_improvement": f"{round(rest / 2)}_percent",
        },
        {
            "layer": "coordination_optimization",
            "actions": ["event_batching_optimization", "state_sync_optimization", "agent_communication_optimization"],
            "expected_improvement": f"{round(rest / 2)}_percent",
        },
        {
            "layer": "workflow_optimization",
            "actions": ["parallel_execution_optimization", "dependency_optimization", "checkpoint_optimization"],
            "expected_improvement": f"{round(bn['expected_pct'])}_percent",
        },
    ]
    steps = [
        StepDraft(
            cmd(
                "performance-monitor",
                "comprehensive-analysis",
                {
                    "analysis_scope": "system_wide_degradation",
                    "time_horizon": _dur(span),
                    "correlation_analysis": True,
                    "bottleneck_identification": True,
                    "optimization_opportunities": True,
                },
            ),
            "comprehensive performance analysis",
        ),
        StepDraft(
            cmd(
                "subagents",
                "",
                {
                    "phase": "performance_investigation",
                    "coordination": "comprehensive_analysis",
                    "optimization_focus": True,
                },
                [
                    {
                        "command": "/performance-monitor",
                        "operation": "bottleneck-analysis",
                        "scope": "system_wide",
                        "focus": ["cpu_bottlenecks", "memory_bottlenecks", "io_bottlenecks", "network_bottlenecks"],
                    },
                    {
                        "command": "/resource-manager",
                        "operation": "utilization-analysis",
                        "scope": "efficiency_degradation",
                        "focus": ["resource_waste", "allocation_inefficiencies", "contention_analysis"],
                    },
                    {
                        "command": "/coordination-hub",
                        "operation": "workflow-efficiency-analysis",
                        "scope": "coordination_overhead",
                        "focus": ["event_processing", "state_synchronization", "agent_coordination"],
                    },
                ],
                flags=("performance-focus",),
            ),
            "multi-dimensional investigation",
        ),
    ]
    if slow:
        steps.append(
            StepDraft(
                cmd("incident", "quarantine-agents", {"agents": slow, "duration": 3600.0, "move_tasks": True}),
                f"take the {len(slow)} slow agent(s) out of dispatch; their tasks move with context",
            )
        )
        by_pool: dict[str, int] = {}
        for a in slow:
            by_pool[s.agents[a].pool] = by_pool.get(s.agents[a].pool, 0) + 1
        free = engine.config.capacity.agents - len(s.live_agents())
        for pool, n in sorted(by_pool.items()):
            live = sum(1 for a in s.live_agents() if a.pool == pool)
            add = min(n, free, s.pools[pool].max_size - live)
            if add > 0:
                free -= add
                steps.append(
                    StepDraft(
                        cmd("resource-manager", "scale", {"pool": pool, "size": live + add}),
                        f"replace capacity in pool {pool}",
                    )
                )
    steps += [
        StepDraft(
            cmd(
                "performance-monitor",
                "real-time-optimization-monitoring",
                {
                    "monitoring_granularity": "30s",
                    "optimization_validation": "continuous",
                    "adaptive_tuning": "enabled",
                    "rollback_capability": "automatic",
                },
            ),
            "real-time optimisation monitoring: agents that fall behind leave dispatch as they do",
        ),
        StepDraft(
            cmd(
                "performance-monitor",
                "execute-optimization",
                {
                    "optimization_strategy": "comprehensive_multi_layer",
                    "implementation": "gradual_with_validation",
                    "optimization_layers": layers,
                },
            ),
            "multi-layer optimisation, gradual with validation",
            check={"metric": "efficiency", "settle_s": 600.0, "higher_is_worse": False, "max_regression_pct": 5.0},
            gate="performance_recovered",
        ),
        StepDraft(
            cmd(
                "performance-monitor",
                "enable-continuous-learning",
                {
                    "learning_scope": "optimization_patterns",
                    "adaptation_frequency": "real_time",
                    "performance_prediction": "enabled",
                    "auto_optimization_triggers": [
                        f"performance_degradation_{engine.config.performance.degradation_trigger_pct:g}_percent",
                        f"resource_utilization_above_{engine.config.performance.utilisation_trigger_pct:g}_percent",
                        f"response_time_degradation_{engine.config.performance.response_time_trigger_pct:g}_percent",
                    ],
                },
            ),
            "continuous-learning triggers",
        ),
    ]
    impl, impl_basis = estimate(
        engine,
        "performance-degradation",
        600.0 + 2 * engine.config.intervals.heartbeat_s,
        "the validation's 600 s settle period plus two heartbeats",
    )
    return PlanDraft(
        title=f"Win back a {drop:.1f}% efficiency loss: {len(slow)} slow agent(s) out, then three layers",
        strategy="comprehensive_multi_layer",
        steps=steps,
        expected={"drop_pct": round(drop, 2), "bottleneck": bn, "layers": layers},
        announce=(
            "OPTIMIZATION_STRATEGY_GENERATED",
            "performance",
            "optimization",
            {
                "optimization_potential": f"{round(bn['expected_pct'])}_percent_improvement",
                "potential_basis": f"estimate: the fleet's mean pace with the {len(slow)} slow agent(s) at the median pace of the others "
                f"(measured drop {drop:.1f}%)",
                "implementation_time": _dur(impl),
                "estimate_basis": impl_basis,
                "risk_level": "low" if len(slow) <= 4 else "medium",
            },
        ),
    )


# -- 4. data integrity --------------------------------------------------------------


def data_integrity(engine: Engine, finding: Finding) -> PlanDraft:
    ev = finding.evidence
    wfs = finding.affected_workflows or sorted(engine.state.workflows)
    ok_cps = [c for c in ev.get("checkpoints_ok", []) if c in engine.state.checkpoints]
    first_bad = ev.get("first_bad_seq")
    safe_cps = [c for c in ok_cps if first_bad is None or engine.state.checkpoints[c].seq < first_bad]
    target = max(safe_cps, default=None)
    # Confidence: the share of the state's restart points (checkpoints) a replay of the
    # log confirmed; none confirmed before the damage means nothing to restore from.
    n_ok = len(ok_cps)
    n_bad = len(ev.get("checkpoints_bad", {}))
    confidence = round(n_ok / (n_ok + n_bad), 4) if target is not None and n_ok + n_bad else 0.0
    steps = [
        StepDraft(
            cmd(
                "coordination-hub",
                "emergency-data-protection",
                {
                    "protection_level": "maximum",
                    "affected_workflow": w,
                    "immediate_actions": [
                        "create_emergency_checkpoint",
                        "freeze_state_modifications",
                        "activate_backup_validation",
                        "enable_transaction_logging",
                    ],
                },
            ),
            f"emergency checkpoint and freeze of {w}",
        )
        for w in wfs[:3]
    ]
    steps += [
        StepDraft(
            cmd(
                "subagents",
                "",
                {"phase": "data_integrity_analysis", "priority": "critical", "coordination": "data_protection_focus"},
                [
                    {
                        "command": "/debug",
                        "scope": "state_consistency_validation",
                        "analysis": "comprehensive_data_audit",
                        "focus": ["state_corruption", "synchronization_failures", "transaction_integrity"],
                    },
                    {
                        "command": "/coordination-hub",
                        "operation": "checkpoint-validation",
                        "scope": "integrity_verification",
                        "focus": ["checkpoint_consistency", "state_history_validation"],
                    },
                    {
                        "command": "/workflow-recovery",
                        "operation": "corruption-assessment",
                        "scope": "data_recovery_options",
                        "focus": ["rollback_feasibility", "partial_recovery", "data_reconstruction"],
                    },
                ],
                flags=("data-protection",),
            ),
            "corruption assessment naming the corrupted segments",
        ),
        StepDraft(
            cmd(
                "workflow-recovery",
                "execute-data-recovery",
                {
                    "recovery_strategy": "intelligent_selective_recovery",
                    "data_preservation": "maximum",
                    "validation_level": "comprehensive",
                    "recovery_steps": [
                        {
                            "step": "state_corruption_isolation",
                            "action": "identify_corrupted_state_segments",
                            "validation": "segment_by_segment_verification",
                        },
                        {
                            "step": "clean_state_restoration",
                            "action": "restore_from_validated_checkpoint",
                            "checkpoint": target if target is not None else "latest_verified_checkpoint",
                            "validation": "comprehensive_integrity_check",
                        },
                        {
                            "step": "delta_reconstruction",
                            "action": "reconstruct_changes_since_checkpoint",
                            "method": "transaction_log_replay",
                            "validation": "operation_by_operation_verification",
                        },
                    ],
                },
            ),
            "restore the latest verified checkpoint, replay verified entries",
            gate="data_recovered",
        ),
        StepDraft(
            cmd(
                "coordination-hub",
                "enable-enhanced-integrity-monitoring",
                {
                    "monitoring_level": "paranoid",
                    "validation_frequency": "every_operation",
                    "checkpoint_frequency": "aggressive",
                    "corruption_detection": "real_time",
                    "auto_recovery": "enabled",
                },
            ),
            "enhanced integrity monitoring",
        ),
    ]
    return PlanDraft(
        title=f"Protect {', '.join(wfs[:3])}; restore checkpoint {target} and replay",
        strategy="selective_rollback_with_reconstruction",
        steps=steps,
        expected={"target_checkpoint": target, "first_bad_seq": first_bad, "frozen": wfs[:3]},
        announce=(
            "DATA_RECOVERY_STRATEGY",
            "coordination",
            "recovery_planning",
            {
                "strategy": "selective_rollback_with_reconstruction",
                "data_loss_risk": "minimal" if first_bad is None else "bounded",
                "recovery_confidence": confidence,
                "confidence_basis": f"{n_ok} of {n_ok + n_bad} checkpoint(s) verified by replay; restart point {target}",
            },
        ),
    )


# -- 5. network partition ------------------------------------------------------------


def network_partition(engine: Engine, finding: Finding) -> PlanDraft:
    s = engine.state
    cut = finding.data["affected_agents"]
    live = [a for a in s.agents.values() if a.status not in (AgentStatus.FAILED, AgentStatus.RETIRED)]
    working = [a for a in live if a.current_task]
    # Measured so far: agents with work that are still heard from. The cut-off ones
    # keep working and buffer their reports; what they did is counted on reconnection
    # (NETWORK_RECOVERY_COMPLETED reports the final share).
    heard = [a for a in working if a.id not in cut]
    preserved = round(100.0 * len(heard) / max(len(working), 1))
    held = [s.agents[a].current_task for a in cut if a in s.agents and s.agents[a].current_task]
    iv = engine.config.intervals
    reassign_after = iv.heartbeat_s * iv.missed_heartbeats
    part_est, part_basis = estimate(
        engine,
        "network-partition",
        iv.heartbeat_s * 10,
        "ten heartbeats; the work moves at once, validation waits for the agents to reconnect",
    )
    steps = [
        StepDraft(
            cmd(
                "coordination-hub",
                "network-failure-analysis",
                {
                    "failure_scope": "partial_partition",
                    "affected_components": ["agent_communication", "event_distribution", "state_synchronization"],
                    "adaptation_strategy": "resilient_coordination",
                },
            ),
            "network failure analysis",
        ),
        StepDraft(
            cmd(
                "subagents",
                "",
                {"phase": "network_recovery", "coordination": "resilient_distributed", "failure_tolerance": "high"},
                [
                    {
                        "command": "/debug",
                        "scope": "network_connectivity_analysis",
                        "analysis": "network_topology_diagnosis",
                        "focus": ["partition_identification", "connectivity_assessment", "bandwidth_analysis"],
                    },
                    {
                        "command": "/coordination-hub",
                        "operation": "communication-redundancy-activation",
                        "scope": "alternative_channels",
                        "focus": ["backup_communication", "mesh_networking", "fault_tolerance"],
                    },
                    {
                        "command": "/resource-manager",
                        "operation": "agent-reallocation",
                        "scope": "network_aware_distribution",
                        "focus": ["connectivity_optimization", "latency_minimization"],
                    },
                ],
                flags=("network-resilient",),
            ),
            "parallel network analysis",
        ),
        StepDraft(
            cmd(
                "coordination-hub",
                "activate-distributed-protocols",
                {
                    "protocol_mode": "network_resilient",
                    "communication_strategy": "multi_path_redundant",
                    "coordination_adaptations": [
                        {
                            "adaptation": "event_caching_and_replay",
                            "scope": "network_partition_tolerance",
                            "reliability": "guaranteed_delivery",
                        },
                        {
                            "adaptation": "state_synchronization_enhancement",
                            "scope": "eventual_consistency",
                            "mechanism": "conflict_free_replication",
                        },
                    ],
                },
            ),
            f"move the {len(held)} task(s) of the cut-off agents to reachable agents, with their context",
        ),
        StepDraft(
            cmd(
                "coordination-hub",
                "communication-redundancy-activation",
                {
                    "scope": "alternative_channels",
                    "focus": ["backup_communication", "fault_tolerance"],
                    "reassign_after": reassign_after,
                    "replace_unreachable": True,
                },
            ),
            "standing reassignment; a replacement agent per cut-off agent; merge their buffered work on reconnection",
            gate="network_recovered",
        ),
        StepDraft(
            cmd(
                "performance-monitor",
                "network-resilience-monitoring",
                {
                    "monitoring_scope": "network_health_prediction",
                    "prediction_horizon": "30m",
                    "failure_prediction": "enabled",
                    "auto_adaptation": "immediate",
                },
            ),
            "network resilience monitoring",
        ),
    ]
    return PlanDraft(
        title=f"Resilient coordination while {len(cut)} agents are cut off",
        strategy="mesh_communication_with_redundancy",
        steps=steps,
        expected={"unreachable": cut, "working_share_at_detection": preserved},
        announce=(
            "RESILIENT_COORDINATION_ACTIVATED",
            "network",
            "adaptation",
            {
                "strategy": "mesh_communication_with_redundancy",
                "estimated_recovery": _dur(part_est),
                "estimate_basis": part_basis,
                "functionality_preserved": f"{preserved}_percent",
            },
        ),
    )


PLAYBOOKS = {
    "resource-exhaustion": resource_exhaustion,
    "agent-cascade": agent_cascade,
    "performance-degradation": performance_degradation,
    "data-integrity": data_integrity,
    "network-partition": network_partition,
}


def build(engine: Engine, finding: Finding) -> PlanDraft:
    return PLAYBOOKS[finding.scenario](engine, finding)
