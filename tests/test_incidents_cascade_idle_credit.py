"""An agent cascade whose failed agents held no task: the criterion is the pools'
strength alone, and the plan's replacement agents restored it. The credit rule that
withholds credit when survivors ran all interrupted work (b9f56d9) must not read 'none
of 0 interrupted tasks ran on the plan's agents: survivors took them up' as a reason."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from core.event_types import AGENT_ALLOCATED
from core.incidents.kinds.cascade_outcome import CascadeEvidence, replacement_credit
from core.incidents.record import PlanRecord, StepRun
from core.models import AgentStatus


def _ctx(interrupted: dict[str, float], ran_on: dict[str, str]) -> Any:
    rec = PlanRecord("PLAN-0001")
    rec.steps[0] = StepRun(0, "/x", "destructive", 0.0, {}, ok=True)
    rec.events.append(SimpleNamespace(type=AGENT_ALLOCATED, data={"agent": "agent_009"}))  # type: ignore[arg-type]
    agents = {
        "agent_001": SimpleNamespace(id="agent_001", specializations=["python"], status=AgentStatus.BUSY),
        "agent_009": SimpleNamespace(id="agent_009", specializations=["python"], status=AgentStatus.IDLE),
    }
    ev = CascadeEvidence(progress_at_failure=interrupted, specialization_live_before={"python": 2})
    return SimpleNamespace(
        record=rec,
        engine=SimpleNamespace(state=SimpleNamespace(agents=agents)),
        incident=SimpleNamespace(evidence=SimpleNamespace(of=lambda _cls: ev)),
        memo={"ran_on": ran_on},
    )


def test_replacements_are_credited_when_the_failed_agents_held_no_task() -> None:
    credit = replacement_credit(_ctx({}, {}), [])
    assert credit.credited, credit.basis  # main: not credited
    assert "other agents took them up" not in credit.basis
    assert credit.basis == "without the plan's 1 agent(s) python would be short; the failed agents held no task"


def test_work_all_on_survivors_is_still_not_credited() -> None:
    credit = replacement_credit(_ctx({"w/t1": 0.5}, {"w/t1": "agent_001"}), ["w/t1"])
    assert not credit.credited and "other agents took them up" in credit.basis
    on_plan = replacement_credit(_ctx({"w/t1": 0.5}, {"w/t1": "agent_009"}), ["w/t1"])
    assert on_plan.credited and "1 of 1 interrupted task(s) ran on them" in on_plan.basis


def test_tasks_not_judged_count_neither_way() -> None:
    """Tasks whose workflow ended before validation: the plan is credited on the rest
    and the basis names them; with none left to judge it is not credited."""
    why = {"w2/t1": "workflow w2 cancelled before validation"}
    some = replacement_credit(_ctx({"w/t1": 0.5, "w2/t1": 0.5}, {"w/t1": "agent_009"}), ["w/t1"], why)
    assert some.credited and some.figures["not_judged"] == why
    assert some.basis.endswith(
        "1 of 1 interrupted task(s) ran on them; not judged: " + why["w2/t1"] + " (1 interrupted task(s))"
    )
    none = replacement_credit(_ctx({"w2/t1": 0.5}, {}), [], why)
    assert not none.credited and none.basis == "not judged: " + why["w2/t1"] + " (1 interrupted task(s))"
    assert "held no task" not in none.basis
