"""An agent's task runner: runs each task as a real process group and reports on it.

Shared by the agent host process (:mod:`core.runtimes.agent_host`, a unix socket to
the console) and the Ray actor (:mod:`core.runtimes.ray_agent`, numbered polls): both
hold a :class:`TaskRunner` and give it their ``send``; only the transport differs.

Each task runs as a child in its own process group (``start_new_session``), so
pause/resume/stop reach the whole tree: SIGSTOP / SIGCONT / SIGTERM then SIGKILL
after the grace period. :meth:`TaskRunner.launch` is where the task's process is
spawned; :meth:`TaskRunner._readable` is where its output is read, line by line,
into :meth:`Run.take_line <core.runtimes.task_run.Run.take_line>`.

Commands (console -> runner): ``start``, ``pause``, ``resume``, ``stop``, ``limit``,
``input`` (text for an interactive task's stdin), ``ping``, ``shutdown``. ``start`` is idempotent per (task, attempt): a run that
already ended is reported again instead of being run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ..usage.meter import Meter
from .input_wait import stdin_target, waiting_for_input
from .limits import TaskCgroup, apply_from_parent, relimit
from .output import OutputFiles
from .task_process import TaskProcess
from .task_run import Run, RunDirs
from .task_tree import TaskTree
from .tty import TaskTerminal

RESULTS_KEEP = 256
READ_CHUNK = 64 * 1024
OUTPUT_DRAIN_S = 2.0
"""How long a run's end waits for the rest of its output once its first process is gone."""
INPUT_TIMEOUT_S = 10.0
"""How long a write to a task's stdin may block (a task that reads nothing fills the pipe)."""
EXIT_WATCH_AFTER_S = 0.05
"""A run without a watchdog has its exit watched (a pidfd) from this long after its start;
before, its output's end looks (a short task's exit is seen then: no pidfd for it)."""


@dataclass(frozen=True)
class RunnerConfig:
    """How one agent runs its tasks (the host's command line, or the actor's arguments)."""

    agent: str
    heartbeat_s: float = 1.0
    grace_s: float = 5.0
    mech_memory: str = "rlimit_as"
    mech_cpu: str = "nice"
    cgroup_parent: str | None = None
    output_dir: Path | None = None
    """Where each run's whole output is kept (none: only the reports' lines)."""
    launcher: list[str] = field(default_factory=list)
    """An argv prefix for every task (the Ray actor's: ``limits.dies_with_parent()``)."""
    make_dirs: bool = False
    """Create the run's directories the console chose (its TMPDIR, the shared directory)."""


class TaskRunner:
    """Runs one agent's tasks, one at a time, and reports through ``send``."""

    def __init__(
        self,
        config: RunnerConfig,
        send: Callable[[dict[str, Any]], None],
        hold: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.send = send
        self.hold = hold or send
        """Send a report that may go out with the next one (a run's start), if the transport can."""
        self.run: Run | None = None
        self.results: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self.done = asyncio.Event()
        """Set by a ``shutdown`` command (or by the transport when nobody comes for it)."""
        self.me = psutil.Process()
        self.tree = TaskTree(self.me)
        """The running task's processes (a subreaper's: see :mod:`core.runtimes.task_tree`)."""
        self.dirs = RunDirs(self.tree.alone)
        """Each run's TMPDIR and the run's shared directory (``make_dirs``)."""
        self.tasks: set[asyncio.Task[None]] = set()
        """The runs' output pumps and watchdogs while they run."""
        self.base_env = dict(os.environ)
        """The host's environment, read once (``os.environ`` decodes every variable on each copy)."""
        self.outputs = OutputFiles(config.output_dir) if config.output_dir is not None else None
        """Each run's whole output, one file per run (none without an output directory)."""

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
            "started_at": round(r.started_at(), 3),
        }

    def recent_results(self) -> list[dict[str, Any]]:
        """The last runs' ends, for a (re)connecting console's ``hello``."""
        return list(self.results.values())[-32:]

    # -- commands -------------------------------------------------------------------------
    async def command(self, msg: dict[str, Any]) -> None:
        """Carry out one command to its end (the Ray actor's commands, one batch at a time)."""
        rest = self.handle(msg)
        if rest is not None:
            await rest

    def handle(self, msg: dict[str, Any]) -> Coroutine[Any, Any, None] | None:
        """Carry out one command as far as it goes without waiting, and return what is
        left to await (a run to stop before the next starts, a write to a task's stdin,
        a task that could not be limited), or None: a ``start`` spawns its task here,
        from the callback that read the command (no task, no future in between)."""
        op = msg.get("op")
        r = self.run
        task = msg.get("task")
        if op == "start":
            key = (msg["task"], int(msg.get("attempt", 0)))
            if key in self.results:
                self.send(self.results[key])
                return None
            if r is not None and r.key() == key:
                self.send(r.started_again())
                return None
            if r is not None:
                return self._replace(r, msg)
            return self.launch(Run(msg))
        if op == "pause" and r is not None and r.task == task:
            self.signal_group(r, signal.SIGSTOP)
            r.pause()
        elif op == "resume" and r is not None and r.task == task:
            self.signal_group(r, signal.SIGCONT)
            r.resume()
        elif op == "input":
            return self.take_input(msg)
        elif op == "ping":  # an active health check from the console
            self.send({"t": "heartbeat"})
        elif op == "limit":
            self._limit(r, msg)
        elif op == "stop" and r is not None and r.task == task:
            asyncio.get_running_loop().create_task(self.stop_run(r, "stopped by the console"))
        elif op == "shutdown":
            if r is not None:
                return self._shut_down(r)
            self.done.set()
        return None

    async def _replace(self, r: Run, msg: dict[str, Any]) -> None:
        await self.stop_run(r, "replaced by a new assignment")
        rest = self.launch(Run(msg))
        if rest is not None:
            await rest

    async def _shut_down(self, r: Run) -> None:
        await self.stop_run(r, "agent shut down")
        self.done.set()

    def _limit(self, r: Run | None, msg: dict[str, Any]) -> None:
        """New CPU limits on the running task's group, in place; says what was applied."""
        task = msg.get("task")
        if r is None or r.task != task or r.pgid is None:
            no = {"applied": {}, "errors": {"task": "not running here"}}
            self.send({"t": "limited", "task": task, "attempt": msg.get("attempt"), **no})
            return
        cgroup = str(r.cgroup.path) if r.cgroup else None
        applied, errors, before = relimit(r.pgid, msg.get("nice"), msg.get("cpu_cores"), self.config.mech_cpu, cgroup)
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
                "mechanism": self.config.mech_cpu,  # this node's: a Ray node's may differ from the console's
            }
        )

    # -- running a task ---------------------------------------------------------------------
    def launch(self, r: Run) -> Coroutine[Any, Any, None] | None:
        """Spawn the task's process (its own group), put its limits on it, report
        ``started``; what is left to await when its limits failed (its end), else None."""
        cfg, m = self.config, r.msg
        self.run = r
        if cfg.make_dirs and (why := self.dirs.make(r)) is not None:
            self.finish(r, r.failed_to_start(why))
            return None
        if self.outputs is not None:
            r.out = self.outputs.open(r.task, r.attempt)
        memory_mb = m.get("memory_mb") or None
        cg_path = None
        if cfg.cgroup_parent and cfg.mech_memory == "cgroup":
            try:
                r.cgroup = TaskCgroup(
                    cfg.cgroup_parent,
                    f"opsdeck-{cfg.agent}-{os.getpid()}-{r.attempt}",
                    memory_mb,
                    m.get("cpu_cores") if cfg.mech_cpu == "cgroup" else None,
                )
                cg_path = str(r.cgroup.path)
            except OSError:
                r.cgroup = None
        mech_memory = cfg.mech_memory if cg_path or cfg.mech_memory != "cgroup" else "rlimit_as"
        try:
            r.proc = self._spawn(r)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            if r.terminal is not None:
                r.terminal.close()
            self.finish(r, r.failed_to_start(f"could not start: {exc}"))
            return None
        r.pgid = r.proc.pid
        if r.terminal is not None:
            r.terminal.started()
            r.stdin_target = r.terminal.slave_name
        elif r.interactive:
            r.stdin_target = stdin_target(r.proc.pid)
        try:
            apply_from_parent(r.proc.pid, memory_mb, int(m.get("nice") or 0), mech_memory, cfg.mech_cpu, cg_path)
        except ProcessLookupError:
            pass  # it has already exited: nothing left to limit
        except (OSError, ValueError) as exc:
            self.signal_group(r, signal.SIGKILL)
            return self._unlimited(r, f"could not apply the task's limits: {exc}")
        r.create_time = r.proc.create_time()
        limits = {
            "memory_mb": memory_mb,
            "memory": cfg.mech_memory if memory_mb else None,
            "cpu": cfg.mech_cpu,
            "nice": m.get("nice") or 0,
        }
        self.hold(
            {
                "t": "started",
                "task": r.task,
                "attempt": r.attempt,
                "pid": r.proc.pid,
                "pgid": r.pgid,
                "create_time": r.create_time,
                "limits": limits,
            }
        )
        self.follow(r)
        if r.watchdog():
            self._keep(self.watch(r))  # nothing to watch for otherwise: no wake-ups
        return None

    async def _unlimited(self, r: Run, why: str) -> None:
        """A run killed because its limits could not be put on it: reported once it is gone."""
        assert r.proc is not None
        await r.proc.wait()
        self.finish(r, r.failed_to_start(why))

    def _keep(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task held until it is done (the loop keeps only weak references)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _spawn(self, r: Run) -> TaskProcess:
        """The task's process: its command (argv, or a shell line), in a session of its own."""
        m, launcher = r.msg, self.config.launcher
        command = m.get("command")
        if not command:
            raise ValueError("the task has no command")
        env = r.environment(self.base_env, self.config.agent)
        terminal = None
        if r.tty:  # the pty's slave is its stdin, stdout, stderr and controlling terminal
            r.terminal = TaskTerminal()
            terminal = r.terminal.spawn_args()
            env.setdefault("TERM", "xterm-256color")
        if m.get("shell"):
            text = command if isinstance(command, str) else shlex.join(command)
            argv = [*launcher, "/bin/sh", "-c", text]
        else:
            argv = [*launcher, *(shlex.split(command) if isinstance(command, str) else list(command))]
        watch_after = 0.0 if r.watchdog() else EXIT_WATCH_AFTER_S  # the watchdog loops until the exit
        return TaskProcess.spawn(argv, env, m.get("cwd") or None, r.interactive, terminal, watch_after)

    def follow(self, r: Run) -> None:
        """Read the task's output as it comes and end the run once the task has exited
        and its output is read: callbacks of the loop on the output's descriptor and the
        process's exit (a task per run, and the futures between them, cost more than the
        run of a short task itself)."""
        assert r.proc is not None
        fd = r.terminal.master if r.terminal is not None else r.proc.stdout
        if fd is None:
            r.output_done = True
            r.proc.watch()
        else:
            r.output_fd = fd
            r.proc.loop.add_reader(fd, self._readable, r)
        r.proc.on_exit(lambda rc: self._exited(r, rc))

    def _readable(self, r: Run) -> None:
        """One chunk of the task's output (no line is too long to read): every byte goes
        to its output file, capped lines to the reports."""
        fd = r.output_fd
        if fd is None:
            return
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:  # a pty whose last writer is gone answers EIO: the end of its output
            chunk = b""
        if not chunk:
            self._stop_reading(r)
            if r.meter is not None:
                r.meter.finish(time.time())
            for line in r.out.finish():
                r.take_line(line)
            r.output_done = True
            if r.rc is not None:
                self._end(r)
            elif r.proc is not None and r.proc.poll_exit() is None:  # if it exited, _exited ended the run
                r.proc.watch()  # its output ended before it did
            return
        r.last_output_at = time.monotonic()
        meter = r.meter
        if meter is None:
            meter = r.meter = Meter()
        meter.feed(chunk, time.time())  # whole lines, not the console's capped ones
        for line in r.out.feed(chunk):
            r.take_line(line)
        r.dirty = r.dirty or meter.changed

    def _stop_reading(self, r: Run) -> None:
        if r.output_fd is not None:
            asyncio.get_running_loop().remove_reader(r.output_fd)
            r.output_fd = None

    def _exited(self, r: Run, rc: int) -> None:
        """The task's first process is gone: nothing of it may stay behind (detached ones
        included); the run ends once its output is read, or after OUTPUT_DRAIN_S."""
        r.rc = rc
        self.kill_tree(r, signal.SIGKILL)
        if r.output_done:
            self._end(r)
        else:
            r.drain = asyncio.get_running_loop().call_later(OUTPUT_DRAIN_S, self._end, r)

    def _end(self, r: Run) -> None:
        """Report the run's end (its first process exited with ``r.rc``) once: the lines
        since the last heartbeat, then the end."""
        rc = r.rc
        if r.ended or rc is None:
            return
        r.ended = True
        if r.drain is not None:
            r.drain.cancel()
        self._stop_reading(r)  # still open after OUTPUT_DRAIN_S: what it holds is not waited for
        if r.dirty and not r.stopping:
            self.hold(r.progress_report())  # written with the end, just below
        report = r.exit_report(rc, self.config.mech_memory)
        self.finish(r, report, keep=report["t"] != "stopped")

    def finish(self, r: Run, report: dict[str, Any], keep: bool = True) -> None:
        if self.config.make_dirs:
            self.dirs.done(r)
        r.out.close()
        if r.proc is not None:
            r.proc.close()
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

    # -- signals --------------------------------------------------------------------------
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
            await asyncio.wait_for(r.proc.wait(), self.config.grace_s)
        except TimeoutError:
            self.kill_tree(r, signal.SIGKILL)
            await r.proc.wait()

    def kill_tree(self, r: Run, sig: int) -> None:
        """Signal the run's group and every process of its tree (other sessions too)."""
        self.tree.signal(r.pgid, r.proc.pid if r.proc else None, sig, running=self.running_pid(r))

    @staticmethod
    def running_pid(r: Run | None) -> int | None:
        return r.proc.pid if r is not None and r.proc is not None and r.proc.returncode is None else None

    async def watch(self, r: Run) -> None:
        """Timeout and RSS watchdog for one run."""
        step = min(0.2, self.config.heartbeat_s / 4)
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

    # -- input ------------------------------------------------------------------------------
    def check_input_wait(self, r: Run) -> None:
        """Report a change in whether the task waits for input (read from /proc: :mod:`.input_wait`)."""
        members = self.tree.members(r.proc.pid if r.proc else None)
        last = r.output[-1] if r.output else None
        w = waiting_for_input(members, r.stdin_target, last, time.monotonic() - r.last_output_at, r.input_wait_s)
        reason = w.reason if w is not None else None
        if reason != r.waiting:
            r.waiting = reason
            self.send({"t": "input_wait", "task": r.task, "attempt": r.attempt, "reason": reason})

    async def take_input(self, msg: dict[str, Any]) -> None:
        """Write the operator's text to the running task's stdin; answer with the bytes written."""
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
                if r.terminal is not None:
                    ans["bytes"] = await r.terminal.write(data)
                else:
                    ans["bytes"] = await r.proc.write(data, INPUT_TIMEOUT_S)
                r.last_output_at = time.monotonic()  # an answer starts a new quiet period
            except (OSError, TimeoutError) as exc:
                ans["error"] = f"writing to its stdin failed: {exc}"
        self.send(ans)

    async def _kill(self, r: Run) -> None:
        self.kill_tree(r, signal.SIGTERM)
        assert r.proc is not None
        try:
            await asyncio.wait_for(r.proc.wait(), self.config.grace_s)
        except TimeoutError:
            self.kill_tree(r, signal.SIGKILL)

    # -- heartbeats -------------------------------------------------------------------------
    def beat(self) -> None:
        """One heartbeat: report on the run (or that the agent is idle), then reap what the
        task left. The report goes first: liveness is judged on it, and reaping scans /proc,
        which on a loaded machine can take a good part of a heartbeat."""
        r = self.run
        self.send(r.progress_report() if r is not None and r.proc is not None else {"t": "heartbeat"})
        self.tree.reap(self.running_pid(r))
