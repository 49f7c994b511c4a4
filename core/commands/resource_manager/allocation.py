"""``/resource-manager`` allocation: allocate, reserve, release, reallocate; budgets and held pools."""

from __future__ import annotations

from typing import Any

from ...models import Resources, WorkflowStatus
from .. import budgets
from .. import payloads as P
from ..context import Context
from ..registry import Operations, Outcome
from ..responses import CommandError
from . import C
from .holdings import check_limits, live_limits, runnable_now, shed

OPS = Operations(C, None)
operation = OPS.operation


@operation(
    C,
    "raise-budget",
    kind="lifecycle",
    payload=budgets.BudgetRequest,
    summary="raise a workflow's (or a pool's) budget of tokens/cost and resume what it paused",
    workflow_arg="optional",
)
async def raise_budget(ctx: Context, p: budgets.BudgetRequest) -> Outcome:
    """Raise a budget above what is spent, then resume the workflows paused under it."""
    return budgets.raise_budget(ctx, p)


@operation(
    C,
    "release-pool",
    kind="lifecycle",
    payload=budgets.PoolRelease,
    summary="let N agents of a pool held after a rate limit work again, or lift the hold",
)
async def release_pool(ctx: Context, p: budgets.PoolRelease) -> Outcome:
    """After its reset time, a held pool's agents start work again: as many as given, or all."""
    return budgets.release_pool(ctx, p)


@operation(
    C,
    "allocate",
    kind="lifecycle",
    payload=P.Allocate,
    summary="set a workflow's allocation (cpu/cpu_cores, memory_gb, agents)",
    workflow_arg="optional",
)
async def allocate(ctx: Context, p: P.Allocate) -> Outcome:
    """A workflow's allocation; with ``budget`` ({"cost_usd", "tokens", "warn_share"}) the
    workflow's budget, or with ``pool`` too the pool's."""
    if p.cores is None and p.memory_gb is None and p.agents is None:
        if p.budget is not None:
            return budgets.allocate_budget(ctx, p)
        raise CommandError("INVALID_PAYLOAD", "allocate needs at least one of cpu_cores, memory_gb, agents, budget")
    if p.budget is not None or p.pool is not None:
        raise CommandError("INVALID_PAYLOAD", "allocate a budget in a command of its own (no cpu/memory/agents)")
    wf = ctx.workflow(ctx.workflow_id or p.workflow)
    cur = wf.allocation
    new = Resources(
        cpu_cores=p.cores if p.cores is not None else cur.cpu_cores,
        memory_gb=p.memory_gb if p.memory_gb is not None else cur.memory_gb,
        agents=p.agents if p.agents is not None else cur.agents,
    )
    check_limits(ctx, wf.id, new)
    before = ctx.engine.set_allocation(wf.id, new, actor=ctx.actor, base=True)
    live = await live_limits(ctx, [wf.id])
    return Outcome(
        {"workflow_id": wf.id, "before": before.model_dump(), "after": new.model_dump(), "live_limits": live},
        f"{wf.id} allocation {before.agents}->{new.agents} agents, {before.cpu_cores:g}->{new.cpu_cores:g} cores; {live['summary']}",
        workflow_id=wf.id,
    )


@operation(
    C,
    "reserve",
    kind="lifecycle",
    payload=P.ResourceAmount,
    summary="guarantee capacity to a workflow",
    workflow_arg="required",
)
async def reserve(ctx: Context, p: P.ResourceAmount) -> Outcome:
    """Record the guarantee (the scheduler keeps that capacity for the workflow) and
    apply it to its running processes as ``emergency-reallocation``'s guarantee does:
    a guaranteed task runs at the host's own niceness, read back from the OS."""
    wf = ctx.workflow()
    g = Resources(cpu_cores=p.cores or 0.0, memory_gb=p.memory_gb or 0.0, agents=p.agents or 0)
    if g == Resources():
        raise CommandError("INVALID_PAYLOAD", 'reserve needs an amount, e.g. {"cpu": 2, "memory_gb": 4}')
    before = wf.guarantee
    ctx.engine.reserve(wf.id, g, actor=ctx.actor)
    live = await live_limits(ctx, [wf.id] if wf.status is WorkflowStatus.RUNNING else [])
    return Outcome(
        {
            "workflow_id": wf.id,
            "guarantee": g.model_dump(),
            "previous": before.model_dump() if before else None,
            "scheduler": "the guaranteed capacity is kept for this workflow when dispatching",
            "live_limits": live,
        },
        f"{wf.id} guaranteed {g.cpu_cores:g} cores / {g.memory_gb:g} GB / {g.agents} agents in the scheduler; "
        f"{live['summary']}",
        workflow_id=wf.id,
    )


@operation(
    C,
    "release",
    kind="destructive",
    payload=P.Release,
    summary="drop a workflow's guarantee and/or shrink its allocation to what it uses",
    workflow_arg="optional",
)
async def release(ctx: Context, p: P.Release) -> Outcome:
    wf = ctx.workflow(ctx.workflow_id or p.workflow)
    res: dict[str, Any] = {"workflow_id": wf.id}
    if p.what in ("guarantee", "both") and wf.guarantee is not None:
        res["guarantee_released"] = wf.guarantee.model_dump()
        ctx.engine.reserve(wf.id, None, actor=ctx.actor)
    if p.what in ("allocation", "both"):
        u = ctx.state.in_use(wf.id)
        new = Resources(cpu_cores=round(u.cpu_cores, 2), memory_gb=round(u.memory_gb, 2), agents=u.agents)
        res["allocation_before"] = wf.allocation.model_dump()
        ctx.engine.set_allocation(wf.id, new, actor=ctx.actor)
        res["allocation_after"] = new.model_dump()
    if len(res) == 1:
        raise CommandError("NOTHING_TO_RELEASE", f"{wf.id} has no guarantee to release", {"workflow_id": wf.id})
    return Outcome(res, f"released {', '.join(k for k in res if k != 'workflow_id')} of {wf.id}", workflow_id=wf.id)


@operation(
    C, "reallocate", kind="destructive", payload=P.Reallocate, summary="move allocation from one workflow to another"
)
async def reallocate(ctx: Context, p: P.Reallocate) -> Outcome:
    src, dst = ctx.workflow(p.from_workflow), ctx.workflow(p.to_workflow)
    if src.id == dst.id:
        raise CommandError("INVALID_PAYLOAD", "from_workflow and to_workflow are the same")
    a, b = src.allocation, dst.allocation
    if p.agents > a.agents or p.cpu_cores > a.cpu_cores + 1e-9 or p.memory_gb > a.memory_gb + 1e-9:
        raise CommandError("RESOURCE_EXHAUSTED", f"{src.id} holds only {a.model_dump()}", {"requested": p.model_dump()})
    if p.agents == 0 and p.cpu_cores == 0 and p.memory_gb == 0:
        raise CommandError("INVALID_PAYLOAD", "reallocate needs agents, cpu_cores or memory_gb above 0")
    na = Resources(
        cpu_cores=round(a.cpu_cores - p.cpu_cores, 3),
        memory_gb=round(a.memory_gb - p.memory_gb, 3),
        agents=a.agents - p.agents,
    )
    nb = Resources(
        cpu_cores=round(b.cpu_cores + p.cpu_cores, 3),
        memory_gb=round(b.memory_gb + p.memory_gb, 3),
        agents=b.agents + p.agents,
    )
    check_limits(ctx, dst.id, nb)
    before = runnable_now(ctx)
    ctx.engine.set_allocation(src.id, na, actor=ctx.actor)
    shed_res = shed(ctx, src.id, na, True)
    ctx.engine.set_allocation(dst.id, nb, actor=ctx.actor)
    live = await live_limits(ctx, [src.id, dst.id])
    return Outcome(
        {
            "from": {"workflow_id": src.id, "before": a.model_dump(), "after": na.model_dump(), **shed_res},
            "to": {"workflow_id": dst.id, "before": b.model_dump(), "after": nb.model_dump()},
            "runnable_now_before": before,
            "runnable_now_after": runnable_now(ctx),
            "live_limits": live,
        },
        f"moved {p.agents} agent(s), {p.cpu_cores:g} cores, {p.memory_gb:g} GB from {src.id} to {dst.id}; {live['summary']}",
    )
