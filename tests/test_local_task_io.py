"""Interactive tasks on the local runtime: waiting for input is seen, send-input
unblocks it, the whole output is in a file `opsdeck logs` prints, and a tty task's
screen is rebuilt; real processes and real agent hosts throughout."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from core.commands import run_command
from core.config import Config
from core.models import TaskStatus
from core.runtimes.input_wait import supported
from core.runtimes.local import open_local
from core.workflow_file import parse_workflow_text
from tests.conftest import opsdeck_cmd
from tests.local_harness import PY, Recorder, drive, header, task_toml, wf_status, workflow_toml

pytestmark = pytest.mark.skipif(not supported(), reason="needs Linux /proc/PID/syscall")

ASK = "import sys; print('name?', flush=True); a = sys.stdin.readline().strip(); print('hello ' + a, flush=True)"


def _file(code: str, *, interactive: bool = True, tty: bool = False) -> str:
    return header() + workflow_toml(
        "w",
        task_toml("ask", [PY, "-c", code], "shell", retries=0, interactive=interactive, tty=tty),
        phase="p",
        allocation={"cpu_cores": 2, "memory_gb": 2, "agents": 2},
    )


async def _open(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    wf = parse_workflow_text(text, "t.toml")
    cfg = Config()
    cfg.intervals.input_wait_s = 0.5
    rec = Recorder()
    engine, runtime = await open_local(tmp_path / "r.db", wf, wf.specs(tmp_path), config=cfg, subscriber=rec)
    return engine, runtime, rec


@pytest.mark.slow
async def test_a_task_blocked_on_stdin_waits_for_input_and_send_input_unblocks_it(tmp_path: Path) -> None:
    engine, runtime, rec = await _open(tmp_path, _file(ASK))
    try:
        t = engine.state.tasks["w/ask"]
        await drive(engine, lambda: t.awaiting_input, timeout=60, what="the task waiting for input")
        assert t.waiting_input == "blocked reading stdin" and rec.of("TASK_WAITING_INPUT")
        res = await run_command(engine, "/coordination-hub send-input w/ask 'Ada Lovelace'")
        assert res["status"] == "success", res
        assert res["result"]["bytes"] == len("Ada Lovelace\n")
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=60)
        assert any("hello Ada Lovelace" in ln for ln in t.context.last_output)
        sent = rec.of("TASK_INPUT_SENT")
        assert len(sent) == 1 and sent[0].data["text"] == "Ada Lovelace" and sent[0].data["size"] == 13
    finally:
        await runtime.shutdown()
        await engine.close()
    out = subprocess.run(
        opsdeck_cmd("logs", "w/ask", "--db", str(tmp_path / "r.db")),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OPSDECK_HOME": str(tmp_path / "home")},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["name?", "hello Ada Lovelace"]


@pytest.mark.slow
async def test_a_busy_quiet_task_is_not_waiting_and_input_to_a_non_interactive_task_is_refused(
    tmp_path: Path,
) -> None:
    code = "import time; print('working', flush=True); time.sleep(60)"
    engine, runtime, rec = await _open(tmp_path, _file(code, interactive=False))
    try:
        t = engine.state.tasks["w/ask"]
        await drive(engine, lambda: t.status is TaskStatus.RUNNING and t.context.last_output, timeout=60)
        res = await run_command(engine, "/coordination-hub send-input w/ask 'yes'")
        assert res["status"] == "error" and res["error"]["code"] == "NOT_APPLICABLE"
        assert not rec.of("TASK_INPUT_SENT")
        quiet_until = time.monotonic() + 6 * 0.5  # six times the input-wait threshold, with no output
        await drive(engine, lambda: time.monotonic() > quiet_until, timeout=30)
        assert not t.awaiting_input and not rec.of("TASK_WAITING_INPUT")
    finally:
        await runtime.shutdown()
        await engine.close()


@pytest.mark.slow
async def test_a_tty_task_sees_a_terminal_and_its_screen_is_rebuilt(tmp_path: Path) -> None:
    code = (
        "import os, sys; print('tty' if os.isatty(0) and os.isatty(1) else 'no tty', os.get_terminal_size().columns,"
        " flush=True); print('\\x1b[2J\\x1b[Hdrawn at the top', flush=True); sys.stdin.readline()"
    )
    engine, runtime, _rec = await _open(tmp_path, _file(code, tty=True))
    try:
        t = engine.state.tasks["w/ask"]
        await drive(engine, lambda: t.awaiting_input, timeout=60, what="the tty task waiting")
        res = await run_command(engine, "/coordination-hub screen w/ask")
        assert res["status"] == "success", res
        assert res["result"]["lines"][0] == "drawn at the top"
        assert "tty 100" in "\n".join(t.context.last_output)
        res = await run_command(engine, '/coordination-hub send-input w/ask \'{"text": ""}\'')
        assert res["status"] == "success", res
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=60)
    finally:
        await runtime.shutdown()
        await engine.close()
