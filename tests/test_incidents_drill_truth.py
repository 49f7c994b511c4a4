"""Drills say only what happened: the fault is real and confirmed by a check that
does not trust the injection (verify, a replay, the process table), a drill whose
fault is not confirmed or whose incidents are left open is not validated, and a
fault never detected ends the drill ``not_detected`` (its slot free)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.config import Config
from core.incidents import decisions
from core.incidents.catalogue import IncidentKind
from core.incidents.detectors import Detector
from core.incidents.drills import Drill, start_drill
from core.incidents.integrity import consistency
from core.incidents.kinds import CATALOGUE
from core.incidents.manager import IncidentManager
from core.session import open_sim
from core.verify import verify_store

from .conftest import REPO, opsdeck_cmd
from .test_incidents_catalogue import TOY, TOY_KIND, StalledDetector


@pytest.mark.slow
async def test_the_simulated_data_integrity_fault_is_real_before_detection(tmp_path: Path) -> None:
    eng = await open_sim(tmp_path / "di.db", Config(), seed=0, demo=True)
    drill = start_drill(eng, "data-integrity", approve="auto")
    try:
        end = drill.inject_at + 600
        while not drill.injected:
            assert eng.clock.now() < end
            await drill.step()
        assert drill.incident() is None or drill.confirmed_at is not None
        cp = drill.fault["damaged_checkpoint"]
        await eng.flush()
        assert eng.store is not None
        rep = await verify_store(eng.store, replay_checkpoints=True)
        assert cp in rep.checkpoints_bad, "the damaged checkpoint fails verification"
        cons = await consistency(eng, trusted=set(rep.checkpoints_ok))
        assert cons["differs_in"], "the live projection differs from a replay of the log"
        assert drill.confirmed_at is not None and drill.confirmation["fails_verify"]
        rep_d = await drill.run()
        assert rep_d["validated"], rep_d["reason"]
        assert rep_d["fault_confirmed"] and rep_d["detection_latency_s"] is not None
    finally:
        await eng.close()


@pytest.mark.slow
def test_opsdeck_verify_fails_on_the_damaged_checkpoint_of_a_drill(tmp_path: Path) -> None:
    """The drill's database, stopped right after the fault: `opsdeck verify` (a
    separate process) reports the damaged checkpoint."""
    db = tmp_path / "di.db"
    p = subprocess.run(
        opsdeck_cmd("drill", "data-integrity", "--db", str(db), "--quiet", "--approve", "manual"),
        input="",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
    )
    assert p.returncode == 1  # stdin closed at the first decision: the plan never ran
    confirmed = [ln for ln in p.stdout.splitlines() if ln.startswith("DRILL_FAULT_CONFIRMED:")]
    assert confirmed, p.stdout[-2000:]
    cp = json.loads(confirmed[0].split(":", 3)[3])["checkpoint"]
    v = subprocess.run(
        opsdeck_cmd("verify", "--db", str(db), "--json"), capture_output=True, text=True, cwd=REPO, timeout=60
    )
    rep = json.loads(v.stdout)
    assert str(cp) in {str(k) for k in rep["checkpoints_bad"]}, rep


async def _toy(tmp_path: Path, kind: IncidentKind, budget_s: float = 3600.0) -> tuple[Drill, dict[str, Any]]:
    eng = await open_sim(tmp_path / "toy.db", Config(), seed=0, demo=True)
    mgr = IncidentManager(eng, approve_mode="auto", scenarios=[kind.name], catalogue=CATALOGUE.with_kind(kind))
    drill = start_drill(eng, kind.name, manager=mgr)
    return drill, await drill.run(budget_s)


async def test_a_fault_the_independent_check_does_not_confirm_is_not_validated(tmp_path: Path) -> None:
    async def never(drill: Drill) -> dict[str, Any]:
        return {"confirmed": False, "checked": "nothing matched"}

    kind = replace(TOY_KIND, drill=replace(TOY_KIND.drill, confirm=never))
    drill, rep = await _toy(tmp_path, kind)
    try:
        assert drill.incident() is not None and drill.incident().status == "resolved"  # type: ignore[union-attr]
        assert not rep["validated"] and not rep["fault_confirmed"]
        assert rep["detection_latency_s"] is None, "detection is not credited on an unconfirmed fault"
        assert "not confirmed" in rep["reason"]
    finally:
        await drill.engine.close()


async def test_a_fault_never_detected_ends_the_drill_not_detected(tmp_path: Path) -> None:
    class Blind(Detector):
        scenario = TOY

    kind = replace(TOY_KIND, detector=Blind, drill=replace(TOY_KIND.drill, detect_within_s=600.0))
    drill, rep = await _toy(tmp_path, kind, budget_s=4 * 3600.0)
    try:
        assert drill.done, "the slot is free"
        assert rep["status"] == "not_detected" and not rep["validated"]
        assert drill.engine.clock.now() < (drill.injected_at or 0) + 3600.0, "it ended at its detection budget"
    finally:
        await drill.engine.close()


@pytest.mark.slow
async def test_a_drill_with_another_incident_left_open_is_not_validated(tmp_path: Path) -> None:
    eng = await open_sim(tmp_path / "toy.db", Config(), seed=0, demo=True)

    class Twice(StalledDetector):
        scenario = "stalled-twice"

    other = replace(TOY_KIND, name="stalled-twice", detector=Twice)
    cat = CATALOGUE.with_kind(TOY_KIND).with_kind(other)
    mgr = IncidentManager(eng, approve_mode="manual", scenarios=[TOY, "stalled-twice"], catalogue=cat)
    drill = start_drill(eng, TOY, manager=mgr)
    try:
        # Both kinds detect the paused workflow; only the drill's own plan is approved.
        end = eng.clock.now() + 3600.0
        while len(eng.state.incidents) < 2:
            assert eng.clock.now() < end
            await drill.step()
        own = drill.plan()
        assert own is not None
        decisions.approve(eng, own.id, actor="tester")
        rep = await drill.run(1800.0)
        assert drill.incident().status == "resolved"  # type: ignore[union-attr]
        assert not rep["validated"]
        assert [i["scenario"] for i in rep["unresolved_incidents"]] == ["stalled-twice"]
        assert "not resolved" in rep["reason"]
    finally:
        await eng.close()


async def test_a_restarted_executor_rebuilds_what_the_plan_did_from_the_log(tmp_path: Path) -> None:
    """Credit does not depend on the executor's memory: a fresh one (a restart
    mid-plan) finds the plan's acting steps and the events its actor caused."""
    from core.incidents.executor import Executor

    eng = await open_sim(tmp_path / "ac.db", Config(), seed=0, demo=True)
    drill = start_drill(eng, "agent-cascade", approve="auto")
    try:
        rep = await drill.run()
        assert rep["validated"], rep["reason"]
        plan = drill.plan()
        assert plan is not None
        live = drill.manager.executor.records[plan.id]
        fresh = await Executor(eng, CATALOGUE, drill.manager.executor.services).record(plan)
        assert fresh.restored and [s.index for s in fresh.acting()] == [s.index for s in live.acting()]
        allocated = sorted(e.data["agent"] for e in fresh.caused("AGENT_ALLOCATED"))
        assert allocated and allocated == sorted(e.data["agent"] for e in live.caused("AGENT_ALLOCATED"))
        assert fresh.first_acting_at() == live.first_acting_at()
    finally:
        await eng.close()
