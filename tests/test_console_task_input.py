"""The console with an interactive task on real agents: the wait is announced, the
task's row and agent screen say so, `s` sends a line, the task goes on; a tty task's
screen is drawn on the agent screen and keys typed while attached reach it."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from core.config import Config
from core.runtimes.input_wait import supported
from core.workflow_file import parse_workflow_text
from tests.local_harness import header, py_cmd

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not supported(), reason="needs /proc/PID/syscall")]

ASK = "import sys; print('which module?', flush=True); a = sys.stdin.readline().strip(); print('refactoring ' + a)"


def _text(tty: bool) -> str:
    return (
        header()
        + f"""
[[workflows]]
id = "w"
allocation = {{ cpu_cores = 1, memory_gb = 1, agents = 2 }}
  [[workflows.phases]]
  name = "p"
    [[workflows.phases.tasks]]
    id = "ask"
    command = {py_cmd(ASK)}
    specialization = "shell"
    interactive = true
    tty = {str(tty).lower()}
"""
    )


def _shown(app) -> str:  # type: ignore[no-untyped-def]
    con = Console(width=160, record=True, color_system=None)
    con.print(app.screen.body())
    return con.export_text()


async def _until(pilot, cond, n: int = 1200) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(n):
        if cond():
            return True
        await pilot.pause(0.05)
    return False


@pytest.mark.parametrize("tty", [False, True])
async def test_a_waiting_task_is_announced_and_answered_from_the_agent_screen(tmp_path: Path, tty: bool) -> None:
    from core.host.host import Host
    from tui.app import OpsdeckApp
    from tui.screens.agent import AgentScreen
    from tui.screens.ask import AskScreen

    wf = parse_workflow_text(_text(tty))
    db = tmp_path / "c.db"
    cfg = Config()
    cfg.intervals.input_wait_s = 0.5

    async def host():  # type: ignore[no-untyped-def]
        return await Host.open_local(db, wf, wf.specs(tmp_path), cfg)

    app = OpsdeckApp(db, cfg, speed=1.0, host_factory=host)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.link_opened(timeout=30)
        assert app.host is not None
        engine = app.host.engine
        t = engine.state.tasks["w/ask"]
        assert await _until(pilot, lambda: t.awaiting_input)
        assert await _until(pilot, lambda: any("waits for input" in n.message for n in app._notifications))
        app.push_screen(AgentScreen(t.agent or ""))
        assert await _until(pilot, lambda: isinstance(app.screen, AgentScreen) and "waiting for input" in _shown(app))
        if tty:  # its terminal, drawn on the agent screen from the pty's output
            assert await _until(pilot, lambda: app.screen.view.screen[:1] == ["which module?"])
        await pilot.press("s")
        assert await _until(pilot, lambda: isinstance(app.screen, AskScreen))
        await pilot.press(*"auth", "enter")
        assert await _until(pilot, lambda: engine.state.status_of("w").value == "completed")
        await engine.flush()
        sent = list(await engine.store.read_events(0, types=["TASK_INPUT_SENT"]))  # type: ignore[union-attr]
        assert "".join(e.data["text"] for e in sent).strip() == "auth", (sent, t.context.last_output)
        await app.shutdown()


async def test_a_task_that_reads_no_input_gets_no_send_key(tmp_path: Path) -> None:
    from core.host.host import Host
    from tui.app import OpsdeckApp
    from tui.screens.agent import AgentScreen

    text = (
        _text(False)
        .replace("interactive = true", "interactive = false")
        .replace(py_cmd(ASK), py_cmd("import time; print('busy', flush=True); time.sleep(30)"))
    )
    wf = parse_workflow_text(text)
    db = tmp_path / "c.db"

    async def host():  # type: ignore[no-untyped-def]
        return await Host.open_local(db, wf, wf.specs(tmp_path), Config())

    app = OpsdeckApp(db, Config(), speed=1.0, host_factory=host)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.link_opened(timeout=30)
        assert app.host is not None
        engine = app.host.engine
        t = engine.state.tasks["w/ask"]
        assert await _until(pilot, lambda: t.status.value == "running" and t.context.last_output)
        app.push_screen(AgentScreen(t.agent or ""))
        assert await _until(pilot, lambda: isinstance(app.screen, AgentScreen))
        await pilot.press("s")
        await pilot.pause(0.3)
        assert isinstance(app.screen, AgentScreen)  # no input dialog: nothing reads it
        assert app.screen.check_action("send_input", ()) is False
        await app.shutdown()
