"""The Ray actor that is one opsdeck agent: the agent host's task runner inside Ray.

One actor per agent, placed by Ray where it has room. It runs each task exactly as
the local runtime's agent host does (the same :class:`~core.runtimes.task_runner.TaskRunner`: a child
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

import asyncio
import os
import socket
import time
from collections import deque
from typing import Any

import psutil
import ray

from .limits import detect, dies_with_parent
from .sampler import Sampler
from .task_runner import RunnerConfig, TaskRunner

REPORTS_KEEP = 5000
"""Reports kept for a console that does not poll (heartbeats first to go past this)."""


class Mailbox:
    """The actor's reports, numbered and kept until a console's ``poll`` acknowledges them."""

    def __init__(self) -> None:
        self.seq = 0
        self.reports: deque[dict[str, Any]] = deque(maxlen=REPORTS_KEEP)
        self.arrived = asyncio.Event()
        self.last_client = time.monotonic()

    def send(self, msg: dict[str, Any]) -> None:
        self.seq += 1
        self.reports.append({**msg, "seq": self.seq})
        self.arrived.set()


class Agent:
    """One agent on a Ray node. Methods are the host protocol: hello, commands, poll."""

    def __init__(self, agent: str, heartbeat_s: float, sample_s: float, grace_s: float, orphan_s: float) -> None:
        self.mechanisms = detect()  # what this node can enforce, probed on this node
        m = self.mechanisms
        self.config = RunnerConfig(
            agent=agent,
            heartbeat_s=heartbeat_s,
            grace_s=grace_s,
            mech_memory=m.memory,
            mech_cpu=m.cpu,
            cgroup_parent=m.cgroup_dir,
            launcher=dies_with_parent(),
            make_dirs=True,  # the console chose the run's directories; they are made on this node
        )
        self.orphan_s = orphan_s
        self.sample_s = sample_s
        self.mailbox = Mailbox()
        self.runner: TaskRunner | None = None
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

    def _started(self) -> TaskRunner:
        """The runner and its loops start on the actor's event loop, at the first call."""
        if self.runner is None:
            self.runner = TaskRunner(self.config, self.mailbox.send)
            self.turn = asyncio.Condition()
            self.sampler = Sampler()
            loop = asyncio.get_running_loop()
            # Held for the actor's life: the loop keeps only weak references to tasks.
            self.loops = [
                loop.create_task(self._heartbeat()),
                loop.create_task(self._sample()),
                loop.create_task(self._orphaned()),
            ]
        return self.runner

    async def hello(self) -> dict[str, Any]:
        """Where this agent is and what it runs: the first thing a console asks."""
        runner = self._started()
        self.mailbox.last_client = time.monotonic()
        return {
            "t": "hello",
            "agent": self.config.agent,
            **self.node,
            "current": runner.current(),
            "done": runner.recent_results(),
            "next_batch": self.next_batch,
            "seq": self.mailbox.seq,
            "limits": {
                **self.mechanisms.describe(),
                "task_dies_with_actor": "setpriv --pdeathsig KILL" if self.config.launcher else "no (setpriv missing)",
            },
        }

    async def commands(self, batch_no: int, batch: list[dict[str, Any]]) -> int:
        """Run a batch of commands once every earlier batch has run (Ray may start them out of order)."""
        runner = self._started()
        assert self.turn is not None
        async with self.turn:
            await self.turn.wait_for(lambda: self.next_batch >= batch_no)
            if batch_no < self.next_batch:
                return self.next_batch  # a batch sent twice (a console retrying): already run
            for msg in batch:
                await runner.command(msg)
            self.next_batch = batch_no + 1
            self.turn.notify_all()
        if runner.done.is_set():
            ray.actor.exit_actor()  # a shutdown command: the task was stopped above
        return self.next_batch

    async def poll(self, after: int, wait_s: float) -> list[dict[str, Any]]:
        """Reports numbered above ``after`` (those up to it are acknowledged and dropped);
        waits up to ``wait_s`` for one to arrive."""
        self._started()
        box = self.mailbox
        box.last_client = time.monotonic()
        while box.reports and box.reports[0]["seq"] <= after:
            box.reports.popleft()
        if not box.reports:
            box.arrived.clear()
            try:
                await asyncio.wait_for(box.arrived.wait(), wait_s)
            except TimeoutError:
                pass
        box.last_client = time.monotonic()
        return [r for r in box.reports if r["seq"] > after]

    async def _heartbeat(self) -> None:
        """A heartbeat every ``heartbeat_s``; idle with no console polling for ``orphan_s``: done."""
        runner = self.runner
        assert runner is not None
        while not runner.done.is_set():
            await asyncio.sleep(self.config.heartbeat_s)
            runner.beat()
            if runner.run is None and time.monotonic() - self.mailbox.last_client > self.orphan_s:
                runner.done.set()  # nobody came (back) for us: do not linger forever

    async def _sample(self) -> None:
        runner = self.runner
        assert runner is not None and self.sampler is not None
        me = os.getpid()
        while not runner.done.is_set():
            await asyncio.sleep(self.sample_s)
            tree = self.sampler.tree(me)
            cpu, mem = self.sampler.system()
            if tree is not None:
                self.mailbox.send(
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
        """When the runner is done (a shutdown, or orphaned): stop its task and leave."""
        runner = self.runner
        assert runner is not None
        await runner.done.wait()
        if runner.run is not None:
            await runner.stop_run(runner.run, "agent shut down")
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


# Applied as a call, not a decorator: mypy sees the ActorClass (its ``options``/``remote``).
AgentActor = ray.remote(max_restarts=0, max_task_retries=0)(Agent)
