"""Agent cascade: agent failures at a restart intensity no supervisor tolerates;
the plan replaces the agents by specialization and recovers the workflows in
dependency order; the criterion is the interrupted tasks running again on the
replacements with no dependency broken. The drill kills busy agents."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from ...event_types import (
    AGENT_ERROR,
    AGENT_POOL_FAILURE,
    RECOVERY_PLAN_GENERATED,
    RECOVERY_VALIDATION_COMPLETED,
)
from ...models import AgentStatus, WorkflowStatus
from ...timefmt import clock
from ..catalogue import DrillError, DrillSpec, IncidentKind, RunningDrill
from ..detectors import Detector, Finding
from ..faultcheck import agent_gone
from ..playbooks import PlanDraft, StepDraft, cmd, estimate, plan_duration
from ..validation import (
    GateCtx,
    Verdict,
    dependency_violations,
    duration_text,
    percent_text,
    workflows_recovered,
)
from .cascade_outcome import CascadeEvidence, interrupted_work, learn_from_cascade, replacement_credit

if TYPE_CHECKING:
    from ...engine import Engine
    from ...events import Event


NAME = "agent-cascade"


class AgentCascadeDetector(Detector):
    """Restart intensity in the manner of OTP supervisors: ``max_failures`` agent
    failures within ``window_s`` seconds is a cascade, not bad luck."""

    scenario = "agent-cascade"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.failures: deque[tuple[float, str, str | None]] = deque()
        engine.observe(self._on_event)

    def reset(self) -> None:
        self.failures.clear()

    def subject(self, f: Finding) -> tuple[str, ...]:
        """The agents that failed."""
        return tuple(sorted(f.data.get("failed_agents", [])))

    def _on_event(self, ev: Event) -> None:
        if ev.type == AGENT_ERROR:
            self.failures.append((ev.ts, ev.data["agent"], ev.data.get("task")))

    def check(self, now: float) -> Finding | None:
        sup = self.engine.config.supervision
        while self.failures and self.failures[0][0] < now - sup.window_s:
            self.failures.popleft()
        if len(self.failures) < sup.max_failures:
            return None
        s = self.engine.state
        failed = sorted({a for _, a, _ in self.failures})
        tasks = [t for _, _, t in self.failures if t]
        direct = sorted({s.tasks[t].workflow for t in tasks if t in s.tasks})
        dependents = sorted(
            w.id
            for w in s.workflows.values()
            if any(d in direct for d in w.depends_on)
            and w.id not in direct
            and w.status not in (WorkflowStatus.COMPLETED, WorkflowStatus.CANCELLED)
        )
        on_path = [t for t in tasks if t in s.tasks and t in s.critical_path(s.tasks[t].workflow)]
        data = {
            "failed_agents": failed,
            "affected_workflows": direct + dependents,
            "failure_type": "cascade_failure",
            "impact": "critical_path_blocked" if on_path else "capacity_reduced",
        }
        evidence = {
            "failures_in_window": len(self.failures),
            "window_s": sup.window_s,
            "max_failures": sup.max_failures,
            "interrupted_tasks": tasks,
            "critical_path_tasks": on_path,
            "dependent_workflows": dependents,
        }
        return Finding(
            self.scenario,
            AGENT_POOL_FAILURE,
            "coordination",
            "agent_management",
            "critical",
            data,
            evidence,
            direct + dependents,
            self.failures[0][0],
        )


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

    def first(w: str) -> int:
        """Higher priority first; an unknown workflow sorts with priority 0."""
        wf = s.any_workflow(w)
        return -wf.priority if wf is not None else 0

    for w in sorted(workflows, key=first):
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
        known = s.any_workflow(b)  # dependency_order lists only known workflows
        for a in known.depends_on if known is not None else ():
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
    interrupted = CascadeEvidence.model_validate(finding.evidence).interrupted_tasks
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
            RECOVERY_PLAN_GENERATED,
            "coordination",
            "dependency_recovery",
            {
                "strategy": "dependency_aware_redistribution",
                "estimated_time": plan_duration(estimated),
                "estimate_basis": basis,
                "workflow_continuity": "maintained" if order else "not_applicable",
            },
        ),
    )


async def cascade_recovered(ctx: GateCtx) -> Verdict:
    """The failed agents' work runs again on replacements and no task was lost. A task
    whose workflow ended first is read back from the archive: it counts if it ran again,
    and is not judged if it did not (or if its record is gone)."""
    eng = ctx.engine
    s = eng.state
    inc = ctx.incident
    ev = inc.evidence.of(CascadeEvidence)
    failed = ev.failed_agents
    # Replacements matched by specialization: as many live agents able to do the
    # failed agents' work as before the failures (in whichever pool they were added).
    short = {}
    for spec, size in ev.specialization_live_before.items():
        need = set(spec.split(","))
        live = sum(
            1
            for a in s.agents.values()
            if need <= set(a.specializations) and a.status in (AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED)
        )
        if live < size:
            short[spec] = size - live
    work = await interrupted_work(ctx)
    resumed = work.resumed
    judged = len(ev.progress_at_failure) - len(work.not_judged)
    if short or work.waiting:
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {
                "reason": "replacements or resumptions missing",
                "specializations_short": short,
                "resumed": resumed,
                "not_judged": work.not_judged,
            }
        return "wait", {"specializations_short": short, "resumed": len(resumed), "of": judged}
    # Every check before the completion event: dependencies, then the plan's part.
    violations = await dependency_violations(eng)
    if violations:
        return "fail", {"reason": "dependency integrity violated", "violations": violations[:10]}
    credit = replacement_credit(ctx, resumed, work.not_judged)
    if not credit.credited:
        return "pass", {"credited": False, "credit": credit.as_dict(), "tasks_resumed": len(resumed)}
    rec = workflows_recovered(eng, inc)
    share = 100.0 * len(work.carried) / judged if judged else 100.0
    took = max(0.0, work.all_running_at(ctx.now) - ctx.recovery_started())
    eng.emit(
        RECOVERY_VALIDATION_COMPLETED,
        "coordination",
        "success",
        {
            "workflows_recovered": len(rec),
            "dependency_integrity": "maintained",
            "context_transfer": percent_text(share),
            "recovery_time": duration_text(took),
            "incident_id": inc.id,
            "recovery_time_s": round(took, 1),
            "recovered": rec,
            "tasks_resumed": len(resumed),
            "recovery_time_basis": "first acting step of the plan to every interrupted task running again"
            + (
                f" ({len(work.unseen)} task(s) completed before the check saw them run: from the start of that run)"
                if work.unseen
                else ""
            ),
            "on_replacements": credit.figures["on_plan_agents"],
        },
        actor=f"plan:{ctx.plan.id}",
    )
    learn_from_cascade(ctx, failed)
    return "pass", {
        "recovery_time_s": round(took, 1),
        "workflows_recovered": rec,
        "context_transfer_pct": round(share, 1),
        "credited": True,
        "credit": credit.as_dict(),
    }


def evidence(engine: Engine, finding: Finding) -> dict[str, Any]:
    """The failed agents, the interrupted tasks' progress at the failure, and how
    many live agents could do each failed agent's work before the failures."""
    s = engine.state
    failed = finding.data["failed_agents"]
    specs = sorted({",".join(sorted(s.agents[a].specializations)) for a in failed})
    return {
        "failed_agents": failed,
        "progress_at_failure": {
            t: s.tasks[t].context.progress
            for t in CascadeEvidence.model_validate(finding.evidence).interrupted_tasks
            if t in s.tasks
        },
        "specialization_live_before": {
            sp: sum(
                1
                for a in s.agents.values()
                if set(sp.split(",")) <= set(a.specializations)
                and (a.id in failed or a.status.value in ("idle", "busy", "paused"))
            )
            for sp in specs
        },
    }


def window(engine: Engine) -> float:
    """A few heartbeats for the replacements to report."""
    return 10 * engine.config.intervals.heartbeat_s


async def inject(drill: RunningDrill) -> dict[str, Any]:
    """Busy agents fail one after another inside the supervision window, those of
    the head of the dependency chain first."""
    eng = drill.engine
    s = eng.state
    rt = drill.real_faults()
    busy = drill.busy_agents()
    heads = {w.id for w in s.all_workflows() if any(w.id in o.depends_on for o in s.all_workflows())}
    busy.sort(key=lambda a: (a.current_task is None or s.tasks[a.current_task].workflow not in heads, a.id))
    n = eng.config.supervision.max_failures
    victims = [a.id for a in busy[:n]]
    if len(victims) < n:
        raise DrillError(
            f"only {len(victims)} busy agent(s) to fail at {clock(eng.clock.now())}: "
            "the fleet has no work left (use a fresh --db)"
        )
    gap = drill.gap_s if drill.gap_s is not None else eng.config.supervision.window_s / (len(victims) * 2)

    def fail(agent_id: str) -> None:
        if not drill.cancelled:
            rt.fail_agent(agent_id, "process crashed (drill)")

    for i, a in enumerate(victims):
        drill.later(i * gap, lambda a=a: fail(a))
    return {"fail_agents": victims, "spacing_s": gap}


async def confirm(drill: RunningDrill) -> dict[str, Any]:
    """Every killed agent's process is gone (the OS's process table on real agents)."""
    gone = {a: agent_gone(drill.engine, a) for a in drill.fault["fail_agents"]}
    return {"confirmed": all(v is True for v in gone.values()), "gone": gone}


KIND = IncidentKind(
    name=NAME,
    detector=AgentCascadeDetector,
    playbook=agent_cascade,
    criterion="cascade_recovered",
    gate=cascade_recovered,
    window=window,
    drill=DrillSpec(inject, confirm, on_real_processes=True),
    evidence=evidence,
)
