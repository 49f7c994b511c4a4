"""A performance degradation whose workflows all end during validation. The criterion
measures the pace of tasks run after the plan; with no work left none can run, so it
waited its whole window (two simulated hours) and failed the plan ('too few
uninterrupted tasks to measure'). It now ends at once, not judged, and says why; work
left that does not run (paused) still fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.commands import run_command
from core.config import Config
from core.event_types import OPTIMIZATION_COMPLETED
from core.events import Event
from core.incidents import decisions
from core.incidents.drills import Drill, start_drill
from core.incidents.validation import GATE_TIMEOUT_S
from core.models import WorkflowStatus
from core.session import open_sim

from .conftest import drill_until, waits_for_operator
from .test_incidents_cascade_finished import _to_end

LIMIT_S = 4 * 3600.0
"""How much simulated time a wait on the drill may take."""


async def _validating(tmp_path: Path, seen: list[Event]) -> Drill:
    """The demo's degradation, its plan approved and waiting on its criterion."""
    eng = await open_sim(tmp_path / "pd.db", Config(), seed=0, demo=True)
    drill = start_drill(eng, "performance-degradation", approve="manual")
    eng.observe(seen.append)
    await drill_until(drill, lambda: waits_for_operator(drill.plan()), "the plan waiting for approval", LIMIT_S)
    plan = drill.plan()
    assert plan is not None
    decisions.approve(eng, plan.id, actor="tester")

    def validating() -> bool:
        p = drill.plan()
        return p is not None and any(st.gate == "performance_recovered" and st.state == "executing" for st in p.steps)

    await drill_until(drill, validating, "the plan's step validating", LIMIT_S)
    return drill


@pytest.mark.parametrize("action", ["cancel", "pause"])
async def test_no_work_left_is_not_judged_work_paused_still_fails(tmp_path: Path, action: str) -> None:
    seen: list[Event] = []
    drill = await _validating(tmp_path, seen)
    eng = drill.engine
    try:
        live = sorted(eng.state.workflows)
        assert live
        for w in live:
            # A pending workflow cannot be paused: it is cancelled, the running ones paused.
            act = action if eng.state.workflows[w].status is WorkflowStatus.RUNNING else "cancel"
            res = await run_command(eng, f"/coordination-hub {act} {w}", actor="tester")
            assert res["status"] == "success", res
        at = eng.clock.now()
        inc = await _to_end(drill)
        assert inc.resolved_at is not None
        if action == "cancel":
            # main: failed 2 simulated hours later, 'too few uninterrupted tasks to measure'
            assert inc.status == "resolved", inc.outcome
            assert inc.outcome.result == "recovered_without_plan" and inc.outcome.validated is False
            assert inc.resolved_at - at < GATE_TIMEOUT_S / 2
            assert inc.outcome.validations is not None
            credit = inc.outcome.validations["performance_recovered"]["credit"]
            assert credit["credited"] is False and credit["basis"].startswith("not judged: no work left"), credit
            for w in live:
                assert w in credit["basis"], credit  # each named as ended
            assert not [e for e in seen if e.type == OPTIMIZATION_COMPLETED]
        else:
            assert inc.status == "failed" and inc.resolved_at - at >= GATE_TIMEOUT_S / 2, inc.outcome
            assert "not judged" not in str(inc.outcome)
    finally:
        await eng.close()
