"""What an agent host process loads to start: each run starts one per agent (20 at
once for a pool of 20), so every module it does not use costs that many times over."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from core.private import private_dir
from core.runtimes.handshake import console_connect, load_or_create_secret
from core.runtimes.wire import encode

from .conftest import REPO, run_python
from .test_local_security import start_host

NOT_IN_A_HOST = ("pydantic", "pyte", "wcwidth", "aiohttp", "aiosqlite", "textual", "core.engine", "core.models")
"""Modules an agent host never uses: the engine and its models, the console's screen
emulator, the control endpoint's HTTP server."""


def _loaded_after(code: str) -> list[str]:
    probe = (
        f"import sys\n{code}\n"
        f"print(','.join(m for m in {NOT_IN_A_HOST!r} if m in sys.modules or any(k.startswith(m + '.') for k in sys.modules)))\n"
    )
    out = run_python(probe, timeout=60)
    assert out.returncode == 0, out.stderr
    return [m for m in out.stdout.strip().split(",") if m]


def test_an_agent_host_starts_without_the_engine_pydantic_or_the_screen_emulator() -> None:
    assert _loaded_after("import core.runtimes.agent_host") == []


def test_the_probe_sees_a_module_loaded() -> None:
    """The case that must not pass: drawing a task's screen (the console's work) loads
    the emulator, and the probe reports it."""
    seen = _loaded_after("from core.runtimes.terminal import render\nrender(b'hello')")
    assert "pyte" in seen and "wcwidth" in seen


async def test_a_host_told_to_shut_down_exits_0_and_removes_its_socket(tmp_path: Path) -> None:
    """The host ends with ``os._exit`` once its main has returned (no interpreter
    teardown): its exit status and its clean-up are still those of its main."""
    proc, sock, secret = start_host(tmp_path / "run")
    try:
        reader, writer = await console_connect(str(sock), secret, expect_pid=proc.pid)
        hello = json.loads(await asyncio.wait_for(reader.readline(), 20))
        assert hello["t"] == "hello" and hello["pid"] == proc.pid
        writer.write(encode({"op": "shutdown"}))
        await writer.drain()
        assert await asyncio.to_thread(proc.wait, 20) == 0
        assert not sock.exists()
        writer.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_host_that_cannot_listen_exits_2_with_the_reason_in_its_log(tmp_path: Path) -> None:
    """The case that must not end in 0: a path taken by something not a socket of ours
    is refused; the status (2) and the message still reach the console's side."""
    run_dir = tmp_path / "run"
    private_dir(run_dir)
    load_or_create_secret(run_dir)
    taken = run_dir / "agent_001.sock"
    taken.write_text("not a socket")
    log = run_dir / "agent_001.log"
    with open(log, "ab") as out:
        rc = subprocess.run(
            [sys.executable, "-m", "core.runtimes.agent_host", "--agent", "agent_001", "--socket", str(taken)]
            + ["--secret-file", str(run_dir / "secret")],
            stdout=out,
            stderr=out,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            timeout=60,
        ).returncode
    assert rc == 2
    assert "cannot listen" in log.read_text() and taken.read_text() == "not a socket"
