"""``/performance-monitor`` actions: optimization passes, post-emergency, real-time and resilience monitoring, learning."""

from __future__ import annotations

from typing import Any

from ...engine.liveness import tasks_on_unreachable
from ...models import AgentStatus, WorkflowStatus
from .. import payloads as P
from ..analyses.consistency import state_consistency
from ..context import Context
from ..monitoring import baseline, configure, thresholds_for
from ..registry import Operations, Outcome
from ..resource_manager.balancing import balance, optimize, resolve_conflicts
from ..resource_manager.holdings import runnable_now
from . import C

OPS = Operations(C, None)
operation = OPS.operation


@operation(
    C,
    "execute-optimization",
    kind="lifecycle",
    payload=P.ExecuteOptimization,
    summary="apply optimisation layers (allocation, coordination, workflow) and measure what they changed",
)
async def execute_optimization(ctx: Context, p: P.ExecuteOptimization) -> Outcome:
    """Actions map to operations: rebalancing = optimize, predictive allocation =
    balance, conflict reduction = resolve-conflicts, parallel execution = optimize,
    dependency optimisation queues pending workflows whose dependencies are met,
    checkpoint optimisation takes an incremental checkpoint, event batching and state
    sync commit the log, agent communication moves tasks off unreachable agents.
    With ``gradual_with_validation`` each layer is followed by a consistency check and
    the run stops at the first failure. Measured: tasks startable now, before/after."""
    eng = ctx.engine
    s = ctx.state
    before = runnable_now(ctx)
    b0 = baseline(ctx)
    layers = []
    for layer in p.optimization_layers:
        done: dict[str, Any] = {}
        for action in layer.actions:
            if action in ("intelligent_resource_rebalancing", "parallel_execution_optimization"):
                ch = (await optimize(ctx, P.Empty())).result["changes"]
                done[action] = {"effect": "acted" if ch else "no change", "changes": ch}
            elif action == "predictive_resource_allocation":
                ch = (await balance(ctx, P.Empty())).result["changes"]
                done[action] = {"effect": "acted" if ch else "no change", "changes": ch}
            elif action == "conflict_reduction_optimization":
                ch = (await resolve_conflicts(ctx, P.Empty())).result["changes"]
                done[action] = {"effect": "acted" if ch else "no change", "changes": ch}
            elif action in ("event_batching_optimization", "state_sync_optimization"):
                pending = eng.unflushed
                await eng.flush()
                done[action] = {
                    "effect": "recorded_only",
                    "why": "the log already commits in groups: pending events were committed, the fleet is unchanged",
                    "events_committed": pending,
                }
            elif action == "agent_communication_optimization":
                moved = []
                for key in tasks_on_unreachable(s).values():
                    eng.release_task(key, reason="agent_unreachable", actor=ctx.actor)
                    moved.append(key)
                done[action] = {"effect": "acted" if moved else "no change", "moved": moved}
            elif action == "dependency_optimization":
                queued = []
                for w in sorted(s.workflows.values(), key=lambda w: -w.priority):
                    if w.status is WorkflowStatus.PENDING and not w.queued and s.dependency_met(w) and not w.frozen:
                        eng.start_workflow(w.id, actor=ctx.actor)
                        queued.append(w.id)
                done[action] = {"effect": "acted" if queued else "no change", "queued": queued}
            elif action == "checkpoint_optimization":
                cp = await eng.checkpoint("incremental", "optimization", actor=ctx.actor)
                done[action] = {"effect": "recorded_only", "why": "a checkpoint records the state", "checkpoint": cp}
        acted = [a for a, d in done.items() if d["effect"] == "acted"]
        entry: dict[str, Any] = {
            "layer": layer.layer,
            "effect": "acted" if acted else "recorded_only",
            "acted": acted,
            "actions": done,
            "expected_improvement": {"pct": layer.expected_improvement, "basis": "operator's expectation"},
            "runnable_now_after": runnable_now(ctx),
        }
        if p.implementation == "gradual_with_validation":
            f = (await state_consistency(eng, None))[0]
            entry["validation"] = {"problems": len(f.evidence["problems"]), "passed": not f.evidence["problems"]}
            layers.append(entry)
            if f.evidence["problems"]:
                break
        else:
            layers.append(entry)
    after = runnable_now(ctx)
    eng.set_setting(
        "optimization.last",
        {
            "at": round(ctx.now, 3),
            "baseline": b0,
            "runnable_before": before,
            "runnable_after": after,
            "layers": [x["layer"] for x in layers],
        },
        actor=ctx.actor,
    )
    return Outcome(
        {"layers": layers, "runnable_now_before": before, "runnable_now_after": after, "baseline": b0},
        f"{len(layers)} layer(s): {sum(1 for x in layers if x['effect'] == 'acted')} acted, "
        f"{sum(1 for x in layers if x['effect'] != 'acted')} recorded only; tasks startable now {before} -> {after}",
        ["/performance-monitor real-time-optimization-monitoring", "/performance-monitor regression"],
    )


@operation(
    C,
    "post-emergency-monitoring",
    kind="monitoring",
    payload=P.PostEmergencyMonitoring,
    summary="heightened monitoring for a period after an emergency, with tighter thresholds",
)
async def post_emergency_monitoring(ctx: Context, p: P.PostEmergencyMonitoring) -> Outcome:
    return configure(
        ctx,
        "post_emergency",
        {
            "sensitivity": p.alert_sensitivity,
            "thresholds": thresholds_for(ctx, p.alert_sensitivity),
            "metrics_focus": p.metrics_focus,
            "auto_optimization": p.auto_optimization,
        },
        p.monitoring_duration,
    )


@operation(
    C,
    "real-time-optimization-monitoring",
    kind="monitoring",
    payload=P.RealTimeOptimizationMonitoring,
    summary="watch an optimisation: threshold alerts; adaptive tuning takes agents that fall behind out of dispatch (no rollback)",
)
async def real_time_optimization_monitoring(ctx: Context, p: P.RealTimeOptimizationMonitoring) -> Outcome:
    last = ctx.state.settings.get("optimization.last")
    out = configure(
        ctx,
        "optimization",
        {
            "granularity_s": p.monitoring_granularity,
            "validation": p.optimization_validation,
            "adaptive_tuning": p.adaptive_tuning == "enabled",
            "rollback": p.rollback_capability,
            "compares_with": last["baseline"] if last else None,
            "thresholds": thresholds_for(ctx, "high"),
        },
        p.duration,
    )
    if last:
        now = baseline(ctx)
        out.result["since_optimization"] = {
            k: {"then": last["baseline"].get(k), "now": now.get(k)}
            for k in ("cpu_pct", "throughput_per_min", "response_time_s")
        }
    out.result["applied"] = {
        "alerts": "RESOURCE_THRESHOLD at 0.75x the warning thresholds while the window is open, peaks when it closes"
    }
    if p.adaptive_tuning == "enabled":
        out.result["applied"]["adaptive_tuning"] = (
            f"every {p.monitoring_granularity:g}s an agent whose pace falls behind the others "
            "is taken out of dispatch for an hour and its task moves"
        )
    out.result["not_applied"] = {
        "rollback_capability": "no rollback outside a plan: inside one, the check after execute-optimization rolls a regression back",
    }
    out.summary += (
        "; alerts on"
        + ("; adaptive tuning on" if p.adaptive_tuning == "enabled" else "")
        + "; rollback is not applied by this monitor"
    )
    return out


@operation(
    C,
    "enable-continuous-learning",
    kind="monitoring",
    payload=P.EnableContinuousLearning,
    summary="auto-optimisation triggers the detectors use: degradation % and response time % (degradation detector), utilisation % (alerts)",
)
async def enable_continuous_learning(ctx: Context, p: P.EnableContinuousLearning) -> Outcome:
    th = p.thresholds()
    perf = ctx.engine.config.performance
    triggers = {
        "performance_degradation_pct": th.get("performance_degradation", perf.degradation_trigger_pct),
        "resource_utilization_above_pct": th.get("resource_utilization_above", perf.utilisation_trigger_pct),
        "response_time_degradation_pct": th.get("response_time_degradation", perf.response_time_trigger_pct),
    }
    ctx.engine.set_setting(
        "auto_optimization",
        {
            "triggers": triggers,
            "scope": p.learning_scope,
            "frequency": p.adaptation_frequency,
            "prediction": p.performance_prediction == "enabled",
        },
        actor=ctx.actor,
    )
    b = baseline(ctx)
    firing = []
    if b["cpu_pct"] > triggers["resource_utilization_above_pct"]:
        firing.append("resource_utilization_above")
    return Outcome(
        {
            "triggers": triggers,
            "baseline": b,
            "firing_now": firing,
            "used_by": {
                "performance_degradation_pct": "the degradation detector's minimum efficiency drop",
                "response_time_degradation_pct": "the degradation detector's minimum response-time rise",
                "resource_utilization_above_pct": "RESOURCE_THRESHOLD alerts when CPU or memory crosses it",
            },
            "recorded_only": ["learning_scope", "adaptation_frequency", "performance_prediction"],
        },
        f"auto-optimisation triggers: degradation {triggers['performance_degradation_pct']:g}%, utilisation {triggers['resource_utilization_above_pct']:g}%, "
        f"response time {triggers['response_time_degradation_pct']:g}%; firing now: {', '.join(firing) or 'none'}",
    )


@operation(
    C,
    "network-resilience-monitoring",
    kind="monitoring",
    payload=P.NetworkResilienceMonitoring,
    summary="watch agent reachability: alerts on late heartbeats; with auto_adaptation immediate, silent agents' tasks move",
)
async def network_resilience_monitoring(ctx: Context, p: P.NetworkResilienceMonitoring) -> Outcome:
    s = ctx.state
    hb = ctx.engine.config.intervals.heartbeat_s
    at_risk = sorted(a.id for a in s.live_agents() if ctx.now - ctx.engine.telemetry.liveness.get(a.id, ctx.now) > hb)
    out = configure(
        ctx,
        "network",
        {
            "scope": p.monitoring_scope,
            "prediction_horizon_s": p.prediction_horizon,
            "failure_prediction": p.failure_prediction == "enabled",
            "auto_adaptation": p.auto_adaptation,
        },
        p.prediction_horizon,
    )
    unreachable = sorted(a.id for a in s.agents.values() if a.status is AgentStatus.UNREACHABLE)
    out.result["now"] = {"unreachable": unreachable, "late_heartbeat": at_risk}
    if p.auto_adaptation == "immediate":  # the engine's standing reassignment, after one missed heartbeat
        configure(
            ctx,
            "communication",
            {
                "redundancy": True,
                "reassign_after_s": hb,
                "standing_reassignment": True,
                "set_by": "network-resilience-monitoring",
            },
        )
    out.result["applied"] = {
        "failure_prediction": "AGENT_PERFORMANCE_ALERT when an agent's heartbeat is late (before it counts as unreachable)"
        if p.failure_prediction == "enabled"
        else None,
        "auto_adaptation": f"tasks of agents silent {hb:g}s move to reachable agents"
        if p.auto_adaptation == "immediate"
        else None,
    }
    out.summary += f"; {len(unreachable)} unreachable, {len(at_risk)} with a late heartbeat"
    return out
