"""Usage in the state: spend per task, agent, workflow and pool, budgets, pool holds.

The console validates a host's usage report into :class:`UsageReport` (the boundary);
folds keep a :class:`UsageLedger` in the projection (``State.usage``) from the
declared usage events, so replaying the log rebuilds every figure.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scope = Literal["workflow", "pool"]


class _Model(BaseModel):
    # Built at first use: only the ledger is validated on a run's path (core.models._Model).
    model_config = ConfigDict(extra="forbid", defer_build=True)


class Spend(_Model):
    """Tokens and money; ``cached_input_tokens`` is a part of ``input_tokens``."""

    input_tokens: int = Field(0, ge=0)
    output_tokens: int = Field(0, ge=0)
    cached_input_tokens: int = Field(0, ge=0)
    cost_usd: float = Field(0.0, ge=0)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, d: Spend) -> None:
        """In place (folds): ``self += d``."""
        self.input_tokens += d.input_tokens
        self.output_tokens += d.output_tokens
        self.cached_input_tokens += d.cached_input_tokens
        self.cost_usd = round(self.cost_usd + d.cost_usd, 6)

    def since(self, before: Spend) -> Spend:
        """What was added after ``before`` (a run's totals only grow; never negative)."""
        return Spend(
            input_tokens=max(0, self.input_tokens - before.input_tokens),
            output_tokens=max(0, self.output_tokens - before.output_tokens),
            cached_input_tokens=max(0, self.cached_input_tokens - before.cached_input_tokens),
            cost_usd=round(max(0.0, self.cost_usd - before.cost_usd), 6),
        )

    def high_water(self, other: Spend) -> Spend:
        """The larger of each figure of the two."""
        return Spend(
            input_tokens=max(self.input_tokens, other.input_tokens),
            output_tokens=max(self.output_tokens, other.output_tokens),
            cached_input_tokens=max(self.cached_input_tokens, other.cached_input_tokens),
            cost_usd=max(self.cost_usd, other.cost_usd),
        )

    def brief(self) -> str:
        return f"{self.tokens:,} tokens, ${self.cost_usd:.4f}"


class RateLimitReport(_Model):
    source: str = Field(max_length=40)
    reason: str = Field(max_length=300)
    reset_at: float | None = None


class UsageReport(Spend):
    """What a host reports about one run: its totals so far (they only grow), where
    they came from, and the lines it could not read."""

    model_config = ConfigDict(extra="ignore")
    by_source: dict[str, Spend] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list, max_length=16)
    malformed: int = Field(0, ge=0)
    malformed_last: str | None = Field(None, max_length=400)
    rate_limit: RateLimitReport | None = None

    def spend(self) -> Spend:
        return Spend(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_input_tokens=self.cached_input_tokens,
            cost_usd=self.cost_usd,
        )


class Budget(_Model):
    """A ceiling on spend: money, tokens or both (whichever is reached first)."""

    cost_usd: float | None = Field(None, gt=0)
    tokens: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _some(self) -> Budget:
        if self.cost_usd is None and self.tokens is None:
            raise ValueError("a budget needs cost_usd, tokens or both")
        return self

    def share(self, spend: Spend) -> float:
        """The largest fraction of the budget ``spend`` has used (1.0: reached)."""
        parts = []
        if self.cost_usd is not None:
            parts.append(spend.cost_usd / self.cost_usd)
        if self.tokens is not None:
            parts.append(spend.tokens / self.tokens)
        return max(parts)

    def brief(self) -> str:
        parts = []
        if self.tokens is not None:
            parts.append(f"{self.tokens:,} tokens")
        if self.cost_usd is not None:
            parts.append(f"${self.cost_usd:g}")
        return " / ".join(parts)


class BudgetState(_Model):
    scope: Scope
    name: str
    budget: Budget
    warn_share: float = Field(0.8, gt=0, le=1)
    set_at: float = 0.0
    warned: bool = False
    """The warning share was reached (BUDGET_WARNING) since the budget was set."""
    exceeded: bool = False
    """The budget was reached (BUDGET_EXCEEDED) since it was set."""


class PoolHold(_Model):
    """A pool held after an agent of it reported a rate limit: no dispatch to its agents
    until ``reset_at``, then as many as ``agents_allowed`` (None: the hold is lifted)."""

    pool: str
    reset_at: float
    since: float
    reason: str
    source: str
    task: str | None = None
    agents_allowed: int = 0


class TaskSpend(_Model):
    workflow: str
    pool: str | None = None
    agent: str | None = None
    runs: dict[int, Spend] = Field(default_factory=dict)
    """Each attempt's totals as last reported (the deltas are computed against them)."""
    total: Spend = Field(default_factory=Spend)
    models: list[str] = Field(default_factory=list)
    ignored_lines: int = 0


class UsageLedger(_Model, defer_build=False):  # every run keeps one
    tasks: dict[str, TaskSpend] = Field(default_factory=dict)
    agents: dict[str, Spend] = Field(default_factory=dict)
    workflows: dict[str, Spend] = Field(default_factory=dict)
    pools: dict[str, Spend] = Field(default_factory=dict)
    budgets: dict[str, BudgetState] = Field(default_factory=dict)
    """By ``"workflow:ID"`` or ``"pool:NAME"``."""
    holds: dict[str, PoolHold] = Field(default_factory=dict)
    ignored_lines: int = 0
    """Usage lines tasks printed that could not be read (each counted once)."""

    def empty(self) -> bool:
        return not (self.tasks or self.budgets or self.holds or self.ignored_lines)

    def total(self) -> Spend:
        out = Spend()
        for s in self.workflows.values():
            out.add(s)
        return out

    def spend_of(self, scope: Scope, name: str) -> Spend:
        return (self.workflows if scope == "workflow" else self.pools).get(name) or Spend()

    def budget_of(self, scope: Scope, name: str) -> BudgetState | None:
        return self.budgets.get(f"{scope}:{name}")
