"""``/workflow-recovery`` after a failure: the context of interrupted tasks transferred, lessons recorded."""

from __future__ import annotations

import statistics

from ...event_types import (
    AGENT_ERROR,
    AGENT_TIMEOUT,
    LEARNING_RECORDED,
    TASK_ASSIGNED,
    TASK_COMPLETED,
    TASK_FAILED,
    WORKFLOW_FAILED,
)
from ...models import AgentStatus
from ...timefmt import duration
from .. import payloads as P
from ..context import Context
from ..registry import Operations, Outcome
from ..responses import CommandError
from ..taskmoves import transfer_contexts
from . import C
from .failure_analysis import _log

OPS = Operations(C, None)
operation = OPS.operation


@operation(
    C,
    "transfer-context",
    kind="lifecycle",
    payload=P.TransferContext,
    summary="move the task context of failed agents' tasks to their replacements",
)
async def transfer_context(ctx: Context, p: P.TransferContext) -> Outcome:
    """Replacement agents named but not existing are spawned in the failed agent's pool
    with its specializations. Tasks queued get their context recorded for the
    replacement and are assigned to it when it is idle and matches."""
    s = ctx.state
    eng = ctx.engine
    for a in p.failed_agents:
        ag = ctx.agent(a)
        if ag.status not in (AgentStatus.FAILED, AgentStatus.UNREACHABLE, AgentStatus.RETIRED):
            raise CommandError(
                "INVALID_STATE",
                f"{a} is {ag.status.value}, not failed: there is no context to transfer",
                {"agent": a},
                ["/resource-manager agent-pool-assessment"],
            )
    spawned = []
    repl = list(p.replacement_agents)
    for i, a in enumerate(p.failed_agents):
        src = s.agents[a]
        if not repl:
            break
        r = repl[i]
        if r not in s.agents:
            eng.add_agent(src.pool, list(src.specializations), agent_id=r, actor=ctx.actor)
            spawned.append(r)
        elif s.agents[r].status in (AgentStatus.FAILED, AgentStatus.RETIRED):
            raise CommandError("INVALID_STATE", f"replacement {r} is {s.agents[r].status.value}", {"agent": r})
    for a in p.failed_agents:
        held = s.agents[a].current_task
        if s.agents[a].status is AgentStatus.UNREACHABLE and held:
            eng.release_task(held, reason="agent_unreachable", actor=ctx.actor)
    pairs = [(a, repl[i] if repl else None) for i, a in enumerate(p.failed_agents)]
    if repl:
        eng.set_setting(
            "recovery.replacements",
            {**s.settings.get("recovery.replacements", {}), **dict(zip(p.failed_agents, repl, strict=True))},
            actor=ctx.actor,
        )
    moved = await transfer_contexts(eng, pairs, ctx.actor)
    findings = []
    if p.validation == "comprehensive":
        for m in moved:
            ok = m["context_preserved"]
            findings.append(
                {
                    "analysis": "context_transfer",
                    "severity": "info" if ok else "high",
                    "subject": m["task"],
                    "summary": f"{m['task']}: context {'preserved' if ok else 'LOST'} ({m['state']})",
                    "evidence": {
                        "progress_at_loss": m["progress_at_loss"],
                        "progress_now": m["progress"],
                        "holder": m["to"],
                        "from": m["from"],
                        "partial_results": m["partial_results"],
                    },
                }
            )
    return Outcome(
        {
            "transfers": moved,
            "spawned": spawned,
            "pairs": dict(pairs),
            "rollback_capability": p.rollback_capability,
            "findings": findings,
        },
        f"{len(moved)} task context(s) handled for {len(p.failed_agents)} failed agent(s); {len(spawned)} replacement(s) spawned",
    )


@operation(
    C,
    "post-failure-learning",
    kind="monitoring",
    payload=P.PostFailureLearning,
    summary="lessons from the log's failures (by pool, by error, time to recover) stored in the state",
)
async def post_failure_learning(ctx: Context, p: P.PostFailureLearning) -> Outcome:
    s = ctx.state
    evs = await _log(
        ctx,
        [AGENT_ERROR, AGENT_TIMEOUT, TASK_FAILED, WORKFLOW_FAILED, TASK_ASSIGNED, TASK_COMPLETED],
        p.window,
    )
    by_pool: dict[str, int] = {}
    by_error: dict[str, int] = {}
    lost_at: dict[str, float] = {}
    reassign: list[float] = []
    complete: list[float] = []
    for e in evs:
        if e.type == AGENT_ERROR:
            pool = e.data.get("pool") or (
                s.agents.get(e.data.get("agent", ""), None) and s.agents[e.data["agent"]].pool
            )
            by_pool[str(pool)] = by_pool.get(str(pool), 0) + 1
            by_error[str(e.data.get("error"))] = by_error.get(str(e.data.get("error")), 0) + 1
            if e.data.get("task"):
                lost_at[e.data["task"]] = e.ts
        elif e.type in (TASK_FAILED, WORKFLOW_FAILED, AGENT_TIMEOUT):
            by_error[f"{e.type}: {e.data.get('error', '')}".rstrip(": ")] = (
                by_error.get(f"{e.type}: {e.data.get('error', '')}".rstrip(": "), 0) + 1
            )
        elif e.type == TASK_ASSIGNED and e.data.get("task") in lost_at and len(reassign) < 10_000:
            reassign.append(e.ts - lost_at[e.data["task"]])
        elif e.type == TASK_COMPLETED and e.data.get("task") in lost_at:
            complete.append(e.ts - lost_at.pop(e.data["task"]))
    if not evs:
        for a in s.agents.values():
            if a.failures:
                by_pool[a.pool] = by_pool.get(a.pool, 0) + a.failures
    lessons = []
    for pool, n in sorted(by_pool.items(), key=lambda kv: -kv[1]):
        live = sum(1 for a in s.live_agents() if a.pool == pool)
        lessons.append(f"pool {pool} lost {n} agent(s) ({live} live now): keep at least {n} spare")
    if reassign:
        lessons.append(
            f"failed agents' tasks waited {duration(statistics.median(reassign))} (median) for another agent"
        )
    if complete:
        lessons.append(f"interrupted tasks finished {duration(statistics.median(complete))} (median) after the failure")
    if not lessons:
        lessons.append("no failures in the window")
    stats = {
        "failures_by_pool": by_pool,
        "errors": by_error,
        "reassign_median_s": round(statistics.median(reassign), 3) if reassign else None,
        "recover_median_s": round(statistics.median(complete), 3) if complete else None,
        "events_examined": len(evs),
        "window_s": p.window,
    }
    policy = {"failures_by_pool": by_pool} if p.prevention_strategy_updates or p.knowledge_base_updates else {}
    if p.knowledge_base_updates or p.lesson_extraction:
        ctx.engine.emit(
            LEARNING_RECORDED,
            "coordination",
            "learning",
            {
                "source": "post-failure-learning",
                "lessons": lessons,
                "stats": stats,
                "policy": policy,
                "shared": p.team_knowledge_sharing,
            },
            actor=ctx.actor,
        )
    return Outcome(
        {
            "lessons": lessons,
            "stats": stats,
            "policy": policy,
            "recorded": bool(p.knowledge_base_updates or p.lesson_extraction),
        },
        f"{len(lessons)} lesson(s): {lessons[0]}",
        ["/resource-manager update-agent-management"],
    )
