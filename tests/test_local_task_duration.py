"""A real task's TASK_COMPLETED duration_s is its run's time as its agent host measured it:
the host holds a run's start report (up to agent_host.HOLD_S) and sends a short run's start
with its end, so the console's own clock would see about no time between them."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from core.runtimes.reports import run_time
from tests.local_harness import drive, header, open_text, task_toml, wf_status, workflow_toml

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")


async def test_a_short_runs_duration_is_the_hosts_measure_not_the_consoles(tmp_path: Path) -> None:
    tasks = [
        task_toml(f"t{i}", ["sh", "-c", "i=0; while [ $i -lt 300 ]; do i=$((i+1)); done"], "shell") for i in range(4)
    ]
    text = header() + workflow_toml("w", *tasks, allocation={"cpu_cores": 2, "memory_gb": 2, "agents": 2})
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await drive(engine, lambda: wf_status(engine, "w") == "completed")
    finally:
        await runtime.shutdown()
        await engine.close()
    done = rec.of("TASK_COMPLETED")
    assert len(done) == 4
    for ev in done:
        ran = ev.data["result"]["elapsed_s"]
        assert ran > 0 and ev.data["duration_s"] == ran, ev.data


def test_a_report_without_a_usable_run_time_gives_none() -> None:
    assert run_time({"elapsed_s": 0.25}) == 0.25
    assert run_time({"elapsed_s": 0.25, "paused_s": 1.5}) == 1.75
    for bad in ({}, {"elapsed_s": None}, {"elapsed_s": "0.2"}, {"elapsed_s": True}, {"elapsed_s": -1.0}):
        assert run_time(bad) is None, bad
    for bad_num in (math.nan, math.inf):
        assert run_time({"elapsed_s": bad_num}) is None
        assert run_time({"elapsed_s": 0.1, "paused_s": bad_num}) is None
    assert run_time({"elapsed_s": 0.1, "paused_s": "x"}) is None
