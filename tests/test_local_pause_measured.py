"""Pause is SIGSTOP and keeps the process; what pausing or requeueing recovers is the
psutil measurement of those processes, never their reservation; capacity on the local
runtime is the machine's unless the config sets it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import psutil
import pytest

from core.commands import run_command
from core.config import Config
from core.models import TaskStatus
from core.runtimes.local import open_local
from core.workflow_file import parse_workflow_text
from tests.local_harness import drive, group_members, header, task_toml, workflow_toml

pytestmark = pytest.mark.slow

BURN = str(Path(__file__).resolve().parent.parent / "examples" / "workload" / "burn.py")
MB = 48


def text() -> str:
    burn = [sys.executable, BURN, "--seconds", "60", "--mb", str(MB), "--processes", "1"]
    return header(pools='[[pools]]\nname = "burners"\nspecializations = ["burn"]\nsize = 1\n') + workflow_toml(
        "bg",
        task_toml("burn", burn, "burn", cpu=0.5, memory_gb=0.5),
        phase="p",
        priority=20,
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
    )


async def _running(tmp_path: Path, config: Config | None = None):  # type: ignore[no-untyped-def]
    wf = parse_workflow_text(text())
    engine, runtime = await open_local(tmp_path / "p.db", wf, wf.specs(tmp_path), config)
    key = "bg/burn"
    await drive(
        engine,
        lambda: (
            engine.state.tasks[key].status is TaskStatus.RUNNING and engine.state.tasks[key].context.progress >= 0.2
        ),
        timeout=30,
        what="the burner holds its memory",
    )
    agent = engine.state.tasks[key].agent
    assert agent is not None
    pgid = await drive(engine, lambda: runtime.task_pgid(agent), timeout=10, what="the task's process group")
    await drive(engine, lambda: len(group_members(pgid)) >= 1, timeout=10, what="the burner's processes")
    return engine, runtime, key, pgid


def _rss_mb(procs: list[psutil.Process]) -> float:
    return sum(p.memory_info().rss for p in procs) / (1024 * 1024)


async def _realloc(engine, action: str) -> dict:  # type: ignore[no-untyped-def]
    payload = json.dumps({"actions": [{"action": action, "affected": ["bg"]}]})
    resp = await run_command(engine, f"/resource-manager emergency-reallocation '{payload}'")
    assert resp["status"] == "success", resp
    return resp["result"]


async def test_pause_sigstops_and_keeps_the_process_and_recovers_its_measured_cpu_not_memory(tmp_path: Path) -> None:
    engine, runtime, key, pgid = await _running(tmp_path)
    try:
        procs = group_members(pgid)
        pids = sorted(p.pid for p in procs)
        agent = engine.state.tasks[key].agent
        res = await _realloc(engine, "pause_low_priority_workflows")
        # the same processes, stopped (state T), the task paused on the same agent
        after = group_members(pgid)
        assert sorted(p.pid for p in after) == pids
        assert all(p.status() == psutil.STATUS_STOPPED for p in after)
        t = engine.state.tasks[key]
        assert t.status is TaskStatus.PAUSED and t.agent == agent
        rec = res["actions"][0]["resource_recovery"]
        assert rec["basis"] == "measured"
        (row,) = rec["processes"]
        assert row["pid"] == pgid and row["after"]["state"] == "stopped"
        # memory: a stopped process keeps its RSS, so none is recovered (not the 512 MB reserved)
        assert abs(row["before"]["rss_mb"] - _rss_mb(after)) < 8
        assert rec["memory_mb"] < 8 and res["reservations_released"]["memory_gb"] == 0.5
        # CPU: what the burner was measured using, now freed
        assert row["before"]["cpu_pct"] > 10 and rec["cpu_cores"] == pytest.approx(row["before"]["cpu_pct"] / 100)
        assert res["reservations_released"]["basis"] == "reserved"
        # the processes stay stopped: nothing stops and requeues them behind the pause
        await drive(engine, lambda: True)
        assert sorted(p.pid for p in group_members(pgid)) == pids
        assert engine.state.tasks[key].status is TaskStatus.PAUSED
    finally:
        await runtime.shutdown()
        await engine.close()


async def test_requeue_ends_the_processes_and_recovers_their_measured_rss(tmp_path: Path) -> None:
    engine, runtime, key, pgid = await _running(tmp_path)
    try:
        procs = group_members(pgid)
        rss = _rss_mb(procs)
        assert rss > MB * 0.8
        res = await _realloc(engine, "requeue_low_priority_workflows")
        assert not group_members(pgid), "requeued: the processes are gone"
        t = engine.state.tasks[key]
        assert t.status is TaskStatus.PENDING and t.agent is None
        rec = res["actions"][0]["resource_recovery"]
        assert rec["basis"] == "measured" and rec["processes"][0]["after"] == "gone"
        assert rec["memory_mb"] == pytest.approx(rss, rel=0.15), (rec, rss)
        assert abs(rec["memory_gb"] - 0.5) > 0.2, "the figure is measured, not the 0.5 GB reserved"
    finally:
        await runtime.shutdown()
        await engine.close()


async def test_local_capacity_is_the_machines_unless_the_config_sets_it(tmp_path: Path) -> None:
    wf = parse_workflow_text(text().replace('--seconds", "60', '--seconds", "1'))
    engine, runtime = await open_local(tmp_path / "a.db", wf, wf.specs(tmp_path))
    try:
        cap = engine.config.capacity
        assert cap.cpu_cores == os.cpu_count()
        assert cap.memory_gb == pytest.approx(psutil.virtual_memory().total / 2**30, abs=0.01)
        assert cap.bases == {"cpu_cores": "machine", "memory_gb": "machine"}
    finally:
        await runtime.shutdown()
        await engine.close()
    set_cfg = Config.model_validate({"capacity": {"cpu_cores": 8}})
    engine, runtime = await open_local(tmp_path / "b.db", wf, wf.specs(tmp_path), set_cfg)
    try:
        cap = engine.config.capacity
        assert cap.cpu_cores == 8 and cap.bases["cpu_cores"] == "config"
        assert cap.bases["memory_gb"] == "machine"
    finally:
        await runtime.shutdown()
        await engine.close()
