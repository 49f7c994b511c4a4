"""Screenshot of an agent screen with a task waiting for its operator: the task runs under
a pseudo-terminal in its own git worktree (examples/fake_agent.py asking a question), the
screen shows its terminal live, the waiting line and, after the answer, the worktree diff.

    .venv/bin/python scripts/terminal_screenshot.py [--out screenshots] [--size 120x40]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import Config  # noqa: E402
from core.workflow_file import parse_workflow_text  # noqa: E402
from tui.app import OpsdeckApp  # noqa: E402
from tui.screens.agent import AgentScreen  # noqa: E402

FILE = """
[runtime]
heartbeat_s = 0.5
sample_s = 0.5

[[pools]]
name = "claude"
specializations = ["implement"]
size = 1

[[workflows]]
id = "refactor"
allocation = {{ cpu_cores = 1, memory_gb = 1, agents = 1 }}
workspace = "worktree"
repo = "{repo}"
  [[workflows.phases]]
  name = "plan"
    [[workflows.phases.tasks]]
    id = "plan"
    command = ["python3", "fake_agent.py", "--format", "claude", "--turns", "2", "--interval", "0.5", "--ask", "Which module should I refactor first?", "--write", "REFACTOR.md", "--hang"]
    specialization = "implement"
    tty = true
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


async def until(pilot: Any, cond: Any, wait: float) -> None:
    end = time.monotonic() + wait
    while time.monotonic() < end and not cond():
        await pilot.pause(0.2)


async def shoot(out: Path, size: tuple[int, int]) -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        shutil.copy(ROOT / "examples" / "fake_agent.py", repo / "fake_agent.py")
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", ".")
        git(repo, "-c", "user.name=opsdeck", "-c", "user.email=o@localhost", "commit", "-q", "-m", "init")
        wf = parse_workflow_text(FILE.format(repo=repo))
        db = Path(tmp) / "t.db"
        config = Config()
        config.intervals.input_wait_s = 1.0

        async def open_host() -> Any:
            from core.host.host import Host

            return await Host.open_local(db, wf, wf.specs(Path(tmp)), config)

        app = OpsdeckApp(db=db, config=config, speed=1.0, host_factory=open_host)
        shots = []
        async with app.run_test(size=size) as pilot:
            await app.link_opened()
            eng = app.host.engine  # type: ignore[union-attr]
            t = eng.state.tasks["refactor/plan"]
            await until(pilot, lambda: t.awaiting_input, 60)
            app.push_screen(AgentScreen(t.agent or ""))
            await until(pilot, lambda: bool(app.screen.view.screen), 30)  # type: ignore[attr-defined]
            await pilot.pause(1.5)
            shots.append(out / "agent-terminal.svg")
            app.save_screenshot(str(shots[-1]))
            await pilot.press("s")
            await pilot.pause(0.5)
            await pilot.press(*"the scheduler", "enter")
            await until(pilot, lambda: "REFACTOR.md" in app.screen.view.diff_stat, 60)  # type: ignore[attr-defined]
            await pilot.pause(1.0)
            shots.append(out / "agent-worktree.svg")
            app.save_screenshot(str(shots[-1]))
            await app.shutdown()
    return shots


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "screenshots"))
    p.add_argument("--size", default="120x40")
    a = p.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    for path in asyncio.run(shoot(Path(a.out), (w, h))):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
