"""An agent host that starts slowly is not a dead one. On a loaded machine a host's
start (Python and its imports) waits for the CPU for longer than any fixed wall-clock
limit; killing it as dead fails the agent, and its replacement starts as slowly: the
cascade of replacements failing one after another. The console judges a start by the
CPU the host used, and still kills a host that burns CPU without ever listening."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from core.models import AgentStatus
from core.runtimes import local_hosts
from core.runtimes.host_launcher import HostLauncher
from tests.local_harness import PY, drive, header, open_text, task_toml, wf_status, workflow_toml

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")

ONE_TASK = header(pools='[[pools]]\nname = "workers"\nspecializations = ["shell"]\nsize = 1\n') + workflow_toml(
    "w",
    task_toml("t", [PY, "-c", "print('done')"], "shell"),
    phase="p",
    allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
)


def _wrapper(tmp_path: Path, body: str) -> str:
    """An executable that stands in for the Python the hosts are started with."""
    p = tmp_path / "host-python"
    p.write_text(f"#!/bin/sh\n{body}\n")
    p.chmod(0o700)
    return str(p)


async def _open_with_host_python(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wrapper: str):  # type: ignore[no-untyped-def]
    """Open the fleet with its first hosts started through ``wrapper``, each as a process
    of its own (no launcher: its slow start is judged by ``LAUNCH_WAIT_S``, in
    test_local_launcher); replacements start with the real interpreter."""

    def no_launcher(self: HostLauncher) -> None:
        self.broken = "not used by this test"

    monkeypatch.setattr(HostLauncher, "start", no_launcher)
    with monkeypatch.context() as m:
        m.setattr(sys, "executable", wrapper)
        return await open_text(tmp_path / "r.db", ONE_TASK, tmp_path)


async def test_a_host_waiting_for_the_cpu_is_not_taken_for_a_dead_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The host is stopped before it listens (as a starved process is, for longer than
    the wall-clock limit), then continued: its agent does not fail and runs the task."""
    monkeypatch.setattr(local_hosts, "CONNECT_TIMEOUT_S", 0.5)
    stopped = _wrapper(tmp_path, f'kill -STOP $$\nexec "{sys.executable}" "$@"')
    engine, runtime, rec = await _open_with_host_python(monkeypatch, tmp_path, stopped)
    try:
        (h,) = runtime.hosts.values()
        assert h.pid is not None
        proc = psutil.Process(h.pid)
        await drive(engine, lambda: proc.status() == psutil.STATUS_STOPPED, what="the host stopped itself")
        # Well past the wall-clock limit (judged once a second after it), using no CPU.
        waited = await drive(
            engine,
            lambda: rec.of("AGENT_ERROR") or time.monotonic() - h.spawned_at > 3.0,
            timeout=30,
        )
        assert waited is True, f"a host still starting was failed: {rec.of('AGENT_ERROR')}"
        assert proc.is_running() and not h.dead
        proc.send_signal(signal.SIGCONT)
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=60)
        assert not rec.of("AGENT_ERROR")
        assert [e.data["agent"] for e in rec.of("TASK_COMPLETED")] == [h.agent]
        assert engine.state.agents[h.agent].status is not AgentStatus.FAILED
    finally:
        for p in psutil.Process().children(recursive=True):  # a failure above may leave it stopped
            p.send_signal(signal.SIGCONT)
        await runtime.shutdown()
        await engine.close()


async def test_a_host_that_burns_cpu_without_listening_is_killed_and_replaced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The case that must still fail: a host that uses the CPU and never answers is stuck.
    It is killed (its process is gone), the reason gives the CPU it used, and the
    replacement runs the task."""
    monkeypatch.setattr(local_hosts, "CONNECT_TIMEOUT_S", 0.5)
    monkeypatch.setattr(local_hosts, "CONNECT_CPU_S", 0.3)
    spinning = _wrapper(tmp_path, f'exec "{sys.executable}" -c "while True: pass"')
    engine, runtime, rec = await _open_with_host_python(monkeypatch, tmp_path, spinning)
    try:
        (h,) = runtime.hosts.values()
        assert h.pid is not None
        first = psutil.Process(h.pid)
        await drive(engine, lambda: rec.of("AGENT_ERROR"), timeout=60, what="the stuck host failed")
        err = rec.of("AGENT_ERROR")[0].data
        assert err["agent"] == h.agent and "did not answer on its socket" in err["error"]
        assert "CPU s used" in err["error"]
        assert h.dead
        first.wait(10)  # killed: it ends (reaped by the runtime or here)
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=60)
        assert [e.data["agent"] for e in rec.of("TASK_COMPLETED")] != [h.agent]
    finally:
        await runtime.shutdown()
        await engine.close()
