"""A rate limit whose held pool is left with no work: every workflow waiting for it is
cancelled during the plan. The criterion waits for a task of the pool to complete after
the reset; with no work left none can, and it waited its whole window (two simulated
hours) and failed the plan. It now ends at once, not judged, and says why; workflows
still waiting that do not progress still fail it."""

from __future__ import annotations

from pathlib import Path

from core.commands import run_command
from core.config import Config
from core.engine import Engine
from core.event_types import EMERGENCY_RESPONSE_COMPLETED
from core.events import Event
from core.incident_models import Incident
from core.incidents import decisions
from core.incidents.drills import Drill, start_drill
from core.incidents.kinds.rate_limit import RateLimitEvidence, waiting_workflows
from core.session import open_sim

from .conftest import drill_until, waits_for_operator
from .test_incidents_cascade_finished import _to_end

LIMIT_S = 4 * 3600.0
"""How much simulated time a wait on the drill may take."""


async def _approved(tmp_path: Path) -> tuple[Drill, list[Event], Incident]:
    """The demo's rate limit, its plan approved while the pool is held."""
    eng = await open_sim(tmp_path / "rl.db", Config(), seed=0, demo=True)
    drill = start_drill(eng, "rate-limit", approve="manual")
    seen: list[Event] = []
    eng.observe(seen.append)
    await drill_until(drill, lambda: waits_for_operator(drill.plan()), "the plan waiting for approval", LIMIT_S)
    plan, inc = drill.plan(), drill.incident()
    assert plan is not None and inc is not None
    decisions.approve(eng, plan.id, actor="tester")
    return drill, seen, inc


async def _to_each_waiting(eng: Engine, inc: Incident, verb: str) -> tuple[str, list[str]]:
    """Send ``/coordination-hub VERB`` to each workflow with work for the held pool: the
    pool, and those workflows."""
    pool = inc.evidence.of(RateLimitEvidence).pool
    waiting = waiting_workflows(eng, pool, pending=True)
    assert waiting
    for w in waiting:
        res = await run_command(eng, f"/coordination-hub {verb} {w}", actor="tester")
        assert res["status"] == "success", res
    return pool, waiting


async def test_a_pool_left_with_no_work_is_not_judged_at_once(tmp_path: Path) -> None:
    drill, seen, inc = await _approved(tmp_path)
    eng = drill.engine
    try:
        pool, waiting = await _to_each_waiting(eng, inc, "cancel")
        assert not waiting_workflows(eng, pool, pending=True)
        cancelled_at = eng.clock.now()
        ended = await _to_end(drill)
        # main: failed 7,270 simulated s later ('did not progress within 7200s')
        assert ended.status == "resolved", ended.outcome
        assert ended.outcome.validated is False and ended.outcome.result == "recovered_without_plan", ended.outcome
        assert (ended.resolved_at or 0.0) - cancelled_at < 1800, "not held to the gate's window"
        assert ended.outcome.validations is not None
        credit = ended.outcome.validations["pool_progressing"]["credit"]
        assert credit["credited"] is False and credit["basis"].startswith("not judged:"), credit
        assert f"no workflow has work left for pool {pool}" in credit["basis"], credit
        for w in waiting:
            assert w in credit["basis"], credit
        assert not [e for e in seen if e.type == EMERGENCY_RESPONSE_COMPLETED]
    finally:
        await eng.close()


async def test_workflows_still_waiting_and_not_progressing_still_fail(tmp_path: Path) -> None:
    """Must not be excused: the pool's workflows paused (work left, none progressing)."""
    drill, _seen, inc = await _approved(tmp_path)
    eng = drill.engine
    try:
        await _to_each_waiting(eng, inc, "pause")
        ended = await _to_end(drill)
        assert ended.status == "failed", ended.outcome
        assert "did not progress" in str(ended.outcome), ended.outcome
        assert "not judged" not in str(ended.outcome), ended.outcome
    finally:
        await eng.close()
