"""The console with an interactive task on real agents: the wait is announced, the
task's row and agent screen say so, `s` sends a line, the task goes on; a tty task's
screen is drawn on the agent screen and keys typed while attached reach it."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from core.config import Config
from core.runtimes.input_wait import supported
from tests.console_support import came_true, local_app
from tests.local_harness import PY, header, task_toml, workflow_toml

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not supported(), reason="needs /proc/PID/syscall")]

ASK = "import sys; print('which module?', flush=True); a = sys.stdin.readline().strip(); print('refactoring ' + a)"


def _text(tty: bool, code: str = ASK, interactive: bool = True) -> str:
    return header() + workflow_toml(
        "w",
        task_toml("ask", [PY, "-c", code], "shell", interactive=interactive, tty=tty),
        phase="p",
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 2},
    )


def _shown(app) -> str:  # type: ignore[no-untyped-def]
    con = Console(width=160, record=True, color_system=None)
    con.print(app.screen.body())
    return con.export_text()


@pytest.mark.parametrize("tty", [False, True])
async def test_a_waiting_task_is_announced_and_answered_from_the_agent_screen(tmp_path: Path, tty: bool) -> None:
    from tui.screens.agent import AgentScreen
    from tui.screens.modals import AskScreen

    cfg = Config()
    cfg.intervals.input_wait_s = 0.5
    app = local_app(tmp_path, _text(tty), cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.link_opened(timeout=30)
        assert app.host is not None
        engine = app.host.engine
        t = engine.state.tasks["w/ask"]
        assert await came_true(pilot, lambda: t.awaiting_input, timeout=60)
        assert await came_true(
            pilot, lambda: any("waits for input" in n.message for n in app._notifications), timeout=60
        )
        app.push_screen(AgentScreen(t.agent or ""))
        assert await came_true(
            pilot, lambda: isinstance(app.screen, AgentScreen) and "waiting for input" in _shown(app), timeout=60
        )
        if tty:  # its terminal, drawn on the agent screen from the pty's output
            assert await came_true(pilot, lambda: app.screen.view.screen[:1] == ["which module?"], timeout=60)
        await pilot.press("s")
        assert await came_true(pilot, lambda: isinstance(app.screen, AskScreen), timeout=60)
        await pilot.press(*"auth", "enter")
        assert await came_true(pilot, lambda: engine.state.status_of("w").value == "completed", timeout=60)
        await engine.flush()
        sent = list(await engine.store.read_events(0, types=["TASK_INPUT_SENT"]))  # type: ignore[union-attr]
        assert "".join(e.data["text"] for e in sent).strip() == "auth", (sent, t.context.last_output)
        await app.shutdown()


async def test_a_task_that_reads_no_input_gets_no_send_key(tmp_path: Path) -> None:
    from tui.screens.agent import AgentScreen

    text = _text(False, "import time; print('busy', flush=True); time.sleep(30)", interactive=False)
    app = local_app(tmp_path, text)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.link_opened(timeout=30)
        assert app.host is not None
        engine = app.host.engine
        t = engine.state.tasks["w/ask"]
        assert await came_true(pilot, lambda: t.status.value == "running" and t.context.last_output, timeout=60)
        app.push_screen(AgentScreen(t.agent or ""))
        assert await came_true(pilot, lambda: isinstance(app.screen, AgentScreen), timeout=60)
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, AgentScreen)  # no input dialog: nothing reads it
        assert app.screen.check_action("send_input", ()) is False
        await app.shutdown()
