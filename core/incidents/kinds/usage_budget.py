"""Usage exhaustion: a workflow or pool reached its budget of tokens or money (the
spend its AI agents reported). The plan pauses (SIGSTOP) the workflows spending it,
lowest priority band first, then asks the operator to raise the budget (which resumes
them) or to edit that step into a stop; the criterion is spend back under the budget
at a rate it can bear, held. The drill reports a run's usage over a budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...event_types import EMERGENCY_RESPONSE_ACTIVATED, RESOURCE_EXHAUSTION
from ...models import BAND_RANK, TaskStatus, WorkflowStatus
from ...usage.models import Budget, BudgetState, Scope, UsageReport
from ..catalogue import DrillError, DrillSpec, IncidentKind, RunningDrill
from ..detectors import Detector, Finding
from ..playbooks import PlanDraft, StepDraft, cmd, estimate, plan_duration
from ..record import Credit, no_acting_step
from ..validation import BudgetEvidence, GateCtx, Verdict
from .resource_exhaustion import emergency_response_completed

if TYPE_CHECKING:
    from ...engine import Engine

NAME = "usage-exhaustion"
RAISE = 1.5
"""The raise the plan proposes: half again the budget or what is spent when the plan is
made, whichever is more (the operator edits it at will)."""


def spending_workflows(engine: Engine, scope: Scope, name: str) -> list[str]:
    """Live workflows whose running or paused tasks spend from the budget, lowest band first."""
    s = engine.state
    out = []
    for wf in s.workflows.values():
        if wf.status not in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED):
            continue
        live = [s.tasks[k] for k in s.running_by_wf.get(wf.id, ())]
        if scope == "workflow":
            if wf.id == name and live:
                out.append(wf)
        elif any(t.agent in s.agents and s.agents[t.agent].pool == name for t in live if t.agent):
            out.append(wf)
    out.sort(key=lambda w: (BAND_RANK[w.band], w.priority, w.id))
    return [w.id for w in out]


class UsageBudgetDetector(Detector):
    """A budget marked exceeded (BUDGET_EXCEEDED) whose scope still has work spending."""

    scenario = NAME

    def check(self, now: float) -> Finding | None:
        eng = self.engine
        for key in sorted(eng.state.usage.budgets):
            st = eng.state.usage.budgets[key]
            if not st.exceeded:
                continue
            affected = spending_workflows(eng, st.scope, st.name)
            if not affected:
                continue
            return self._finding(st, affected)
        return None

    def _finding(self, st: BudgetState, affected: list[str]) -> Finding:
        eng = self.engine
        spend = eng.state.usage.spend_of(st.scope, st.name)
        over = "cost" if st.budget.cost_usd is not None and spend.cost_usd >= st.budget.cost_usd else "token"
        hold = eng.config.usage.hold_s
        recent = eng.spend.spent_within(st.scope, st.name, max(hold, 1.0))
        u = eng.utilisation()
        cap = eng.config.capacity
        data = {
            "error_type": f"{over}_budget_exhausted",
            "severity": "critical",
            "affected_workflows": affected,
            "system_utilization": {
                "cpu": round(u["cpu"], 1),
                "memory": round(u["memory"], 1),
                "agents": f"{round(u['agents'] * cap.agents / 100.0)}/{cap.agents}",
            },
            "usage": {
                "scope": st.scope,
                "name": st.name,
                "spend": {"tokens": spend.tokens, "cost_usd": spend.cost_usd},
                "budget": st.budget.model_dump(),
                "budget_used_pct": round(100 * st.budget.share(spend), 1),
            },
        }
        evidence = {
            "budget_scope": st.scope,
            "budget_name": st.name,
            "budget": st.budget.model_dump(),
            "spend_at_detection": spend.model_dump(),
            "spent_in_window_before": {"tokens": recent.tokens, "cost_usd": recent.cost_usd, "window_s": hold},
        }
        return Finding(NAME, RESOURCE_EXHAUSTION, "resource", "usage", "critical", data, evidence, affected, None)


def playbook(engine: Engine, finding: Finding) -> PlanDraft:
    ev = BudgetEvidence.model_validate(finding.evidence)
    scope, name, budget = ev.budget_scope, ev.budget_name, ev.budget
    s = engine.state
    steps = [
        StepDraft(cmd("resource-manager", "usage") + " tokens", "spend against every budget"),
    ]
    for wid in finding.affected_workflows:
        band = s.workflows[wid].band.value if wid in s.workflows else "?"
        steps.append(
            StepDraft(
                cmd("workflow-status", "pause", workflow=wid),
                f"pause {wid} ({band}): SIGSTOP its agents' processes so they spend nothing more",
                gate="spend_stopped" if wid == finding.affected_workflows[-1] else None,
            )
        )
    spent = engine.state.usage.spend_of(scope, name)
    raised: dict[str, Any] = {}
    if budget.tokens is not None:
        raised["tokens"] = int(max(budget.tokens, spent.tokens) * RAISE)
    if budget.cost_usd is not None:
        raised["cost_usd"] = round(max(budget.cost_usd, spent.cost_usd) * RAISE, 4)
    if scope == "pool":
        raised = {"pool": name, **raised}
    raise_cmd = cmd("resource-manager", "raise-budget", raised, workflow=name if scope == "workflow" else None)
    stop = f"/workflow-status {name} emergency-stop" if scope == "workflow" else "/workflow-status WF emergency-stop"
    steps.append(
        StepDraft(
            raise_cmd,
            f"raise the budget to {Budget.model_validate({k: v for k, v in raised.items() if k != 'pool'}).brief()} "
            f"and resume (the operator decides: or edit this step to {stop})",
            gate="usage_within_budget",
        )
    )
    est, basis = estimate(
        engine, NAME, engine.config.usage.hold_s, "the operator's decision, then the hold period of the criterion"
    )
    return PlanDraft(
        title=f"Usage budget of {scope} {name} reached: pause {len(finding.affected_workflows)}, then raise or stop",
        strategy="pause_then_decide",
        steps=steps,
        expected={"pause": finding.affected_workflows, "raise_to": raised, "estimated_recovery_s": est},
        announce=(
            EMERGENCY_RESPONSE_ACTIVATED,
            "system",
            "usage_management",
            {
                "response_level": "critical",
                "estimated_recovery_time": plan_duration(est),
                "estimate_basis": basis,
                "affected_workflows": len(finding.affected_workflows),
            },
        ),
    )


def _running(engine: Engine, workflows: list[str]) -> int:
    s = engine.state
    return sum(1 for w in workflows for k in s.running_by_wf.get(w, ()) if s.tasks[k].status is TaskStatus.RUNNING)


def _live(engine: Engine, workflows: list[str]) -> int:
    """Tasks of the workflows running or paused (a paused one can be resumed and spend)."""
    return sum(len(engine.state.running_by_wf.get(w, ())) for w in workflows)


async def usage_within_budget(ctx: GateCtx) -> Verdict:
    """Spend back under the budget at a rate it can bear, held for ``usage.hold_s``: either
    under a (raised) budget with what was spent over the last hold period no more than
    what is left, or, stopped, nothing spent over the hold period and nothing running."""
    eng = ctx.engine
    ev = ctx.incident.evidence.of(BudgetEvidence)
    scope, name = ev.budget_scope, ev.budget_name
    hold = eng.config.usage.hold_s
    st = eng.state.usage.budget_of(scope, name)
    spend = eng.state.usage.spend_of(scope, name)
    recent = eng.spend.spent_within(scope, name, max(hold, 1.0))
    running = _running(eng, list(ctx.incident.affected_workflows))
    figures: dict[str, Any] = {
        "spend": spend.model_dump(),
        "spent_last_hold": {"tokens": recent.tokens, "cost_usd": recent.cost_usd, "window_s": hold},
        "running_tasks": running,
    }
    how = None
    if st is not None:
        figures["budget"] = st.budget.model_dump()
        share = st.budget.share(spend)
        figures["budget_used_pct"] = round(100 * share, 1)
        left_ok = (st.budget.tokens is None or recent.tokens <= st.budget.tokens - spend.tokens) and (
            st.budget.cost_usd is None or recent.cost_usd <= st.budget.cost_usd - spend.cost_usd
        )
        if share < 1.0 and left_ok:
            how = "under the budget at a rate it can bear"
    if (
        how is None
        and recent.tokens == 0
        and recent.cost_usd == 0
        and _live(eng, list(ctx.incident.affected_workflows)) == 0
    ):
        how = "stopped: nothing spent over the hold period and no task of it running or paused"
    if how is None:
        ctx.memo.pop("since", None)
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {"reason": f"spend of {scope} {name} not back under its budget within {ctx.timeout_s:g}s"}
        return "wait", figures
    since = ctx.memo.setdefault("since", ctx.now)
    if ctx.now - since < hold:
        return "wait", {**figures, "held_s": round(ctx.now - since, 1)}
    credit = _credit(ctx)
    took = ctx.now - ctx.recovery_started()
    if credit.credited:
        emergency_response_completed(
            ctx,
            took,
            len(ctx.incident.affected_workflows),
            "first acting step of the plan to spend held under the budget",
            {"usage": {"scope": scope, "name": name, "outcome": how, **figures}},
        )
    return "pass", {
        "recovery_time_s": round(took, 1),
        "outcome": how,
        **figures,
        "credited": credit.credited,
        "credit": credit.as_dict(),
    }


def _credit(ctx: GateCtx) -> Credit:
    """Credited when the plan's steps acted and the scope was spending when the budget
    was reached (without the pause, it would have kept spending)."""
    none = no_acting_step(ctx.record)
    if none is not None:
        return none
    before = ctx.incident.evidence.of(BudgetEvidence).spent_in_window_before or {}
    if before.get("tokens", 0) > 0 or before.get("cost_usd", 0) > 0:
        return Credit(True, "it was spending when the budget was reached; the plan paused and decided it", before)
    return Credit(False, "nothing was spent in the window before detection: spending had stopped by itself", before)


def window(engine: Engine) -> float:
    return engine.config.usage.hold_s + 20 * engine.config.intervals.sample_s


async def inject(drill: RunningDrill) -> dict[str, Any]:
    """A run reports usage over a budget set on its workflow (the budget is set first when
    the workflow has none): what a runaway agent loop does."""
    eng = drill.engine
    busy = drill.busy_agents()
    if not busy:
        raise DrillError("no busy agent to report usage: the fleet has no work left (use a fresh --db)")
    a = busy[0]
    assert a.current_task is not None
    t = eng.state.tasks[a.current_task]
    st = eng.state.usage.budget_of("workflow", t.workflow)
    if st is None or st.budget.tokens is None:
        eng.spend.set_budget("workflow", t.workflow, Budget(tokens=100_000), actor="drill")
        st = eng.state.usage.budget_of("workflow", t.workflow)
    assert st is not None and st.budget.tokens is not None
    over = int(st.budget.tokens * 1.2) - eng.state.usage.spend_of("workflow", t.workflow).tokens
    eng.spend.record(a.id, t.id, t.attempts, UsageReport(input_tokens=max(over, 1), output_tokens=0))
    return {
        "workflow": t.workflow,
        "task": t.id,
        "agent": a.id,
        "reported_tokens": over,
        "budget": st.budget.model_dump(),
    }


async def confirm(drill: RunningDrill) -> dict[str, Any]:
    """The workflow's recorded spend is at or over its budget."""
    led = drill.engine.state.usage
    wf = drill.fault["workflow"]
    st = led.budget_of("workflow", wf)
    spend = led.spend_of("workflow", wf)
    share = st.budget.share(spend) if st is not None else 0.0
    return {"confirmed": share >= 1.0, "budget_used_pct": round(100 * share, 1)}


KIND = IncidentKind(
    name=NAME,
    detector=UsageBudgetDetector,
    playbook=playbook,
    criterion="usage_within_budget",
    gate=usage_within_budget,
    window=window,
    drill=DrillSpec(inject, confirm),
)
