"""Plans: parameters computed from the state, the approval gate, decisions (approve,
reject, edit, abort with rollback), each recorded with who made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config import Approval, Config
from core.engine import Engine, EngineError
from core.event_types import EVENTS
from core.events import canonical_json
from core.incidents import decisions
from core.incidents.drills import Drill, start_drill
from core.incidents.kinds.data_integrity import IntegrityEvidence
from core.incidents.language import incident_services
from core.incidents.reallocation import reallocation
from core.models import Band, WorkflowStatus
from core.projection import State
from core.session import memory_sim, open_sim

from .conftest import drill_until


def fleet_hash(eng: Engine) -> str:
    snap = eng.state.snapshot()
    return canonical_json({k: snap[k] for k in ("pools", "agents", "workflows", "tasks", "settings")})


def events_of(eng: Engine, into: list[Any], *types: str) -> None:
    eng.subscribe(lambda ev: into.append(ev) if ev.type in types else None)


LIMIT_S = 4000.0
"""How much simulated time a wait on a drill may take."""


def plan_waiting(drill: Drill) -> bool:
    p = drill.plan()
    return (
        p is not None
        and any(st.state == "proposed" and st.approval == "manual" for st in p.steps)
        and all(st.state in ("completed", "proposed") for st in p.steps)
        and next(st for st in p.steps if st.state != "completed").approval == "manual"
    )


async def exhausted_engine() -> Engine:
    eng = memory_sim(seed=0)
    await eng.advance(900)
    eng.runtime.load_spike(1.5, 5.5, 1800)  # type: ignore[union-attr]
    await eng.advance(30)
    return eng


async def test_plan_parameters_follow_the_priorities() -> None:
    eng = await exhausted_engine()
    plan = reallocation(eng)
    assert [p["workflow"] for p in plan["pause"]] == ["workflow_003"]
    assert plan["guarantee"]["workflow"] == "workflow_001"
    assert "workflow_002" in [r["workflow"] for r in plan["reduce"]]
    # Swap the bands of workflow_002 and workflow_003: now workflow_002 gives way.
    w2, w3 = eng.state.workflows["workflow_002"], eng.state.workflows["workflow_003"]
    w2.priority, w2.band, w3.priority, w3.band = 25, Band.LOW, 72, Band.HIGH
    plan2 = reallocation(eng)
    assert [p["workflow"] for p in plan2["pause"]] == ["workflow_002"]
    assert "workflow_003" not in [p["workflow"] for p in plan2["pause"]]
    # The plan's command carries the computed parameters.
    from core.incidents.kinds.resource_exhaustion import ResourceExhaustionDetector, resource_exhaustion

    det = ResourceExhaustionDetector(eng)
    finding = None
    for _ in range(eng.config.thresholds.exhaustion_samples):
        finding = det.check(eng.clock.now())
    assert finding is not None
    draft = resource_exhaustion(eng, finding)
    realloc = next(st.command for st in draft.steps if "emergency-reallocation" in st.command)
    # Pausing frees CPU only (a SIGSTOPped process keeps its memory): with memory
    # exhausted the low band is requeued instead.
    verb = "requeue" if "memory" in finding.evidence["resources_over"] else "pause"
    assert f'"{verb}_low_priority_workflows", "affected": ["workflow_002"]' in realloc
    # What is freed is what the paused workflow holds now, not a canned figure.
    held = eng.state.in_use("workflow_002")
    assert plan2["pause"][0]["cpu"] == round(held.cpu_cores, 2)


async def test_approval_policy_from_config() -> None:
    eng = memory_sim(seed=0)
    drill = start_drill(eng, "resource-exhaustion", approve="manual", warmup_s=300)
    await drill_until(drill, lambda: drill.plan() is not None, "a plan for the incident", LIMIT_S)
    by_kind = {st.command.split()[1]: (st.category, st.approval) for st in drill.plan().steps}  # type: ignore[union-attr]
    assert by_kind["emergency-analysis"] == ("analysis", "auto")
    assert by_kind["emergency-reallocation"] == ("destructive", "manual")
    assert by_kind["post-emergency-monitoring"] == ("monitoring", "auto")
    cfg = Config(
        approval=Approval(auto=["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"], manual=[])
    )
    eng2 = memory_sim(config=cfg, seed=0)
    drill2 = start_drill(eng2, "resource-exhaustion", approve="manual", warmup_s=300)
    await drill_until(drill2, lambda: drill2.plan() is not None, "a plan for the incident", LIMIT_S)
    assert {st.approval for st in drill2.plan().steps} == {"auto"}  # type: ignore[union-attr]


async def test_reject_leaves_the_fleet_unchanged() -> None:
    eng = memory_sim(seed=0)
    cmds: list[Any] = []
    events_of(eng, cmds, "COMMAND_EXECUTED", "PLAN_REJECTED", "WORKFLOW_PAUSED", "RESOURCE_ALLOCATED")
    drill = start_drill(eng, "resource-exhaustion", approve="manual", warmup_s=300)
    await drill_until(drill, lambda: plan_waiting(drill), "a plan step waiting for manual approval", LIMIT_S)
    pid = drill.plan().id  # type: ignore[union-attr]
    ran = [e.data["kind"] for e in cmds if e.type == "COMMAND_EXECUTED"]
    assert ran and set(ran) <= {"analysis"}, "only auto (analysis) steps ran before a decision"
    before_fleet, before_seq = fleet_hash(eng), eng.state.seq
    decisions.reject(eng, pid, actor="alice", reason="not now")
    assert fleet_hash(eng) == before_fleet
    assert eng.state.seq == before_seq + 1
    rej = [e for e in cmds if e.type == "PLAN_REJECTED"]
    assert rej and rej[0].actor == "alice" and eng.state.plans[pid].state == "rejected"
    await drill.step(300)
    assert not [e for e in cmds if e.type in ("WORKFLOW_PAUSED", "RESOURCE_ALLOCATED") and e.actor.startswith("plan:")]
    with pytest.raises(EngineError) as exc:
        decisions.approve(eng, pid, actor="alice")
    assert exc.value.code == "INVALID_STATE"
    with pytest.raises(EngineError) as exc:
        decisions.approve(eng, "PLAN-9999")
    assert exc.value.code == "PLAN_NOT_FOUND"


async def test_abort_mid_plan_rolls_back() -> None:
    eng = memory_sim(seed=0)
    drill = start_drill(eng, "resource-exhaustion", approve="manual", warmup_s=300)
    await drill_until(drill, lambda: plan_waiting(drill), "a plan step waiting for manual approval", LIMIT_S)
    pid = drill.plan().id  # type: ignore[union-attr]
    before = {w.id: (w.status, w.allocation, w.guarantee) for w in eng.state.all_workflows()}
    decisions.approve(eng, pid, actor="bob")
    await drill_until(
        drill, lambda: eng.state.plans[pid].steps[2].state == "completed", "the plan's third step completed", LIMIT_S
    )
    assert eng.state.plans[pid].state == "executing"
    paused = [
        w
        for w, (st, _, _) in before.items()
        if st is WorkflowStatus.RUNNING and eng.state.status_of(w) is WorkflowStatus.PAUSED
    ]
    assert paused, "the reallocation paused something"
    assert eng.state.workflows["workflow_001"].guarantee is not None
    res = await decisions.abort(eng, pid, actor="bob", reason="drill abort")
    assert res["state"] == "rolled_back" and res["rollback"]["changes"]
    for w, (st, alloc, g) in before.items():
        cur = eng.state.any_workflow(w)
        if cur.status is WorkflowStatus.COMPLETED:
            continue
        assert cur.status is st, w
        assert cur.allocation == alloc, w
        assert cur.guarantee == g, w
    p = eng.state.plans[pid]
    assert p.state == "rolled_back" and p.outcome.aborted_by == "bob"
    assert [st.state for st in p.steps[:3]] == ["rolled_back"] * 3
    await drill.step(60)
    assert eng.state.plans[pid].state == "rolled_back", "the executor leaves an aborted plan alone"


async def test_edit_then_approve() -> None:
    eng = memory_sim(seed=0)
    drill = start_drill(eng, "resource-exhaustion", approve="manual", warmup_s=300)
    await drill_until(drill, lambda: plan_waiting(drill), "a plan step waiting for manual approval", LIMIT_S)
    p = drill.plan()
    pid = p.id  # type: ignore[union-attr]
    cmds = [st.command for st in p.steps]  # type: ignore[union-attr]
    h = eng.state.state_hash()
    with pytest.raises(EngineError) as exc:
        decisions.edit(eng, pid, ["/resource-manager status"] + cmds[1:], actor="carol")
    assert exc.value.code == "INVALID_PLAN_EDIT" and "already run" in exc.value.message
    with pytest.raises(EngineError) as exc:
        decisions.edit(eng, pid, cmds[:2] + ["/resource-manager no-such-op '{}'"], actor="carol")
    assert exc.value.code == "INVALID_PLAN_EDIT" and "step 2" in exc.value.message
    assert eng.state.state_hash() == h, "a refused edit changes nothing"
    edited = [c for c in cmds if "gradual-resumption" not in c]
    decisions.edit(eng, pid, edited, actor="carol")
    assert [st.command for st in eng.state.plans[pid].steps] == edited
    assert eng.state.plans[pid].edited_by == ["carol"]
    decisions.approve(eng, pid, actor="carol")
    await drill_until(drill, lambda: drill.done, "the drill done", LIMIT_S)
    assert eng.state.plans[pid].state == "completed"
    assert eng.state.incidents[drill.incident().id].status == "resolved"  # type: ignore[union-attr]


async def test_incident_commands_and_replay(tmp_path: Path) -> None:
    from core.commands import run_command

    eng = await open_sim(tmp_path / "x.db", seed=0, demo=True)
    try:
        drill = start_drill(eng, "agent-cascade", approve="manual", warmup_s=300)
        await drill_until(drill, lambda: plan_waiting(drill), "a plan step waiting for manual approval", LIMIT_S)
        pid = drill.plan().id  # type: ignore[union-attr]
        bad = await run_command(incident_services(eng), "/incident approve PLAN-9999", actor="dana")
        assert bad["status"] == "error" and bad["error"]["code"] == "PLAN_NOT_FOUND"
        ok = await run_command(incident_services(eng), f"/incident approve {pid}", actor="dana")
        assert ok["status"] == "success"
        assert eng.state.plans[pid].decided_by == "dana"
        await drill_until(drill, lambda: drill.done, "the drill done", LIMIT_S)
        report = await drill.report()
        assert report["validated"], report
        policy = eng.state.learning["policy"]
        assert policy["pool.implementation.min_size"] > 3, "the hit pool's minimum is raised and persisted"
        assert eng.state.pools["implementation"].min_size >= policy["pool.implementation.min_size"]
        listing = await run_command(incident_services(eng), "/incident list")
        assert listing["result"]["incidents"][0]["plans"][0]["state"] == "completed"
        await eng.flush()
        replay = State(EVENTS.folds)
        async for ev in eng.store.iter_events(0):  # type: ignore[union-attr]
            replay.apply(ev)
        assert replay.incidents == eng.state.incidents
        assert replay.plans == eng.state.plans
        assert replay.learning == eng.state.learning
    finally:
        await eng.close()


async def test_live_drill_for_the_console() -> None:
    """The console's way: the engine runs in real time, the drill is armed on its clock,
    the operator approves from outside the pipeline."""
    import asyncio

    eng = memory_sim(seed=0)
    drill = start_drill(eng, "agent-cascade", approve="manual", warmup_s=60)
    drill.start_live(0.01)
    stop = asyncio.Event()
    runner = asyncio.create_task(eng.run_realtime(speed=900, tick=0.02, stop=stop))
    try:
        for _ in range(500):
            await asyncio.sleep(0.02)
            p = drill.plan()
            if p is not None and p.state == "proposed" and plan_waiting(drill):
                decisions.approve(eng, p.id, actor="console")
            if drill.done:
                break
    finally:
        stop.set()
        await runner
        drill.manager.stop()
    report = await drill.report()
    assert report["validated"], {
        k: report[k] for k in ("status", "reason", "result", "fault_confirmed", "unresolved_incidents")
    }
    assert report["decided_by"] == "console"


async def test_regression_after_an_optimisation_step_rolls_back() -> None:
    """Gradual execution: a step with a check waits its settle window; a regression of
    the metric beyond the limit aborts the plan and rolls the quarantine back."""
    eng = memory_sim(seed=0)
    aborted: list[Any] = []
    events_of(eng, aborted, "PLAN_ABORTED")
    drill = start_drill(eng, "performance-degradation", approve="auto", warmup_s=600)

    def checking() -> bool:
        p = drill.plan()
        return p is not None and any(st.check and st.state == "executing" for st in p.steps)

    await drill_until(drill, checking, "a plan step's check executing", 6000)
    p = drill.plan()
    quarantined = [a for a in eng.state.agents.values() if a.backoff_until is not None]
    assert quarantined, "the slow agents were taken out of dispatch first"
    for a in eng.runtime.agents:  # type: ignore[union-attr]
        eng.runtime.slow_agent(a, 4.0)  # type: ignore[union-attr]  # everything gets much worse
    await drill_until(drill, lambda: drill.done, "the drill done", 3000)
    assert aborted and "regression" in aborted[0].data["reason"]
    assert eng.state.plans[p.id].state == "rolled_back"  # type: ignore[union-attr]
    assert all(eng.state.agents[a.id].backoff_until is None for a in quarantined), "quarantine rolled back"
    assert eng.state.incidents[drill.incident().id].status == "failed"  # type: ignore[union-attr]


@pytest.mark.slow
async def test_data_integrity_freezes_then_restores_from_the_log(tmp_path: Path) -> None:
    from core.commands import run_command

    eng = await open_sim(tmp_path / "d.db", seed=0, demo=True)
    try:
        drill = start_drill(eng, "data-integrity", approve="manual", warmup_s=300)
        await drill_until(drill, lambda: plan_waiting(drill), "a plan step waiting for manual approval", LIMIT_S)
        wf = drill.fault["workflow"]
        drifted = drill.fault["drifted_task"]
        inc = drill.incident()
        assert inc is not None and wf in inc.affected_workflows
        named = [sg.get("state") for sg in inc.evidence.of(IntegrityEvidence).segments]
        assert f"task:{drifted}" in named, "the assessment names the corrupted segment"
        assert drill.fault["damaged_checkpoint"] in inc.evidence.of(IntegrityEvidence).bad_checkpoints
        # The protection step (kind checkpoint: auto) froze the workflow: changes are refused.
        assert eng.state.workflows[wf].frozen
        h = eng.state.state_hash()
        with pytest.raises(EngineError) as exc:
            eng.pause_workflow(wf, actor="eve")
        assert exc.value.code == "WORKFLOW_FROZEN"
        res = await run_command(eng, f"/workflow-status pause {wf}", actor="eve")
        assert res["status"] == "error" and res["error"]["code"] == "WORKFLOW_FROZEN"
        assert eng.state.tasks[drifted].context.progress == 0.8, "still drifted until recovery"
        assert eng.state.state_hash() == h
        decisions.approve(eng, drill.plan().id, actor="eve")  # type: ignore[union-attr]
        await drill_until(drill, lambda: drill.done, "the drill done", LIMIT_S)
        report = await drill.report()
        assert report["validated"], report
        assert not eng.state.workflows[wf].frozen
        assert eng.state.tasks[drifted].context.progress != 0.8
        assert "rows_migrated" not in eng.state.tasks[drifted].context.partial_results
        # The restore started from a checkpoint taken before the drift (the plan's own
        # emergency checkpoints carry it), and it is what removed the drift.
        run = next(st for st in drill.plan().steps if "execute-data-recovery" in st.command)  # type: ignore[union-attr]
        restored_from = run.result["result"]["checkpoint"]
        assert restored_from in inc.evidence.of(IntegrityEvidence).checkpoints_ok
        assert restored_from < drill.fault["damaged_checkpoint"]
        assert wf in run.result["result"]["restored"]
        assert inc.outcome.validations["data_recovered"]["credit"]["restored_from_checkpoint"] == restored_from
        done = inc.outcome.validations["data_recovered"]
        quarantined = {sg["checkpoint"] for sg in done["segments"] if sg.get("resolution") == "quarantined"}
        assert drill.fault["damaged_checkpoint"] in quarantined
        assert done["restart_checkpoint"] not in quarantined, "the restart point is a new checkpoint, not a reused id"
    finally:
        await eng.close()


async def test_a_plan_whose_rollback_checkpoint_was_removed_aborts_without_rollback(tmp_path: Path) -> None:
    """The checkpoint taken before the plan captured the drift; a data recovery removes it
    (it differs from the log). Aborting the plan then fails it, saying it was not rolled
    back, instead of raising."""
    from core.commands import run_command

    eng = await open_sim(tmp_path / "d.db", seed=0, demo=True)
    try:
        drill = start_drill(eng, "data-integrity", approve="manual", warmup_s=300)
        await drill_until(drill, lambda: plan_waiting(drill), "a plan step waiting for manual approval", LIMIT_S)
        plan = drill.plan()
        assert plan is not None and plan.checkpoint is not None
        res = await run_command(eng, "/workflow-recovery execute-data-recovery", actor="eve")
        assert res["status"] == "success" and plan.checkpoint in res["result"]["dropped_checkpoints"], res
        assert plan.checkpoint not in eng.state.checkpoints
        out = await decisions.abort(eng, plan.id, actor="eve")
        assert out["state"] == "failed" and out["rollback"] is None
        p = eng.state.plans[plan.id]
        assert p.state.value == "failed"
        assert f"no checkpoint {plan.checkpoint}" in p.outcome.reason and "not rolled back" in p.outcome.reason
    finally:
        await eng.close()


@pytest.mark.slow
async def test_data_integrity_plan_without_its_recovery_step_is_not_validated(tmp_path: Path) -> None:
    """The same drill and plan with execute-data-recovery edited out: the freeze and the
    analyses run, nothing restores the drift, and the drill is not validated."""
    eng = await open_sim(tmp_path / "d.db", seed=0, demo=True)
    try:
        drill = start_drill(eng, "data-integrity", approve="manual", warmup_s=300)
        await drill_until(drill, lambda: plan_waiting(drill), "a plan step waiting for manual approval", LIMIT_S)
        plan = drill.plan()
        assert plan is not None
        drifted = drill.fault["drifted_task"]
        keep = [st.command for st in plan.steps if "execute-data-recovery" not in st.command]
        assert len(keep) == len(plan.steps) - 1
        decisions.edit(eng, plan.id, keep, actor="eve")
        decisions.approve(eng, plan.id, actor="eve")
        await drill_until(drill, lambda: drill.done, "the drill done", 6 * 3600.0)
        report = await drill.report()
        inc = drill.incident()
        assert inc is not None
        assert not report["validated"], report
        assert inc.outcome.validated is False
        assert inc.outcome.recovery_time_s is None
        assert not any(e.type == "DATA_RECOVERY_COMPLETED" for e in await eng.store.read_events(0))  # type: ignore[union-attr]
        assert eng.state.tasks[drifted].context.partial_results.get("rows_migrated") == -1, "nothing restored it"
    finally:
        await eng.close()


async def test_a_faulty_detector_is_disabled_not_fatal() -> None:
    from core.incidents.manager import IncidentManager

    eng = memory_sim(seed=0)
    mgr = IncidentManager(eng, approve_mode="manual")
    errors: list[Any] = []
    events_of(eng, errors, "SYSTEM_ERROR")

    def boom(now: float) -> None:
        raise RuntimeError("detector bug")

    mgr.detectors[0].check = boom  # type: ignore[method-assign]
    n = len(mgr.detectors)
    await eng.advance(60)
    assert len(mgr.detectors) == n - 1
    assert errors and errors[0].data["error"] == "RuntimeError: detector bug"
    assert eng.clock.now() == 60.0
