"""Operations checked against the state they must change: data recovery repairs real
corruption, reductions keep the critical path, contexts move to replacements,
analyses find the faults the simulated runtime injects."""

from __future__ import annotations

import json
from pathlib import Path

from core.commands import run_command
from core.event_types import EVENTS
from core.models import AgentStatus, Resources, TaskStatus, WorkflowStatus
from core.projection import State
from core.session import open_sim


async def _fleet(tmp_path: Path, minutes: float = 10):  # type: ignore[no-untyped-def]
    engine = await open_sim(tmp_path / "ops.db", demo=True)
    await engine.advance(minutes * 60)
    return engine


async def test_data_recovery_repairs_corrupted_segments(tmp_path: Path) -> None:
    engine = await _fleet(tmp_path)
    try:
        s = engine.state
        wid = "migration_workflow_001"
        await run_command(engine, f'/coordination-hub emergency-data-protection \'{{"affected_workflow": "{wid}"}}\'')
        key = next(k for k in s.workflows[wid].tasks if s.tasks[k].context.progress > 0)
        good = s.tasks[key].context.progress
        # Corrupt the in-memory projection behind the log's back.
        s.tasks[key].own_context().progress = 0.0
        s.workflows[wid].allocation = Resources(cpu_cores=0.1, memory_gb=0.1, agents=1)
        resp = await run_command(engine, f'/workflow-recovery execute-data-recovery \'{{"workflows": ["{wid}"]}}\'')
        r = resp["result"]
        assert resp["status"] == "success", resp
        assert f"task:{key}" in r["corrupted_segments"] and f"workflow:{wid}" in r["corrupted_segments"]
        assert r["restored"] == [wid] and r["verified"] and r["unfrozen"] == [wid]
        assert s.tasks[key].context.progress == good
        assert s.workflows[wid].allocation == s.workflows[wid].base_allocation
        await engine.flush()
        replayed = State(EVENTS.folds)
        async for ev in engine.store.iter_events(0):  # type: ignore[union-attr]
            replayed.apply(ev)
        assert replayed.state_hash() == s.state_hash()
    finally:
        await engine.close()


async def test_data_recovery_skips_checkpoints_that_captured_the_drift(tmp_path: Path) -> None:
    """A checkpoint taken after the projection drifted matches its own hash: the recovery
    restores from the newest one that equals a replay of the log, and refuses a named one
    that does not (nothing changed)."""
    engine = await _fleet(tmp_path)
    try:
        s = engine.state
        wid = "migration_workflow_001"
        clean = await engine.checkpoint(kind="incremental", label="before the drift", actor="test")
        key = next(k for k in s.workflows[wid].tasks if s.tasks[k].context.progress > 0)
        good = s.tasks[key].context.progress
        s.tasks[key].own_context().progress = 0.01  # behind the log's back
        resp = await run_command(
            engine, f'/coordination-hub emergency-data-protection \'{{"affected_workflow": "{wid}"}}\''
        )
        drifted_cp = resp["result"]["checkpoint"]
        assert drifted_cp > clean and drifted_cp in s.checkpoints
        h = s.state_hash()
        named = await run_command(
            engine,
            "/workflow-recovery execute-data-recovery '"
            + json.dumps(
                {
                    "workflows": [wid],
                    "recovery_steps": [
                        {
                            "step": "clean_state_restoration",
                            "action": "restore_from_validated_checkpoint",
                            "checkpoint": drifted_cp,
                        }
                    ],
                }
            )
            + "'",
        )
        assert named["status"] == "error" and named["error"]["code"] == "CHECKPOINT_CORRUPT", named
        assert str(drifted_cp) in named["error"]["message"]
        assert s.state_hash() == h and s.tasks[key].context.progress == 0.01 and drifted_cp in s.checkpoints
        resp = await run_command(engine, f'/workflow-recovery execute-data-recovery \'{{"workflows": ["{wid}"]}}\'')
        r = resp["result"]
        assert resp["status"] == "success", resp
        assert r["checkpoint"] == clean and drifted_cp in r["dropped_checkpoints"]
        assert r["restored"] == [wid] and r["verified"]
        assert s.tasks[key].context.progress == good
        again = await engine.checkpoint(kind="incremental", label="after the recovery", actor="test")
        assert again > max(r["dropped_checkpoints"]), "the id of a removed checkpoint is never given again"
    finally:
        await engine.close()


async def test_reduction_keeps_the_critical_path(tmp_path: Path) -> None:
    engine = await _fleet(tmp_path, 3)
    try:
        s = engine.state
        wid = "workflow_002"
        running = [k for k in s.running_by_wf[wid] if s.tasks[k].status is TaskStatus.RUNNING]
        assert len(running) >= 2
        path = set(s.critical_path(wid))
        resp = await run_command(
            engine,
            f"""/resource-manager emergency-reallocation '{{"actions": [{{"action": "reduce_resource_allocation",
            "affected": ["{wid}"], "reduction": {{"agents": {s.workflows[wid].allocation.agents - 1}}}, "maintain_critical_path": true}}]}}'""",
        )
        assert resp["status"] == "success", resp
        det = resp["result"]["actions"][0]["workflows"][wid]
        still = {k for k in s.running_by_wf[wid] if s.tasks[k].status is TaskStatus.RUNNING}
        assert s.workflows[wid].allocation.agents == 1
        on_path = path & set(running)
        assert on_path <= still, "running tasks of the critical path are kept"
        assert not set(det["released_tasks"]) & path
        assert len(still) == max(1, len(on_path))
        assert set(det["released_tasks"]) == set(running) - still
        assert all(s.tasks[k].status is TaskStatus.PENDING for k in det["released_tasks"])
        rec = resp["result"]["resource_recovery"]
        assert rec["agents"] == len(det["released_tasks"])
    finally:
        await engine.close()


async def test_transfer_context_assigns_failed_agents_tasks_to_replacements(tmp_path: Path) -> None:
    engine = await _fleet(tmp_path)
    try:
        s = engine.state
        busy = sorted(a.id for a in s.agents.values() if a.status is AgentStatus.BUSY)[:2]
        held = {a: s.agents[a].current_task for a in busy}
        progress = {t: s.tasks[t].context.progress for t in held.values()}
        for a in busy:
            engine.runtime.fail_agent(a, "crash")  # type: ignore[union-attr]
        # Before the scheduler runs again, the replacements take the tasks with their context.
        payload = json.dumps({"failed_agents": busy, "replacement_agents": ["agent_101", "agent_102"]})
        resp = await run_command(engine, f"/workflow-recovery transfer-context '{payload}'")
        assert resp["status"] == "success", resp
        assert resp["result"]["spawned"] == ["agent_101", "agent_102"]
        for (failed, task), new in zip(held.items(), ["agent_101", "agent_102"], strict=True):
            assert s.tasks[task].agent == new and s.tasks[task].status is TaskStatus.RUNNING
            assert s.tasks[task].context.progress >= progress[task] > 0
            assert s.agents[new].specializations == s.agents[failed].specializations
        assert all(f["severity"] == "info" for f in resp["result"]["findings"])
        await engine.advance(60)
        assert all(s.tasks[t].context.progress > progress[t] for t in held.values()), (
            "the replacements continue the work"
        )
    finally:
        await engine.close()


async def test_analyses_find_injected_faults(tmp_path: Path) -> None:
    engine = await _fleet(tmp_path, 5)
    try:
        s = engine.state
        rt = engine.runtime
        busy = sorted(a.id for a in s.agents.values() if a.status is AgentStatus.BUSY)
        rt.leak(busy[0], 8.0)  # type: ignore[union-attr]
        rt.slow_agent(busy[1], 6.0)  # type: ignore[union-attr]
        rt.partition([busy[2]])  # type: ignore[union-attr]
        await engine.advance(180)
        resp = await run_command(
            engine,
            """/subagents '{"phase": "drill"}' '[
            {"command": "/debug", "scope": "x", "focus": ["memory_leaks", "cpu_spinning"]},
            {"command": "/coordination-hub", "operation": "network-failure-analysis", "scope": "net"}]' --emergency""",
        )
        assert resp["status"] == "success", resp
        r = resp["result"]
        assert r["priority"] == "critical" and len(r["tasks"]) == 2
        by = {(f["analysis"], f["subject"]) for f in r["findings"]}
        assert ("resource_leaks", busy[0]) in by
        leak = next(f for f in r["findings"] if f["analysis"] == "resource_leaks" and f["subject"] == busy[0])
        assert 6.0 * 60 * 0.8 < leak["evidence"]["slope_mb_per_min"] < 8.0 * 60 * 1.2
        if s.agents[busy[1]].status is AgentStatus.BUSY:
            assert ("cpu_spinning", busy[1]) in by
        assert ("network", busy[2]) in by and s.agents[busy[2]].status is AgentStatus.UNREACHABLE
    finally:
        await engine.close()


async def test_pause_release_and_resume_keeps_progress(tmp_path: Path) -> None:
    engine = await _fleet(tmp_path)
    try:
        s = engine.state
        progress = {k: s.tasks[k].context.progress for k in s.workflows["workflow_003"].tasks}
        resp = await run_command(
            engine,
            """/resource-manager emergency-reallocation '{"actions": [
            {"action": "pause_low_priority_workflows", "affected": ["workflow_003"]}]}'""",
        )
        assert resp["status"] == "success"
        assert s.status_of("workflow_003") is WorkflowStatus.PAUSED and not s.in_use("workflow_003").agents
        await engine.advance(300)
        assert all(s.tasks[k].context.progress == progress[k] for k in progress), "nothing runs while paused"
        resp = await run_command(engine, "/coordination-hub resume workflow_003")
        assert resp["status"] == "success"
        await engine.advance(120)
        assert any(
            s.tasks[k].context.progress > progress[k] for k in progress if s.tasks[k].status is not TaskStatus.COMPLETED
        )
    finally:
        await engine.close()


async def test_resumption_can_be_held_and_advanced_by_the_operator(tmp_path: Path) -> None:
    from core.commands.resumption import advance_resumption, hold_resumption

    engine = await _fleet(tmp_path)
    try:
        await run_command(engine, "/coordination-hub pause workflow_003")
        resp = await run_command(
            engine,
            """/workflow-recovery gradual-resumption '{"stages": [
            {"stage": 1, "action": "resume_paused_workflow", "workflow": "workflow_003", "resource_limit": "moderate"},
            {"stage": 2, "action": "lift_limits", "workflow": "workflow_003"}]}'""",
        )
        rid = resp["result"]["resumption"]
        assert hold_resumption(engine, rid, actor="op")["held"] is True
        await engine.advance(900)
        assert engine.state.resumptions[rid].next_step == 1, "a held resumption does not advance"
        out = advance_resumption(engine, rid, actor="op")
        assert out["next_step"] == 2
        advance_resumption(engine, rid, actor="op")
        assert engine.state.resumptions[rid].status == "completed"
        assert engine.state.workflows["workflow_003"].stage_limit is None
    finally:
        await engine.close()


async def test_monitoring_alerts_on_crossings_and_closes_its_window(tmp_path: Path) -> None:
    engine = await _fleet(tmp_path, 5)
    try:
        resp = await run_command(
            engine,
            """/performance-monitor post-emergency-monitoring '{"monitoring_duration": "10m", "alert_sensitivity": "high"}'""",
        )
        th = resp["result"]["monitoring"]["thresholds"]
        assert th["cpu_warning_pct"] == 60.0  # high sensitivity: 0.75 x the configured 80 %
        engine.runtime.load_spike(8.0, 0.0, 120.0)  # type: ignore[union-attr]
        await engine.advance(300)
        await engine.flush()
        alerts = await engine.store.read_events(0, types=["RESOURCE_THRESHOLD"])  # type: ignore[union-attr]
        cpu = [a for a in alerts if a.data["metric"] == "cpu" and a.data["monitor"] == "post_emergency"]
        assert cpu and all(a.data["value"] > 60.0 for a in cpu)
        assert len(cpu) <= 3, "one alert per crossing, not one per sample"
        await engine.advance(360)
        await engine.flush()
        closed = await engine.store.read_events(0, types=["MONITORING_WINDOW_CLOSED"])  # type: ignore[union-attr]
        assert [c.data["monitor"] for c in closed] == ["post_emergency"]
        assert closed[0].data["metrics"]["cpu"]["peak"] > 60.0
        assert engine.state.settings["monitoring.post_emergency"]["closed"] is True
    finally:
        await engine.close()
