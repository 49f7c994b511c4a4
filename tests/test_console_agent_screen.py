"""The agent screen asks for its task's terminal (``/coordination-hub screen``) only when
it may have changed: an event about the task (its output, input sent to it) makes the
next tick fetch it; a task that prints nothing costs no command, however long the
screen stays open."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Config
from tests.console_support import came_true, local_app
from tests.local_harness import PY, header, task_toml, workflow_toml

pytestmark = pytest.mark.slow

# Prints a line, waits for one on stdin, prints what it got, then stays quiet.
ECHO = "import sys, time; print('ready', flush=True); a = sys.stdin.readline().strip(); print('got ' + a, flush=True); time.sleep(120)"

TEXT = header() + workflow_toml(
    "w",
    task_toml("echo", [PY, "-c", ECHO], "shell", interactive=True, tty=True),
    phase="p",
    allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
)


async def _screen_commands(engine) -> int:  # type: ignore[no-untyped-def]
    await engine.flush()
    evs = await engine.store.read_events(0, types=["COMMAND_EXECUTED"])
    return sum(1 for e in evs if str(e.data.get("command", "")).startswith("/coordination-hub screen"))


async def test_the_terminal_is_fetched_only_when_the_task_changed(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tui.screens.agent import AgentScreen

    ticks: list[int] = []
    tick = AgentScreen.fetch_task

    def counted(self):  # type: ignore[no-untyped-def]
        ticks.append(1)
        return tick(self)

    monkeypatch.setattr(AgentScreen, "fetch_task", counted)
    cfg = Config()
    cfg.intervals.input_wait_s = 0.5
    app = local_app(tmp_path, TEXT, cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.link_opened(timeout=30)
        assert app.host is not None
        engine = app.host.engine
        t = engine.state.tasks["w/echo"]
        assert await came_true(pilot, lambda: t.awaiting_input, timeout=60)  # printed, then blocked on stdin
        app.push_screen(AgentScreen(t.agent or ""))
        assert await came_true(
            pilot, lambda: isinstance(app.screen, AgentScreen) and "ready" in app.screen.view.screen, timeout=60
        )
        screen = app.screen
        # Quiet: several ticks pass, and no command asks for the terminal again.
        asked = await _screen_commands(engine)
        assert asked >= 1
        start = len(ticks)
        assert await came_true(pilot, lambda: len(ticks) >= start + 4, timeout=60)
        assert await _screen_commands(engine) == asked, "the terminal was fetched though nothing about the task changed"
        # Input sent from elsewhere (not through this screen): its events make the next tick fetch it.
        res = await app.link.send("/coordination-hub send-input w/echo auth")
        assert res["status"] == "success", res
        assert await came_true(pilot, lambda: "got auth" in screen.view.screen and not t.awaiting_input, timeout=60)
        start = len(ticks)
        assert await came_true(pilot, lambda: len(ticks) >= start + 2, timeout=60)  # the events of the answer are heard
        now = await _screen_commands(engine)
        assert now > asked
        # Quiet again: no more fetches.
        start = len(ticks)
        assert await came_true(pilot, lambda: len(ticks) >= start + 4, timeout=60)
        assert await _screen_commands(engine) == now
        await app.shutdown()
