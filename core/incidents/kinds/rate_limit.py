"""Rate limit: an agent reported a usage limit or HTTP 429, and its pool is held (the
task went back to the queue, nothing is dispatched to the pool before the reset time).
The plan resumes the held pool in stages from its reset (the staged resumption: half
its agents, then all after a hold period); the criterion is the pool's tasks making
progress again after the reset. The drill has a busy agent report a rate limit."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ...event_types import EMERGENCY_RESPONSE_ACTIVATED, RESOURCE_EXHAUSTION
from ...incident_models import KindEvidence
from ...models import TERMINAL_WORKFLOW, AgentStatus, TaskStatus, WorkflowStatus
from ...usage.models import PoolHold, RateLimitReport, UsageReport
from ..catalogue import DrillError, DrillSpec, IncidentKind, RunningDrill
from ..detectors import Detector, Finding
from ..playbooks import PlanDraft, StepDraft, cmd, estimate, plan_duration
from ..record import Credit, no_acting_step
from ..validation import GateCtx, Verdict, duration_text
from .resource_exhaustion import emergency_response_completed

if TYPE_CHECKING:
    from ...engine import Engine


class RateLimitEvidence(KindEvidence):
    """What the rate-limit playbook and criterion read of its evidence."""

    pool: str
    reset_at: int | float
    """When the provider said the limit resets (as written: it is carried into the plan)."""
    pool_done_at_detection: int | None = None


NAME = "rate-limit"


def pool_done(engine: Engine, pool: str) -> int:
    """Tasks completed by the pool's agents (their counters in the state)."""
    return sum(a.tasks_done for a in engine.state.agents.values() if a.pool == pool)


def waiting_workflows(engine: Engine, pool: str, *, pending: bool = False) -> list[str]:
    """Live workflows with work the pool's agents could take (a specialization of the
    pool): running or paused, and with ``pending`` those not started yet too."""
    s = engine.state
    specs = set(s.pools[pool].specializations) if pool in s.pools else set()
    statuses = {WorkflowStatus.RUNNING, WorkflowStatus.PAUSED} | ({WorkflowStatus.PENDING} if pending else set())
    out = []
    for wf in s.workflows.values():
        if wf.status not in statuses:
            continue
        if any(t.specialization in specs and t.status is not TaskStatus.COMPLETED for t in s.workflow_tasks(wf.id)):
            out.append(wf.id)
    return sorted(out)


class RateLimitDetector(Detector):
    """A pool held after a rate limit, with work waiting for it."""

    scenario = NAME

    def check(self, now: float) -> Finding | None:
        eng = self.engine
        for pool in sorted(eng.state.usage.holds):
            h = eng.state.usage.holds[pool]
            affected = waiting_workflows(eng, pool)
            if affected:
                return self._finding(h, affected)
        return None

    def _finding(self, h: PoolHold, affected: list[str]) -> Finding:
        eng = self.engine
        u = eng.utilisation()
        cap = eng.config.capacity
        data = {
            "error_type": "api_rate_limit",
            "severity": "high",
            "affected_workflows": affected,
            "system_utilization": {
                "cpu": round(u["cpu"], 1),
                "memory": round(u["memory"], 1),
                "agents": f"{round(u['agents'] * cap.agents / 100.0)}/{cap.agents}",
            },
            "rate_limit": {"pool": h.pool, "reset_at": h.reset_at, "reason": h.reason, "source": h.source},
        }
        evidence = {
            "pool": h.pool,
            "reset_at": h.reset_at,
            "held_task": h.task,
            "pool_done_at_detection": pool_done(eng, h.pool),
        }
        return Finding(NAME, RESOURCE_EXHAUSTION, "agent_pool", "rate_limit", "high", data, evidence, affected, h.since)


def playbook(engine: Engine, finding: Finding) -> PlanDraft:
    ev = RateLimitEvidence.model_validate(finding.evidence)
    pool = ev.pool
    size = sum(1 for a in engine.state.agents.values() if a.pool == pool and a.status is not AgentStatus.RETIRED)
    first = max(1, math.ceil(size / 2))
    hold = engine.config.usage.hold_s
    wait = max(0.0, float(ev.reset_at) - engine.clock.now())
    stages = [
        {"stage": 1, "action": "release_pool", "pool": pool, "agents": first},
        {"stage": 2, "action": "release_pool", "pool": pool},
    ]
    est, basis = estimate(engine, NAME, wait + 2 * hold, "the reported reset time, then two hold periods")
    steps = [
        StepDraft(cmd("resource-manager", "usage") + " tokens", "spend, budgets and held pools"),
        StepDraft(
            cmd(
                "workflow-recovery",
                "gradual-resumption",
                {"resumption_strategy": "staged_recovery", "hold": hold, "stages": stages},
            ),
            f"from its reset, let {first} agent(s) of pool {pool} work, then all after {hold:g}s",
            gate="resumption_done",
        ),
        StepDraft(
            cmd("resource-manager", "status"),
            f"the pool's tasks progress again after the reset ({duration_text(wait)} from now)",
            gate="pool_progressing",
        ),
    ]
    return PlanDraft(
        title=f"Rate limit on pool {pool}: held until its reset, then resumed in 2 stages",
        strategy="hold_then_staged_resumption",
        steps=steps,
        expected={"pool": pool, "reset_at": ev.reset_at, "stages": stages, "estimated_recovery_s": est},
        announce=(
            EMERGENCY_RESPONSE_ACTIVATED,
            "system",
            "rate_limit_management",
            {
                "response_level": "high",
                "estimated_recovery_time": plan_duration(est),
                "estimate_basis": basis,
                "affected_workflows": len(finding.affected_workflows),
            },
        ),
    )


async def pool_progressing(ctx: GateCtx) -> Verdict:
    """After the reset time, the hold lifted and a task of the pool completed since detection."""
    eng = ctx.engine
    ev = ctx.incident.evidence.of(RateLimitEvidence)
    pool = ev.pool
    reset = float(ev.reset_at)
    done = pool_done(eng, pool) - (ev.pool_done_at_detection or 0)
    held = pool in eng.state.usage.holds
    figures = {"pool": pool, "reset_at": reset, "completed_since_detection": done, "still_held": held}
    if ctx.now < reset or held or done <= 0:
        if not waiting_workflows(eng, pool, pending=True):
            # Nothing left for the pool to do: whether it would progress cannot be told.
            why = _no_work_left(ctx, pool)
            return "pass", {**figures, "credited": False, "credit": Credit(False, why).as_dict()}
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {**figures, "reason": f"pool {pool}'s tasks did not progress within {ctx.timeout_s:g}s"}
        return "wait", figures
    credit = _credit(ctx)
    took = ctx.now - ctx.recovery_started()
    if credit.credited:
        emergency_response_completed(
            ctx,
            took,
            len(ctx.incident.affected_workflows),
            "first acting step of the plan to a task of the pool completed after the reset",
            {"rate_limit": figures},
        )
    return "pass", {
        **figures,
        "recovery_time_s": round(took, 1),
        "credited": credit.credited,
        "credit": credit.as_dict(),
    }


def _no_work_left(ctx: GateCtx, pool: str) -> str:
    """Why the pool's progress is not judged: the incident's workflows that ended."""
    s = ctx.engine.state
    ended: dict[str, list[str]] = {}
    for w in ctx.incident.affected_workflows:
        st = s.status_of(w)
        if st is not None and st in TERMINAL_WORKFLOW:
            ended.setdefault(st.value, []).append(w)
    how = "; ".join(f"{st}: {', '.join(sorted(ws))}" for st, ws in sorted(ended.items()))
    return f"not judged: no workflow has work left for pool {pool}" + (f" ({how})" if how else "")


def _credit(ctx: GateCtx) -> Credit:
    """The staged resumption is what lifted the hold: without it the pool would still
    work with one agent at most."""
    none = no_acting_step(ctx.record)
    if none is not None:
        return none
    return Credit(True, "the plan's staged resumption lifted the pool's hold after its reset")


def window(engine: Engine) -> float:
    return (
        engine.config.usage.rate_limit_wait_s + 4 * engine.config.usage.hold_s + 20 * engine.config.intervals.sample_s
    )


async def inject(drill: RunningDrill) -> dict[str, Any]:
    """A busy agent's run reports a rate limit (reset after the configured wait) and fails."""
    eng = drill.engine
    busy = drill.busy_agents()
    if not busy:
        raise DrillError("no busy agent to report a rate limit: the fleet has no work left (use a fresh --db)")
    a = busy[0]
    assert a.current_task is not None
    t = eng.state.tasks[a.current_task]
    reset = eng.clock.now() + eng.config.usage.rate_limit_wait_s
    rl = RateLimitReport(source="drill", reason="429 Too Many Requests (drill)", reset_at=reset)
    eng.spend.record(a.id, t.id, t.attempts, UsageReport(input_tokens=1, output_tokens=0, rate_limit=rl))
    eng.task_failed(a.id, t.id, "exit status 1 (rate limited, drill)")
    return {"pool": a.pool, "agent": a.id, "task": t.id, "reset_at": reset}


async def confirm(drill: RunningDrill) -> dict[str, Any]:
    """The pool is held and the task that hit the limit is back in the queue, not failed."""
    s = drill.engine.state
    t = s.tasks.get(drill.fault["task"])
    held = drill.fault["pool"] in s.usage.holds
    requeued = t is not None and t.status is not TaskStatus.FAILED
    return {"confirmed": held and requeued, "held": held, "task_not_failed": requeued}


KIND = IncidentKind(
    name=NAME,
    detector=RateLimitDetector,
    playbook=playbook,
    criterion="pool_progressing",
    gate=pool_progressing,
    window=window,
    drill=DrillSpec(inject, confirm),
)
