"""What an agent cascade's recovery is credited with and what it learns: the evidence
the criterion reads, the counterfactual credit of the plan's replacement agents, and
the pool minimums and agent backoffs recorded after it."""

from __future__ import annotations

from pydantic import Field

from ...event_types import AGENT_ALLOCATED, AGENT_BACKOFF, LEARNING_RECORDED, POOL_RESIZED, TASK_ASSIGNED
from ...incident_models import KindEvidence
from ...models import AgentStatus
from ...timefmt import duration
from ..record import Credit, no_acting_step
from ..validation import GateCtx


class CascadeEvidence(KindEvidence):
    """What the cascade's playbook and criterion read of its evidence."""

    interrupted_tasks: list[str] = Field(default_factory=list)
    failed_agents: list[str] = Field(default_factory=list)
    progress_at_failure: dict[str, float] = Field(default_factory=dict)
    specialization_live_before: dict[str, int] = Field(default_factory=dict)


def replacement_credit(ctx: GateCtx, resumed: list[str]) -> Credit:
    """The counterfactual: without the agents the plan added, the failed agents'
    specializations would still be short of their strength before the failures, so
    the criterion would not hold. If the pools are whole without them (an
    autoscaler, agents added by hand), the recovery is not the plan's; nor is it when
    none of the interrupted tasks ran on the plan's agents (survivors took them up
    first): the pools' strength is restored, but the interrupted work recovered
    without the plan."""
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
    if not short_without:
        return Credit(False, "the failed agents' specializations are at strength without the plan's agents", figures)
    if resumed and not on_plan:
        # The pools' shortfall is not the criterion: the interrupted work is, and
        # ordinary rescheduling ran all of it on other agents. (No task interrupted:
        # the pools' strength is the whole criterion, and the plan's agents restored it.)
        return Credit(
            False,
            f"none of the {len(resumed)} interrupted task(s) ran on the plan's {len(plan_agents)} agent(s): "
            "other agents took them up by ordinary rescheduling",
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
        ),
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
