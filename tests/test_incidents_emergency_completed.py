"""The three exhaustion kinds (resources, usage budgets, rate limits) say a credited
recovery with one event (``resource_exhaustion.emergency_response_completed``): the
seed's EMERGENCY_RESPONSE_COMPLETED fields, the recovery time in seconds and its basis,
the kind's own figures beside them; the seed's fields are never a figure's."""

from __future__ import annotations

from typing import Any

from core.incident_models import Incident, Plan
from core.incidents.kinds.resource_exhaustion import emergency_response_completed
from core.incidents.validation import GateCtx


async def test_the_completion_carries_the_seed_fields_and_the_kinds_figures() -> None:
    from core.session import memory_sim

    eng = memory_sim(seed=0, demo=False)
    seen: list[Any] = []
    eng.subscribe(lambda ev: seen.append(ev) if ev.type == "EMERGENCY_RESPONSE_COMPLETED" else None)
    inc = Incident(id="INC-7", scenario="rate-limit", type="RESOURCE_EXHAUSTION", severity="high", detected_at=0.0)
    plan = Plan(id="PLAN-9", incident_id=inc.id, scenario="rate-limit", title="t", steps=[])
    ctx = GateCtx(eng, plan, inc, started_at=0.0)
    emergency_response_completed(
        ctx, 272.6, 3, "from the first acting step", {"rate_limit": {"pool": "p"}, "system_health": "unstable"}
    )
    assert len(seen) == 1
    ev = seen[0]
    assert (ev.component, ev.scope, ev.actor) == ("system", "validation", "plan:PLAN-9")
    assert ev.data == {
        "recovery_time": "5m",  # the seed's words: whole minutes
        "resource_stabilization": "achieved",
        "workflows_recovered": 3,
        "system_health": "stable",
        "incident_id": "INC-7",
        "recovery_time_s": 272.6,
        "recovery_time_basis": "from the first acting step",
        "rate_limit": {"pool": "p"},
    }
    await eng.close()
