"""A partition that heals before the operator approves its plan: the cut-off agents
reconnect and finish the work they held, and nothing is left for the plan to move. The
plan's gate waited for that work to be 'moved or kept' until its two-hour timeout (the
plan shown executing at step 4 all along), then failed it. It now goes on to the credit:
the plan moved nothing, so the incident is recovered without the plan, at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Config
from core.incidents import decisions
from core.incidents.drills import start_drill
from core.models import AgentStatus
from core.session import open_sim

from .conftest import drill_until, waits_for_operator


@pytest.mark.slow
async def test_a_plan_approved_after_the_heal_is_recovered_without_the_plan_not_held_to_timeout(
    tmp_path: Path,
) -> None:
    eng = await open_sim(tmp_path / "np.db", Config(), seed=0, demo=True)
    drill = start_drill(eng, "network-partition", approve="manual")
    try:
        await drill_until(drill, lambda: waits_for_operator(drill.plan()), "the plan waiting for approval", 4 * 3600)
        plan = drill.plan()
        inc = drill.incident()
        assert plan is not None and inc is not None
        cut = list(drill.fault["partition"])
        healed_by = (drill.injected_at or 0.0) + drill.fault["heal_after_s"]
        await drill_until(
            drill,
            lambda: (
                eng.clock.now() > healed_by
                and all(eng.state.agents[a].status is not AgentStatus.UNREACHABLE for a in cut)
            ),
            "the partition healed",
            2 * 3600,
        )
        approved_at = eng.clock.now()
        decisions.approve(eng, plan.id, actor="tester")
        await drill_until(
            drill, lambda: eng.state.incidents[inc.id].status in ("resolved", "failed"), "the incident ended", 3 * 3600
        )
        ended = eng.state.incidents[inc.id]
        assert ended.status == "resolved" and ended.outcome.result == "recovered_without_plan", ended.outcome
        assert (ended.resolved_at or 0.0) - approved_at < 3600, "not held to the gate's two-hour timeout"
    finally:
        await eng.close()
