"""The process-table check of a drill tells a host still starting from a host gone.

Agent hosts are forked by a launcher (:mod:`core.runtimes.host_launcher`): until it
answers, a host has no pid, and reading that as "gone" would confirm a fault that did
not happen.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import psutil

from core.incidents.faultcheck import agent_gone, agent_host_state
from core.runtimes.local import LocalRuntime
from core.runtimes.local_hosts import ProcessHost

if TYPE_CHECKING:
    from core.engine import Engine


def _engine(rt: LocalRuntime) -> Engine:
    return cast("Engine", SimpleNamespace(runtime=rt))


def test_a_host_without_a_pid_yet_is_starting_not_gone(tmp_path: Path) -> None:
    rt = LocalRuntime(tmp_path / "run")
    rt.fleet.hosts["agent_001"] = ProcessHost("agent_001", "sock")  # forked, the launcher not answered
    eng = _engine(rt)
    assert agent_host_state(eng, "agent_001") == "starting"
    assert agent_gone(eng, "agent_001") is False


def test_a_host_that_ended_or_was_never_held_is_gone(tmp_path: Path, sleeper: psutil.Process) -> None:
    rt = LocalRuntime(tmp_path / "run")
    rt.fleet.hosts["agent_001"] = ProcessHost("agent_001", "sock", pid=sleeper.pid, create_time=sleeper.create_time())
    rt.fleet.hosts["agent_002"] = ProcessHost("agent_002", "sock", dead=True)  # ended before its pid was known
    eng = _engine(rt)
    assert agent_host_state(eng, "agent_001") == "running" and agent_gone(eng, "agent_001") is False
    assert agent_host_state(eng, "agent_002") == "gone" and agent_gone(eng, "agent_002") is True
    assert agent_gone(eng, "agent_003") is True, "an agent this runtime never held has no process"
    sleeper.kill()
    sleeper.wait(10)
    assert agent_host_state(eng, "agent_001") == "gone" and agent_gone(eng, "agent_001") is True
