"""The Ray actor that is one opsdeck agent: the agent host's task runner inside Ray.

One actor per agent, placed by Ray where it has room. It runs each task exactly as
the local runtime's agent host does (:class:`core.runtimes.agent_host.Host`: a child
in its own process group on the actor's node, the ``OPSDECK_PROGRESS`` /
``OPSDECK_PARTIAL`` lines, the resume variables, the limits of
:mod:`core.runtimes.limits` detected on that node, the timeout and RSS watchdog), so
pause is SIGSTOP to the group, resume SIGCONT, stop SIGTERM then SIGKILL.

Only the transport differs. The host's reports are numbered and kept here until the
engine acknowledges them (``poll(after)``), so a console that was cut off, or a new
console that adopts this actor after a restart, gets everything it missed. Commands
arrive in numbered batches (``commands(seq, batch)``) and run in that order, even
though Ray starts an async actor's calls concurrently. Every ``sample_s`` the actor
adds a ``usage`` report: psutil of its own process tree (the Ray worker, the task and
what the task started) and of the node.

The module imports only ray, psutil and the host's own modules, so a worker on any
node starts it without the engine's dependencies.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time
from collections import deque
from typing import Any

import psutil
import ray

from .agent_host import Host
from .limits import detect, dies_with_parent
from .sampler import Sampler

REPORTS_KEEP = 5000
"""Reports kept for a console that does not poll (heartbeats first to go past this)."""


class _ActorHost(Host):
    """The agent host whose ``send`` numbers each report and keeps it for ``poll``."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.launcher = dies_with_parent()
        self.seq = 0
        self.reports: deque[dict[str, Any]] = deque(maxlen=REPORTS_KEEP)
        self.arrived = asyncio.Event()
        self.ever_connected = True  # a console created this actor; orphan_s counts from its last poll

    def channel_secret(self, args: argparse.Namespace) -> bytes:
        return b""  # no socket: Ray carries the calls (and authenticates them with its cluster token)

    async def launch(self, r: Any) -> None:
        """The run's shared directory and its own TMPDIR (paths the console chose) are made here, on the task's node."""
        env = r.msg.get("env") or {}
        for tmp in (env.get("OPSDECK_RUN_DIR"), env.get("TMPDIR")):
            if not tmp:
                continue
            try:
                os.makedirs(tmp, mode=0o700, exist_ok=True)
            except OSError as exc:
                self.finish(
                    r,
                    {
                        "t": "failed",
                        "task": r.task,
                        "attempt": r.attempt,
                        "rc": None,
                        "error": f"could not create its temp directory on {socket.gethostname()}: {exc}",
                        "output": [],
                    },
                )
                return
        await super().launch(r)

    def send(self, msg: dict[str, Any]) -> None:
        self.seq += 1
        self.reports.append({**msg, "seq": self.seq})
        self.arrived.set()


class Agent:
    """One agent on a Ray node. Methods are the host protocol: hello, commands, poll."""

    def __init__(self, agent: str, heartbeat_s: float, sample_s: float, grace_s: float, orphan_s: float) -> None:
        self.mechanisms = detect()  # what this node can enforce, probed on this node
        m = self.mechanisms
        self.args = argparse.Namespace(
            agent=agent,
            socket="",
            heartbeat=heartbeat_s,
            grace=grace_s,
            orphan=orphan_s,
            memory_mechanism=m.memory,
            cpu_mechanism=m.cpu,
            cgroup=m.cgroup_dir,
            output_dir=None,
        )
        self.sample_s = sample_s
        self.host: _ActorHost | None = None
        self.next_batch = 0
        self.turn: asyncio.Condition | None = None
        self.sampler: Sampler | None = None
        self.loops: list[asyncio.Task[None]] = []
        self.node = {
            "hostname": socket.gethostname(),
            "ip": ray.util.get_node_ip_address(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "create_time": psutil.Process().create_time(),
            "boot_time": psutil.boot_time(),
        }

    def _started(self) -> _ActorHost:
        """The host and its loops start on the actor's event loop, at the first call."""
        if self.host is None:
            self.host = _ActorHost(self.args)
            self.turn = asyncio.Condition()
            self.sampler = Sampler()
            loop = asyncio.get_running_loop()
            # Held for the actor's life: the loop keeps only weak references to tasks.
            self.loops = [
                loop.create_task(self.host.heartbeat()),
                loop.create_task(self._sample()),
                loop.create_task(self._orphaned()),
            ]
        return self.host

    async def hello(self) -> dict[str, Any]:
        """Where this agent is and what it runs: the first thing a console asks."""
        h = self._started()
        h.last_client = time.monotonic()
        return {
            "t": "hello",
            "agent": h.agent,
            **self.node,
            "current": h.current(),
            "done": list(h.results.values())[-32:],
            "next_batch": self.next_batch,
            "seq": h.seq,
            "limits": {
                **self.mechanisms.describe(),
                "task_dies_with_actor": "setpriv --pdeathsig KILL" if h.launcher else "no (setpriv missing)",
            },
        }

    async def commands(self, batch_no: int, batch: list[dict[str, Any]]) -> int:
        """Run a batch of commands once every earlier batch has run (Ray may start them out of order)."""
        h = self._started()
        assert self.turn is not None
        async with self.turn:
            await self.turn.wait_for(lambda: self.next_batch >= batch_no)
            if batch_no < self.next_batch:
                return self.next_batch  # a batch sent twice (a console retrying): already run
            for msg in batch:
                await h.command(msg)
            self.next_batch = batch_no + 1
            self.turn.notify_all()
        if h.done.is_set():
            ray.actor.exit_actor()  # a shutdown command: the task was stopped above
        return self.next_batch

    async def poll(self, after: int, wait_s: float) -> list[dict[str, Any]]:
        """Reports numbered above ``after`` (those up to it are acknowledged and dropped);
        waits up to ``wait_s`` for one to arrive."""
        h = self._started()
        h.last_client = time.monotonic()
        while h.reports and h.reports[0]["seq"] <= after:
            h.reports.popleft()
        if not h.reports:
            h.arrived.clear()
            try:
                await asyncio.wait_for(h.arrived.wait(), wait_s)
            except TimeoutError:
                pass
        h.last_client = time.monotonic()
        return [r for r in h.reports if r["seq"] > after]

    async def _sample(self) -> None:
        h = self.host
        assert h is not None and self.sampler is not None
        me = os.getpid()
        while not h.done.is_set():
            await asyncio.sleep(self.sample_s)
            tree = self.sampler.tree(me)
            cpu, mem = self.sampler.system()
            if tree is not None:
                h.send(
                    {
                        "t": "usage",
                        "cpu_pct": tree.cpu_pct,
                        "rss_mb": tree.rss_mb,
                        "processes": tree.processes,
                        "node_cpu_pct": cpu,
                        "node_memory_pct": mem,
                        "node": self.node["ip"],
                    }
                )
            self.sampler.forget_dead()

    async def _orphaned(self) -> None:
        """No console polled for ``orphan_s`` while idle: the host loop sets ``done``; leave."""
        h = self.host
        assert h is not None
        await h.done.wait()
        if h.run is not None:
            await h.stop_run(h.run, "agent shut down")
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


# Applied as a call, not a decorator: mypy sees the ActorClass (its ``options``/``remote``).
AgentActor = ray.remote(max_restarts=0, max_task_retries=0)(Agent)
