"""The console on real agents: the app opens the local runtime in its own loop, runs
the workflows, and quitting leaves no agent process behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Config
from core.incident_models import Plan
from core.workflow_file import parse_workflow_text
from tests.conftest import until
from tests.console_support import came_true
from tests.local_harness import PY, alive, header, task_toml, workflow_toml

pytest.importorskip("textual")


@pytest.mark.slow
async def test_console_drives_real_agents_and_quits_cleanly(tmp_path: Path) -> None:
    from core.host.host import Host
    from tui.app import OpsdeckApp

    text = header() + workflow_toml(
        "w",
        task_toml("t", [PY, "-c", "import time; print('OPSDECK_PROGRESS 0.5 half'); time.sleep(0.5)"], "shell"),
        phase="p",
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 2},
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
        runtime = app.host.runtime
        # A host's pid is known once its launcher has forked it (the console does not wait on that).
        assert await came_true(pilot, lambda: len(runtime.host_pids()) == 2, 30), runtime.host_pids()
        pids = dict(runtime.host_pids())
        assert len(pids) == 2 and all(alive(p) for p in pids.values())
        assert await came_true(pilot, lambda: engine.state.status_of("w").value == "completed", 60), (
            f"the workflow completed: {engine.state.status_of('w').value}"
        )
        # The agent screen shows the host's real pid and the limit mechanisms in force.
        from rich.console import Console

        from tui.screens.agent import AgentScreen

        agent, pid = sorted(pids.items())[0]
        app.push_screen(AgentScreen(agent))
        assert await came_true(pilot, lambda: isinstance(app.screen, AgentScreen) and app.screen.proc is not None), (
            "the agent screen found the host's process"
        )
        con = Console(width=160, record=True, color_system=None)
        con.print(app.screen.body())
        text = con.export_text()
        rt = engine.state.settings["local_runtime"]
        assert f"host pid      {pid} " in text and f"memory limit  {rt['memory_limit']}" in text, text
        await app.shutdown()
    await until(
        lambda: not any(alive(p) for p in pids.values()),
        lambda: f"no agent host left after quitting: {[p for p in pids.values() if alive(p)]}",
        5,  # shutdown waited for them or SIGKILLed them: only the kernel's delivery is left
    )


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
        busy = lambda: sum(1 for a in engine.state.agents.values() if a.status.value == "busy")  # noqa: E731
        assert await came_true(pilot, lambda: busy() >= 4, 60), f"four agents busy before the drill: {busy()}"
        res = await run_command(app.host.services, "/host drill network-partition", actor="operator")  # type: ignore[union-attr]
        assert res["status"] == "success", res

        def waiting() -> Plan | None:
            return next(
                (
                    p
                    for p in engine.state.plans.values()
                    if p.state == "proposed"
                    and any(st.approval == "manual" and st.state == "proposed" for st in p.steps)
                ),
                None,
            )

        assert await came_true(pilot, lambda: waiting() is not None, 90), "the drill's plan waits for the operator"
        plan = waiting()
        assert plan is not None
        services = app.host.services  # type: ignore[union-attr]
        assert (await run_command(services, f"/incident approve {plan.id}", actor="operator"))["status"] == "success"
        iid = plan.incident_id
        assert await came_true(pilot, lambda: engine.state.incidents[iid].status in ("resolved", "failed"), 120), (
            f"the incident closed: {engine.state.incidents[iid].status}"
        )
        inc = engine.state.incidents[iid]
        assert inc.status == "resolved" and inc.outcome.validated, inc.outcome
        await app.shutdown()
