"""The data of the usage events, checked at the boundary like every folded event's."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from ..event_data import EventData
from .models import Budget, Scope, Spend

if TYPE_CHECKING:
    from ..projection import State


class TaskUsage(EventData):
    """A run's totals so far (``spend``); the fold adds what is new since the last report."""

    task: str
    agent: str
    attempt: int
    workflow_id: str
    pool: str | None = None
    spend: Spend
    models: list[str] = Field(default_factory=list)
    refs: ClassVar[dict[str, str]] = {"task": "tasks", "agent": "agents"}


class UsageLinesIgnored(EventData):
    task: str
    count: int
    refs: ClassVar[dict[str, str]] = {"task": "tasks"}


class BudgetSet(EventData):
    scope: Scope
    name: str
    budget: Budget | None
    warn_share: float = 0.8

    def conflict(self, state: State) -> tuple[str, str] | None:
        known = state.knows(self.name) if self.scope == "workflow" else self.name in state.pools
        return None if known else ("name", f"no {self.scope} {self.name!r}")


class BudgetRef(EventData):
    scope: Scope
    name: str

    def conflict(self, state: State) -> tuple[str, str] | None:
        if state.usage.budget_of(self.scope, self.name) is None:
            return ("name", f"{self.scope} {self.name!r} has no budget")
        return None


class PoolRateLimited(EventData):
    pool: str
    reset_at: float
    reason: str
    source: str
    task: str | None = None
    agents_after_reset: int = 1
    refs: ClassVar[dict[str, str]] = {"pool": "pools"}


class PoolHoldChanged(EventData):
    pool: str
    agents_allowed: int | None
    """None lifts the hold."""
    refs: ClassVar[dict[str, str]] = {"pool": "pools"}
