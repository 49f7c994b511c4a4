"""``/coordination-hub`` network failures: analysis, moving work off unreachable agents, resilience settings."""

from __future__ import annotations

from typing import Any

from ...engine.liveness import kept_on_unreachable, protocol_keeps_tasks, tasks_on_unreachable
from ...models import AgentStatus
from .. import payloads as P
from ..context import Context
from ..monitoring import configure
from ..registry import Operations, Outcome
from ..reporting import analysis_outcome
from ..responses import CommandError
from . import C

OPS = Operations(C, None)
operation = OPS.operation


@operation(
    C,
    "network-failure-analysis",
    kind="analysis",
    payload=P.NetworkFailureAnalysis,
    summary="which agents are unreachable, for how long, holding what",
)
async def network_failure_analysis(ctx: Context, p: P.NetworkFailureAnalysis) -> Outcome:
    names = ["network", "stalled_agents"]
    if "state_synchronization" in p.affected_components:
        names.append("state_consistency")
    if "event_distribution" in p.affected_components:
        names.append("coordination_overhead")
    return await analysis_outcome(
        ctx, names, None, {"failure_scope": p.failure_scope, "components": p.affected_components}
    )


def _move_off_unreachable(ctx: Context, silent_at_least: float) -> list[dict[str, Any]]:
    """Release the tasks of unreachable agents silent that long while the console was
    listening (its own stalls do not count): each goes back to the queue with its context
    (progress, partial results) for a reachable agent."""
    moved = []
    for agent, key in tasks_on_unreachable(ctx.state).items():
        silent = ctx.engine.agent_silence(agent, ctx.now)
        if silent is not None and silent >= silent_at_least:
            prog = ctx.state.tasks[key].context.progress
            ctx.engine.release_task(key, reason="agent_unreachable", actor=ctx.actor)
            moved.append({"task": key, "from": agent, "silent_s": round(silent, 1), "progress_kept": prog})
    return moved


@operation(
    C,
    "communication-redundancy-activation",
    kind="destructive",
    payload=P.CommunicationRedundancy,
    summary="move tasks off agents unreachable longer than reassign_after, now and from then on (standing); optionally add replacement agents",
)
async def communication_redundancy_activation(ctx: Context, p: P.CommunicationRedundancy) -> Outcome:
    """The standing reassignment is applied by the engine at every sample
    (``Liveness.reassign_unreachable``) while this setting is in force. A link to an
    unreachable agent cannot be re-established from here: with ``replace_unreachable``
    the pool gets a new agent per unreachable one instead (up to its maximum and the
    fleet's capacity); the cut-off agent's buffered work is merged when it reconnects."""
    s = ctx.state
    eng = ctx.engine
    out = configure(
        ctx, "communication", {"redundancy": True, "reassign_after_s": p.reassign_after, "standing_reassignment": True}
    )
    keep = protocol_keeps_tasks(s)
    moved = [] if keep else _move_off_unreachable(ctx, p.reassign_after)
    added = []
    if p.replace_unreachable:
        for a in sorted((a for a in s.agents.values() if a.status is AgentStatus.UNREACHABLE), key=lambda a: a.id):
            pool = s.pools[a.pool]
            live = sum(1 for x in s.live_agents() if x.pool == a.pool)
            if live >= pool.max_size or len(s.live_agents()) >= eng.config.capacity.agents:
                continue
            added.append(
                {"for": a.id, "agent": eng.add_agent(a.pool, list(a.specializations), actor=ctx.actor), "pool": a.pool}
            )
        eng.request_dispatch()
    out.result.update(
        {
            "moved": moved,
            "replacements": added,
            "reestablished": [],
            "kept_on_isolated_agents": keep,
            "links": "not re-established: a cut link cannot be repaired from the control plane",
        }
    )
    out.summary = (
        f"standing reassignment on (after {p.reassign_after:g}s silent"
        + ("; the distributed protocol in force keeps tasks on isolated agents" if keep else "")
        + f"); {len(moved)} task(s) moved now; "
        f"{len(added)} replacement agent(s) added"
    )
    return out


@operation(
    C,
    "activate-distributed-protocols",
    kind="destructive",
    payload=P.ActivateDistributedProtocols,
    summary="partition protocol: keep tasks running on isolated agents (agent autonomy) or move them off now; buffered reports merge on reconnection",
)
async def activate_distributed_protocols(ctx: Context, p: P.ActivateDistributedProtocols) -> Outcome:
    """Agents always buffer their reports with sequence numbers while cut off, and the
    engine always applies them exactly once through the conflict-free merge
    (``core.merge``) when they reconnect: those two adaptations are in force whatever
    is asked. ``agent_autonomy_increase`` keeps tasks on isolated agents (the standing
    reassignment then skips them); without it the tasks of unreachable agents move
    to reachable agents now, with their context."""
    s = ctx.state
    adapt = [a.adaptation for a in p.coordination_adaptations]
    keep = "agent_autonomy_increase" in adapt
    out = configure(
        ctx,
        "distributed_protocols",
        {
            "mode": p.protocol_mode,
            "strategy": p.communication_strategy,
            "adaptations": adapt,
            "keep_tasks_on_unreachable": keep,
        },
    )
    lost = sorted(a.id for a in s.agents.values() if a.status is AgentStatus.UNREACHABLE)
    holding = tasks_on_unreachable(s)
    kept = kept_on_unreachable(s)  # the protocol just configured is in force
    moved = [] if keep else _move_off_unreachable(ctx, 0.0)
    out.result.update(
        {
            "partition": {"unreachable": lost, "tasks_held": holding},
            "kept_on_isolated_agents": sorted(kept.values()),
            "moved": moved,
            "always_on": [
                "buffered reports with per-agent sequence numbers",
                "exactly-once apply through the conflict-free merge on reconnection",
            ],
        }
    )
    out.summary = (
        f"{len(lost)} agent(s) partitioned; "
        + (f"{len(kept)} task(s) keep running isolated" if keep else f"{len(moved)} task(s) moved to reachable agents")
        + "; buffered reports merge on reconnection"
    )
    return out


@operation(
    C,
    "implement-network-resilience",
    kind="monitoring",
    payload=P.NetworkResilience,
    summary="automatic failover (the standing reassignment of silent agents' tasks); the other measures are recorded only",
)
async def implement_network_resilience(ctx: Context, p: P.NetworkResilience) -> Outcome:
    measures = p.resilience_enhancements + p.monitoring_improvements
    if not measures:
        raise CommandError("INVALID_PAYLOAD", "name at least one resilience enhancement or monitoring improvement")
    hb = ctx.engine.config.intervals.heartbeat_s
    failover_after = (
        hb * ctx.engine.config.intervals.missed_heartbeats if "automatic_failover_mechanisms" in measures else None
    )
    out = configure(ctx, "network_resilience", {"measures": sorted(measures), "failover_after_s": failover_after})
    if failover_after is not None:  # the engine's standing reassignment: tasks of silent agents move
        configure(
            ctx,
            "communication",
            {
                "redundancy": True,
                "reassign_after_s": failover_after,
                "standing_reassignment": True,
                "set_by": "implement-network-resilience",
            },
        )
    lost = sum(1 for a in ctx.state.agents.values() if a.status is AgentStatus.UNREACHABLE)
    out.result["applied"] = (
        {"automatic_failover_mechanisms": f"tasks of agents silent {failover_after:g}s move to reachable agents"}
        if failover_after
        else {}
    )
    out.result["recorded_only"] = sorted(m for m in measures if m != "automatic_failover_mechanisms")
    out.summary = (
        f"{len(measures)} resilience measure(s); {lost} agent(s) unreachable now"
        + (f"; failover: tasks of agents silent {failover_after:g}s move" if failover_after else "")
        + (f"; recorded only: {', '.join(out.result['recorded_only'])}" if out.result["recorded_only"] else "")
    )
    return out
