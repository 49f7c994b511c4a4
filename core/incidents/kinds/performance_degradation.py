"""Performance degradation: a significant downward trend of task efficiency
(Mann-Kendall, Hamed-Rao corrected); the plan takes the slow agents out of dispatch
and applies the optimisation layers; the criterion is efficiency back to the
pre-incident baseline. The drill slows four agents down gradually."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from ...commands.monitoring import trigger_pct
from ...commands.pace import bottleneck, fresh_efficiency, pace_now
from ...event_types import (
    AGENT_BACKOFF,
    OPTIMIZATION_COMPLETED,
    OPTIMIZATION_STRATEGY_GENERATED,
    PERFORMANCE_DEGRADATION_DETECTED,
)
from ...incident_models import KindEvidence
from ...models import TERMINAL_WORKFLOW
from ..catalogue import DrillSpec, IncidentKind, RunningDrill
from ..detectors import Detector, Finding, active_workflows
from ..playbooks import PlanDraft, StepDraft, cmd, estimate, plan_duration
from ..record import Credit, no_acting_step
from ..trend import downsample, mann_kendall
from ..validation import GateCtx, Verdict, duration_text, percent_text

if TYPE_CHECKING:
    from ...engine import Engine


class Trend(KindEvidence):
    """One metric's trend as the performance analysis measured it."""

    span_s: float | None = None
    change_pct: float | None = None


class DegradationEvidence(KindEvidence):
    """What the degradation playbook and criterion read of its evidence."""

    trends: dict[str, Trend] = Field(default_factory=dict)
    """By metric (``efficiency``, ...)."""
    efficiency_at_detection: float | None = None


NAME = "performance-degradation"


class PerformanceDegradationDetector(Detector):
    """Mann-Kendall (Hamed-Rao corrected) over task efficiency, response time and
    throughput in a sliding window; fires when efficiency falls significantly and by
    at least the configured degradation trigger."""

    scenario = "performance-degradation"
    WINDOW_S = 3600.0
    EVERY_S = 60.0
    MIN_POINTS = 10
    BINS = 12
    MIN_BINS = 6
    ALPHA = 0.05

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.last_check = float("-inf")
        self.since = float("-inf")

    def reset(self) -> None:
        self.since = self.engine.clock.now()

    def analyse(self, now: float) -> dict[str, Any]:
        tel = self.engine.telemetry
        t0 = max(now - self.WINDOW_S, self.since)
        out: dict[str, Any] = {}
        for metric, worse in (
            ("efficiency", "decreasing"),
            ("response_time", "increasing"),
            ("throughput_per_min", "decreasing"),
        ):
            raw = tel.get(metric).since(t0)
            if len(raw) < self.MIN_POINTS:
                continue
            # Means over time bins: per-task figures are a mixture of fast and slow
            # agents (mostly ties at 1.0), and throughput is a moving-window count
            # (strongly autocorrelated); bin means carry the fleet-level trend.
            pts = downsample(raw, self.BINS)
            if len(pts) < self.MIN_BINS:
                continue
            times = [t for t, _ in pts]
            vals = [v for _, v in pts]
            r = mann_kendall(vals, times, alpha=self.ALPHA)
            span = times[-1] - times[0]
            change = r.relative_change(span) * 100.0
            out[metric] = {
                "n": r.n,
                "p": round(r.p, 5),
                "z": round(r.z, 3),
                "confidence": round(r.confidence, 4),
                "slope_per_h": round(r.slope * 3600.0, 6),
                "change_pct": round(change, 2),
                "span_s": round(span, 1),
                "hamed_rao_factor": round(r.correction, 3),
                "worse": r.significant(self.ALPHA) and r.direction == worse,
                "baseline": round(r.intercept, 4),
            }
        return out

    def check(self, now: float) -> Finding | None:
        if now - self.last_check < self.EVERY_S:
            return None
        self.last_check = now
        res = self.analyse(now)
        eff = res.get("efficiency")
        trigger = trigger_pct(self.engine, "performance_degradation_pct")
        rt = res.get("response_time")
        # With continuous learning on, a significant rise of response time by its
        # trigger counts too (with efficiency falling, not noise in the task mix).
        learning = isinstance(self.engine.state.settings.get("auto_optimization"), dict)
        slower = bool(
            learning
            and rt
            and rt["worse"]
            and rt["change_pct"] >= trigger_pct(self.engine, "response_time_degradation_pct")
        )
        if not eff or not ((eff["worse"] and -eff["change_pct"] >= trigger) or (slower and eff["change_pct"] < 0)):
            return None
        affected = [m for m, r in res.items() if r["worse"]]
        drop = -eff["change_pct"]
        span_min = round(eff["span_s"] / 60.0)
        data = {
            "degradation_rate": f"{round(drop)}_percent_over_{span_min}m",
            "affected_metrics": affected,
            "confidence": eff["confidence"],
        }
        return Finding(
            self.scenario,
            PERFORMANCE_DEGRADATION_DETECTED,
            "performance",
            "trend_analysis",
            "high",
            data,
            {"trends": res},
            active_workflows(self.engine),
            now - eff["span_s"],
        )


def performance_degradation(engine: Engine, finding: Finding) -> PlanDraft:
    s = engine.state
    eff = DegradationEvidence.model_validate(finding.evidence).trends.get("efficiency", Trend())
    span = eff.span_s if eff.span_s is not None else 3600.0
    drop = max(0.0, -(eff.change_pct or 0.0))
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
                    "time_horizon": plan_duration(span),
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
            OPTIMIZATION_STRATEGY_GENERATED,
            "performance",
            "optimization",
            {
                "optimization_potential": f"{round(bn['expected_pct'])}_percent_improvement",
                "potential_basis": f"estimate: the fleet's mean pace with the {len(slow)} slow agent(s) at the median pace of the others "
                f"(measured drop {drop:.1f}%)",
                "implementation_time": plan_duration(impl),
                "estimate_basis": impl_basis,
                "risk_level": "low" if len(slow) <= 4 else "medium",
            },
        ),
    )


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _no_work_left(ctx: GateCtx, before: int, after: int) -> str:
    """Why the pace is not judged: the workflows that ended since validation began."""
    s, since = ctx.engine.state, ctx.started_at
    ended = sorted(f"{w.id} {w.status.value}" for w in s.finished.values() if (w.finished_at or -1.0) >= since)
    how = f"; ended during validation: {', '.join(ended)}" if ended else ""
    return f"not judged: no work left to measure the pace by ({before} task(s) before, {after} after){how}"


async def performance_recovered(ctx: GateCtx) -> Verdict:
    """Efficiency after the optimisation is back to the pre-incident baseline (within
    the configured degradation trigger) and better than while degraded."""
    eng = ctx.engine
    inc = ctx.incident
    settle = 600.0
    if ctx.now - ctx.started_at < settle:
        return "wait", {"settling_s": ctx.now - ctx.started_at}
    det = float(inc.detected_at)
    ev = inc.evidence.of(DegradationEvidence)
    span = ev.trends.get("efficiency", Trend()).span_s
    window = span if span is not None else 1800.0
    fault_at = inc.fault_at
    onset = float(fault_at) if fault_at is not None else det - window
    baseline = await fresh_efficiency(eng, onset - window, onset)
    after = await pace_now(eng, ctx.started_at)
    if len(after) < 3 or not baseline:
        if not any(w.status not in TERMINAL_WORKFLOW for w in eng.state.workflows.values()):
            # No workflow has work left: no task can run to measure the pace by.
            why = _no_work_left(ctx, len(baseline), len(after))
            return "pass", {"credited": False, "credit": Credit(False, why).as_dict(), "samples": len(after)}
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {
                "reason": f"too few uninterrupted tasks to measure ({len(baseline)} before, {len(after)} after)"
            }
        return "wait", {"samples": len(after)}
    b, a = _mean(baseline), _mean(after)
    d = ev.efficiency_at_detection or b  # the task efficiency series at detection
    tolerance = eng.config.performance.degradation_trigger_pct
    vs_baseline = 100.0 * (a - b) / b
    improvement = 100.0 * (a - d) / d if d > 0 else 0.0
    if vs_baseline < -tolerance:
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {
                "reason": f"efficiency {a:.3f} is not back to the pre-incident {b:.3f} (within {tolerance:g}%); "
                f"at detection it was {d:.3f}"
            }
        return "wait", {"efficiency": a, "baseline": b, "degraded": d}

    credit = quarantine_credit(ctx, onset)
    if not credit.credited:
        return "pass", {"credited": False, "credit": credit.as_dict(), "efficiency_after": round(a, 4)}
    r = mann_kendall(after) if len(after) >= 4 else None
    # Confirmed only by a trend test that ran and found no significant decline.
    if r is None:
        stability = f"not tested: {len(after)} tasks finished, 4 needed"
        risk = "not assessed"
    elif r.significant() and r.direction == "decreasing":
        stability, risk = "unconfirmed: efficiency still declining", "elevated"
    else:
        stability, risk = "confirmed", "minimal"
    took = ctx.now - ctx.started_at
    rec = round(ctx.now - ctx.recovery_started(), 1)
    eng.emit(
        OPTIMIZATION_COMPLETED,
        "performance",
        "validation",
        {
            "improvement_achieved": percent_text(improvement),
            "optimization_time": duration_text(ctx.now - float(ctx.plan.created_at)),
            "stability": stability,
            "regression_risk": risk,
            "incident_id": inc.id,
            "efficiency_baseline": round(b, 4),
            "efficiency_degraded": round(d, 4),
            "efficiency_after": round(a, 4),
            "vs_pre_incident_pct": round(vs_baseline, 2),
            "tasks_before": len(baseline),
            "tasks_after": len(after),
            "recovery_time_s": rec,
            "recovery_time_basis": "first acting step of the plan to efficiency back to the pre-incident baseline",
            "validation_window_s": round(took, 1),
            "quarantined_slow_agents": credit.figures["quarantined_slow"],
        },
        actor=f"plan:{ctx.plan.id}",
    )
    return "pass", {
        "improvement_pct": round(improvement, 2),
        "vs_pre_incident_pct": round(vs_baseline, 2),
        "recovery_time_s": rec,
        "efficiency_before": round(b, 4),
        "efficiency_degraded": round(d, 4),
        "efficiency_after": round(a, 4),
        "credited": True,
        "credit": credit.as_dict(),
    }


def quarantine_credit(ctx: GateCtx, since: float) -> Credit:
    """The plan took out of dispatch agents measured slow (their pace below the
    median by more than the degradation trigger, since the onset or in the window
    the plan was computed from): without that step they would still be given tasks. Efficiency that came back with no slow agent taken
    out (the load dropped, the hosts recovered) came back without the plan."""
    none = no_acting_step(ctx.record)
    if none is not None:
        return none
    taken = sorted({e.data["agent"] for e in ctx.record.caused(AGENT_BACKOFF) if e.data.get("reason") == "quarantine"})
    bn = bottleneck(ctx.engine, since)
    # Slow as measured when the plan was made (its own window) or since the onset.
    planned = ((ctx.plan.expected or {}).get("bottleneck") or {}).get("slow") or []
    slow = sorted(set(taken) & (set(bn["slow"]) | set(planned)))
    figures = {
        "quarantined": taken,
        "quarantined_slow": slow,
        "measured_slow_since_onset": bn["slow"],
        "measured_slow_when_planned": planned,
        "pace": {a: round(v, 3) for a, v in bn["pace"].items() if a in taken},
    }
    if slow:
        return Credit(True, f"the plan took {len(slow)} agent(s) measured slow out of dispatch", figures)
    return Credit(False, "no agent measured slow was taken out of dispatch by the plan", figures)


def evidence(engine: Engine, finding: Finding) -> dict[str, Any]:
    """The efficiency series at detection (what the recovery must improve on)."""
    eff = [v for _, v in engine.telemetry.get("efficiency").points][-5:]
    return {"efficiency_at_detection": round(sum(eff) / len(eff), 4) if eff else 0.0}


def window(engine: Engine) -> float:
    """A settle period plus enough fresh tasks to measure efficiency."""
    return 3600.0


async def inject(drill: RunningDrill) -> dict[str, Any]:
    """Bad hosts: four busy agents get gradually slower (every 5 min, +0.25x up to 2.5x)."""
    rt = drill.sim()
    slow = [a.id for a in drill.busy_agents(required=True)[:4]]
    step, every, top = 0.25, 300.0, 2.5

    def ramp(level: float = 1.0) -> None:
        if drill.cancelled:  # a cancelled drill's next notches never come
            return
        level = min(level + step, top)
        for a in slow:
            rt.slow_agent(a, level)  # an agent retired meanwhile is not slowed
        if level < top:
            drill.later(every, lambda: ramp(level))

    ramp()
    return {"slow_agents": slow, "slowdown_step": step, "every_s": every, "max_slowdown": top}


async def confirm(drill: RunningDrill) -> dict[str, Any]:
    """The simulated hosts of the slowed agents run slower than normal."""
    rt = drill.sim()
    now = {a: rt.slowdown(a) for a in drill.fault["slow_agents"]}
    factor = {a: f for a, f in now.items() if f is not None}  # an agent retired meanwhile is left out
    return {"confirmed": bool(factor) and all(f > 1.0 for f in factor.values()), "slowdown": factor}


KIND = IncidentKind(
    name=NAME,
    detector=PerformanceDegradationDetector,
    playbook=performance_degradation,
    criterion="performance_recovered",
    gate=performance_recovered,
    window=window,
    drill=DrillSpec(inject, confirm, detect_within_s=2 * 3600.0),
    evidence=evidence,
)
