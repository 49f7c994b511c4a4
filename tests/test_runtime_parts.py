"""The real runtimes are composed of shared parts, and the Ray runtime says what it cannot do.

The local and the Ray runtime hold the same task dispatch, report handling and
supervision (:mod:`core.runtimes.fleet` and its parts) and answer the contract's shared
operations through them (:class:`core.runtimes.processes.ProcessRuntime`, a base of
defaults that is no runtime itself); neither inherits the other.
A fault the Ray runtime cannot inject (stopping an actor's worker on another node)
raises NotApplicable and signals nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Generic

import psutil
import pytest

from core.clock import VirtualClock
from core.runtimes import NotApplicable
from core.runtimes.dispatch import Dispatch
from core.runtimes.local import LocalRuntime
from core.runtimes.processes import ProcessRuntime
from core.runtimes.reports import Reports
from core.runtimes.sim import SimRuntime
from core.runtimes.supervise import Supervisor

from .conftest import wait_for

ray_mod = pytest.importorskip("ray", reason="the Ray runtime's checks need Ray (pip install -e '.[ray]')")

from core.runtimes.ray import RayCluster, RayRuntime  # noqa: E402 - after the skip: Ray is optional
from core.runtimes.ray_actors import ActorHost  # noqa: E402


def test_the_ray_runtime_holds_the_shared_parts_and_inherits_no_runtime(tmp_path: Path) -> None:
    assert not issubclass(RayRuntime, LocalRuntime) and not issubclass(LocalRuntime, RayRuntime)
    shared = set(RayRuntime.__mro__) & set(LocalRuntime.__mro__)
    assert shared == {ProcessRuntime, Generic, object}, "the two share the base of defaults and nothing else"
    for what in ("spawn_agent", "prepare", "attach", "describe", "shutdown", "fail_agent", "partition"):
        assert not hasattr(ProcessRuntime, what), f"{what} differs per runtime: each writes its own"
    local = LocalRuntime(tmp_path / "run")
    ray_rt = RayRuntime(tmp_path / "r.db", RayCluster(None))  # nothing connects until opened
    for rt in (local, ray_rt):
        assert type(rt.dispatch) is Dispatch and type(rt.reports) is Reports and type(rt.supervisor) is Supervisor
        assert rt.dispatch.fleet is rt.fleet and rt.reports.fleet is rt.fleet and rt.supervisor.fleet is rt.fleet


def _actor(agent: str, proc: psutil.Process, local_node: bool) -> ActorHost:
    return ActorHost(agent, f"ns/{agent}", pid=proc.pid, create_time=proc.create_time(), local_node=local_node)


def test_cutting_off_an_actor_on_another_node_is_refused_and_stops_nothing(
    tmp_path: Path, sleeper: psutil.Process
) -> None:
    rt = RayRuntime(tmp_path / "r.db", RayCluster(None))
    rt.fleet.hosts["agent_001"] = _actor("agent_001", sleeper, local_node=True)
    rt.fleet.hosts["agent_002"] = _actor("agent_002", sleeper, local_node=False)
    with pytest.raises(NotApplicable, match="cannot cut off agent_002"):
        rt.partition(["agent_001", "agent_002"])
    assert sleeper.status() != psutil.STATUS_STOPPED, "a refused request stopped nothing, the local one included"


def test_cutting_off_an_actor_on_this_machine_stops_its_worker_and_heal_continues_it(
    tmp_path: Path, sleeper: psutil.Process
) -> None:
    rt = RayRuntime(tmp_path / "r.db", RayCluster(None))
    rt.fleet.hosts["agent_001"] = _actor("agent_001", sleeper, local_node=True)
    rt.partition(["agent_001"])
    try:
        wait_for(lambda: sleeper.status() == psutil.STATUS_STOPPED, "the worker stopped (T)", 10, poll=0.02)
    finally:
        rt.heal()
    wait_for(lambda: sleeper.status() == psutil.STATUS_SLEEPING, "the worker continued (S)", 10, poll=0.02)


def test_an_actors_host_process_is_known_only_on_this_machine(tmp_path: Path, sleeper: psutil.Process) -> None:
    rt = RayRuntime(tmp_path / "r.db", RayCluster(None))
    rt.fleet.hosts["agent_001"] = _actor("agent_001", sleeper, local_node=True)
    rt.fleet.hosts["agent_002"] = _actor("agent_002", sleeper, local_node=False)
    assert rt.host_process("agent_001") == (sleeper.pid, sleeper.create_time())
    assert rt.host_process("agent_002") is None, "a pid on another node names nothing here"
    assert rt.host_process("agent_003") is None
    assert SimRuntime(VirtualClock()).host_process("agent_001") is None
