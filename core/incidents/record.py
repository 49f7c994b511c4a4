"""What a plan's steps did: the evidence a criterion credits the plan with.

A criterion that holds says the fault is gone, not that the plan removed it: a load
spike expires, a partition heals, an autoscaler adds agents. The executor keeps, per
plan, a :class:`PlanRecord` of every step it ran (its command, the registry's kind
of it, when it started, its full response) and every event the plan's actor caused.
Each kind's gate reads it to decide whether the recovery is the plan's doing
(``Credit``) and to time the recovery from the first acting step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..events import Event
    from ..incident_models import Plan

ACTING = frozenset({"destructive", "lifecycle"})
"""The registry kinds of commands that change the fleet (analyses, checkpoints and
monitoring do not): a plan without such a step cannot have caused a recovery."""


@dataclass
class StepRun:
    index: int
    command: str
    category: str
    started_at: float
    result: dict[str, Any] = field(default_factory=dict)
    """The command's full ``result`` (the plan keeps a bounded summary)."""
    ok: bool = False
    events: list[Event] = field(default_factory=list)
    """Events the plan's actor caused while this step's command ran."""

    @property
    def acting(self) -> bool:
        return self.category in ACTING


@dataclass
class PlanRecord:
    plan_id: str
    steps: dict[int, StepRun] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    """Every event with the plan's actor since the plan began (steps and what they
    scheduled, e.g. a staged resumption's stages)."""
    restored: bool = False
    """Rebuilt from the plan in the projection after a restart: step results are
    the plan's summaries and events before the restart are not in ``events``."""

    def acting(self) -> list[StepRun]:
        """Acting steps whose command succeeded, in order."""
        return [s for _, s in sorted(self.steps.items()) if s.acting and s.ok]

    def first_acting_at(self) -> float | None:
        runs = self.acting()
        return runs[0].started_at if runs else None

    def caused(self, *types: str) -> list[Event]:
        """Events of these types the plan's actor caused."""
        return [e for e in self.events if e.type in types]


@dataclass
class Credit:
    """Whether the criterion's holding is the plan's doing, and on what evidence."""

    credited: bool
    basis: str
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"credited": self.credited, "basis": self.basis, **self.figures}


def no_acting_step(record: PlanRecord) -> Credit | None:
    """The common first test: a plan none of whose acting steps ran is not credited."""
    if not record.acting():
        return Credit(False, "no acting step of the plan ran (analyses and monitoring change nothing)")
    return None


def rebuild(plan: Plan) -> PlanRecord:
    """A record from the plan in the projection (after a restart)."""
    rec = PlanRecord(plan.id, restored=True)
    for st in plan.steps:
        if st.started_at is None:
            continue
        summary = st.result.get("result")
        rec.steps[st.index] = StepRun(
            st.index,
            st.command,
            st.category,
            float(st.started_at),
            summary if isinstance(summary, dict) else {},
            ok=st.state in ("completed", "executing"),
        )
    return rec
