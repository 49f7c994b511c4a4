"""Independent checks that a drill's fault is real, read from where it lives.

A drill asks for a fault; these look at the result without trusting the request:
the operating system's process table for killed or stopped agent hosts (psutil, the
process identified by pid and create time; on this machine's processes only, not a
cluster's), the simulated machine's own agent records, the stored checkpoint through verification, and the live projection
against a replay of the log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

import psutil

from ..runtimes.sampler import same_process
from ..verify import verify_store
from .integrity import consistency

if TYPE_CHECKING:
    from ..engine import Engine
    from ..runtimes.sim import SimRuntime


def _pid(engine: Engine, agent_id: str) -> tuple[int, float] | None:
    """The agent host's pid and create time, on a runtime of OS processes."""
    return engine.runtime.host_process(agent_id) if engine.runtime is not None else None


HostState = Literal["running", "starting", "gone"]
"""Where an agent's process is: ``starting`` is a host forked whose pid is not known yet
(its launcher has not answered), which is not gone."""


def agent_host_state(engine: Engine, agent_id: str) -> HostState | None:
    """The agent's process: running, starting or gone (None: this runtime cannot tell)."""
    rt = engine.runtime
    if rt is None:
        return None
    if rt.capabilities.simulated:
        sa = cast("SimRuntime", rt).agents.get(agent_id)
        return "gone" if sa is None or not sa.alive else "running"
    if rt.capabilities.processes and not rt.capabilities.cluster:
        if rt.host_starting(agent_id):
            return "starting"
        proc = _pid(engine, agent_id)
        return "gone" if proc is None or not same_process(*proc) else "running"
    return None


def agent_gone(engine: Engine, agent_id: str) -> bool | None:
    """The agent's process no longer exists; a host still starting is not gone (None:
    this runtime cannot tell)."""
    state = agent_host_state(engine, agent_id)
    return None if state is None else state == "gone"


def agent_cut_off(engine: Engine, agent_id: str) -> bool | None:
    """The agent cannot report: unreachable in the simulation, its host process
    stopped (state T) on the local runtime (None: this runtime cannot tell)."""
    rt = engine.runtime
    if rt is None:
        return None
    if rt.capabilities.simulated:
        sa = cast("SimRuntime", rt).agents.get(agent_id)
        return sa is not None and not sa.reachable
    if rt.capabilities.processes and not rt.capabilities.cluster:
        proc = _pid(engine, agent_id)
        if proc is None or not same_process(*proc):
            return False
        try:
            return psutil.Process(proc[0]).status() == psutil.STATUS_STOPPED
        except psutil.Error:
            return False
    return None


async def checkpoint_damaged(engine: Engine, checkpoint: int) -> dict[str, Any]:
    """Verification (what ``opsdeck verify`` runs) reports the checkpoint bad."""
    assert engine.store is not None
    await engine.flush()
    rep = await verify_store(engine.store, replay_checkpoints=True)
    return {"checkpoint": checkpoint, "fails_verify": checkpoint in rep.checkpoints_bad}


async def projection_drifted(engine: Engine) -> dict[str, Any]:
    """The live projection differs from a replay of the log (from a verified checkpoint)."""
    assert engine.store is not None
    await engine.flush()
    rep = await verify_store(engine.store, replay_checkpoints=True)
    cons = await consistency(engine, trusted=set(rep.checkpoints_ok))
    return {"differs_from_replay": bool(cons["differs_in"]), "differs_in": cons["differs_in"]}
