"""Resource exhaustion: two or more of CPU, memory and agent slots held over the
exhaustion threshold; the plan pauses, reduces and guarantees by priority band and
critical path; the criterion is utilisation back under the safe threshold, held,
with the protected workflows progressing. The drill injects a load spike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from ...event_types import EMERGENCY_RESPONSE_ACTIVATED, EMERGENCY_RESPONSE_COMPLETED, RESOURCE_EXHAUSTION
from ...incident_models import KindEvidence
from ...models import TERMINAL_WORKFLOW, Band, WorkflowStatus
from ...timefmt import duration
from ..catalogue import DrillSpec, IncidentKind, RunningDrill
from ..detectors import Detector, Finding, active_workflows
from ..playbooks import PlanDraft, StepDraft, cmd, estimate, plan_duration
from ..reallocation import reallocation
from ..record import Credit, no_acting_step
from ..validation import GateCtx, Verdict, duration_text, stalled_workflows, workflows_recovered

if TYPE_CHECKING:
    from ...engine import Engine


class ExhaustionEvidence(KindEvidence):
    """What the exhaustion playbook and criterion read of its evidence."""

    resources_over: list[str] = Field(default_factory=list)
    """The resources over their threshold at detection (``cpu``, ``memory``, ``agents``)."""
    protected: list[str] = Field(default_factory=list)
    """The CRITICAL workflows running at detection: a recovery must not starve them."""


NAME = "resource-exhaustion"


class ResourceExhaustionDetector(Detector):
    """Two or more of CPU, memory and agent slots at or above the exhaustion threshold
    for ``exhaustion_samples`` consecutive samples (CPU alone is routinely saturated
    by a busy scheduler, so it never counts as exhaustion on its own)."""

    scenario = "resource-exhaustion"
    RESOURCES = ("cpu", "memory", "agents")

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.streak: list[dict[str, float]] = []
        self.onset: float | None = None

    def reset(self) -> None:
        self.streak = []
        self.onset = None

    def check(self, now: float) -> Finding | None:
        th = self.engine.config.thresholds
        u = self.engine.utilisation()
        over = [r for r in self.RESOURCES if u[r] >= th.exhaustion]
        if len(over) < 2:
            self.streak = []
            self.onset = None
            return None
        if not self.streak:
            self.onset = now
        self.streak.append({"t": now, **u})
        if len(self.streak) < th.exhaustion_samples:
            return None
        cap = self.engine.config.capacity
        busy = round(u["agents"] * cap.agents / 100.0)
        names = {"cpu": "cpu", "memory": "memory", "agents": "agent_pool"}
        error_type = "_and_".join(sorted(names[r] for r in over)) + "_overload"
        affected = [
            w for w in active_workflows(self.engine) if self.engine.state.workflows[w].status is WorkflowStatus.RUNNING
        ]
        data = {
            "error_type": error_type,
            "severity": "critical",
            "affected_workflows": affected,
            "system_utilization": {
                "cpu": round(u["cpu"], 1),
                "memory": round(u["memory"], 1),
                "agents": f"{busy}/{cap.agents}",
            },
        }
        evidence = {
            "threshold_pct": th.exhaustion,
            "samples": len(self.streak),
            "resources_over": over,
            "series": self.streak[-th.exhaustion_samples :],
        }
        return Finding(
            self.scenario, RESOURCE_EXHAUSTION, "system", "global", "critical", data, evidence, affected, self.onset
        )


def resource_exhaustion(engine: Engine, finding: Finding) -> PlanDraft:
    cap = engine.config.capacity
    th = engine.config.thresholds
    plan = reallocation(engine)
    actions: list[dict[str, Any]] = []
    # A paused (SIGSTOPped) process keeps its memory and its agent: only CPU comes
    # back. When memory is exhausted the low bands are requeued instead (their
    # processes end and start again when resumed), so memory and agents come back.
    frees_all = "memory" in ExhaustionEvidence.model_validate(finding.evidence).resources_over
    verb = "requeue" if frees_all else "pause"
    if plan["pause"]:
        actions.append(
            {
                "action": f"{verb}_low_priority_workflows",
                "affected": [p["workflow"] for p in plan["pause"]],
                "resource_recovery": {
                    "cpu": round(sum(p["cpu"] for p in plan["pause"]) / cap.cpu_cores * 100, 1),
                    "memory": round(sum(p["memory_gb"] for p in plan["pause"]) / cap.memory_gb * 100, 1)
                    if frees_all
                    else 0.0,
                    "agents": sum(p["agents"] for p in plan["pause"]) if frees_all else 0,
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
    over = ExhaustionEvidence.model_validate(finding.evidence).resources_over
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
                    "monitoring_duration": plan_duration(max(2 * 3600.0, 4 * estimated)),
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
        title=f"Emergency reallocation: {verb} {len(plan['pause'])}, reduce {len(plan['reduce'])}, "
        f"guarantee {1 if plan['guarantee'] else 0}",
        strategy="intelligent_triage",
        steps=steps,
        expected={"reallocation": plan, "estimated_recovery_s": estimated},
        announce=(
            EMERGENCY_RESPONSE_ACTIVATED,
            "system",
            "resource_management",
            {
                "response_level": "critical",
                "estimated_recovery_time": plan_duration(estimated),
                "estimate_basis": basis,
                "affected_workflows": len(affected),
            },
        ),
    )


def emergency_response_completed(
    ctx: GateCtx, took: float, recovered: int, basis: str, figures: dict[str, Any]
) -> None:
    """The seed's EMERGENCY_RESPONSE_COMPLETED for a plan credited with an exhaustion's
    recovery (this kind, usage and rate limits): the kind's own ``figures`` beside the
    seed's fields, the recovery time in seconds and what it is timed from (``basis``)."""
    ctx.engine.emit(
        EMERGENCY_RESPONSE_COMPLETED,
        "system",
        "validation",
        {
            **figures,
            "recovery_time": duration_text(took),
            "resource_stabilization": "achieved",
            "workflows_recovered": recovered,
            "system_health": "stable",
            "incident_id": ctx.incident.id,
            "recovery_time_s": round(took, 1),
            "recovery_time_basis": basis,
        },
        actor=f"plan:{ctx.plan.id}",
    )


async def utilisation_safe(ctx: GateCtx) -> Verdict:
    """CPU, memory and agent slots all under the safe threshold, held for the stable-hold time."""
    eng = ctx.engine
    th = eng.config.thresholds
    u = eng.utilisation()
    ok = all(u[r] < th.safe for r in ("cpu", "memory", "agents"))
    if not ok:
        ctx.memo.pop("since", None)
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {"reason": f"utilisation {u} did not fall under {th.safe}% within {duration(ctx.timeout_s)}"}
        return "wait", {"utilisation": u}
    since = ctx.memo.setdefault("since", ctx.now)
    if ctx.now - since < th.stable_hold_s:
        return "wait", {"utilisation": u, "held_s": ctx.now - since}
    # The workflows the incident must protect (CRITICAL ones running at detection)
    # keep making progress: a recovery that starves them is no recovery.
    protected = ctx.incident.evidence.of(ExhaustionEvidence).protected
    stalled = stalled_workflows(eng, ctx.incident, protected)
    if stalled:
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {"reason": f"protected workflow(s) {', '.join(stalled)} made no progress since detection"}
        return "wait", {"utilisation": u, "stalled": stalled}
    rec = workflows_recovered(eng, ctx.incident)
    credit = released_credit(ctx, u)
    # A protected workflow that ended without completing is not waited for
    # (stalled_workflows): whether the recovery starved it cannot be told, and the
    # basis says so.
    ended = {
        w: st
        for w in protected
        if (st := eng.state.status_of(w)) in TERMINAL_WORKFLOW and st is not WorkflowStatus.COMPLETED
    }
    if ended:
        credit = Credit(
            credit.credited,
            credit.basis
            + "; not judged: "
            + ", ".join(f"protected workflow {w} {st.value}" for w, st in sorted(ended.items())),
            {**credit.figures, "not_judged": {w: st.value for w, st in sorted(ended.items())}},
        )
    if not credit.credited:
        return "pass", {"credited": False, "credit": credit.as_dict(), "utilisation": u}
    took = ctx.now - ctx.recovery_started()
    emergency_response_completed(
        ctx,
        took,
        len(rec),
        "first acting step of the plan to utilisation held under the safe threshold",
        {
            "utilisation": u,
            "held_under_safe_s": round(ctx.now - since, 1),
            "recovered": rec,
            "released_by_plan": credit.figures["released_pct"],
            "released_basis": credit.figures["released_basis"],
        },
    )
    return "pass", {
        "recovery_time_s": round(took, 1),
        "workflows_recovered": rec,
        "utilisation": u,
        "credited": True,
        "credit": credit.as_dict(),
    }


def basis_texts(basis: Any) -> list[str]:
    """A step's basis as words: a text as it is; a basis per figure (a cleanup's) as
    ``figure: basis`` each, a nested one as ``figure: part basis, ...``."""
    if not basis:
        return []
    if not isinstance(basis, dict):
        return [str(basis)]
    out = []
    for k, v in basis.items():
        if isinstance(v, dict):
            v = ", ".join(f"{kk} {vv}" for kk, vv in v.items())
        out.append(f"{k}: {v}")
    return out


def released_credit(ctx: GateCtx, u: dict[str, float]) -> Credit:
    """The counterfactual: utilisation now plus what the plan's acting steps
    released (their ``resource_recovery``, measured from the processes paused or
    stopped, still withheld while the gate polls). If that is under the safe
    threshold on every resource, utilisation would be safe without the plan (a
    spike that expired, load that dropped) and the plan is not credited."""
    none = no_acting_step(ctx.record)
    if none is not None:
        return none
    cap = ctx.engine.config.capacity
    safe = ctx.engine.config.thresholds.safe
    released = {"cpu": 0.0, "memory": 0.0, "agents": 0.0}
    bases = set()
    for run in ctx.record.acting():
        rr = run.result.get("resource_recovery")
        if not isinstance(rr, dict):
            continue
        released["cpu"] += float(rr.get("cpu") or 0.0)
        released["memory"] += float(rr.get("memory") or 0.0)
        released["agents"] += 100.0 * float(rr.get("agents") or 0) / max(cap.agents, 1)
        bases.update(basis_texts(rr.get("basis")))
    without = {r: round(u[r] + released[r], 1) for r in released}
    needed = sorted(r for r in released if released[r] > 0 and without[r] >= safe)
    figures = {
        "released_pct": {r: round(v, 1) for r, v in released.items()},
        "released_basis": sorted(bases),
        "utilisation_now_pct": u,
        "utilisation_without_plan_pct": without,
        "safe_pct": safe,
    }
    if needed:
        return Credit(
            True,
            f"without what the plan's steps released, {', '.join(needed)} would be at or over {safe:g}% now",
            figures,
        )
    return Credit(
        False,
        f"utilisation now plus what the plan's steps released is under {safe:g}% on every resource: "
        "the load fell by itself",
        figures,
    )


def evidence(engine: Engine, finding: Finding) -> dict[str, Any]:
    """The workflows the recovery must protect: CRITICAL ones running at detection."""
    return {
        "protected": sorted(
            w.id
            for w in engine.state.workflows.values()
            if w.status is WorkflowStatus.RUNNING and w.band is Band.CRITICAL
        )
    }


def window(engine: Engine) -> float:
    """The hold period and a few samples for utilisation to settle."""
    c = engine.config
    return c.thresholds.stable_hold_s + 20 * c.intervals.sample_s


async def inject(drill: RunningDrill) -> dict[str, Any]:
    """A load spike outside the fleet's tasks (simulated runtime)."""
    cpu, mem, dur = 1.5, 5.5, 1800.0
    before = drill.engine.telemetry.get("memory_pct").last()
    drill.sim().load_spike(cpu, mem, dur)
    return {"load_spike": {"cpu_cores": cpu, "memory_gb": mem, "duration_s": dur}, "memory_pct_before": before}


async def confirm(drill: RunningDrill) -> dict[str, Any]:
    """The sampled memory use rose by at least half the spike's share of capacity."""
    eng = drill.engine
    series = eng.telemetry.get("memory_pct")
    after = [v for _, v in series.since(drill.injected_at or eng.clock.now())]
    share = 100.0 * drill.fault["load_spike"]["memory_gb"] / eng.config.capacity.memory_gb
    rose = (max(after) - float(drill.fault["memory_pct_before"])) if after else 0.0
    return {"confirmed": rose >= share / 2, "memory_pct_rose": round(rose, 1), "spike_share_pct": round(share, 1)}


KIND = IncidentKind(
    name=NAME,
    detector=ResourceExhaustionDetector,
    playbook=resource_exhaustion,
    criterion="utilisation_safe",
    gate=utilisation_safe,
    window=window,
    drill=DrillSpec(inject, confirm),
    evidence=evidence,
)
