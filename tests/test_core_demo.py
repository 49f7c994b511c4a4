"""The demo fleet: the seed's workflows, and the console demo that keeps running."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.session import open_sim


async def test_demo_has_the_seed_workflows_and_dependency(db_path: Path) -> None:
    eng = await open_sim(db_path, demo=True)
    wfs = eng.state.workflows
    assert {
        "workflow_001",
        "workflow_002",
        "workflow_003",
        "impl_auth_001",
        "debug_perf_002",
        "migration_workflow_001",
    } <= set(eng.state.all_workflow_ids())
    assert wfs["debug_perf_002"].depends_on == ["impl_auth_001"]
    assert [wfs[w].band.value for w in ("workflow_001", "workflow_002", "workflow_003")] == ["CRITICAL", "HIGH", "LOW"]
    assert len(eng.state.pools) == 3
    await eng.close()


@pytest.mark.slow
async def test_recurring_demo_resubmits_completed_workflows_and_survives_restart(db_path: Path) -> None:
    eng = await open_sim(db_path, demo=True, recurring=True)
    await eng.advance(4 * 3600)
    runs = sorted(w for w in eng.state.all_workflow_ids() if "_r" in w)
    assert "workflow_001_r2" in runs and "debug_perf_002_r2" in runs
    assert eng.state.any_workflow("debug_perf_002_r2").depends_on == ["impl_auth_001_r2"]
    n_before = len(eng.state.all_workflow_ids())
    await eng.close()
    again = await open_sim(db_path)  # no flag: the database remembers it is a recurring demo
    await again.advance(4 * 3600)
    assert len(again.state.all_workflow_ids()) > n_before
    await again.close()


async def test_plain_demo_does_not_recur(db_path: Path) -> None:
    eng = await open_sim(db_path, demo=True)
    await eng.advance(4 * 3600)
    assert all("_r" not in w for w in eng.state.all_workflow_ids())
    await eng.close()
