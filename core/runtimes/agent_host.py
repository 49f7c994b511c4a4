"""The agent host: one small process per agent that runs its tasks as real processes.

Started by the local runtime as ``python -m core.runtimes.agent_host``. It listens
on a unix socket (the "pipe" to the console) and speaks JSON lines both ways. It
runs in its own session, so it outlives a console killed with SIGKILL; a restarted
console reconnects to the same socket and the host tells it where it is (``hello``).

Each task runs as a child in its own process group (``start_new_session``), so
pause/resume/stop reach the whole tree: SIGSTOP / SIGCONT / SIGTERM then SIGKILL
after the grace period.

Progress lines: a task may print, on stdout or stderr, lines of the form::

    OPSDECK_PROGRESS 0.42 optional message     (a fraction 0..1, or a percent like 42%)
    OPSDECK_PARTIAL {"step": 3}                (JSON object merged into the partial results)

They are reported at the next heartbeat and kept as the task's context, so a retry
on another agent starts with ``OPSDECK_RESUME_PROGRESS`` and ``OPSDECK_CONTEXT``
(the JSON partial results) in its environment.

Reports (host -> console): ``hello``, ``started``, ``heartbeat`` (task progress,
new output lines, partial results), ``finished``, ``failed`` (exit status, error,
last output lines), ``stopped``. Commands (console -> host): ``start``, ``pause``,
``resume``, ``stop``, ``shutdown``. ``start`` is idempotent per (task, attempt): a
run that already ended is reported again instead of being run again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

import psutil

from ..private import PrivateError, private_dir
from ..usage.meter import Meter
from .handshake import ChannelError, host_accept, read_secret
from .input_wait import stdin_target, waiting_for_input
from .limits import TaskCgroup, apply_from_parent, relimit
from .output import LINE_MAX, TaskOutput, output_path, prune
from .task_tree import TaskTree, become_subreaper, exited
from .tty import TaskTerminal
from .wire import MAX_LINE, encode, messages

PROGRESS_PREFIX = "OPSDECK_PROGRESS"
PARTIAL_PREFIX = "OPSDECK_PARTIAL"
OUTPUT_KEEP = 20
RESULTS_KEEP = 256
PARTIAL_MAX = 64 * 1024
"""Characters of a task's partial results (as JSON) kept and reported; an update past it is refused."""
READ_CHUNK = 64 * 1024
INPUT_TIMEOUT_S = 10.0
"""How long a write to a task's stdin may block (a task that reads nothing fills the pipe)."""
NEVER_CONNECTED_S = 60.0
"""A host no console ever reached (the console died while starting it) exits after this."""


def parse_progress(line: str) -> tuple[float, str] | None:
    """``OPSDECK_PROGRESS 0.42 msg`` or ``OPSDECK_PROGRESS 42% msg`` -> (0.42, "msg")."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    parts = line[len(PROGRESS_PREFIX) :].strip().split(None, 1)
    if not parts:
        return None
    raw = parts[0]
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        return None
    return min(max(value, 0.0), 1.0), (parts[1] if len(parts) > 1 else "")


def undeliverable(msg: dict[str, Any], size: int) -> dict[str, Any]:
    """What is sent instead of a report too large for the channel: a run's end
    becomes its failure with the reason, anything else a bare heartbeat."""
    why = f"the agent's {msg.get('t')} report of {size:,} bytes is over the channel's limit of {MAX_LINE:,}"
    if msg.get("t") in ("finished", "failed") and msg.get("task"):
        return {
            "t": "failed",
            "task": msg["task"],
            "attempt": msg.get("attempt"),
            "rc": msg.get("rc"),
            "error": why,
            "output": [],
        }
    return {"t": "heartbeat", "task": msg.get("task"), "attempt": msg.get("attempt"), "note": why}


class Run:
    """One attempt of one task on this host."""

    def __init__(self, msg: dict[str, Any]) -> None:
        self.task: str = msg["task"]
        self.attempt: int = int(msg.get("attempt", 0))
        self.msg = msg
        self.proc: asyncio.subprocess.Process | None = None
        self.pgid: int | None = None
        self.create_time: float | None = None
        ctx = msg.get("context") or {}
        self.progress: float = float(ctx.get("progress", 0.0))
        self.partial: dict[str, Any] = {}
        self.output: deque[str] = deque(maxlen=OUTPUT_KEEP)
        self.new_output: list[str] = []
        self.paused = False
        self.started = time.monotonic()
        self.paused_for = 0.0
        self.paused_at: float | None = None
        self.kill_reason: str | None = None
        self.stopping = False
        self.cgroup: TaskCgroup | None = None
        self.dirty = False  # something new to report at the next heartbeat
        self.peak_rss_mb = 0.0
        self.out = TaskOutput(None)
        self.meter = Meter()
        """Usage the run's output reports (OPSDECK_USAGE, Claude Code stream-json, Codex JSON)."""
        self.tty = bool(msg.get("tty"))
        self.interactive = self.tty or bool(msg.get("interactive"))
        """The task has a stdin the operator can write to (a pipe, or the pty)."""
        self.input_wait_s = float(msg.get("input_wait_s") or 10.0)
        self.terminal: TaskTerminal | None = None
        self.stdin_target: str | None = None
        """What the task's descriptor 0 is (``pipe:[N]``, ``/dev/pts/N``): reads of it are waits for input."""
        self.last_output_at = time.monotonic()
        self.waiting: str | None = None

    def key(self) -> tuple[str, int]:
        return (self.task, self.attempt)

    def running_for(self) -> float:
        now = time.monotonic()
        paused = self.paused_for + ((now - self.paused_at) if self.paused_at is not None else 0.0)
        return now - self.started - paused


class Host:
    """Runs one agent's tasks and reports on them; ``send`` is the only transport.

    The unix-socket host below and the Ray actor (``core.runtimes.ray_agent``) are
    the same task runner with a different ``send``.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.launcher: list[str] = []
        """An argv prefix for every task (the Ray actor's: ``limits.dies_with_parent()``)."""
        self.agent = args.agent
        self.address = args.socket
        self.heartbeat_s = args.heartbeat
        self.grace_s = args.grace
        self.orphan_s = args.orphan
        self.mech_memory = args.memory_mechanism
        self.mech_cpu = args.cpu_mechanism
        self.cgroup_parent = args.cgroup
        self.secret = self.channel_secret(args)
        self.run: Run | None = None
        self.results: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self.writer: asyncio.StreamWriter | None = None
        self.last_client = time.monotonic()
        self.ever_connected = False
        self.done = asyncio.Event()
        self.me = psutil.Process()
        self.tree = TaskTree(self.me)
        """The running task's processes (a subreaper's: see :mod:`core.runtimes.task_tree`)."""
        sock = args.socket or ""
        self.output_dir: Path | None = (
            Path(args.output_dir)
            if args.output_dir
            else Path(os.path.abspath(sock)).parent / "output" / args.agent
            if sock and not sock.startswith("@")
            else None
        )
        """Where each run's whole output is kept: beside the socket (none without a socket path)."""

    def channel_secret(self, args: argparse.Namespace) -> bytes:
        """The run's secret that every socket connection must prove it knows."""
        return read_secret(args.secret_file)

    # -- reporting ------------------------------------------------------------
    def send(self, msg: dict[str, Any]) -> None:
        w = self.writer
        if w is None or w.is_closing():
            return
        data = encode(msg)
        if len(data) > MAX_LINE:
            data = encode(undeliverable(msg, len(data)))
        try:
            w.write(data)
        except (ConnectionError, RuntimeError):
            self.writer = None

    def current(self) -> dict[str, Any] | None:
        r = self.run
        if r is None:
            return None
        return {
            "task": r.task,
            "attempt": r.attempt,
            "pgid": r.pgid,
            "create_time": r.create_time,
            "progress": r.progress,
            "paused": r.paused,
        }

    # -- connections ----------------------------------------------------------
    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One authenticated console at a time: a new one replaces the old one.

        A peer of another uid, or one that does not know the run's secret, is
        dropped before it can send a command or displace the console."""
        try:
            await host_accept(reader, writer, self.secret)
        except (ChannelError, TimeoutError, ConnectionError, OSError) as exc:
            print(f"agent host {self.agent}: refused a connection: {exc}", file=sys.stderr, flush=True)
            writer.close()
            return
        old, self.writer = self.writer, writer
        self.ever_connected = True
        if old is not None:
            old.close()
        self.send(
            {
                "t": "hello",
                "agent": self.agent,
                "pid": os.getpid(),
                "create_time": self.me.create_time(),
                "current": self.current(),
                "done": list(self.results.values())[-32:],
            }
        )
        try:
            async for msg in messages(reader):
                await self.command(msg)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            if self.writer is writer:
                self.writer = None
                self.last_client = time.monotonic()
            writer.close()

    async def command(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        r = self.run
        task = msg.get("task")
        if op == "start":
            key = (msg["task"], int(msg.get("attempt", 0)))
            if key in self.results:
                self.send(self.results[key])
                return
            if r is not None and r.key() == key:
                self.send(
                    {"t": "started", "task": r.task, "attempt": r.attempt, "pgid": r.pgid, "create_time": r.create_time}
                )
                return
            if r is not None:
                await self.stop_run(r, "replaced by a new assignment")
            await self.launch(Run(msg))
        elif op == "pause" and r is not None and r.task == task:
            self.signal_group(r, signal.SIGSTOP)
            if not r.paused:
                r.paused, r.paused_at = True, time.monotonic()
        elif op == "resume" and r is not None and r.task == task:
            self.signal_group(r, signal.SIGCONT)
            if r.paused:
                r.paused_for += time.monotonic() - (r.paused_at or time.monotonic())
                r.paused, r.paused_at = False, None
        elif op == "input":
            await self.take_input(msg)
        elif op == "ping":  # an active health check from the console
            self.send({"t": "heartbeat"})
        elif op == "limit":
            if r is None or r.task != task or r.pgid is None:
                self.send(
                    {
                        "t": "limited",
                        "task": task,
                        "attempt": msg.get("attempt"),
                        "applied": {},
                        "errors": {"task": "not running here"},
                    }
                )
                return
            applied, errors, before = relimit(
                r.pgid, msg.get("nice"), msg.get("cpu_cores"), self.mech_cpu, str(r.cgroup.path) if r.cgroup else None
            )
            if "nice" in applied:
                r.msg["nice"] = msg.get("nice")
            if msg.get("cpu_cores"):
                r.msg["cpu_cores"] = msg.get("cpu_cores")
            self.send(
                {
                    "t": "limited",
                    "task": r.task,
                    "attempt": r.attempt,
                    "pgid": r.pgid,
                    "applied": applied,
                    "errors": errors,
                    "before": before,
                }
            )
        elif op == "stop" and r is not None and r.task == task:
            asyncio.get_running_loop().create_task(self.stop_run(r, "stopped by the console"))
        elif op == "shutdown":
            if r is not None:
                await self.stop_run(r, "agent shut down")
            self.done.set()

    # -- running a task ---------------------------------------------------------
    async def launch(self, r: Run) -> None:
        m = r.msg
        self.run = r
        if self.output_dir is not None:
            prune(self.output_dir)
            r.out = TaskOutput(output_path(self.output_dir, r.task, r.attempt))
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (m.get("env") or {}).items()})
        ctx = m.get("context") or {}
        env["OPSDECK_AGENT"] = self.agent
        env["OPSDECK_TASK"] = r.task
        env["OPSDECK_ATTEMPT"] = str(r.attempt)
        env["OPSDECK_RESUME_PROGRESS"] = str(ctx.get("progress", 0.0))
        env["OPSDECK_CONTEXT"] = json.dumps(ctx.get("partial_results") or {})
        memory_mb = m.get("memory_mb") or None
        cg_path = None
        if self.cgroup_parent and self.mech_memory == "cgroup":
            try:
                r.cgroup = TaskCgroup(
                    self.cgroup_parent,
                    f"opsdeck-{self.agent}-{os.getpid()}-{r.attempt}",
                    memory_mb,
                    m.get("cpu_cores") if self.mech_cpu == "cgroup" else None,
                )
                cg_path = str(r.cgroup.path)
            except OSError:
                r.cgroup = None
        mech_memory = self.mech_memory if cg_path or self.mech_memory != "cgroup" else "rlimit_as"
        command = m.get("command")
        cwd = m.get("cwd") or None
        kw: dict[str, Any] = {
            "cwd": cwd,
            "env": env,
            "stdin": asyncio.subprocess.PIPE if r.interactive else asyncio.subprocess.DEVNULL,
            "stdout": asyncio.subprocess.PIPE,
            "stderr": asyncio.subprocess.STDOUT,
            "start_new_session": True,
            "limit": 1 << 20,
        }
        try:
            if r.tty:
                r.terminal = TaskTerminal()
                kw.update(r.terminal.spawn_args())
                env["TERM"] = env.get("TERM") or "xterm-256color"
            if not command:
                raise ValueError("the task has no command")
            if m.get("shell"):
                text = command if isinstance(command, str) else shlex.join(command)
                if self.launcher:
                    r.proc = await asyncio.create_subprocess_exec(*self.launcher, "/bin/sh", "-c", text, **kw)
                else:
                    r.proc = await asyncio.create_subprocess_shell(text, **kw)
            else:
                argv = shlex.split(command) if isinstance(command, str) else list(command)
                r.proc = await asyncio.create_subprocess_exec(*self.launcher, *argv, **kw)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            if r.terminal is not None:
                r.terminal.close()
            self.finish(
                r,
                {
                    "t": "failed",
                    "task": r.task,
                    "attempt": r.attempt,
                    "rc": None,
                    "error": f"could not start: {exc}",
                    "output": list(r.output),
                },
            )
            return
        r.pgid = r.proc.pid
        if r.terminal is not None:
            r.terminal.started()
            r.stdin_target = r.terminal.slave_name
        elif r.interactive:
            r.stdin_target = stdin_target(r.proc.pid)
        try:
            apply_from_parent(r.proc.pid, memory_mb, int(m.get("nice") or 0), mech_memory, self.mech_cpu, cg_path)
        except ProcessLookupError:
            pass  # it has already exited: nothing left to limit
        except (OSError, ValueError) as exc:
            self.signal_group(r, signal.SIGKILL)
            await exited(r.proc)
            self.finish(
                r,
                {
                    "t": "failed",
                    "task": r.task,
                    "attempt": r.attempt,
                    "rc": None,
                    "error": f"could not apply the task's limits: {exc}",
                    "output": list(r.output),
                },
            )
            return
        try:
            r.create_time = psutil.Process(r.proc.pid).create_time()
        except psutil.Error:
            r.create_time = None
        self.send(
            {
                "t": "started",
                "task": r.task,
                "attempt": r.attempt,
                "pid": r.proc.pid,
                "pgid": r.pgid,
                "create_time": r.create_time,
                "limits": {
                    "memory_mb": memory_mb,
                    "memory": self.mech_memory if memory_mb else None,
                    "cpu": self.mech_cpu,
                    "nice": m.get("nice") or 0,
                },
            }
        )
        asyncio.get_running_loop().create_task(self.pump_output(r))
        asyncio.get_running_loop().create_task(self.watch(r))

    async def pump_output(self, r: Run) -> None:
        """Wait for the task to exit, read its output meanwhile, then report once."""
        assert r.proc is not None
        reader = asyncio.get_running_loop().create_task(self.read_output(r))
        rc = await exited(r.proc)
        self.kill_tree(r, signal.SIGKILL)  # leave nothing of the task behind, detached ones included
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, 2.0)
        self.report_exit(r, rc)

    async def read_output(self, r: Run) -> None:
        """Read the task's output in chunks (no line is too long to read); every byte
        goes to its output file, capped lines to the reports."""
        assert r.proc is not None
        source: Any = r.terminal.reader() if r.terminal is not None else r.proc.stdout
        assert source is not None
        while True:
            try:
                chunk = await source.read(READ_CHUNK)
            except OSError:  # a pty whose last writer is gone answers EIO: the end of its output
                break
            if not chunk:
                break
            r.meter.feed(chunk, time.time())  # whole lines, not the console's capped ones
            r.last_output_at = time.monotonic()
            for line in r.out.feed(chunk):
                self.take_line(r, line)
            r.dirty = r.dirty or r.meter.changed
        r.meter.finish(time.time())
        for line in r.out.finish():
            self.take_line(r, line)

    def take_line(self, r: Run, line: str) -> None:
        prog = parse_progress(line)
        if prog is not None:
            r.progress = prog[0]
            r.dirty = True
            if prog[1]:
                self.add_output(r, prog[1])
            return
        if line.startswith(PARTIAL_PREFIX):
            self.take_partial(r, line)
            return
        self.add_output(r, line)

    def take_partial(self, r: Run, line: str) -> None:
        if len(line) > LINE_MAX:
            self.add_output(r, f"[{PARTIAL_PREFIX} line ignored: over {LINE_MAX:,} characters]")
            return
        with contextlib.suppress(json.JSONDecodeError, TypeError, ValueError):
            obj = json.loads(line[len(PARTIAL_PREFIX) :].strip())
            if isinstance(obj, dict):
                merged = {**r.partial, **obj}
                size = len(json.dumps(merged))
                if size > PARTIAL_MAX:
                    self.add_output(
                        r,
                        f"[{PARTIAL_PREFIX} ignored: the partial results would be {size:,} characters, over {PARTIAL_MAX:,}]",
                    )
                    return
                r.partial = merged
                r.dirty = True

    def add_output(self, r: Run, line: str) -> None:
        r.output.append(line)
        if r.out.admit(line):
            r.new_output.append(line)
        r.dirty = True

    def report_exit(self, r: Run, rc: int) -> None:
        if r.dirty and not r.stopping:
            self.send(self.progress_report(r))  # the lines since the last heartbeat, then the end
        if r.cgroup is not None and r.cgroup.oom_killed() and r.kill_reason is None:
            r.kill_reason = f"memory limit exceeded (cgroup memory.max {r.msg.get('memory_mb')} MB)"
        out = list(r.output)
        base = {
            "task": r.task,
            "attempt": r.attempt,
            "rc": rc,
            "output": out[-OUTPUT_KEEP:],
            "output_file": str(r.out.path) if r.out.path is not None else None,
            "output_bytes": r.out.bytes_total,
            "progress": r.progress,
            "partial": r.partial,
            "peak_rss_mb": round(r.peak_rss_mb, 1),
            "elapsed_s": round(r.running_for(), 3),
        }
        if r.meter.seen:
            base["usage"] = r.meter.report()
        if r.stopping:
            self.finish(r, {"t": "stopped", **base}, keep=False)
        elif r.kill_reason is not None:
            self.finish(r, {"t": "failed", "error": r.kill_reason, **base})
        elif rc == 0:
            self.finish(r, {"t": "finished", **base})
        else:
            err = f"exit status {rc}" if rc > 0 else f"killed by signal {signal.Signals(-rc).name}"
            mem = r.msg.get("memory_mb")
            if (
                mem
                and self.mech_memory == "rlimit_as"
                and any(
                    s in line
                    for line in out[-5:]
                    for s in ("MemoryError", "Cannot allocate memory", "bad_alloc", "out of memory")
                )
            ):
                err = f"memory limit exceeded (RLIMIT_AS {mem:g} MB): {err}"
            self.finish(r, {"t": "failed", "error": err, **base})

    def finish(self, r: Run, report: dict[str, Any], keep: bool = True) -> None:
        r.out.close()
        if r.terminal is not None:
            r.terminal.close()
        if r.cgroup is not None:
            r.cgroup.remove()
        if keep:
            self.results[r.key()] = report
            while len(self.results) > RESULTS_KEEP:
                self.results.popitem(last=False)
        if self.run is r:
            self.run = None
        self.send(report)

    def signal_group(self, r: Run, sig: int) -> None:
        if r.pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(r.pgid, sig)

    async def stop_run(self, r: Run, reason: str) -> None:
        """SIGTERM the task's group (continued if paused), SIGKILL after the grace period."""
        if r.proc is None or r.proc.returncode is not None:
            return
        r.stopping = True
        self.kill_tree(r, signal.SIGTERM)
        self.kill_tree(r, signal.SIGCONT)
        try:
            await asyncio.wait_for(exited(r.proc), self.grace_s)
        except TimeoutError:
            self.kill_tree(r, signal.SIGKILL)
            await exited(r.proc)

    def kill_tree(self, r: Run, sig: int) -> None:
        """Signal the run's group and every process of its tree (other sessions too)."""
        self.tree.signal(r.pgid, r.proc.pid if r.proc else None, sig, running=self.running_pid(r))

    @staticmethod
    def running_pid(r: Run | None) -> int | None:
        return r.proc.pid if r is not None and r.proc is not None and r.proc.returncode is None else None

    async def watch(self, r: Run) -> None:
        """Timeout and RSS watchdog for one run."""
        step = min(0.2, self.heartbeat_s / 4)
        timeout = r.msg.get("timeout_s")
        memory_mb = r.msg.get("memory_mb")
        while r.proc is not None and r.proc.returncode is None and self.run is r:
            await asyncio.sleep(step)
            if r.paused or r.stopping:
                continue
            if r.interactive:
                self.check_input_wait(r)
            if timeout and r.running_for() > timeout:
                r.kill_reason = f"timeout after {timeout:g}s"
                asyncio.get_running_loop().create_task(self._kill(r))
                return
            if memory_mb:
                rss = self.tree.rss_mb(r.proc.pid if r.proc else None)
                r.peak_rss_mb = max(r.peak_rss_mb, rss)
                if rss > memory_mb:
                    r.kill_reason = f"memory limit exceeded (rss {rss:.0f} MB > {memory_mb:g} MB)"
                    self.kill_tree(r, signal.SIGKILL)
                    return

    def check_input_wait(self, r: Run) -> None:
        """Report a change in whether the task waits for input (kernel-read, see input_wait)."""
        members = self.tree.members(r.proc.pid if r.proc else None)
        last = r.output[-1] if r.output else None
        w = waiting_for_input(members, r.stdin_target, last, time.monotonic() - r.last_output_at, r.input_wait_s)
        reason = w.reason if w is not None else None
        if reason != r.waiting:
            r.waiting = reason
            self.send({"t": "input_wait", "task": r.task, "attempt": r.attempt, "reason": reason})

    async def write_input(self, r: Run, data: bytes) -> int:
        """Write to the task's stdin (its pty, or its pipe); the bytes written."""
        if r.terminal is not None:
            return await r.terminal.write(data)
        assert r.proc is not None and r.proc.stdin is not None
        r.proc.stdin.write(data)
        await asyncio.wait_for(r.proc.stdin.drain(), INPUT_TIMEOUT_S)
        return len(data)

    async def take_input(self, msg: dict[str, Any]) -> None:
        r = self.run
        task = msg.get("task")
        ans: dict[str, Any] = {"t": "input_written", "task": task, "id": msg.get("id")}
        data = str(msg.get("data") or "").encode("utf-8", "surrogateescape")
        if r is None or r.task != task or r.proc is None or r.proc.returncode is not None:
            ans["error"] = "the task is not running on this agent"
        elif not r.interactive:
            ans["error"] = "the task's stdin is /dev/null (set interactive = true or tty = true in its workflow file)"
        elif r.paused:
            ans["error"] = "the task is paused (SIGSTOP): resume it before writing to it"
        else:
            try:
                ans["bytes"] = await self.write_input(r, data)
                r.last_output_at = time.monotonic()  # an answer starts a new quiet period
            except (OSError, TimeoutError, AssertionError) as exc:
                ans["error"] = f"writing to its stdin failed: {exc}"
        self.send(ans)

    async def _kill(self, r: Run) -> None:
        self.kill_tree(r, signal.SIGTERM)
        assert r.proc is not None
        try:
            await asyncio.wait_for(exited(r.proc), self.grace_s)
        except TimeoutError:
            self.kill_tree(r, signal.SIGKILL)

    # -- heartbeats --------------------------------------------------------------
    def progress_report(self, r: Run) -> dict[str, Any]:
        """A heartbeat about the run: its progress, and what is new since the last one
        (the output lines that fit the budget, a line summarising those that did not)."""
        msg: dict[str, Any] = {
            "t": "heartbeat",
            "task": r.task,
            "attempt": r.attempt,
            "progress": round(r.progress, 4),
            "paused": r.paused,
        }
        if r.dirty:
            msg["changed"] = True
            note = r.out.summary()
            if r.new_output or note:
                msg["output"], r.new_output = r.new_output + ([note] if note else []), []
            if r.partial:
                msg["partial"] = dict(r.partial)
            if r.meter.changed:
                msg["usage"] = r.meter.report()
            r.dirty = False
        return msg

    async def heartbeat(self) -> None:
        while not self.done.is_set():
            await asyncio.sleep(self.heartbeat_s)
            r = self.run
            self.tree.reap(self.running_pid(r))
            self.send(self.progress_report(r) if r is not None and r.proc is not None else {"t": "heartbeat"})
            idle_for = time.monotonic() - self.last_client
            if (
                self.writer is None
                and r is None
                and (idle_for > self.orphan_s or (not self.ever_connected and idle_for > NEVER_CONNECTED_S))
            ):
                self.done.set()  # nobody came (back) for us: do not linger forever

    async def main(self) -> int:
        self.tree.subreaper = become_subreaper()
        try:
            server = await start_server(self.client, self.address)
        except (OSError, PrivateError) as exc:
            print(f"agent host {self.agent}: cannot listen: {exc}", file=sys.stderr, flush=True)
            return 2
        hb = asyncio.get_running_loop().create_task(self.heartbeat())
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.done.set)
        await self.done.wait()
        hb.cancel()
        if self.run is not None:
            await self.stop_run(self.run, "agent shut down")
        server.close()
        if self.writer is not None:
            with contextlib.suppress(Exception):
                await self.writer.drain()
            self.writer.close()
        with contextlib.suppress(OSError):
            os.unlink(self.address)
        return 0


async def start_server(handler: Any, address: str) -> asyncio.AbstractServer:
    """Listen on a path socket (never abstract) in a 0700 directory of ours, mode 0600.

    A stale socket of ours at the path is replaced; anything else there is refused."""
    path = Path(address)
    private_dir(path.parent)
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
            raise OSError(f"{address}: exists and is not a socket of ours; refusing to replace it")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket file is created 0600, with no window of a wider mode
    try:
        sock.bind(address)
    finally:
        os.umask(old)
    os.chmod(address, 0o600)
    return await asyncio.start_unix_server(handler, sock=sock, limit=MAX_LINE)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="agent_host", description="opsdeck agent host (started by the local runtime)")
    p.add_argument("--agent", required=True)
    p.add_argument("--socket", required=True, help="unix socket path (in a 0700 directory of ours)")
    p.add_argument(
        "--secret-file", required=True, help="0600 file holding the run's secret (checked on every connection)"
    )
    p.add_argument("--heartbeat", type=float, default=1.0)
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--orphan", type=float, default=3600.0, help="exit when idle with no console for this long")
    p.add_argument("--memory-mechanism", default="rlimit_as")
    p.add_argument("--cpu-mechanism", default="nice")
    p.add_argument("--cgroup", default=None)
    p.add_argument(
        "--output-dir", default=None, help="where each run's whole output is kept (default: beside the socket)"
    )
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the console's terminal is for the console
    if sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
        # One event loop, no watcher thread per child (3.11's default starts one per process).
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    return asyncio.run(Host(args).main())


if __name__ == "__main__":
    sys.exit(main())
