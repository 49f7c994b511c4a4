"""What an agent cascade's recovery is credited with and what it learns: the evidence
the criterion reads, where each interrupted task stands (live, or read back from the
archive once its workflow finished), the counterfactual credit of the plan's
replacement agents, and the pool minimums and agent backoffs recorded after it."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field

from ...event_types import AGENT_ALLOCATED, AGENT_BACKOFF, LEARNING_RECORDED, POOL_RESIZED, TASK_ASSIGNED
from ...incident_models import KindEvidence
from ...models import AgentStatus, TaskStatus
from ...timefmt import duration
from ..record import Credit, no_acting_step
from ..validation import GateCtx, live_or_archived_task, not_judged_basis


class CascadeEvidence(KindEvidence):
    """What the cascade's playbook and criterion read of its evidence."""

    interrupted_tasks: list[str] = Field(default_factory=list)
    failed_agents: list[str] = Field(default_factory=list)
    progress_at_failure: dict[str, float] = Field(default_factory=dict)
    specialization_live_before: dict[str, int] = Field(default_factory=dict)


@dataclass
class InterruptedWork:
    """Where the interrupted tasks stand for the criterion."""

    resumed: list[str] = field(default_factory=list)
    """Ran again on an agent that did not fail: progressing since, or completed."""
    carried: list[str] = field(default_factory=list)
    """Of ``resumed``, those that restarted from at least their progress at the failure."""
    not_judged: dict[str, str] = field(default_factory=dict)
    """Tasks whose workflow ended without running them again, or whose record is gone:
    why. Neither the plan's doing nor its failure."""
    waiting: list[str] = field(default_factory=list)
    """Not yet running again on a live agent, their workflows live."""
    resumed_at: dict[str, float] = field(default_factory=dict)
    """When each of ``resumed`` was running again: first seen progressing, or (``unseen``)
    the start of the run that completed it."""
    unseen: list[str] = field(default_factory=list)
    """Of ``resumed``, those that completed before the gate saw them run (often read from
    the archive, their workflow finished)."""

    def all_running_at(self, default: float) -> float:
        """When the last of ``resumed`` was running again (``default`` if none)."""
        return max((self.resumed_at[k] for k in self.resumed), default=default)


async def interrupted_work(ctx: GateCtx) -> InterruptedWork:
    """Each interrupted task, live or (its workflow finished) from the archive. The gate
    remembers in ``ctx.memo`` the first agent that did not fail seen running each task
    (``ran_on``), its progress then (``restart_progress``), and when it ran on past it
    (``progressed``, ``unseen``): a task its workflow ended after it ran again still counts."""
    ev = ctx.incident.evidence.of(CascadeEvidence)
    failed = set(ev.failed_agents)
    ran_on: dict[str, str | None] = ctx.memo.setdefault("ran_on", {})
    restart: dict[str, float] = ctx.memo.setdefault("restart_progress", {})
    progressed: dict[str, float] = ctx.memo.setdefault("progressed", {})
    unseen: set[str] = ctx.memo.setdefault("unseen", set())
    out = InterruptedWork(resumed_at=progressed)
    for key, prog in ev.progress_at_failure.items():
        found = await live_or_archived_task(ctx, key)
        if isinstance(found, str):
            out.not_judged[key] = found
            continue
        t, ended = found
        if t.status is TaskStatus.RUNNING and t.agent is not None and t.agent not in failed:
            ran_on.setdefault(key, t.agent)
            start_at = restart.setdefault(key, t.context.progress)
            if t.context.progress <= start_at + 1e-9:
                out.waiting.append(key)
                continue
            progressed.setdefault(key, ctx.now)
        elif t.status is TaskStatus.COMPLETED:
            ran_on.setdefault(key, t.agent)
            start_at = restart.get(key, prog)
            if key not in progressed:
                progressed[key] = t.started_at if t.started_at is not None else ctx.now
                unseen.add(key)
        elif ended is not None and key in progressed:
            start_at = restart[key]  # it ran again before its workflow ended
        elif ended is not None:
            out.not_judged[key] = f"workflow {t.workflow} {ended.value} before validation"
            continue
        else:
            progressed.pop(key, None)  # back in the queue (its new agent failed): not running again
            unseen.discard(key)
            out.waiting.append(key)
            continue
        out.resumed.append(key)
        if start_at + 1e-9 >= prog:
            out.carried.append(key)
    out.unseen = sorted(unseen.intersection(out.resumed))
    return out


def replacement_credit(ctx: GateCtx, resumed: list[str], not_judged: dict[str, str] | None = None) -> Credit:
    """The counterfactual: without the agents the plan added, the failed agents'
    specializations would still be short of their strength before the failures, so
    the criterion would not hold. If the pools are whole without them (an
    autoscaler, agents added by hand), the recovery is not the plan's; nor is it when
    none of the interrupted tasks ran on the plan's agents (survivors took them up
    first): the pools' strength is restored, but the interrupted work recovered
    without the plan. Tasks ``not_judged`` (their workflow ended first) count neither
    way; if every interrupted task is one, the credit is not judged."""
    none = no_acting_step(ctx.record)
    if none is not None:
        return none
    s = ctx.engine.state
    plan_agents = {e.data["agent"] for e in ctx.record.caused(AGENT_ALLOCATED)}
    handed = {e.data["task"] for e in ctx.record.caused(TASK_ASSIGNED)}
    ran_on: dict[str, str | None] = ctx.memo.get("ran_on", {})
    on_plan = sorted(k for k in resumed if ran_on.get(k) in plan_agents or k in handed)
    short_without: dict[str, int] = {}
    for spec, size in ctx.incident.evidence.of(CascadeEvidence).specialization_live_before.items():
        need = set(spec.split(","))
        live = sum(
            1
            for a in s.agents.values()
            if a.id not in plan_agents
            and need <= set(a.specializations)
            and a.status in (AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED)
        )
        if live < size:
            short_without[spec] = size - live
    figures = {
        "plan_agents": sorted(plan_agents),
        "on_plan_agents": on_plan,
        "on_survivors": sorted(set(resumed) - set(on_plan)),
        "short_without_plan_agents": short_without,
    }
    unjudged = ""
    if not_judged:
        figures["not_judged"] = dict(sorted(not_judged.items()))
        unjudged = not_judged_basis(not_judged, "interrupted task")
    if not short_without:
        return Credit(
            False,
            "the failed agents' specializations are at strength without the plan's agents"
            + (f"; {unjudged}" if unjudged else ""),
            figures,
        )
    if not resumed and unjudged:
        # Every interrupted task ended with its workflow, or its record is gone: whether
        # the plan's agents would have run it cannot be told.
        return Credit(False, unjudged, figures)
    if resumed and not on_plan:
        # The pools' shortfall is not the criterion: the interrupted work is, and
        # ordinary rescheduling ran all of it on other agents. (No task interrupted:
        # the pools' strength is the whole criterion, and the plan's agents restored it.)
        return Credit(
            False,
            f"none of the {len(resumed)} interrupted task(s) ran on the plan's {len(plan_agents)} agent(s): "
            "other agents took them up by ordinary rescheduling" + (f"; {unjudged}" if unjudged else ""),
            figures,
        )
    return Credit(
        True,
        f"without the plan's {len(plan_agents)} agent(s) {', '.join(sorted(short_without))} would be short; "
        + (
            f"{len(on_plan)} of {len(resumed)} interrupted task(s) ran on them"
            + (f", {len(resumed) - len(on_plan)} on other agents" if len(on_plan) < len(resumed) else "")
            if resumed
            else "the failed agents held no task"
        )
        + (f"; {unjudged}" if unjudged else ""),
        figures,
    )


def learn_from_cascade(ctx: GateCtx, failed: list[str]) -> None:
    """Raise each hit pool's minimum by the number of agents it lost (capped at its
    maximum) and back off an agent that failed more than once."""
    eng = ctx.engine
    s = eng.state
    lost: dict[str, int] = {}
    for a in failed:
        if a in s.agents:
            lost[s.agents[a].pool] = lost.get(s.agents[a].pool, 0) + 1
    who = f"plan:{ctx.plan.id}"
    for pool, n in sorted(lost.items()):
        p = s.pools[pool]
        new_min = min(p.max_size, p.min_size + n)
        if new_min != p.min_size:
            eng.emit(
                POOL_RESIZED,
                "resource",
                "agents",
                {"pool": pool, "min_size": new_min, "reason": "post_failure_learning"},
                actor=who,
            )
        eng.emit(
            LEARNING_RECORDED,
            "incidents",
            "learning",
            {
                "source": "incident",
                "incident_id": ctx.incident.id,
                "lessons": [
                    f"{n} agent(s) of pool {pool} failed within {duration(eng.config.supervision.window_s)}: minimum raised to {new_min}"
                ],
                "policy": {f"pool.{pool}.min_size": new_min},
            },
            actor=who,
        )
    for a in failed:
        ag = s.agents.get(a)
        if ag is not None and ag.failures >= 2:
            until = eng.clock.now() + eng.config.retries.backoff_s * eng.config.retries.backoff_factor**ag.failures * 60
            eng.emit(AGENT_BACKOFF, "resource", "agents", {"agent": a, "until": until}, actor=who)
            eng.emit(
                LEARNING_RECORDED,
                "incidents",
                "learning",
                {
                    "source": "incident",
                    "incident_id": ctx.incident.id,
                    "lessons": [f"{a} failed {ag.failures} times: backed off"],
                    "policy": {f"agent.{a}.backoff_until": until},
                },
                actor=who,
            )
