"""``/coordination-hub`` dependencies: recovery of blocked dependency chains and their analyses."""

from __future__ import annotations

from typing import Any

from ...models import AgentStatus, FinishedWorkflow, TaskStatus, WorkflowStatus
from .. import payloads as P
from ..analyses import choose
from ..context import Context
from ..monitoring import configure, thresholds_for
from ..registry import Operations, Outcome
from ..reporting import analysis_outcome, scope_of
from ..responses import CommandError
from ..taskmoves import transfer_contexts
from ..workflow_recovery.restores import restore
from . import C

OPS = Operations(C, None)
operation = OPS.operation


@operation(
    C,
    "execute-dependency-recovery",
    kind="lifecycle",
    payload=P.ExecuteDependencyRecovery,
    summary="replace failed agents (matching specializations), move their task context, recover dependency chains",
)
async def execute_dependency_recovery(ctx: Context, p: P.ExecuteDependencyRecovery) -> Outcome:
    s = ctx.state
    eng = ctx.engine
    # Checks first.
    for act in p.recovery_actions:
        for a in act.failed_agents:
            ag = ctx.agent(a)
            if ag.status not in (AgentStatus.FAILED, AgentStatus.UNREACHABLE):
                raise CommandError(
                    "INVALID_STATE",
                    f"{a} is {ag.status.value}, not failed or unreachable: it needs no replacement",
                    {"agent": a},
                    ["/resource-manager agent-pool-assessment"],
                )
        for w in (act.primary_workflow, act.dependent_workflow):
            if w:
                ctx.workflow(w)
    n_new = sum(len(a.failed_agents) for a in p.recovery_actions if a.action == "immediate_agent_replacement")
    free = (
        eng.config.capacity.agents
        - len(s.live_agents())
        + sum(
            1 for act in p.recovery_actions for a in act.failed_agents if s.agents[a].status is AgentStatus.UNREACHABLE
        )
    )
    if n_new > free:
        raise CommandError(
            "RESOURCE_EXHAUSTED",
            f"{n_new} replacement(s) needed, {free} agent slot(s) free",
            {"capacity": eng.config.capacity.agents},
        )
    results: list[dict[str, Any]] = []
    for act in p.recovery_actions:
        if act.action == "immediate_agent_replacement":
            pairs: list[tuple[str, str | None]] = []
            created_pool = None
            if act.replacement_pool and act.replacement_pool not in s.pools:
                specs = sorted({sp for a in act.failed_agents for sp in s.agents[a].specializations})
                eng.create_pool(act.replacement_pool, specs, 0, max(len(act.failed_agents), 5))
                created_pool = act.replacement_pool
            for a in act.failed_agents:
                src = s.agents[a]
                if src.status is AgentStatus.UNREACHABLE:
                    eng.retire_agent(a, actor=ctx.actor)
                pool = act.replacement_pool or src.pool
                spec = list(src.specializations) if act.specialization_matching else None
                new = eng.add_agent(pool, spec, actor=ctx.actor)
                pairs.append((a, new))
            moved = await transfer_contexts(eng, pairs, ctx.actor) if act.context_transfer != "none" else []
            eng.set_setting(
                "recovery.replacements",
                {**s.settings.get("recovery.replacements", {}), **dict(pairs)},
                actor=ctx.actor,
            )
            results.append(
                {
                    "action": act.action,
                    "replacements": dict(pairs),
                    "created_pool": created_pool,
                    "context_transfers": moved,
                }
            )
        elif act.action == "dependency_chain_recovery":
            named = s.any_workflow(act.primary_workflow) if act.primary_workflow else None
            prim = named or ctx.workflow(act.primary_workflow)
            entry: dict[str, Any] = {"action": act.action, "primary": prim.id}
            failed_tasks = (
                prim.failed_tasks
                if isinstance(prim, FinishedWorkflow)
                else [k for k in prim.tasks if s.tasks[k].status is TaskStatus.FAILED]
            )
            if act.checkpoint_restoration and (prim.status is WorkflowStatus.FAILED or failed_tasks):
                out = await restore(ctx, "latest_verified", [prim.id], "dependency_recovery")
                entry["restored"] = out.result["checkpoint"]
                prim = s.any_workflow(prim.id) or prim
            elif act.checkpoint_restoration:
                entry["restored"] = None
                entry["restore_note"] = f"{prim.id} has no failed task: nothing to restore"
            if prim.status is WorkflowStatus.PAUSED and not prim.frozen:
                eng.resume_workflow(prim.id, actor=ctx.actor)
                entry["resumed"] = True
            elif prim.status is WorkflowStatus.PENDING:
                eng.start_workflow(prim.id, actor=ctx.actor)
                entry["started"] = True
            if act.dependent_workflow:
                dep = s.any_workflow(act.dependent_workflow) or ctx.workflow(act.dependent_workflow)
                if prim.id not in dep.depends_on:
                    raise CommandError(
                        "INVALID_PAYLOAD", f"{dep.id} does not depend on {prim.id}", {"depends_on": dep.depends_on}
                    )
                if dep.status is WorkflowStatus.PENDING and not dep.queued:
                    eng.start_workflow(dep.id, actor=ctx.actor)
                entry["dependent"] = {
                    "workflow_id": dep.id,
                    "status": dep.status.value,
                    "queued": dep.queued,
                    "waits_for": [d for d in dep.depends_on if s.status_of(d) is not WorkflowStatus.COMPLETED],
                }
            entry["primary_status"] = prim.status.value
            entry["critical_path"] = s.critical_path(prim.id)
            results.append(entry)
        else:
            lvl = act.monitoring_level or "comprehensive"
            out = configure(
                ctx,
                "recovered_workflows",
                {
                    "scope": act.scope,
                    "level": lvl,
                    "thresholds": thresholds_for(ctx, "high"),
                    "failure_prediction": act.failure_prediction == "enabled",
                },
                3600.0,
            )
            out.result["watching"] = (
                "RESOURCE_THRESHOLD alerts at 0.75x the warning thresholds for 1 h, then MONITORING_WINDOW_CLOSED with peaks"
            )
            results.append({"action": act.action, **out.result})
    n_rep = sum(len(r.get("replacements", {})) for r in results)
    transfers = [t for r in results for t in r.get("context_transfers", [])]
    n_ctx = sum(1 for t in transfers if t["moved"])
    not_moved = [f"{t['task']} ({t['state']})" for t in transfers if not t["moved"]]
    return Outcome(
        {"strategy": p.recovery_strategy, "actions": results, "contexts_moved": n_ctx, "contexts_not_moved": not_moved},
        f"{n_rep} agent(s) replaced, {n_ctx} task context(s) moved"
        + (f", {len(not_moved)} not moved: {', '.join(not_moved)}" if not_moved else "")
        + f", {len(results)} action(s)",
        ["/workflow-recovery transfer-context", "/workflow-status"],
    )


@operation(
    C,
    "dependency-analysis",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="dependency chains and critical paths",
    workflow_arg="optional",
)
async def dependency_analysis(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    return await analysis_outcome(
        ctx,
        choose(p.focus, ["dependency_chains", "critical_paths"]),
        scope_of(ctx, p.workflows),
        {"scope": p.scope},
        p.window_given(),
    )


@operation(
    C,
    "workflow-efficiency-analysis",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="event rates, dispatch inefficiency and performance trends",
)
async def workflow_efficiency_analysis(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    return await analysis_outcome(
        ctx, ["coordination_overhead", "performance_trend", "bottlenecks"], None, {"scope": p.scope}, p.window_given()
    )
