"""The folds of the usage events into ``State.usage`` (a :class:`UsageLedger`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..events import Event
from .models import Budget, BudgetState, PoolHold, Spend, TaskSpend

if TYPE_CHECKING:
    from ..projection import State


def task_usage(s: State, ev: Event) -> None:
    """A run's totals: what is above its highest report so far is added to its task,
    agent, workflow and pool (a report seen twice, replayed, or lower counts once)."""
    d = ev.data
    led = s.usage
    key = d["task"]
    if s.journal is not None:
        s.changing("usage_tasks", led.tasks, key)
        s.changing("usage_agents", led.agents, d["agent"])
        s.changing("usage_workflows", led.workflows, d["workflow_id"])
        if d.get("pool"):
            s.changing("usage_pools", led.pools, d["pool"])
    ts = led.tasks.get(key)
    if ts is None:
        ts = led.tasks[key] = TaskSpend(workflow=d["workflow_id"])
    ts.agent = d["agent"]
    ts.pool = d.get("pool")
    attempt = int(d["attempt"])
    now = Spend.model_validate(d["spend"])
    before = ts.runs.get(attempt) or Spend()
    delta = now.since(before)
    ts.runs[attempt] = before.high_water(now)
    ts.total.add(delta)
    for m in d.get("models") or []:
        if m not in ts.models and len(ts.models) < 8:
            ts.models.append(m)
    led.agents.setdefault(d["agent"], Spend()).add(delta)
    led.workflows.setdefault(d["workflow_id"], Spend()).add(delta)
    if ts.pool:
        led.pools.setdefault(ts.pool, Spend()).add(delta)


def lines_ignored(s: State, ev: Event) -> None:
    n = int(ev.data["count"])
    s.changing("usage_tasks", s.usage.tasks, ev.data["task"])
    ts = s.usage.tasks.get(ev.data["task"])
    if ts is not None:
        ts.ignored_lines += n
    s.usage.ignored_lines += n


def budget_set(s: State, ev: Event) -> None:
    d = ev.data
    key = f"{d['scope']}:{d['name']}"
    s.replacing("usage_budgets", s.usage.budgets, key)
    if d.get("budget") is None:
        s.usage.budgets.pop(key, None)
        return
    s.usage.budgets[key] = BudgetState(
        scope=d["scope"],
        name=d["name"],
        budget=Budget.model_validate(d["budget"]),
        warn_share=float(d.get("warn_share", 0.8)),
        set_at=ev.ts,
    )


def budget_warned(s: State, ev: Event) -> None:
    s.changing("usage_budgets", s.usage.budgets, f"{ev.data['scope']}:{ev.data['name']}")
    st = s.usage.budget_of(ev.data["scope"], ev.data["name"])
    if st is not None:
        st.warned = True


def budget_exceeded(s: State, ev: Event) -> None:
    s.changing("usage_budgets", s.usage.budgets, f"{ev.data['scope']}:{ev.data['name']}")
    st = s.usage.budget_of(ev.data["scope"], ev.data["name"])
    if st is not None:
        st.warned = st.exceeded = True


def pool_rate_limited(s: State, ev: Event) -> None:
    d = ev.data
    s.replacing("usage_holds", s.usage.holds, d["pool"])
    s.usage.holds[d["pool"]] = PoolHold(
        pool=d["pool"],
        reset_at=float(d["reset_at"]),
        since=ev.ts,
        reason=d["reason"],
        source=d["source"],
        task=d.get("task"),
        agents_allowed=int(d.get("agents_after_reset", 1)),
    )


def pool_hold_changed(s: State, ev: Event) -> None:
    d = ev.data
    s.changing("usage_holds", s.usage.holds, d["pool"])
    if d.get("agents_allowed") is None:
        s.usage.holds.pop(d["pool"], None)
        return
    h = s.usage.holds.get(d["pool"])
    if h is not None:
        h.agents_allowed = int(d["agents_allowed"])
