"""A real partition of the local runtime: an agent host is SIGSTOPped (it cannot
answer, its task keeps running). The distributed protocol moves the task to a
reachable agent with its context; on SIGCONT the agent reconnects, and the task is
completed exactly once, whichever copy finished first (the merge decides)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from core.commands import run_command
from core.models import AgentStatus
from core.runtimes.local import open_local
from core.workflow_file import parse_workflow_text
from tests.local_harness import PY, Recorder, drive, header, task_toml, workflow_toml

WORK = [
    PY,
    "-c",
    "import time\nfor i in range(20):\n    print(f'OPSDECK_PROGRESS {(i + 1) / 20}', flush=True)\n    time.sleep(0.1)",
]

TEXT = header(heartbeat=0.3) + workflow_toml("w", task_toml("t", WORK, "shell"), phase="p", priority=60)


async def test_sigstopped_agent_host_work_moves_and_merges_once(tmp_path: Path) -> None:
    wf = parse_workflow_text(TEXT, "partition.toml")
    rec = Recorder()
    engine, runtime = await open_local(tmp_path / "p.db", wf, wf.specs(tmp_path), subscriber=rec)
    stopped = None
    try:
        await drive(engine, lambda: rec.of("TASK_STARTED"), timeout=20, what="the task started")
        first = engine.state.tasks["w/t"].agent
        assert first is not None
        stopped = runtime.host_pids()[first]
        os.kill(stopped, signal.SIGSTOP)
        await drive(
            engine,
            lambda: engine.state.agents[first].status is AgentStatus.UNREACHABLE,
            timeout=20,
            what="the stopped host is found unreachable",
        )
        res = await run_command(
            engine, "/coordination-hub activate-distributed-protocols '{\"coordination_adaptations\": []}'"
        )
        assert res["status"] == "success", res
        assert [m["task"] for m in res["result"]["moved"]] == ["w/t"]
        # A finished workflow leaves the hot state with its tasks: gone means it completed.
        await drive(
            engine,
            lambda: "w/t" not in engine.state.tasks or engine.state.tasks["w/t"].agent not in (None, first),
            timeout=20,
            what="the task runs again on the reachable agent",
        )
        os.kill(stopped, signal.SIGCONT)
        stopped = None
        await drive(
            engine,
            lambda: bool(rec.of("TASK_COMPLETED")) and engine.state.agents[first].status is not AgentStatus.UNREACHABLE,
            timeout=30,
            what=lambda: f"completed and reconnected: {[e.line()[:140] for e in rec.events[-8:]]}",
        )
        assert [e.data["task"] for e in rec.of("TASK_COMPLETED")] == ["w/t"], "completed exactly once"
        assert rec.of("AGENT_RECONNECTED") and rec.of("AGENT_RECONNECTED")[0].data["agent"] == first
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        await runtime.shutdown()
        await engine.close()
