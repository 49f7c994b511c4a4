"""An agent cascade's plan is credited only with interrupted work its own agents ran.
When surviving agents take up every interrupted task by ordinary rescheduling before
the operator approves the plan, the plan's replacements still restore the pools'
strength, but the incident is recovered without the plan (it was 'validated' on the
pool shortfall alone, '0 of 3 interrupted task(s) run on them'). A plan approved at
once, whose replacements run the interrupted work, is validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Config
from core.events import Event
from core.incidents import decisions
from core.incidents.drills import Drill, start_drill
from core.models import TaskStatus
from core.session import open_sim

from .conftest import drill_until, waits_for_operator

pytestmark = pytest.mark.slow  # each test runs a drill of simulated hours


def _interrupted(drill: Drill) -> dict[str, float]:
    inc = drill.incident()
    assert inc is not None
    return dict(inc.evidence.model_dump()["progress_at_failure"])


async def _taken_up_by_survivors(drill: Drill, keys: list[str]) -> bool:
    """Every interrupted task runs again on an agent that did not fail, or is done."""
    failed = set(drill.fault["fail_agents"])
    tasks = {t.id: t for t in await drill.engine.tasks_with_archive(drill.injected_at or 0.0)}
    return all(
        k in tasks
        and (
            tasks[k].status is TaskStatus.COMPLETED
            or (tasks[k].status is TaskStatus.RUNNING and tasks[k].agent not in failed)
        )
        for k in keys
    )


async def _run(tmp_path: Path, wait_for_survivors: bool) -> tuple[Drill, list[Event]]:
    eng = await open_sim(tmp_path / "ac.db", Config(), seed=0, demo=True)
    drill = start_drill(eng, "agent-cascade", approve="manual")
    seen: list[Event] = []
    eng.observe(seen.append)
    await drill_until(drill, lambda: waits_for_operator(drill.plan()), "the plan waiting for approval", 4 * 3600)
    keys = sorted(_interrupted(drill))
    assert len(keys) >= 2
    if wait_for_survivors:
        end = eng.clock.now() + 4 * 3600
        while not await _taken_up_by_survivors(drill, keys):
            assert eng.clock.now() < end, "survivors never took up the interrupted tasks"
            await drill.step()
    plan = drill.plan()
    assert plan is not None
    decisions.approve(eng, plan.id, actor="tester")
    inc = drill.incident()
    assert inc is not None
    await drill_until(
        drill, lambda: eng.state.incidents[inc.id].status in ("resolved", "failed"), "the incident ended", 4 * 3600
    )
    return drill, seen


async def test_work_rescheduled_onto_survivors_before_the_plan_acts_is_recovered_without_the_plan(
    tmp_path: Path,
) -> None:
    drill, seen = await _run(tmp_path, wait_for_survivors=True)
    try:
        inc = drill.incident()
        assert inc is not None
        assert inc.status == "resolved" and inc.outcome.result == "recovered_without_plan", inc.outcome
        assert inc.outcome.validated is False and inc.outcome.recovery_time_s is None
        credit = inc.outcome.validations["cascade_recovered"]["credit"]
        assert credit["credited"] is False and credit["on_plan_agents"] == [] and credit["plan_agents"]
        assert not [e for e in seen if e.type == "RECOVERY_VALIDATION_COMPLETED"]
    finally:
        await drill.engine.close()


async def test_a_plan_whose_agents_run_the_interrupted_work_is_validated(tmp_path: Path) -> None:
    drill, seen = await _run(tmp_path, wait_for_survivors=False)
    try:
        inc = drill.incident()
        assert inc is not None
        assert inc.status == "resolved" and inc.outcome.result == "validated", inc.outcome
        credit = inc.outcome.validations["cascade_recovered"]["credit"]
        assert credit["credited"] is True and credit["on_plan_agents"]
        assert set(credit["on_plan_agents"]) <= set(_interrupted(drill))
        assert [e for e in seen if e.type == "RECOVERY_VALIDATION_COMPLETED"]
    finally:
        await drill.engine.close()
