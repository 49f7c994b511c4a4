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


@pytest.mark.slow
async def test_console_drives_real_agents_and_quits_cleanly(tmp_path: Path) -> None:
    from core.host.host import Host
    from tui.app import OpsdeckApp

    text = (
        header()
        + f"""
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
    )
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
            if engine.state.status_of("w").value == "completed":
                break
            await pilot.pause(0.05)
        assert engine.state.status_of("w").value == "completed"
        # The agent screen shows the host's real pid and the limit mechanisms in force.
        from rich.console import Console

        from tui.screens.agent import AgentScreen

        agent, pid = sorted(pids.items())[0]
        app.push_screen(AgentScreen(agent))
        for _ in range(200):
            if isinstance(app.screen, AgentScreen) and app.screen.proc is not None:
                break
            await pilot.pause(0.05)
        con = Console(width=160, record=True, color_system=None)
        con.print(app.screen.body())
        text = con.export_text()
        rt = engine.state.settings["local_runtime"]
        assert f"host pid      {pid} " in text and f"memory limit  {rt['memory_limit']}" in text, text
        await app.shutdown()
    await asyncio.sleep(0.1)
    assert all(not alive(p) for p in pids.values())


@pytest.mark.slow
async def test_a_drill_from_the_console_on_real_agents_validates(tmp_path: Path) -> None:
    """``D`` on ``opsdeck run``: ``/host drill network-partition`` arms the drill on the
    real fleet; its fault (SIGSTOP of agent hosts) comes on the wall clock, the plan
    waits for the operator, and after approval the recovery validates."""
    from core.commands import run_command
    from core.host.host import Host
    from core.workflow_file import load_workflow_file
    from tui.app import OpsdeckApp

    wf, specs = load_workflow_file(Path(__file__).resolve().parent.parent / "examples" / "drill_fleet.toml")
    db = tmp_path / "d.db"

    async def host():  # type: ignore[no-untyped-def]
        return await Host.open_local(db, wf, specs, Config())

    app = OpsdeckApp(db, Config(), speed=1.0, host_factory=host)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.link_opened(timeout=30)
        engine = app.host.engine  # type: ignore[union-attr]
        for _ in range(400):
            if sum(1 for a in engine.state.agents.values() if a.status.value == "busy") >= 4:
                break
            await pilot.pause(0.05)
        res = await run_command(app.host.services, "/host drill network-partition", actor="operator")  # type: ignore[union-attr]
        assert res["status"] == "success", res
        plan = None
        for _ in range(600):
            plan = next(
                (
                    p
                    for p in engine.state.plans.values()
                    if p.state == "proposed"
                    and any(st.approval == "manual" and st.state == "proposed" for st in p.steps)
                ),
                None,
            )
            if plan is not None:
                break
            await pilot.pause(0.05)
        assert plan is not None, "the drill's plan waits for the operator"
        services = app.host.services  # type: ignore[union-attr]
        assert (await run_command(services, f"/incident approve {plan.id}", actor="operator"))["status"] == "success"
        inc = engine.state.incidents[plan.incident_id]
        for _ in range(1200):
            if inc.status in ("resolved", "failed"):
                break
            await pilot.pause(0.05)
            inc = engine.state.incidents[plan.incident_id]
        assert inc.status == "resolved" and inc.outcome.validated, inc.outcome
        await app.shutdown()
