"""Usage of AI agents in the command language: spend against budgets, raising a budget,
releasing a pool held after a rate limit. ``/resource-manager`` declares the operations
(``allocate`` with a budget, ``raise-budget``, ``release-pool``, ``status`` and
``usage tokens``); what they do is here."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..engine import EngineError
from ..models import WorkflowStatus
from ..usage.models import Budget, Scope, Spend
from . import payloads as P
from .context import Context
from .registry import Outcome
from .responses import CommandError


class BudgetRequest(P.Payload):
    """A budget for a workflow (the command's workflow or ``workflow``) or a pool (``pool``)."""

    workflow: str | None = None
    pool: str | None = None
    cost_usd: float | None = Field(None, gt=0)
    tokens: int | None = Field(None, gt=0)
    warn_share: float | None = Field(None, gt=0, le=1)
    resume: bool = True
    """``raise-budget``: resume the workflow (or the paused workflows using the pool) after the raise."""


class PoolRelease(P.Payload):
    pool: str
    agents: int | None = Field(None, ge=1)
    """How many of the pool's agents may work now; none: lift the hold."""


def target(ctx: Context, p: BudgetRequest) -> tuple[Scope, str]:
    if p.pool is not None:
        if p.pool not in ctx.state.pools:
            raise CommandError("POOL_NOT_FOUND", f"no pool {p.pool!r}", {"pools": sorted(ctx.state.pools)})
        return "pool", p.pool
    wf = ctx.any_workflow(ctx.workflow_id or p.workflow)
    return "workflow", wf.id


def spend_row(ctx: Context, scope: Scope, name: str) -> dict[str, Any]:
    """Spend against the budget (if any) of a workflow or pool."""
    led = ctx.state.usage
    spend = led.spend_of(scope, name)
    st = led.budget_of(scope, name)
    row: dict[str, Any] = {scope: name, **spend.model_dump(), "tokens": spend.tokens}
    if st is not None:
        row["budget"] = st.budget.model_dump()
        row["budget_used"] = round(st.budget.share(spend), 4)
        row["warn_share"] = st.warn_share
        row["exceeded"] = st.exceeded
    return row


def usage_section(ctx: Context) -> dict[str, Any]:
    """Tokens and money per workflow and pool, budgets, holds (for ``status`` and ``usage tokens``)."""
    led = ctx.state.usage
    names_w = sorted(set(led.workflows) | {b.name for b in led.budgets.values() if b.scope == "workflow"})
    names_p = sorted(set(led.pools) | {b.name for b in led.budgets.values() if b.scope == "pool"})
    total = led.total()
    return {
        "total": {**total.model_dump(), "tokens": total.tokens},
        "workflows": [spend_row(ctx, "workflow", n) for n in names_w],
        "pools": [spend_row(ctx, "pool", n) for n in names_p],
        "held_pools": [h.model_dump() for h in led.holds.values()],
        "ignored_usage_lines": led.ignored_lines,
        "basis": "reported by the tasks (OPSDECK_USAGE, Claude Code stream-json, Codex exec --json)",
    }


def allocate_budget(ctx: Context, p: P.Allocate) -> Outcome:
    """``allocate`` with a ``budget``: the workflow's, or with ``pool`` the pool's."""
    assert p.budget is not None
    b = p.budget
    return set_budget(
        ctx,
        BudgetRequest(workflow=p.workflow, pool=p.pool, cost_usd=b.cost_usd, tokens=b.tokens, warn_share=b.warn_share),
    )


def set_budget(ctx: Context, p: BudgetRequest) -> Outcome:
    scope, name = target(ctx, p)
    cur = ctx.state.usage.budget_of(scope, name)
    budget = Budget(
        cost_usd=p.cost_usd if p.cost_usd is not None else (cur.budget.cost_usd if cur else None),
        tokens=p.tokens if p.tokens is not None else (cur.budget.tokens if cur else None),
    )
    try:
        res = ctx.engine.spend.set_budget(scope, name, budget, p.warn_share, actor=ctx.actor)
    except EngineError as exc:
        raise CommandError(exc.code, exc.message, exc.details) from None
    return Outcome(
        res,
        f"{scope} {name} budget {budget.brief()}; spent {Spend.model_validate(res['spend']).brief()}",
        workflow_id=name if scope == "workflow" else None,
    )


def raise_budget(ctx: Context, p: BudgetRequest) -> Outcome:
    """A higher budget (each figure given must be above the old one and above what is
    spent), then the workflows it paused resume."""
    scope, name = target(ctx, p)
    cur = ctx.state.usage.budget_of(scope, name)
    if cur is None:
        raise CommandError("NO_BUDGET", f"{scope} {name} has no budget to raise", {scope: name})
    if p.cost_usd is None and p.tokens is None:
        raise CommandError("INVALID_PAYLOAD", "raise-budget needs cost_usd, tokens or both", {scope: name})
    spend = ctx.state.usage.spend_of(scope, name)
    checks: list[tuple[str, float | None, float | None, float]] = [
        ("cost_usd", p.cost_usd, cur.budget.cost_usd, spend.cost_usd),
        ("tokens", p.tokens, cur.budget.tokens, spend.tokens),
    ]
    for key, new, old, used in checks:
        if new is not None and ((old is not None and new <= old) or new <= used):
            raise CommandError(
                "NOT_A_RAISE",
                f"{scope} {name}: {key} {new:g} is not above the budget ({old if old is not None else 'none'}) "
                f"and what is spent ({used:g})",
                {scope: name, "budget": cur.budget.model_dump(), "spend": spend.model_dump()},
            )
    budget = Budget(
        cost_usd=p.cost_usd if p.cost_usd is not None else cur.budget.cost_usd,
        tokens=p.tokens if p.tokens is not None else cur.budget.tokens,
    )
    res = ctx.engine.spend.set_budget(scope, name, budget, p.warn_share, actor=ctx.actor)
    resumed: dict[str, list[str]] = {}
    if p.resume:
        for wid in paused_by_scope(ctx, scope, name):
            resumed[wid] = ctx.engine.resume_workflow(wid, actor=ctx.actor)
    res["resumed"] = resumed
    return Outcome(
        res,
        f"{scope} {name} budget raised to {budget.brief()}; resumed {', '.join(resumed) or 'nothing'}",
        workflow_id=name if scope == "workflow" else None,
    )


def paused_by_scope(ctx: Context, scope: Scope, name: str) -> list[str]:
    """Paused workflows a budget covers: the workflow, or those with tasks of the pool."""
    s = ctx.state
    if scope == "workflow":
        wf = s.workflows.get(name)
        return [name] if wf is not None and wf.status is WorkflowStatus.PAUSED else []
    out = []
    for wf in s.workflows.values():
        if wf.status is not WorkflowStatus.PAUSED:
            continue
        pools = {s.agents[t.agent].pool for t in s.workflow_tasks(wf.id) if t.agent and t.agent in s.agents}
        if name in pools:
            out.append(wf.id)
    return sorted(out)


def release_pool(ctx: Context, p: PoolRelease) -> Outcome:
    h = ctx.state.usage.holds.get(p.pool)
    if h is None:
        raise CommandError("INVALID_STATE", f"pool {p.pool!r} is not held", {"held": sorted(ctx.state.usage.holds)})
    ctx.engine.spend.release_pool(p.pool, p.agents, actor=ctx.actor)
    early = ctx.now < h.reset_at
    what = "hold lifted" if p.agents is None else f"{p.agents} agent(s) may work"
    return Outcome(
        {
            "pool": p.pool,
            "agents_allowed": p.agents,
            "reset_at": h.reset_at,
            "before_reset": early,
            "note": "no agent of the pool starts before its reset time" if early and p.agents else None,
        },
        f"pool {p.pool}: {what}" + (" (from its reset time)" if early and p.agents else ""),
    )
