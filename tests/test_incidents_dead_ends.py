"""No dead ends: an abort stops everything its plan started (a staged resumption
included); an incident left without a plan can be re-planned or resolved with a
note, both recorded with who did it."""

from __future__ import annotations

import pytest

from core.commands import run_command
from core.engine import EngineError
from core.incidents import decisions
from core.incidents.drills import start_drill
from core.incidents.language import incident_services
from core.models import WorkflowStatus
from core.session import memory_sim

from .conftest import drill_until, waits_for_operator

LIMIT_S = 6000.0
"""How much simulated time a wait on a drill may take."""


async def test_abort_stops_a_staged_resumption_the_plan_started() -> None:
    eng = memory_sim(seed=0)
    drill = start_drill(eng, "resource-exhaustion", approve="manual", warmup_s=300)
    await drill_until(
        drill, lambda: waits_for_operator(drill.plan()), "the plan's next step waiting for manual approval", LIMIT_S
    )
    pid = drill.plan().id  # type: ignore[union-attr]
    decisions.approve(eng, pid, actor="bob")
    await drill_until(
        drill,
        lambda: any(r.status == "active" and r.applied for r in eng.state.resumptions.values()),
        "an applied resumption active",
        LIMIT_S,
    )
    rid = next(r for r, v in eng.state.resumptions.items() if v.status == "active")
    applied = len(eng.state.resumptions[rid].applied)
    await decisions.abort(eng, pid, actor="bob", reason="K")
    assert eng.state.resumptions[rid].status == "aborted"
    paused = {w.id for w in eng.state.workflows.values() if w.status is WorkflowStatus.PAUSED}
    limits = {w.id: w.stage_limit for w in eng.state.workflows.values()}
    await drill.step(3600)  # an hour later: no stage was applied after the abort
    assert len(eng.state.resumptions[rid].applied) == applied
    assert {w.id for w in eng.state.workflows.values() if w.status is WorkflowStatus.PAUSED} <= paused
    # No stage limit changed (finished workflows leave the live state meanwhile).
    assert {w.id: w.stage_limit for w in eng.state.workflows.values()} == {
        k: v for k, v in limits.items() if k in eng.state.workflows
    }
    assert drill.incident().status == "open", "no plan in force: the incident waits for a re-plan or a resolve"  # type: ignore[union-attr]


async def test_rejected_incident_can_be_replanned_then_resolved_by_hand() -> None:
    eng = memory_sim(seed=0)
    drill = start_drill(eng, "agent-cascade", approve="manual", warmup_s=300)
    await drill_until(
        drill, lambda: waits_for_operator(drill.plan()), "the plan's next step waiting for manual approval", LIMIT_S
    )
    inc_id = drill.incident().id  # type: ignore[union-attr]
    first = drill.plan().id  # type: ignore[union-attr]
    res = await run_command(incident_services(eng, drill.manager), f"/incident reject {first}", actor="alice")
    assert res["status"] == "success"
    assert eng.state.incidents[inc_id].status == "open"
    res = await run_command(incident_services(eng, drill.manager), f"/incident replan {inc_id}", actor="alice")
    assert res["status"] == "success", res
    second = res["result"]["plan_id"]
    assert second != first and eng.state.plans[second].state == "proposed"
    assert eng.state.incidents[inc_id].plans == [first, second]
    assert eng.state.incidents[inc_id].status == "recovering"
    # While a plan is in force, the incident cannot be closed by hand or re-planned.
    assert (
        await run_command(
            incident_services(eng, drill.manager), f"/incident resolve {inc_id} --note=done", actor="alice"
        )
    )["error"]["code"] == "INVALID_STATE"
    assert (await run_command(incident_services(eng, drill.manager), f"/incident replan {inc_id}", actor="alice"))[
        "error"
    ]["code"] == "INVALID_STATE"
    await run_command(incident_services(eng, drill.manager), f"/incident reject {second}", actor="alice")
    h = eng.state.state_hash()
    assert (await run_command(incident_services(eng, drill.manager), f"/incident resolve {inc_id}", actor="alice"))[
        "error"
    ]["code"] == "NOTE_REQUIRED"
    assert eng.state.state_hash() == h, "a refused resolve changes nothing"
    res = await run_command(
        incident_services(eng), f'/incident resolve {inc_id} \'{{"note": "agents replaced by hand"}}\'', actor="alice"
    )
    assert res["status"] == "success", res
    inc = eng.state.incidents[inc_id]
    assert inc.status == "resolved" and inc.outcome.validated is False and inc.outcome.resolved_by == "alice"
    assert [n.action for n in inc.notes] == ["replan", "resolve"] and inc.notes[-1].by == "alice"
    with pytest.raises(EngineError):
        decisions.resolve(eng, inc_id, "again", actor="alice")
