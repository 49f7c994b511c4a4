"""Usage of AI agents as the engine records it: spend, budgets and rate-limit holds.

:class:`UsageOps` turns what hosts report about a run (its usage totals, lines it
could not read, a rate limit it hit) into the declared usage events, checks the
workflow's and pool's budgets after each report (BUDGET_WARNING at the warning share,
BUDGET_EXCEEDED at the budget), holds a pool whose agent hit a rate limit until its
reset time, and puts the task that hit it back in the queue instead of failing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..event_types import (
    BUDGET_EXCEEDED,
    BUDGET_SET,
    BUDGET_WARNING,
    POOL_HOLD_CHANGED,
    POOL_RATE_LIMITED,
    TASK_PAUSED,
    TASK_REASSIGNED,
    TASK_RESUMED,
    TASK_USAGE,
    USAGE_LINES_IGNORED,
)
from ..models import TaskStatus, WorkflowStatus
from ..usage.models import Budget, RateLimitReport, Scope, Spend, UsageReport
from .log import EngineError

if TYPE_CHECKING:
    from .contract import EngineCore


class UsageOps:
    """Usage facts into events; budgets checked; pools held on rate limits."""

    def __init__(self, engine: EngineCore) -> None:
        self.engine = engine
        self.limited: dict[str, int] = {}
        """Task -> the attempt that reported a rate limit (its failure is a hold, not a failure)."""
        self.ignored: dict[tuple[str, int], int] = {}
        """Unreadable usage lines already recorded per (task, attempt)."""
        self.held_runs: dict[str, set[str]] = {}
        """Pool -> runs paused because they hit its rate limit, resumed at its reset."""
        self.woken: set[str] = set()
        """Held pools whose reset time has passed and for which dispatch was asked."""

    # -- facts from hosts --------------------------------------------------------------
    def record(self, agent_id: str, task_id: str, attempt: int, report: UsageReport) -> None:
        """A host's usage report on the run ``(task_id, attempt)`` it is running."""
        e = self.engine
        s = e.state
        t = s.tasks.get(task_id)
        a = s.agents.get(agent_id)
        if t is None or a is None:
            return
        spend = report.spend()
        ts = s.usage.tasks.get(task_id)
        before = ts.runs.get(attempt) if ts is not None else None
        if (spend.tokens or spend.cost_usd) and (
            before is None or spend.since(before).tokens or spend.since(before).cost_usd
        ):
            e.emit(
                TASK_USAGE,
                "agent",
                "usage",
                {
                    "task": task_id,
                    "agent": agent_id,
                    "attempt": attempt,
                    "workflow_id": t.workflow,
                    "pool": a.pool,
                    "spend": spend.model_dump(),
                    "by_source": {k: v.model_dump() for k, v in report.by_source.items()},
                    "models": list(report.models),
                },
            )
        seen = self.ignored.get((task_id, attempt), 0)
        if report.malformed > seen:
            self.ignored[(task_id, attempt)] = report.malformed
            e.emit(
                USAGE_LINES_IGNORED,
                "agent",
                "usage",
                {
                    "task": task_id,
                    "agent": agent_id,
                    "attempt": attempt,
                    "count": report.malformed - seen,
                    "run_total": report.malformed,
                    "reason": report.malformed_last,
                },
            )
        self._sample(t.workflow, a.pool)
        self.check(t.workflow, a.pool)
        if report.rate_limit is not None and self.limited.get(task_id) != attempt:
            self.limited[task_id] = attempt
            self.hold_pool(a.pool, report.rate_limit, task_id)
            self._hold_run(agent_id, task_id)

    def _sample(self, workflow: str, pool: str | None) -> None:
        """Cumulative spend per scope in telemetry: the rate a criterion measures."""
        e = self.engine
        now = e.clock.now()
        led = e.state.usage
        targets: list[tuple[Scope, str | None]] = [("workflow", workflow), ("pool", pool)]
        for scope, name in targets:
            if name:
                sp = led.spend_of(scope, name)
                e.telemetry.record(now, "usage_tokens", f"{scope}:{name}", float(sp.tokens), persist=False)
                e.telemetry.record(now, "usage_cost", f"{scope}:{name}", sp.cost_usd, persist=False)

    def spent_within(self, scope: Scope, name: str, window: float) -> Spend:
        """What the scope spent in the last ``window`` seconds (from the telemetry of each
        report; all of it when nothing older was seen since the engine opened)."""
        e = self.engine
        now = e.clock.now()
        cur = e.state.usage.spend_of(scope, name)

        def before(metric: str) -> float:
            old = [v for t, v in e.telemetry.get(metric, f"{scope}:{name}").points if t <= now - window]
            return old[-1] if old else 0.0

        return Spend(
            input_tokens=max(0, cur.tokens - int(before("usage_tokens"))),
            cost_usd=round(max(0.0, cur.cost_usd - before("usage_cost")), 6),
        )

    def held_failure(self, agent_id: str, task_id: str) -> bool:
        """A run that reported a rate limit and then failed goes back to the queue (held
        with its pool) instead of failing: True when that is what happened."""
        e = self.engine
        t = e.state.tasks.get(task_id)
        if t is None or not self._hit_limit(task_id, t.attempts, t.started_at):
            return False
        e.emit(
            TASK_REASSIGNED,
            "coordination",
            "scheduler",
            {"task": task_id, "from": agent_id, "reason": "rate_limited", "progress": t.context.progress},
        )
        e.request_dispatch()
        return True

    def _hold_run(self, agent_id: str, task_id: str) -> None:
        """A run still going after its limit is held too: paused (SIGSTOP on processes)
        until its pool's reset, when :meth:`tick` resumes it."""
        e = self.engine
        t = e.state.tasks.get(task_id)
        if t is None or t.status is not TaskStatus.RUNNING or t.agent != agent_id:
            return
        e.emit(
            TASK_PAUSED,
            "coordination",
            "execution",
            {"task": task_id, "agent": agent_id, "reason": "rate_limited"},
        )
        if e.runtime is not None:
            e.runtime.pause_task(agent_id, task_id)
        a = e.state.agents.get(agent_id)
        if a is not None:
            self.held_runs.setdefault(a.pool, set()).add(task_id)

    def _resume_held(self, pool: str) -> None:
        """At the reset: the runs paused for the pool's limit, if still paused for it, resume
        (the hold's run too after a restart, when this engine did not pause them itself)."""
        e = self.engine
        h = e.state.usage.holds.get(pool)
        keys = self.held_runs.pop(pool, set()) | ({h.task} if h is not None and h.task else set())
        for key in sorted(keys):
            t = e.state.tasks.get(key)
            if t is None or t.status is not TaskStatus.PAUSED or t.agent is None:
                continue
            wf = e.state.workflows.get(t.workflow)
            if wf is None or wf.status is not WorkflowStatus.RUNNING:
                continue  # paused by the operator (or ended) meanwhile: theirs to resume
            e.emit(
                TASK_RESUMED, "coordination", "execution", {"task": key, "agent": t.agent, "reason": "rate_limit_reset"}
            )
            if e.runtime is not None:
                e.runtime.resume_task(t.agent, key)

    def _hit_limit(self, task_id: str, attempt: int, started_at: float | None) -> bool:
        """This run reported a rate limit: seen by this engine, or (after a restart) the
        hold it caused names it and began after the run started."""
        if self.limited.get(task_id) == attempt:
            return True
        return any(
            h.task == task_id and started_at is not None and h.since >= started_at
            for h in self.engine.state.usage.holds.values()
        )

    # -- budgets -----------------------------------------------------------------------
    def check(self, workflow: str, pool: str | None) -> None:
        """Raise the warning or the breach of the workflow's and pool's budgets (once each)."""
        self.check_one("workflow", workflow)
        if pool:
            self.check_one("pool", pool)

    def check_one(self, scope: Scope, name: str) -> None:
        e = self.engine
        led = e.state.usage
        st = led.budget_of(scope, name)
        if st is None or st.exceeded:
            return
        spend = led.spend_of(scope, name)
        share = st.budget.share(spend)
        data = {
            "scope": scope,
            "name": name,
            "share": round(share, 4),
            "spend": spend.model_dump(),
            "budget": st.budget.model_dump(),
        }
        if share >= 1.0:
            e.emit(BUDGET_EXCEEDED, "resource", "budget", data)
        elif share >= st.warn_share and not st.warned:
            e.emit(BUDGET_WARNING, "resource", "budget", {**data, "warn_share": st.warn_share})

    def set_budget(
        self, scope: Scope, name: str, budget: Budget | None, warn_share: float | None = None, actor: str | None = None
    ) -> dict[str, Any]:
        """Set (or with None remove) a workflow's or pool's budget; the warning and the
        breach are checked against what is already spent."""
        e = self.engine
        s = e.state
        known = s.knows(name) if scope == "workflow" else name in s.pools
        if not known:
            code = "WORKFLOW_NOT_FOUND" if scope == "workflow" else "POOL_NOT_FOUND"
            raise EngineError(code, f"no {scope} {name!r}", {scope: name})
        old = s.usage.budget_of(scope, name)
        share = warn_share if warn_share is not None else (old.warn_share if old else e.config.usage.warn_share)
        e.emit(
            BUDGET_SET,
            "resource",
            "budget",
            {"scope": scope, "name": name, "budget": budget.model_dump() if budget else None, "warn_share": share},
            actor=actor,
        )
        self.check_one(scope, name)
        return {
            "scope": scope,
            "name": name,
            "before": old.budget.model_dump() if old else None,
            "after": budget.model_dump() if budget else None,
            "warn_share": share,
            "spend": s.usage.spend_of(scope, name).model_dump(),
        }

    # -- rate limits -------------------------------------------------------------------
    def hold_pool(self, pool: str, rl: RateLimitReport, task_id: str | None, actor: str | None = None) -> float:
        """Hold ``pool`` until the reported reset (or the configured wait when it said
        none, never longer than the configured maximum); a hold ending later stays."""
        e = self.engine
        now = e.clock.now()
        cfg = e.config.usage
        reset = rl.reset_at if rl.reset_at is not None else now + cfg.rate_limit_wait_s
        reset = min(max(reset, now), now + cfg.rate_limit_max_wait_s)
        cur = e.state.usage.holds.get(pool)
        if cur is not None and cur.reset_at >= reset and cur.agents_allowed == 0:
            return cur.reset_at
        self.woken.discard(pool)
        e.emit(
            POOL_RATE_LIMITED,
            "agent_pool",
            "rate_limit",
            {
                "pool": pool,
                "reset_at": round(reset, 3),
                "reason": rl.reason,
                "source": rl.source,
                "task": task_id,
                "agents_after_reset": 1,
                "reset_basis": "reported by the agent" if rl.reset_at is not None else "configured wait",
            },
            actor=actor,
        )
        return reset

    def release_pool(self, pool: str, agents: int | None, actor: str | None = None) -> None:
        """Let ``agents`` of a held pool work (after its reset), or lift the hold (None)."""
        e = self.engine
        if pool not in e.state.usage.holds:
            raise EngineError("INVALID_STATE", f"pool {pool!r} is not held", {"pool": pool})
        e.emit(POOL_HOLD_CHANGED, "agent_pool", "rate_limit", {"pool": pool, "agents_allowed": agents}, actor=actor)
        if agents is None:
            self.woken.discard(pool)
        e.request_dispatch()

    def tick(self, now: float) -> None:
        """At a held pool's reset time, dispatch again (within what the hold allows)."""
        for pool, h in list(self.engine.state.usage.holds.items()):
            if now >= h.reset_at and pool not in self.woken:
                self.woken.add(pool)
                self._resume_held(pool)
                self.engine.request_dispatch()
