"""SeqTap's completions stay bounded by live work over a long run, and what the
partition check reads of them is the same as when every completion was kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.event_types import TASK_COMPLETED
from core.incidents import merge
from core.incidents.drills import start_drill
from core.incidents.merge import SeqTap
from core.runtimes.sim import SimRuntime
from core.session import memory_sim

AGENTS = 4
KEPT_MIN = 16


def _spec(wf_id: str, n: int) -> dict[str, Any]:
    tasks = [{"id": f"t{i}", "specialization": "x", "duration_s": 1, "cpu": 0.1, "memory_gb": 0.1} for i in range(n)]
    return {
        "id": wf_id,
        "priority": 50,
        "allocation": {"cpu_cores": 2, "memory_gb": 2, "agents": AGENTS},
        "phases": [{"name": "p1", "tasks": tasks}],
    }


async def test_a_long_run_of_archived_workflows_holds_a_bounded_number_of_completions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(merge, "COMPLETIONS_KEPT_MIN", KEPT_MIN)
    cfg = Config()
    cfg.capacity.agents = AGENTS
    clock = VirtualClock()
    eng = Engine(config=cfg, clock=clock)
    eng.attach_runtime(SimRuntime(clock, heartbeat_s=1e9, sample_s=1e9))
    eng.create_pool("p", ["x"], 0, AGENTS)
    for _ in range(AGENTS):
        eng.add_agent("p")
    tap = SeqTap(eng)
    held: list[int] = []
    for i in range(60):
        eng.create_workflow(_spec(f"w{i}", 20))
        eng.start_workflow(f"w{i}")
        await eng.advance(600)
        held.append(len(tap.completions))
    assert len(eng.state.finished) == 60 and eng.state.tasks == {}  # 1,200 tasks completed and archived
    assert max(held) <= 2 * max(KEPT_MIN, 20) + 1, held
    # A live task completed twice is kept, whatever is dropped around it.
    eng.create_workflow(_spec("live", 2))
    eng.start_workflow("live")
    await eng.advance(600)
    eng.create_workflow(_spec("keep", 2))  # live, so "keep/t0" can be completed twice
    for _ in range(2):
        eng.emit(TASK_COMPLETED, "agent", "keep", {"task": "keep/t0"})
    for i in range(60, 70):
        eng.create_workflow(_spec(f"w{i}", 20))
        eng.start_workflow(f"w{i}")
        await eng.advance(600)
    assert len(tap.completions["keep/t0"]) == 2
    assert len(tap.completions) <= 2 * max(KEPT_MIN, 20) + 1


async def _partition_drill(kept_min: int, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int, int]:
    monkeypatch.setattr(merge, "COMPLETIONS_KEPT_MIN", kept_min)
    eng = memory_sim(seed=0, duration_scale=0.4)  # short tasks: workflows finish and are archived during the drill
    try:
        drill = start_drill(eng, "network-partition", approve="auto", warmup_s=900.0)
        rep = await drill.run(3600.0)
        tap = drill.manager.tap
        inc = drill.incident()
        assert inc is not None
        found = {"report": rep, "merged": tap.merged, "incident": inc.model_dump(mode="json")}
        return json.dumps(found, sort_keys=True, default=str), len(tap.completions), len(drill.completions)
    finally:
        await eng.close()


async def test_dropping_finished_completions_leaves_a_partition_drill_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    everything, kept_all, completed = await _partition_drill(10**9, monkeypatch)
    dropping, kept, _ = await _partition_drill(0, monkeypatch)
    assert kept_all == completed and kept < completed, (kept_all, kept, completed)  # some were dropped
    assert '"validated": true' in everything
    assert dropping == everything
