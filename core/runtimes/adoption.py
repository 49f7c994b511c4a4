"""Which agent host processes a restarted console may adopt, and which it must leave alone.

Processes are identified by pid AND create time (the ``processes`` table), never by
pid alone. A row is trusted only when it carries this run's MAC (keyed by the run's
secret in the private run directory: whoever can write the database cannot forge one)
and the live process still matches it: its start time, our uid and, for a host, its
proof on the row's socket (:meth:`Adoption.prove`: the process holding that socket,
by ``SO_PEERCRED``, is the row's pid, knows the run's secret and says it is the row's
agent). A host's command line proves nothing (a forked host sets its own, and any
process of ours can name itself anything). Nothing else is adopted or signalled: a
root process listed in a database another user wrote is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
from typing import TYPE_CHECKING, Any

import psutil

from ..models import LIVE_AGENT
from .handshake import HANDSHAKE_TIMEOUT_S, ChannelError, console_connect, peer_credentials
from .opening import Proving, tell
from .sampler import same_process
from .wire import messages

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
        self.unanswered: set[str] = set()
        """Agents adopted without a proof: their host held the row's socket as the row's pid
        and did not answer within the handshake's time (stopped or hung)."""

    def row_mac(self, agent_id: str, pid: int, create_time: float, info: dict[str, Any]) -> str:
        """This run's MAC over a ``processes`` row (the run's secret is the key)."""
        fields = {k: info.get(k) for k in ("address", "task_pgid", "task_create_time")}
        body = json.dumps([agent_id, pid, repr(float(create_time)), fields], sort_keys=True)
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()

    def untrusted_row(self, agent_id: str, pid: int, create_time: float, info: dict[str, Any]) -> str | None:
        """Why a stored row may not be acted on, or None: it must carry this run's MAC,
        and a live pid it names must be ours (its proof on its socket follows: :meth:`prove`)."""
        mac = info.get("mac")
        try:
            expected = self.row_mac(agent_id, pid, create_time, info)
        except (TypeError, ValueError):
            return f"pid {pid}: the row is malformed; nothing was signalled"
        if not isinstance(mac, str) or not hmac.compare_digest(mac, expected):
            return f"pid {pid}: the row was not written by this run (no valid MAC); nothing was signalled"
        if same_process(pid, create_time) and not _ours(pid):
            return f"pid {pid} belongs to another user; nothing was signalled"
        tp, tct = info.get("task_pgid"), info.get("task_create_time")
        if tp and tct and same_process(tp, tct) and not _ours(tp):
            return f"task group {tp} belongs to another user; nothing was signalled"
        return None

    async def prove(self, agent_id: str, pid: int, info: dict[str, Any]) -> str | None:
        """Why the live process ``pid`` is not proven to be this run's host for
        ``agent_id``, or None when it is: the process holding the row's socket is ``pid``
        (``SO_PEERCRED``), answers the run's challenge (it knows the secret) and greets as
        ``agent_id`` with its pid. A process that does not answer within the handshake's
        time is not proven, unless it holds the row's socket as the row's pid (a stopped
        or hung host): that one is adopted, and its connection proves it or judges it
        stuck as any host's (left alone, it ran its task on while the task ran again
        elsewhere and a new host took its socket's name)."""
        address = info.get("address")
        if not isinstance(address, str) or not address or address.startswith("@"):
            return f"pid {pid}: the row names no socket to prove itself on; nothing was signalled"
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                reader, writer = await console_connect(address, self.secret, expect_pid=pid)
                try:
                    hello = await anext(messages(reader), None)
                finally:
                    writer.close()
        except ChannelError as exc:
            return f"pid {pid} did not prove itself as this run's agent host: {exc}; nothing was signalled"
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:  # TimeoutError is an OSError
            if isinstance(exc, TimeoutError) and await _holds_socket(address, pid):
                self.unanswered.add(agent_id)
                return None
            why = str(exc) or type(exc).__name__
            return f"pid {pid} did not answer as this run's agent host on {address} ({why}); nothing was signalled"
        if (
            not isinstance(hello, dict)
            or hello.get("t") != "hello"
            or hello.get("agent") != agent_id
            or hello.get("pid") != pid
        ):
            return f"pid {pid} on {address} is not this run's agent host for {agent_id}; nothing was signalled"
        return None

    async def reconcile(self, engine: Engine) -> None:
        """Sort the agents the log counts as live into adoptable or gone; end what is
        left of processes the log no longer counts as live. Every live host a trusted
        row names proves itself first (all at once: one handshake's time at most), said
        through :data:`~.opening.PROVING` when it starts and when it ends."""
        stored = await engine.store.processes() if engine.store is not None else []
        state = engine.state
        checks = [self.untrusted_row(agent_id, pid, ct, info) for agent_id, pid, ct, info in stored]
        live = [why is None and same_process(pid, ct) for (_, pid, ct, _), why in zip(stored, checks, strict=True)]
        proving = Proving(sum(live)) if any(live) else None
        if proving is not None:
            tell(proving)
        proofs = await asyncio.gather(
            *(
                self.prove(agent_id, pid, info) if alive else asyncio.sleep(0, result=why)
                for (agent_id, pid, _, info), why, alive in zip(stored, checks, live, strict=True)
            )
        )
        if proving is not None:
            adopted = sum(1 for alive, why in zip(live, proofs, strict=True) if alive and why is None)
            silent = sum(1 for agent_id, *_ in stored if agent_id in self.unanswered)
            proving.ended(adopted - silent, silent)
            tell(proving)
        for (agent_id, pid, ct, info), why in zip(stored, proofs, strict=True):
            a = state.agents.get(agent_id)
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


async def _holds_socket(address: str, pid: int) -> bool:
    """Is the unix socket at ``address`` held by ``pid`` of ours (``SO_PEERCRED``: a
    connection waits in a stopped listener's backlog, so this needs no answer)?"""
    try:
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_unix_connection(address)
    except (OSError, ValueError):  # TimeoutError included: a full backlog proves nothing
        return False
    try:
        peer, uid, _ = peer_credentials(writer)
    except OSError:
        return False
    finally:
        writer.close()
    return peer == pid and uid == os.getuid()


def _ours(pid: int) -> bool:
    """Is ``pid`` a process of this user (its real uid)?"""
    try:
        return psutil.Process(pid).uids().real == os.getuid()
    except psutil.Error:
        return False
