"""The console on real agents: the app opens the local runtime in its own loop, runs
the workflows, and quitting leaves no agent process behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.config import Config
from core.workflow_file import parse_workflow_text
from tests.local_harness import alive, header, py_cmd

pytest.importorskip("textual")


async def test_console_drives_real_agents_and_quits_cleanly(tmp_path: Path) -> None:
    from core.host.host import Host
    from tui.app import OpsdeckApp

    text = header() + f"""
[[workflows]]
id = "w"
allocation = {{ cpu_cores = 1, memory_gb = 1, agents = 2 }}
  [[workflows.phases]]
  name = "p"
    [[workflows.phases.tasks]]
    id = "t"
    command = {py_cmd("import time; print('OPSDECK_PROGRESS 0.5 half'); time.sleep(0.5)")}
    specialization = "shell"
"""
    wf = parse_workflow_text(text)
    db = tmp_path / "c.db"

    async def host():  # type: ignore[no-untyped-def]
        return await Host.open_local(db, wf, wf.specs(tmp_path), Config())

    app = OpsdeckApp(db, Config(), speed=1.0, host_factory=host)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.link_opened(timeout=30)
        assert app.host is not None and app.host.runtime is not None
        engine = app.host.engine
        pids = dict(app.host.runtime.host_pids())
        assert len(pids) == 2 and all(alive(p) for p in pids.values())
        for _ in range(200):
            if engine.state.workflows["w"].status.value == "completed":
                break
            await pilot.pause(0.05)
        assert engine.state.workflows["w"].status.value == "completed"
        await app.shutdown()
    await asyncio.sleep(0.1)
    assert all(not alive(p) for p in pids.values())
