"""The local runtime: agents are real OS processes on this machine.

Each agent is an :mod:`agent host <core.runtimes.agent_host>` process in its own
session, reached over a unix socket in the run's private directory next to the
database (0700; a short private directory when that path would be too long). Every
connection is authenticated both ways (:mod:`.handshake`: the peer's uid, and the
run's secret) before the console sends anything. The engine drives this
runtime exactly as it drives the simulated one; the facts come from the hosts'
reports (started, heartbeat with progress, exit status) and from psutil.

Three rules keep a run correct across crashes:

* Write-ahead: a command reaches a host only after the engine has flushed the
  events that led to it, so a host never runs an assignment the log does not hold.
* The projection is the truth: on (re)connection a host says what it runs and what
  it finished; a finished run the log has not recorded is applied, a run the log
  does not assign is stopped, and ``start`` is idempotent per (task, attempt) on
  the host, so no completed task runs again.
* Processes are identified by pid AND create time (the ``processes`` table), never
  by pid alone: a restarted console adopts live hosts and fails the gone ones.
  A row is trusted only when it carries this run's MAC (keyed by the run's secret in
  the private run directory: whoever can write the database cannot forge one) and
  the live process still matches it: its start time, our uid and, for a host, its
  command line (``core.runtimes.agent_host --agent ID``). Nothing else is adopted or
  signalled: a root process listed in a database another user wrote is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from pydantic import ValidationError

from ..clock import WallClock
from ..config import Config
from ..models import LIVE_AGENT, Agent, AgentStatus, Band, Task, TaskSpec, TaskStatus, WorkflowSpec
from ..private import PrivateError, open_private, private_dir, socket_path
from ..projection import task_key
from ..usage.models import UsageReport
from . import Capabilities, NotApplicable, RuntimeSink
from .handshake import SECRET_FILE, ChannelError, console_connect, load_or_create_secret
from .limits import NICE_BY_BAND, Mechanisms, detect
from .sampler import Sampler, TaskMeasure, same_process
from .task_io import TaskIO
from .wire import MAX_LINE, OVERSIZE, encode, messages

if TYPE_CHECKING:
    from ..engine import Engine
    from ..workflow_file import WorkflowFile

CONNECT_TIMEOUT_S = 15.0


@dataclass
class _Host:
    """What the console knows about one agent's host process."""

    agent: str
    address: str
    pid: int | None = None
    create_time: float | None = None
    popen: subprocess.Popen[bytes] | None = None
    writer: asyncio.StreamWriter | None = None
    outbox: list[dict[str, Any]] = field(default_factory=list)
    conn: asyncio.Task[None] | None = None
    dead: bool = False
    retiring: bool = False
    connected_once: bool = False
    lost: bool = False
    task_pgid: int | None = None
    task_create_time: float | None = None
    spawned_at: float = 0.0
    last_report: float = 0.0


class LocalRuntime:
    """Real agents: host processes, their task process groups, psutil measurements."""

    name = "local"
    capabilities = Capabilities(processes=True, simulated=False, cluster=False)

    def __init__(
        self,
        run_dir: str | Path,
        heartbeat_s: float = 1.0,
        sample_s: float = 1.0,
        stop_grace_s: float = 5.0,
        orphan_s: float = 3600.0,
        mechanisms: Mechanisms | None = None,
    ) -> None:
        self.run_dir = private_dir(run_dir)
        self.secret = load_or_create_secret(self.run_dir)
        self.security_failures: list[str] = []
        """Peers refused on an agent's socket (another uid, another process, no secret)."""
        self.heartbeat_s = heartbeat_s
        self.sample_s = sample_s
        self.stop_grace_s = stop_grace_s
        self.orphan_s = orphan_s
        self.mechanisms = mechanisms or detect()
        self.clock = WallClock()
        self.sink: RuntimeSink | None = None
        self.engine: Engine | None = None
        self.specs: dict[str, TaskSpec] = {}
        self.hosts: dict[str, _Host] = {}
        self.sampler = Sampler()
        self.closing = False
        self.adopted: list[str] = []
        self.recovered: list[str] = []
        self._adoptable: dict[str, tuple[int, float, dict[str, Any]]] = {}
        self.untrusted: dict[str, str] = {}
        """Agents whose ``processes`` row was not trusted, and why (nothing was signalled)."""
        self._store_ops: list[tuple[str, tuple[Any, ...]]] = []
        self._wake: asyncio.Event | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._limit_waits: dict[tuple[str, str], list[asyncio.Future[dict[str, Any]]]] = {}
        self.io = TaskIO(self)
        """The tasks' input, output files and worktrees."""

    # -- preparing and wiring -------------------------------------------------------
    async def prepare(self, engine: Engine) -> None:
        """Before attach: learn task commands from the log, sort stored hosts into adopt/fail."""
        self.engine = engine
        if engine.store is not None:
            for ev in await engine.store.read_events(types=["WORKFLOW_CREATED"]):
                self._learn(ev.data["spec"])
        engine.observe(self._on_event)  # task commands are learned as workflows are folded
        await self._reconcile(engine)
        for a in sorted(engine.state.agents.values(), key=lambda a: a.id):
            if a.status in LIVE_AGENT and a.id not in self._adoptable:
                self.recovered.append(a.id)
                why = self.untrusted.get(a.id)
                engine.agent_failed(a.id, self.gone_reason if why is None else f"not adopted: {why}")

    gone_reason = "agent process gone while the console was down"

    async def _reconcile(self, engine: Engine) -> None:
        """Sort the agents the log counts as live into adoptable (``_adoptable``) or gone;
        end what is left of processes the log no longer counts as live."""
        stored = await engine.store.processes() if engine.store is not None else []
        state = engine.state
        for agent_id, pid, ct, info in stored:
            a = state.agents.get(agent_id)
            why = self._untrusted_row(agent_id, pid, ct, info)
            if why is not None:
                self.untrusted[agent_id] = why
                self.security_failures.append(f"processes row of {agent_id}: {why}")
                if engine.store is not None:
                    async with engine.store_lock:
                        await engine.store.forget_process(agent_id)
                continue
            alive = same_process(pid, ct)
            if alive and a is not None and a.status in LIVE_AGENT:
                self._adoptable[agent_id] = (pid, ct, info)
                continue
            if alive:  # a host the log no longer counts as live: do not leave it behind
                _kill_verified(pid, ct, signal.SIGTERM)
            tp, tct = info.get("task_pgid"), info.get("task_create_time")
            if tp and tct and same_process(tp, tct):
                with contextlib.suppress(OSError):
                    os.killpg(tp, signal.SIGKILL)
            if engine.store is not None:
                async with engine.store_lock:  # one transaction at a time on the shared connection
                    await engine.store.forget_process(agent_id)

    def _row_mac(self, agent_id: str, pid: int, create_time: float, info: dict[str, Any]) -> str:
        """This run's MAC over a ``processes`` row (the run's secret is the key)."""
        fields = {k: info.get(k) for k in ("address", "task_pgid", "task_create_time")}
        body = json.dumps([agent_id, pid, repr(float(create_time)), fields], sort_keys=True)
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()

    def _untrusted_row(self, agent_id: str, pid: int, create_time: float, info: dict[str, Any]) -> str | None:
        """Why a stored row may not be acted on, or None: it must carry this run's MAC,
        and a live pid it names must be ours and (a host) run our agent host."""
        mac = info.get("mac")
        try:
            expected = self._row_mac(agent_id, pid, create_time, info)
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

    def _learn(self, spec_data: dict[str, Any]) -> None:
        spec = WorkflowSpec.model_validate(spec_data)
        for phase in spec.phases:
            for t in phase.tasks:
                self.specs[task_key(spec.id, t.id)] = t

    def _on_event(self, ev: Any) -> None:
        if ev.type == "WORKFLOW_CREATED":
            self._learn(ev.data["spec"])

    def attach(self, sink: RuntimeSink) -> None:
        """Start reporting to ``sink`` (after :meth:`prepare`, which gave the engine)."""
        self.sink = sink
        if not self._loops:
            loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._loops = [loop.create_task(self._pump()), loop.create_task(self._sample_loop())]

    def now(self) -> float:
        return self.clock.now()

    def describe(self) -> dict[str, Any]:
        """What the console shows about this runtime: the limit mechanisms in force."""
        return {
            "runtime": self.name,
            "cluster": self.capabilities.cluster,
            **self.mechanisms.describe(),
            "heartbeat_s": self.heartbeat_s,
            "sample_s": self.sample_s,
            "stop_grace_s": self.stop_grace_s,
        }

    def limits_line(self) -> str:
        """One line for the operator: which mechanism enforces each limit."""
        m = self.mechanisms
        return f"limits memory={m.memory} cpu={m.cpu}"

    def attempts_allowed(self, task_id: str) -> int | None:
        """Per-task retry policy from the workflow file: attempts = retries + 1."""
        spec = self.specs.get(task_id)
        return None if spec is None or spec.retries is None else spec.retries + 1

    # -- agents -----------------------------------------------------------------------
    def _address(self, agent_id: str) -> str:
        """A path socket in a 0700 directory of ours (never an abstract socket)."""
        return str(socket_path(self.run_dir, f"{agent_id}.sock"))

    def spawn_agent(self, agent: Agent) -> None:
        adopt = self._adoptable.pop(agent.id, None)
        if adopt is not None:
            pid, ct, info = adopt
            stored = info.get("address")
            address = stored if isinstance(stored, str) and not stored.startswith("@") else self._address(agent.id)
            h = _Host(
                agent.id,
                address,
                pid=pid,
                create_time=ct,
                task_pgid=info.get("task_pgid"),
                task_create_time=info.get("task_create_time"),
            )
            self.adopted.append(agent.id)
        else:
            h = _Host(agent.id, self._address(agent.id))
            self._start_host(h)
        old = self.hosts.get(agent.id)
        if old is not None and not old.dead:
            self._kill_host(old)
        self.hosts[agent.id] = h
        h.conn = asyncio.get_running_loop().create_task(self._connection(h))

    def _start_host(self, h: _Host) -> None:
        m = self.mechanisms
        argv = [
            sys.executable,
            "-m",
            "core.runtimes.agent_host",
            "--agent",
            h.agent,
            "--socket",
            h.address,
            "--secret-file",
            str(self.run_dir / SECRET_FILE),
            "--heartbeat",
            str(self.heartbeat_s),
            "--grace",
            str(self.stop_grace_s),
            "--orphan",
            str(self.orphan_s),
            "--memory-mechanism",
            m.memory,
            "--cpu-mechanism",
            m.cpu,
            "--output-dir",
            str(self.io.output_dir(h.agent)),
        ]
        if m.cgroup_dir:
            argv += ["--cgroup", m.cgroup_dir]
        log = open_private(self.run_dir / f"{h.agent}.log")
        try:
            h.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                cwd=os.getcwd(),
                env=_host_env(),
            )
        finally:
            os.close(log)
        h.pid = h.popen.pid
        h.spawned_at = time.monotonic()
        try:
            h.create_time = psutil.Process(h.pid).create_time()
        except psutil.Error:
            h.create_time = None
        self._save(h)

    def _save(self, h: _Host) -> None:
        if h.pid is None or h.create_time is None:
            return
        info: dict[str, Any] = {"address": h.address, "task_pgid": h.task_pgid, "task_create_time": h.task_create_time}
        info["mac"] = self._row_mac(h.agent, h.pid, h.create_time, info)
        self._store_ops.append(("save", (h.agent, h.pid, h.create_time, info)))
        self._poke()

    def retire_agent(self, agent_id: str) -> None:
        h = self.hosts.get(agent_id)
        if h is None or h.dead:
            return
        h.retiring = True
        self._send(h, {"op": "shutdown"})
        asyncio.get_running_loop().call_later(self.stop_grace_s + 3.0, self._reap_retired, h)

    def _reap_retired(self, h: _Host) -> None:
        if not h.dead and not self._alive(h):
            self._gone(h)
        elif not h.dead:
            self._kill_host(h)
            self._gone(h)

    def _alive(self, h: _Host) -> bool:
        if h.popen is not None:
            return h.popen.poll() is None
        return h.pid is not None and h.create_time is not None and same_process(h.pid, h.create_time)

    def _kill_host(self, h: _Host) -> None:
        """SIGKILL a host and its task group, both verified by create time."""
        if h.task_pgid and h.task_create_time and same_process(h.task_pgid, h.task_create_time):
            with contextlib.suppress(OSError):
                os.killpg(h.task_pgid, signal.SIGKILL)
        if h.popen is not None:
            with contextlib.suppress(OSError):
                h.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                h.popen.wait(1.0)
        elif h.pid and h.create_time:
            _kill_verified(h.pid, h.create_time, signal.SIGKILL)

    def _gone(self, h: _Host) -> None:
        """A host that is no more: drop its connection and its row."""
        h.dead = True
        if h.popen is not None:
            h.popen.poll()
        if h.writer is not None:
            h.writer.close()
            h.writer = None
        self._store_ops.append(("forget", (h.agent,)))
        self._poke()

    def _died(self, h: _Host, reason: str) -> None:
        """An agent process that died: fail it (its task goes back with its context), replace it."""
        if h.dead:
            return
        if h.popen is not None and h.popen.poll() is not None:
            rc = h.popen.returncode
            reason = f"{reason} ({'exit status ' + str(rc) if rc >= 0 else 'killed by ' + signal.Signals(-rc).name})"
        if h.task_pgid and h.task_create_time and same_process(h.task_pgid, h.task_create_time):
            with contextlib.suppress(OSError):
                os.killpg(h.task_pgid, signal.SIGKILL)
        self._gone(h)
        if self.closing or self.sink is None or h.retiring:
            return
        engine = self.engine
        a = engine.state.agents.get(h.agent) if engine is not None else None
        if engine is not None and a is not None and a.current_task:
            t = engine.state.tasks[a.current_task]
            allowed = self.attempts_allowed(t.id) or engine.config.retries.attempts
            if t.attempts >= allowed:  # the retry policy is spent: the task fails with its agent
                self.sink.task_failed(h.agent, t.id, f"its agent died: {reason}")
        self.sink.agent_failed(h.agent, reason)
        if engine is not None and a is not None:
            self.replenish(a.pool)

    def replenish(self, pool: str, target: int | None = None) -> list[str]:
        """Spawn agents until ``pool`` has ``target`` (default: its minimum) live agents."""
        engine = self.engine
        if engine is None or self.closing:
            return []
        from ..engine import EngineError

        p = engine.state.pools.get(pool)
        if p is None:
            return []
        want = p.min_size if target is None else target
        live = sum(1 for a in engine.state.agents.values() if a.pool == pool and a.status in LIVE_AGENT)
        added = []
        while live < want:
            try:
                added.append(engine.add_agent(pool, actor="local-runtime"))
            except EngineError:
                break
            live += 1
        return added

    # -- tasks --------------------------------------------------------------------------
    def start_task(self, agent_id: str, task: Task) -> None:
        h = self.hosts.get(agent_id)
        spec = self.specs.get(task.id)
        if h is None or h.dead:
            self._fail_later(agent_id, task.id, "agent not running")
            return
        if spec is None or not spec.command:
            self._fail_later(agent_id, task.id, "the task has no command")
            return
        nice, cpu_cores = NICE_BY_BAND[Band.MEDIUM.value], task.cpu or None
        if self.engine is not None and task.workflow in self.engine.state.workflows:
            lim = self.engine.cpu_limits(task.workflow, task.id)
            nice, cpu_cores = int(lim["nice"]), (lim["cpu_cores"] if task.cpu else None)
        tmp = self.temp_dir(task.id, task.attempts)
        try:
            private_dir(tmp)  # 0700 with its parent, whatever the umask
        except (OSError, PrivateError) as exc:
            why = f"could not create its temp directory: {exc}"  # `exc` is unbound once the block ends
            self._fail_later(agent_id, task.id, why)
            return
        shared = self.shared_dir()
        try:
            private_dir(shared)
        except (OSError, PrivateError) as exc:
            why = f"could not create the run's shared directory: {exc}"
            self._fail_later(agent_id, task.id, why)
            return
        env = {
            **(spec.env or {}),
            "TMPDIR": str(tmp),
            "TMP": str(tmp),
            "TEMP": str(tmp),
            "OPSDECK_RUN_DIR": str(shared),
        }
        msg = {
            "op": "start",
            "task": task.id,
            "attempt": task.attempts,
            "command": spec.command,
            "shell": spec.shell,
            "cwd": spec.cwd,
            "env": env,
            "timeout_s": spec.timeout_s,
            "memory_mb": round(task.memory_gb * 1024, 1) if task.memory_gb > 0 else None,
            "cpu_cores": cpu_cores,
            "nice": nice,
            "context": task.context.model_dump(mode="json"),
            "interactive": spec.interactive or spec.tty,
            "tty": spec.tty,
            "input_wait_s": self.engine.config.intervals.input_wait_s if self.engine is not None else None,
        }
        if spec.repo:
            self.io.start_in_worktree(h, agent_id, task.id, spec.repo, msg)
        else:
            self._send(h, msg)

    async def send_input(self, agent_id: str, task_id: str, data: bytes) -> int:
        return await self.io.send_input(agent_id, task_id, data)

    def task_output(self, agent_id: str, task_id: str, attempt: int) -> Path | None:
        return self.io.task_output(agent_id, task_id, attempt)

    async def relimit(
        self, targets: list[tuple[str, str, dict[str, Any]]], timeout_s: float = 5.0
    ) -> list[dict[str, Any]]:
        """Apply new CPU limits to running tasks in place: each agent host renices the
        task's process group or writes its cgroup's ``cpu.max`` (the mechanism in
        force) and says what it applied. Waits for the hosts' answers."""
        loop = asyncio.get_running_loop()
        waits = []
        out: list[dict[str, Any]] = []
        for agent_id, task_id, lim in targets:
            h = self.hosts.get(agent_id)
            if h is None or h.dead:
                out.append({"task": task_id, "agent": agent_id, "applied": {}, "errors": {"agent": "not running"}})
                continue
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._limit_waits.setdefault((agent_id, task_id), []).append(fut)
            self._send(h, {"op": "limit", "task": task_id, "nice": lim.get("nice"), "cpu_cores": lim.get("cpu_cores")})
            waits.append((agent_id, task_id, lim, fut))
        for agent_id, task_id, lim, fut in waits:
            try:
                ans = await asyncio.wait_for(fut, timeout_s)
                out.append(
                    {
                        "task": task_id,
                        "agent": agent_id,
                        "requested": lim,
                        "mechanism": self.mechanisms.cpu,
                        "applied": ans.get("applied", {}),
                        "errors": ans.get("errors", {}),
                        "before": ans.get("before", {}),
                        "changed": any(
                            ans.get("before", {}).get(k) != v for k, v in (ans.get("applied") or {}).items()
                        ),
                        "pgid": ans.get("pgid"),
                    }
                )
            except TimeoutError:
                out.append(
                    {
                        "task": task_id,
                        "agent": agent_id,
                        "requested": lim,
                        "mechanism": self.mechanisms.cpu,
                        "applied": {},
                        "errors": {"agent": f"no answer within {timeout_s:g}s"},
                    }
                )
            finally:
                lst = self._limit_waits.get((agent_id, task_id), [])
                if fut in lst:
                    lst.remove(fut)
        return out

    def pause_task(self, agent_id: str, task_id: str) -> None:
        self._command(agent_id, {"op": "pause", "task": task_id})

    def resume_task(self, agent_id: str, task_id: str) -> None:
        self._command(agent_id, {"op": "resume", "task": task_id})

    def stop_task(self, agent_id: str, task_id: str) -> None:
        self._command(agent_id, {"op": "stop", "task": task_id})

    def measure_task(
        self, agent_id: str, task_id: str, pid: int | None = None, create_time: float | None = None
    ) -> TaskMeasure | None:
        """psutil of the task's process tree (the one ``pid``/``create_time`` name, else
        the agent's current one): None when it is gone or not on this machine."""
        h = self.hosts.get(agent_id)
        if pid is None:
            if h is None or h.dead or not self._measurable(h):
                return None
            pid, create_time = h.task_pgid, h.task_create_time
        if pid is None:
            return None
        return self.sampler.group(pid, create_time)

    async def machine_capacity(self) -> tuple[float, float, str]:
        """This machine's cores and memory: the capacity unless the config sets one."""
        return float(os.cpu_count() or 1), psutil.virtual_memory().total / 2**30, "machine"

    def _measurable(self, h: _Host) -> bool:
        """Can psutil see this host's tasks? (every local host; Ray overrides)."""
        return True

    def ping_agent(self, agent_id: str) -> None:
        """An active health check: the agent host answers with a heartbeat."""
        self._command(agent_id, {"op": "ping"})

    def purge_caches(self) -> dict[str, float]:
        """The local runtime holds no caches of its own (the store's are reclaimed by
        the cleanup through ``Store.reclaim``)."""
        return {}

    def shared_dir(self) -> Path:
        """One directory for every task of the run (``OPSDECK_RUN_DIR``, 0700): where
        tasks hand files to each other, since each run has its own ``TMPDIR`` and the
        cleanup deletes finished runs' temp directories."""
        return self.run_dir / "shared"

    def temp_dir(self, task_id: str, attempt: int) -> Path:
        """Each task run's own ``TMPDIR`` (inside the run directory, 0700)."""
        return self.run_dir / "tmp" / f"{task_id.replace('/', '__')}-{attempt}"

    def cleanup_temp(self) -> dict[str, Any]:
        """Delete the temp directories of task runs that are not running now; count
        the files and bytes removed."""
        root = self.run_dir / "tmp"
        keep = set()
        if self.engine is not None:
            for t in self.engine.state.tasks.values():
                if t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
                    keep.add(self.temp_dir(t.id, t.attempts).name)
        files = size = dirs = 0
        kept = []
        for d in sorted(root.iterdir()) if root.is_dir() else []:
            if d.name in keep or not d.is_dir() or d.is_symlink():
                kept.append(d.name)
                continue
            for f in d.rglob("*"):
                with contextlib.suppress(OSError):
                    if f.is_file() and not f.is_symlink():
                        files += 1
                        size += f.stat().st_size
            shutil.rmtree(d, ignore_errors=True)
            dirs += 0 if d.exists() else 1
        return {"dirs_removed": dirs, "files_removed": files, "bytes_removed": size, "kept_running": kept}

    def _command(self, agent_id: str, msg: dict[str, Any]) -> None:
        h = self.hosts.get(agent_id)
        if h is not None and not h.dead:
            self._send(h, msg)

    def _send(self, h: _Host, msg: dict[str, Any]) -> None:
        h.outbox.append(msg)
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _later(self, fn: Any) -> None:
        asyncio.get_running_loop().call_soon(fn)

    def _fail_later(self, agent_id: str, task_id: str, why: str) -> None:
        """A task that cannot start fails on the next turn of the loop, after ``start_task`` returned."""

        def fail() -> None:
            if self.sink is not None:
                self.sink.task_failed(agent_id, task_id, why)

        self._later(fail)

    # -- loops ------------------------------------------------------------------------------
    async def _pump(self) -> None:
        """Store writes, then the engine's flush, then the commands: write-ahead."""
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._run_store_ops()
            if self.engine is not None:
                await self.engine.flush()
            for h in list(self.hosts.values()):
                if h.outbox and self._ready(h):
                    batch, h.outbox = h.outbox, []
                    if not self._deliver(h, batch):
                        h.outbox = batch + h.outbox

    def _ready(self, h: _Host) -> bool:
        """Can commands reach this host now?"""
        return h.writer is not None and not h.writer.is_closing()

    def _deliver(self, h: _Host, batch: list[dict[str, Any]]) -> bool:
        """Send a batch of commands, in order; False to keep them for the next try."""
        assert h.writer is not None
        try:
            h.writer.write(b"".join(encode(m) for m in batch))
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def _run_store_ops(self) -> None:
        engine = self.engine
        ops, self._store_ops = self._store_ops, []
        if engine is None or engine.store is None:
            return
        latest: dict[str, int] = {}
        for i, (_, args) in enumerate(ops):
            latest[args[0]] = i
        ops = [op for i, op in enumerate(ops) if latest[op[1][0]] == i]  # only the last word per agent counts
        async with engine.store_lock:
            for kind, args in ops:
                if kind == "save":
                    await engine.store.save_process(*args)
                else:
                    await engine.store.forget_process(*args)

    async def _connection(self, h: _Host) -> None:
        """Connect (with retries while the host starts), read its reports, notice its end."""
        started = time.monotonic()
        while not h.dead:
            try:
                reader, writer = await console_connect(h.address, self.secret, expect_pid=h.pid)
            except ChannelError as exc:
                # Someone else holds the name, or a process that cannot prove it is our
                # host: send it nothing, fail the agent loudly, and do not retry there.
                self.security_failures.append(str(exc))
                print(f"opsdeck: agent {h.agent}: {exc}", file=sys.stderr, flush=True)
                self._kill_host(h)
                self._died(h, f"agent socket refused: {exc}")
                return
            except OSError:
                if not self._alive(h):
                    self._died(h, "agent process exited")
                    return
                if time.monotonic() - started > CONNECT_TIMEOUT_S:
                    self._kill_host(h)
                    self._died(h, "agent process did not answer on its socket")
                    return
                await asyncio.sleep(0.02)
                continue
            h.writer = writer
            self._poke()  # send what waited for the connection
            try:
                async for msg in messages(reader):
                    self._on_report(h, msg)
            except (ConnectionError, asyncio.IncompleteReadError, ValueError):
                pass
            if h.writer is writer:
                h.writer = None
            writer.close()
            if h.dead or self.closing:
                return
            if h.retiring:
                await asyncio.sleep(0.05)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    if h.popen is not None:
                        h.popen.wait(0.5)
                if not self._alive(h):
                    self._gone(h)
                    return
            if not self._alive(h):
                self._died(h, "agent process died")
                return
            h.lost = True
            started = time.monotonic()
            await asyncio.sleep(0.05)

    async def _sample_loop(self) -> None:
        """psutil every ``sample_s``: each agent's tree, then the machine (detector hooks run there)."""
        while True:
            await asyncio.sleep(self.sample_s)
            sink = self.sink
            if sink is None:
                continue
            live = [h for h in self.hosts.values() if not h.dead and h.pid is not None]
            usage = self.sampler.trees({h.agent: (h.pid, h.create_time) for h in live if h.pid is not None})
            for h in live:
                if h.dead:
                    continue
                u = usage.get(h.agent)
                if u is None or not self._alive(h):
                    if not h.retiring:
                        self._died(h, "agent process gone")
                    continue
                if time.monotonic() - h.last_report <= 2 * self.heartbeat_s:
                    # A sample is liveness to the engine: only for a host that still talks
                    # (a stopped or hung host is measurable but silent).
                    sink.usage(h.agent, u.cpu_pct, u.rss_mb)
            cpu, mem = self.sampler.system()
            sink.system_usage(cpu, mem)
            self.sampler.forget_dead()

    # -- reports ---------------------------------------------------------------------------
    def _owns_attempt(self, agent_id: str, task_id: str | None, attempt: Any) -> bool:
        engine = self.engine
        if engine is None or task_id is None:
            return False
        a = engine.state.agents.get(agent_id)
        t = engine.state.tasks.get(task_id)
        return (
            a is not None
            and t is not None
            and a.current_task == task_id
            and t.agent == agent_id
            and t.attempts == attempt
            and t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED)
        )

    def _on_report(self, h: _Host, msg: dict[str, Any]) -> None:
        sink = self.sink
        engine = self.engine
        if sink is None or engine is None:
            return
        h.last_report = time.monotonic()
        kind = msg.get("t")
        task: str | None = msg.get("task")
        attempt = msg.get("attempt")
        a = engine.state.agents.get(h.agent)
        if a is not None and a.status is AgentStatus.UNREACHABLE:
            sink.agent_reconnected(h.agent, [])  # it was only late (a busy machine, a stalled loop)
        if kind == "hello":
            h.connected_once = True
            h.lost = False
            sink.agent_heartbeat(h.agent)
            cur = msg.get("current")
            if cur:
                h.task_pgid, h.task_create_time = cur.get("pgid"), cur.get("create_time")
                if not self._owns_attempt(h.agent, cur.get("task"), cur.get("attempt")):
                    h.outbox.insert(0, {"op": "stop", "task": cur.get("task")})
                    self._poke()
            for done in msg.get("done") or []:
                self._on_report(h, done)
            return
        if kind == OVERSIZE:
            # A report too large to read: fail the task it was about rather than wait on it.
            cur = a.current_task if a is not None else None
            if cur:
                sink.task_failed(
                    h.agent,
                    cur,
                    f"a report of {int(msg.get('bytes') or 0):,} bytes from agent {h.agent} was over the "
                    f"channel's limit of {MAX_LINE:,} bytes and could not be delivered",
                    None,
                )
                h.outbox.append({"op": "stop", "task": cur})
                self._poke()
            return
        if task and msg.get("usage") is not None and self._owns_attempt(h.agent, task, attempt):
            self._task_usage(h.agent, task, int(attempt or 0), msg["usage"])
        if kind == "heartbeat":
            if task and self._owns_attempt(h.agent, task, attempt) and msg.get("changed"):
                engine.task_progress(
                    h.agent, task, float(msg.get("progress", 0.0)), msg.get("output"), msg.get("partial")
                )
            else:
                sink.agent_heartbeat(h.agent)
            return
        if kind in ("input_wait", "input_written"):
            self.io.report(h.agent, kind, task, attempt, msg)
            return
        if kind == "limited" and task is not None:
            for fut in self._limit_waits.get((h.agent, task), []):
                if not fut.done():
                    fut.set_result(msg)
            return
        if kind == "started":
            h.task_pgid, h.task_create_time = msg.get("pgid"), msg.get("create_time")
            self._save(h)
            if task is not None and self._owns_attempt(h.agent, task, attempt):
                sink.task_started(h.agent, task)
            return
        if kind in ("finished", "failed", "stopped"):
            h.task_pgid = h.task_create_time = None
            if kind == "finished" and task and not self._owns_attempt(h.agent, task, attempt):
                self._merge_moved(h.agent, task, attempt)
                return
            if kind == "stopped" or task is None or not self._owns_attempt(h.agent, task, attempt):
                return
            if msg.get("partial") or msg.get("progress"):
                engine.task_progress(h.agent, task, float(msg.get("progress") or 0.0), None, msg.get("partial") or None)
            if kind == "finished":
                sink.task_finished(
                    h.agent, task, msg.get("output"), {"rc": msg.get("rc"), "elapsed_s": msg.get("elapsed_s")}
                )
            else:
                sink.task_failed(h.agent, task, str(msg.get("error", "failed")), msg.get("output"))

    def _task_usage(self, agent_id: str, task_id: str, attempt: int, raw: Any) -> None:
        """A run's usage report, validated at this boundary (a malformed one is dropped
        with a note in the agent's log, never applied)."""
        engine = self.engine
        if engine is None:
            return
        try:
            report = UsageReport.model_validate(raw)
        except ValidationError as exc:
            print(f"opsdeck: agent {agent_id}: usage report refused: {exc.errors()[:1]}", file=sys.stderr, flush=True)
            return
        engine.spend.record(agent_id, task_id, attempt, report)

    def _merge_moved(self, agent_id: str, task_id: str, attempt: Any) -> None:
        """A run finished on an agent the task was moved away from (it was cut off
        and kept working): the conflict-free merge decides (completed once; the copy
        still running elsewhere stops)."""
        engine = self.engine
        t = engine.state.tasks.get(task_id) if engine is not None else None
        if engine is None or t is None or t.status is TaskStatus.COMPLETED:
            return
        wf = engine.state.workflows.get(t.workflow)
        if wf is None or wf.status.value not in ("running", "paused"):
            return
        engine.merge_partition(agent_id, [{"seq": int(attempt or 0), "kind": "finished", "task_id": task_id}])

    # -- ending -------------------------------------------------------------------------------
    async def shutdown(self, release: bool = True) -> None:
        """Stop every agent and task; leave no process behind. With ``release`` the log
        records it: running tasks go back to the queue, agents are deallocated."""
        engine = self.engine
        if release and engine is not None and not engine.readonly:
            for a in sorted(engine.state.agents.values(), key=lambda a: a.id):
                if a.status in LIVE_AGENT:
                    engine.retire_agent(a.id, actor="opsdeck")
        self.closing = True
        for h in self.hosts.values():
            if not h.dead:
                h.retiring = True
                self._send(h, {"op": "shutdown"})
        if self._wake is not None:
            self._wake.set()
        deadline = time.monotonic() + self.stop_grace_s + 2.0
        # Hosts not started by this process (adopted) signal no exit: their liveness is polled.
        while time.monotonic() < deadline and any(not h.dead and self._alive(h) for h in self.hosts.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for h in self.hosts.values():
            if not h.dead and self._alive(h):
                self._kill_host(h)
            if not h.dead:
                self._gone(h)
            if h.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    h.popen.wait(1.0)
        await self._run_store_ops()
        for t in self._loops:
            t.cancel()
        for t in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._loops = []
        for h in self.hosts.values():
            if h.conn is not None:
                h.conn.cancel()
        if engine is not None:
            await engine.flush()

    # -- real faults (drills on real processes) ------------------------------------------
    def fail_agent(self, agent_id: str, error: str = "process crashed") -> None:
        """SIGKILL the agent's host process (verified by create time); its death is
        then noticed the way any crash is (the connection closes)."""
        h = self.hosts.get(agent_id)
        if h is not None and not h.dead and h.pid and h.create_time:
            _kill_verified(h.pid, h.create_time, signal.SIGKILL)

    def partition(self, agent_ids: list[str]) -> None:
        """Cut agents off for real: SIGSTOP their host processes (their tasks, in their
        own process groups, keep running; the hosts answer nothing)."""
        for a in agent_ids:
            h = self.hosts.get(a)
            if h is not None and not h.dead and h.pid and h.create_time:
                _kill_verified(h.pid, h.create_time, signal.SIGSTOP)

    def heal(self, agent_ids: list[str] | None = None) -> None:
        """SIGCONT the hosts: they read what was sent meanwhile and report again."""
        for a, h in self.hosts.items():
            if (agent_ids is None or a in agent_ids) and not h.dead and h.pid and h.create_time:
                _kill_verified(h.pid, h.create_time, signal.SIGCONT)

    def slow_agent(self, agent_id: str, factor: float) -> None:
        raise NotApplicable(simulated_only(self.name, "slow an agent down"))

    def slowdown(self, agent_id: str) -> float | None:
        raise NotApplicable(simulated_only(self.name, "model an agent's slowdown"))

    def load_spike(self, cpu_cores: float, memory_gb: float, duration_s: float | None = None) -> None:
        raise NotApplicable(simulated_only(self.name, "add load outside the fleet's tasks"))

    def leak(self, agent_id: str, mb_per_s: float) -> None:
        raise NotApplicable(simulated_only(self.name, "make an agent leak memory"))

    def degrade(self, rate_per_s: float) -> None:
        raise NotApplicable(simulated_only(self.name, "degrade every task's speed"))

    def restore_speed(self) -> None:
        raise NotApplicable(simulated_only(self.name, "restore a degraded speed"))

    def host_pids(self) -> dict[str, int]:
        """Live agents' host pids (for tests and the console)."""
        return {a: h.pid for a, h in self.hosts.items() if not h.dead and h.pid is not None}

    def task_pgid(self, agent_id: str) -> int | None:
        h = self.hosts.get(agent_id)
        return h.task_pgid if h is not None and not h.dead else None


def simulated_only(runtime: str, what: str) -> str:
    """Why a runtime of real processes refuses one of the simulated world's faults."""
    return f"the {runtime} runtime cannot {what}: that fault exists only on the simulated runtime"


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


def _kill_verified(pid: int, create_time: float, sig: int) -> None:
    if same_process(pid, create_time):
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def _host_env() -> dict[str, str]:
    """The host imports ``core`` from wherever this console imported it."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_dir_for(db: str | Path) -> Path:
    """Sockets, host logs and the run's secret live next to the database: ``<db>.agents/`` (0700)."""
    p = Path(db).resolve()
    return p.parent / f"{p.name}.agents"


async def open_local(
    db: str | Path,
    wfile: WorkflowFile,
    specs: list[WorkflowSpec],
    config: Config | None = None,
    stop_grace_s: float | None = None,
    subscriber: Any = None,
    mechanisms: Mechanisms | None = None,
) -> tuple[Engine, LocalRuntime]:
    """Open ``db`` on the local runtime and bring it to the workflow file.

    Pools and workflows the database does not have yet are created (and queued); those
    it has are resumed as they are. Hosts left by a killed console are adopted or
    failed. Each pool gets its ``size`` agents. Allocations are checked against the
    per-workflow limits before anything is created.
    """
    rt = wfile.runtime

    async def make(config: Config) -> LocalRuntime:
        return LocalRuntime(
            run_dir_for(db),
            heartbeat_s=rt.heartbeat_s,
            sample_s=rt.sample_s,
            stop_grace_s=rt.stop_grace_s if stop_grace_s is None else stop_grace_s,
            mechanisms=mechanisms,
        )

    return await open_with(make, db, wfile, specs, config, subscriber)


async def open_with(
    make: Any,
    db: str | Path,
    wfile: WorkflowFile,
    specs: list[WorkflowSpec],
    config: Config | None = None,
    subscriber: Any = None,
) -> tuple[Engine, Any]:
    """Open ``db`` with the runtime ``await make(config)`` builds (a :class:`LocalRuntime`
    or a subclass) and bring it to the workflow file; see :func:`open_local`."""
    from ..engine import Engine
    from ..workflow_file import WorkflowFileError, config_problems

    config = config or Config()
    rt = wfile.runtime
    config = config.model_copy(
        update={
            "intervals": config.intervals.model_copy(update={"heartbeat_s": rt.heartbeat_s, "sample_s": rt.sample_s})
        }
    )
    problems = config_problems(wfile, specs, config)
    if problems:
        raise WorkflowFileError("workflow file", problems)
    runtime = await make(config)  # first: a runtime that cannot start leaves no database behind
    config = config.model_copy(update={"capacity": config.capacity.filled(*await runtime.machine_capacity())})
    try:
        engine = await Engine.open(db, config=config, clock=WallClock())
    except BaseException:
        await runtime.shutdown(release=False)
        raise
    if subscriber is not None:
        engine.subscribe(subscriber)
    try:
        await runtime.prepare(engine)
        engine.attach_runtime(runtime)
        _bring_to_file(engine, runtime, wfile, specs)
        await engine.flush()
    except BaseException:
        await runtime.shutdown(release=False)
        await engine.close()
        raise
    return engine, runtime


def _set_budgets(engine: Engine, wfile: WorkflowFile) -> None:
    """The file's budgets, where the database has none yet (a raise made since stays)."""
    led = engine.state.usage
    for w in wfile.workflows:
        if w.budget is not None and led.budget_of("workflow", w.id) is None and engine.state.knows(w.id):
            engine.spend.set_budget("workflow", w.id, w.budget.budget(), w.budget.warn_share, actor="opsdeck run")
    for p in wfile.pools:
        if p.budget is not None and led.budget_of("pool", p.name) is None:
            engine.spend.set_budget("pool", p.name, p.budget.budget(), p.budget.warn_share, actor="opsdeck run")


def _bring_to_file(engine: Engine, runtime: Any, wfile: WorkflowFile, specs: list[WorkflowSpec]) -> None:
    """Create what the database lacks (pools, workflows), queue them, size the pools."""
    from ..engine import EngineError

    state = engine.state
    for p in wfile.pools:
        if p.name not in state.pools:
            min_size = p.min_size if p.min_size is not None else p.size
            max_size = p.max_size if p.max_size is not None else max(p.size, 20)
            engine.create_pool(p.name, list(p.specializations), min_size=min_size, max_size=max_size)
    for spec in specs:
        if not state.knows(spec.id):
            engine.create_workflow(spec, actor="opsdeck run")
        wf = state.workflows.get(spec.id)
        if wf is not None and wf.status.value == "pending" and not wf.queued:
            try:
                engine.start_workflow(spec.id, actor="opsdeck run")
            except EngineError:
                pass
    for p in wfile.pools:
        runtime.replenish(p.name, target=p.size)
    _set_budgets(engine, wfile)
    key = f"{runtime.name}_runtime"  # what the console shows: the limit mechanisms in force
    if state.settings.get(key) != runtime.describe():
        engine.set_setting(key, runtime.describe())
