"""Which agent host processes a restarted console may adopt, and which it must leave alone.

Processes are identified by pid AND create time (the ``processes`` table), never by
pid alone. A row is trusted only when it carries this run's MAC (keyed by the run's
secret in the private run directory: whoever can write the database cannot forge one)
and the live process still matches it: its start time, our uid and, for a host, its
command line (``core.runtimes.agent_host --agent ID``). Nothing else is adopted or
signalled: a root process listed in a database another user wrote is left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import os
import signal
from typing import TYPE_CHECKING, Any

import psutil

from ..models import LIVE_AGENT
from .sampler import same_process

if TYPE_CHECKING:
    from ..engine import Engine


class Adoption:
    """The run's secret, the rows it signed, and what was found on opening."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.adoptable: dict[str, tuple[int, float, dict[str, Any]]] = {}
        """Live agents whose host outlived the previous console: (pid, create time, row)."""
        self.untrusted: dict[str, str] = {}
        """Agents whose ``processes`` row was not trusted, and why (nothing was signalled)."""
        self.security_failures: list[str] = []
        """Peers refused on an agent's socket (another uid, another process, no secret)."""

    def row_mac(self, agent_id: str, pid: int, create_time: float, info: dict[str, Any]) -> str:
        """This run's MAC over a ``processes`` row (the run's secret is the key)."""
        fields = {k: info.get(k) for k in ("address", "task_pgid", "task_create_time")}
        body = json.dumps([agent_id, pid, repr(float(create_time)), fields], sort_keys=True)
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()

    def untrusted_row(self, agent_id: str, pid: int, create_time: float, info: dict[str, Any]) -> str | None:
        """Why a stored row may not be acted on, or None: it must carry this run's MAC,
        and a live pid it names must be ours and (a host) run our agent host."""
        mac = info.get("mac")
        try:
            expected = self.row_mac(agent_id, pid, create_time, info)
        except (TypeError, ValueError):
            return f"pid {pid}: the row is malformed; nothing was signalled"
        if not isinstance(mac, str) or not hmac.compare_digest(mac, expected):
            return f"pid {pid}: the row was not written by this run (no valid MAC); nothing was signalled"
        if same_process(pid, create_time) and not _runs_agent_host(pid, agent_id):
            return (
                f"pid {pid} is not this run's agent host for {agent_id} (owner or command line); nothing was signalled"
            )
        tp, tct = info.get("task_pgid"), info.get("task_create_time")
        if tp and tct and same_process(tp, tct) and not _ours(tp):
            return f"task group {tp} belongs to another user; nothing was signalled"
        return None

    async def reconcile(self, engine: Engine) -> None:
        """Sort the agents the log counts as live into adoptable or gone; end what is
        left of processes the log no longer counts as live."""
        stored = await engine.store.processes() if engine.store is not None else []
        state = engine.state
        for agent_id, pid, ct, info in stored:
            a = state.agents.get(agent_id)
            why = self.untrusted_row(agent_id, pid, ct, info)
            if why is not None:
                self.untrusted[agent_id] = why
                self.security_failures.append(f"processes row of {agent_id}: {why}")
                if engine.store is not None:
                    async with engine.store_lock:
                        await engine.store.forget_process(agent_id)
                continue
            alive = same_process(pid, ct)
            if alive and a is not None and a.status in LIVE_AGENT:
                self.adoptable[agent_id] = (pid, ct, info)
                continue
            if alive:  # a host the log no longer counts as live: do not leave it behind
                kill_verified(pid, ct, signal.SIGTERM)
            killpg_verified(info.get("task_pgid"), info.get("task_create_time"))
            if engine.store is not None:
                async with engine.store_lock:  # one transaction at a time on the shared connection
                    await engine.store.forget_process(agent_id)


def kill_verified(pid: int, create_time: float, sig: int) -> None:
    """Signal ``pid`` only while it is still the process started at ``create_time``."""
    if same_process(pid, create_time):
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def killpg_verified(pgid: int | None, create_time: float | None) -> None:
    """SIGKILL a task's process group only while its leader is the one recorded."""
    if pgid and create_time and same_process(pgid, create_time):
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


def _ours(pid: int) -> bool:
    """Is ``pid`` a process of this user (its real uid)?"""
    try:
        return psutil.Process(pid).uids().real == os.getuid()
    except psutil.Error:
        return False


def _runs_agent_host(pid: int, agent_id: str) -> bool:
    """Is ``pid`` ours and running ``core.runtimes.agent_host --agent agent_id``?"""
    try:
        proc = psutil.Process(pid)
        argv = proc.cmdline()
        uid = proc.uids().real
    except psutil.Error:
        return False
    if uid != os.getuid() or "core.runtimes.agent_host" not in argv:
        return False
    return any(a == "--agent" and b == agent_id for a, b in itertools.pairwise(argv))
