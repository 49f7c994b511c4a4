"""A subject of a validation that ends before the validation concludes. The
resource-exhaustion criterion waits for its protected workflows to make progress; one
an operator cancelled (or that failed) can never progress, so the criterion waited its
whole window (two simulated hours) and failed the plan: 'protected workflow(s) ...
made no progress since detection'. A workflow that ended is no longer waited for; one
that can still run and does not progress still fails the plan."""

from __future__ import annotations

import pytest

from core.commands import run_command
from core.events import Event
from core.incident_models import Incident, IncidentEvidence
from core.incidents import decisions
from core.incidents.drills import Drill, start_drill
from core.incidents.validation import GATE_TIMEOUT_S, stalled_workflows
from core.models import WorkflowStatus
from core.session import memory_sim

from .conftest import drill_until, waits_for_operator

LIMIT_S = 4 * 3600.0
"""How much simulated time a wait on a drill may take."""


async def test_an_ended_workflow_is_not_stalled_a_paused_one_is() -> None:
    eng = memory_sim(seed=0)
    await eng.advance(300)
    running = sorted(w.id for w in eng.state.workflows.values() if w.status is WorkflowStatus.RUNNING)
    assert len(running) >= 3
    ended, paused, idle = running[:3]
    inc = Incident(
        id="INC-0001",
        scenario="resource-exhaustion",
        type="RESOURCE_EXHAUSTION",
        severity="high",
        detected_at=eng.clock.now(),
        evidence=IncidentEvidence(progress_at_detection={w: eng.state.workflow_progress(w) for w in running}),
    )
    assert stalled_workflows(eng, inc, [ended, paused, idle]) == [ended, paused, idle]  # none progressed yet
    eng.cancel_workflow(ended, actor="tester")
    eng.pause_workflow(paused, actor="tester")
    assert eng.state.status_of(ended) is WorkflowStatus.CANCELLED
    # main: the cancelled one stalled too
    assert stalled_workflows(eng, inc, [ended, paused, idle]) == [paused, idle]


async def _exhaustion_validating(seen: list[Event]) -> tuple[Drill, str]:
    """The resource-exhaustion drill, its plan approved and waiting on its criterion; a protected workflow."""
    eng = memory_sim(seed=0)
    eng.observe(seen.append)
    drill = start_drill(eng, "resource-exhaustion", approve="manual", warmup_s=300)
    await drill_until(drill, lambda: waits_for_operator(drill.plan()), "the plan waiting for approval", LIMIT_S)
    inc = drill.incident()
    plan = drill.plan()
    assert inc is not None and plan is not None
    protected = inc.evidence.model_dump()["protected"]
    assert protected
    decisions.approve(eng, plan.id, actor="tester")

    def validating() -> bool:
        p = drill.plan()
        return p is not None and any(st.gate == "utilisation_safe" and st.state == "executing" for st in p.steps)

    await drill_until(drill, validating, "the plan's step waiting on utilisation_safe", LIMIT_S)
    assert eng.state.status_of(protected[0]) is WorkflowStatus.RUNNING
    return drill, protected[0]


@pytest.mark.parametrize("action", ["cancel", "pause"])
async def test_a_protected_workflow_cancelled_is_not_waited_for_one_paused_still_fails(action: str) -> None:
    """Cancelled: the criterion concludes without waiting its window. Paused (it can
    still run, and does not): the criterion still fails the plan."""
    seen: list[Event] = []
    drill, protected = await _exhaustion_validating(seen)
    eng = drill.engine
    res = await run_command(eng, f"/coordination-hub {action} {protected}", actor="tester")
    assert res["status"] == "success", res
    at = eng.clock.now()
    inc = drill.incident()
    assert inc is not None
    await drill_until(
        drill, lambda: eng.state.incidents[inc.id].status in ("resolved", "failed"), "the incident ended", LIMIT_S
    )
    inc = eng.state.incidents[inc.id]
    assert inc.resolved_at is not None
    if action == "cancel":
        # main: failed 7,205 simulated s later, 'protected workflow(s) ... made no progress since detection'
        assert inc.status == "resolved", inc.outcome
        assert inc.resolved_at - at < GATE_TIMEOUT_S / 2
        assert "made no progress" not in (inc.outcome.reason or "")
    else:
        assert inc.status == "failed" and inc.resolved_at - at >= GATE_TIMEOUT_S / 2
        assert f"protected workflow(s) {protected} made no progress since detection" in (inc.outcome.reason or "")
