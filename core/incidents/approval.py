"""The approval gate: which plan steps run on their own and which wait.

The policy comes from ``config.approval``: steps whose category is listed under
``auto`` (by default analysis, checkpoint, monitoring) run without an operator;
everything else, and by default every destructive step, waits for an approval.
A step's category is the command registry's ``kind`` for its operation, so the
gate cannot be fooled by a step's title.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..config import Approval
from ..incident_models import Plan, PlanState

if TYPE_CHECKING:
    from ..commands.registry import Registry

Decision = Literal["auto", "manual"]


def command_kind(command: str, registry: Registry | None = None) -> str:
    """The registry's kind of a slash command (``destructive`` if unknown: safest), in
    ``registry`` (by default the language's own operations)."""
    from ..commands import LANGUAGE, resolve_spec  # the command language owns the kinds

    spec = resolve_spec(command, registry or LANGUAGE)
    if spec is None:
        return "destructive"
    return str(spec.kind)


def decide(category: str, policy: Approval) -> Decision:
    """Auto only when the policy lists the category as auto and not as manual."""
    if category in policy.manual:
        return "manual"
    if category in policy.auto:
        return "auto"
    return "manual"


def awaits_approval(plan: Plan) -> bool:
    """Whether ``plan`` waits for an operator's approval: proposed, with a manual step still
    to run (its auto steps run meanwhile; a proposed plan of auto steps only runs on its own)."""
    return plan.state is PlanState.PROPOSED and any(
        st.approval == "manual" and st.state is PlanState.PROPOSED for st in plan.steps
    )


def holding_plans(plans: dict[str, Plan], policy: Approval) -> list[str]:
    """The plans that hold the simulated clock under ``policy.hold_clock``: those that await
    an approval (empty when the policy does not hold the clock)."""
    if not policy.hold_clock:
        return []
    return sorted(pid for pid, p in plans.items() if awaits_approval(p))
