"""``/resource-manager`` balancing and scaling: resolve over-commitment, optimize, balance, scale pools."""

from __future__ import annotations

import math

from ...models import AgentStatus, Resources, TaskStatus, WorkflowStatus
from .. import payloads as P
from ..context import Context
from ..registry import Operations, Outcome
from ..responses import CommandError
from . import C
from .holdings import runnable_now

OPS = Operations(C, None)
operation = OPS.operation


@operation(
    C,
    "resolve-conflicts",
    kind="destructive",
    payload=P.Empty,
    summary="shrink the lowest-priority allocations until they fit the capacity",
)
async def resolve_conflicts(ctx: Context, p: P.Empty) -> Outcome:
    s = ctx.state
    cap = ctx.engine.config.capacity
    act = sorted(
        (
            w
            for w in s.workflows.values()
            if w.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED) and not w.frozen
        ),
        key=lambda w: (w.priority, w.id),
    )
    changes = []
    for field, limit in (("agents", float(cap.agents)), ("cpu_cores", cap.cpu_cores), ("memory_gb", cap.memory_gb)):
        total = sum(getattr(w.allocation, field) for w in act)
        for w in act:
            if total <= limit + 1e-9:
                break
            cur = getattr(w.allocation, field)
            floor = 1 if field == "agents" else 0.5
            cut = min(cur - floor, total - limit)
            if cut <= 0:
                continue
            if field == "agents":
                cut = math.ceil(cut)
            new = w.allocation.model_copy(update={field: type(cur)(round(cur - cut, 3))})
            ctx.engine.set_allocation(w.id, new, actor=ctx.actor)
            changes.append({"workflow_id": w.id, "field": field, "before": cur, "after": getattr(new, field)})
            total -= cut
    return Outcome(
        {"changes": changes, "capacity": cap.model_dump()},
        f"{len(changes)} allocation change(s)" if changes else "no over-commitment: nothing changed",
    )


@operation(
    C,
    "optimize",
    kind="lifecycle",
    payload=P.Empty,
    summary="fit allocations to demand: grow allocation-bound workflows, trim unused slots",
    aliases=("optimise",),
)
async def optimize(ctx: Context, p: P.Empty) -> Outcome:
    """Grow the allocation of workflows whose ready tasks wait on it (when matching idle
    agents exist), trim slots no task can use; reports tasks runnable before and after."""
    s = ctx.state
    lim = ctx.engine.config.workflow_limits
    before = runnable_now(ctx)
    changes = []
    for w in sorted(s.workflows.values(), key=lambda w: (-w.priority, w.id)):
        if w.status is not WorkflowStatus.RUNNING or w.frozen:
            continue
        u = s.in_use(w.id)
        ready = [s.tasks[k] for k in s.ready.get(w.id, ()) if s.tasks[k].status is TaskStatus.PENDING]
        idle_match = {
            a.id
            for a in s.live_agents()
            if a.status is AgentStatus.IDLE
            for t in ready
            if t.specialization in a.specializations
        }
        a = w.allocation
        want = u.agents + min(len(ready), len(idle_match))
        if want > a.agents:
            new = Resources(
                cpu_cores=min(
                    lim.cpu_cores, max(a.cpu_cores, u.cpu_cores + sum(t.cpu for t in ready[: want - u.agents]))
                ),
                memory_gb=min(
                    lim.memory_gb, max(a.memory_gb, u.memory_gb + sum(t.memory_gb for t in ready[: want - u.agents]))
                ),
                agents=min(lim.agents, want),
            )
        elif not ready and a.agents > max(1, u.agents) and s.wf_left.get(w.id, 0) <= u.agents:
            new = a.model_copy(update={"agents": max(1, u.agents)})
        else:
            continue
        if new != a:
            ctx.engine.set_allocation(w.id, new, actor=ctx.actor)
            changes.append({"workflow_id": w.id, "before": a.model_dump(), "after": new.model_dump()})
    after = runnable_now(ctx)
    return Outcome(
        {"changes": changes, "runnable_now_before": before, "runnable_now_after": after},
        f"{len(changes)} allocation(s) changed; tasks startable now {before} -> {after}",
    )


@operation(
    C,
    "balance",
    kind="lifecycle",
    payload=P.Empty,
    summary="share agent slots among running workflows by priority and demand",
)
async def balance(ctx: Context, p: P.Empty) -> Outcome:
    s = ctx.state
    cap = ctx.engine.config.capacity
    lim = ctx.engine.config.workflow_limits
    run = [w for w in s.workflows.values() if w.status is WorkflowStatus.RUNNING and not w.frozen]
    demand = {
        w.id: s.in_use(w.id).agents + sum(1 for k in s.ready.get(w.id, ()) if s.tasks[k].status is TaskStatus.PENDING)
        for w in run
    }
    weights = {w.id: w.priority * (1 if demand[w.id] else 0) for w in run}
    total_w = sum(weights.values())
    live = len(s.live_agents())
    slots = min(cap.agents, live)
    before = runnable_now(ctx)
    changes = []
    for w in sorted(run, key=lambda w: (-w.priority, w.id)):
        if not total_w or not demand[w.id]:
            continue
        share = max(1, min(lim.agents, demand[w.id], round(slots * weights[w.id] / total_w)))
        prev = w.allocation.agents
        if share != prev:
            new = w.allocation.model_copy(update={"agents": share})
            ctx.engine.set_allocation(w.id, new, actor=ctx.actor)
            changes.append({"workflow_id": w.id, "agents_before": prev, "agents_after": share})
    return Outcome(
        {
            "slots": slots,
            "demand": demand,
            "changes": changes,
            "runnable_now_before": before,
            "runnable_now_after": runnable_now(ctx),
        },
        f"{len(changes)} workflow(s) rebalanced over {slots} agent slot(s)",
    )


@operation(
    C,
    "scale",
    kind="destructive",
    payload=P.Scale,
    summary="grow or shrink an agent pool (shrinking retires idle agents)",
)
async def scale(ctx: Context, p: P.Scale) -> Outcome:
    s = ctx.state
    pool = s.pools.get(p.pool)
    if pool is None:
        raise CommandError(
            "POOL_NOT_FOUND",
            f"no pool {p.pool!r}",
            {"known": sorted(s.pools)},
            ["/resource-manager agent-pool-assessment"],
        )
    if p.size > pool.max_size or p.size < pool.min_size:
        raise CommandError(
            "RESOURCE_LIMIT",
            f"pool {p.pool} size must stay within {pool.min_size}..{pool.max_size}",
            {"requested": p.size},
        )
    live = sorted((a for a in s.live_agents() if a.pool == p.pool), key=lambda a: a.id)
    added, retired = [], []
    if p.size > len(live):
        free = ctx.engine.config.capacity.agents - len(s.live_agents())
        if p.size - len(live) > free:
            raise CommandError(
                "RESOURCE_EXHAUSTED", f"only {free} agent slot(s) left of {ctx.engine.config.capacity.agents}"
            )
        for _ in range(p.size - len(live)):
            added.append(ctx.engine.add_agent(p.pool, actor=ctx.actor))
    else:
        idle = [a for a in reversed(live) if a.status is AgentStatus.IDLE]
        for a in idle[: len(live) - p.size]:
            ctx.engine.retire_agent(a.id, actor=ctx.actor)
            retired.append(a.id)
    now_live = sum(1 for a in s.live_agents() if a.pool == p.pool)
    return Outcome(
        {
            "pool": p.pool,
            "before": len(live),
            "after": now_live,
            "added": added,
            "retired": retired,
            "short_by": max(0, now_live - p.size),
        },
        f"pool {p.pool}: {len(live)} -> {now_live} agents" + (" (busy agents kept)" if now_live > p.size else ""),
    )
