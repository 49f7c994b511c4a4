"""Task commands of a real runtime: what a task runs, and the controls over a running one.

The console side of a task's run: the command and environment sent to the agent host
(:meth:`Dispatch.start_task` -- the host spawns the process, see
:meth:`core.runtimes.agent_host.Host.launch`), pause/resume/stop, new CPU limits in
place, each run's temp directory, and psutil measurements of the task's tree.
Shared by the local and the Ray runtimes through their :class:`~.fleet.Fleet`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from pathlib import Path
from typing import Any, Generic

import psutil

from ..event_types import (
    WORKFLOW_CREATED,
)
from ..models import EMPTY_CONTEXT, Band, Task, TaskContext, TaskSpec, TaskStatus, WorkflowSpec
from ..projection import task_key
from .fleet import Fleet, H, Links
from .limits import NICE_BY_BAND, Mechanisms
from .sampler import Sampler, TaskMeasure, same_process
from .task_io import TaskIO


def temp_name(task_id: str, attempt: int) -> str:
    """The name of a task run's ``TMPDIR`` in the run's temp directory."""
    return f"{task_id.replace('/', '__')}-{attempt}"


def remove_tree(d: Path) -> tuple[int, int, bool]:
    """Remove ``d`` bottom-up without following links: (regular files removed, their bytes,
    whether ``d`` was removed here). A file or ``d`` counts once its unlink or rmdir
    succeeded: what could not be removed stays and is not reported as recovered, and a
    ``d`` gone by other means (an agent host renamed it, a spare TMPDIR, to serve its next
    run) is not counted as removed."""
    files = size = 0
    for top, subdirs, names in os.walk(d, topdown=False):
        for name in names:
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
                os.unlink(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
        for name in subdirs:  # a link to a directory is listed here and not walked
            path = os.path.join(top, name)
            with contextlib.suppress(OSError):
                if os.path.islink(path):
                    os.unlink(path)
                else:
                    os.rmdir(path)
    try:
        os.rmdir(d)
    except OSError:
        return files, size, False
    return files, size, True


MEDIUM_NICE = NICE_BY_BAND[Band.MEDIUM.value]
"""A task's niceness when its workflow is not in the projection (its band unknown)."""


def context_json(ctx: TaskContext) -> dict[str, Any]:
    """A task's context as its start command carries it: ``model_dump(mode="json")``,
    and for the shared empty context most tasks hold, the same dict built without
    pydantic (2.5 us less per start)."""
    if ctx is EMPTY_CONTEXT:
        return {"inputs": {}, "progress": 0.0, "partial_results": {}, "last_output": []}
    return ctx.model_dump(mode="json")


class Dispatch(Generic[H]):
    """Task commands, limits, temp directories and measurements over a fleet's hosts."""

    def __init__(
        self,
        fleet: Fleet[H],
        links: Links[H],
        run_dir: Path,
        mechanisms: Mechanisms,
        sampler: Sampler,
        output_root: Path | None = None,
    ) -> None:
        self.fleet = fleet
        self.links = links
        self.run_dir = run_dir
        self.mechanisms = mechanisms
        self.sampler = sampler
        self.specs: dict[str, TaskSpec] = {}
        self._limit_waits: dict[tuple[str, str], list[asyncio.Future[dict[str, Any]]]] = {}
        self.io: TaskIO[H] = TaskIO(fleet, run_dir, output_root)
        """Input, output files and worktrees of the tasks."""
        self._tmp_root = run_dir / "tmp"
        """Where each task run's ``TMPDIR`` is made (:meth:`temp_dir`)."""
        self._shared = run_dir / "shared"
        """``OPSDECK_RUN_DIR`` (:meth:`shared_dir`)."""
        self._tmp_str = os.path.join(self._tmp_root, "")
        """The root as a string ending in a separator: a start joins a run's name to it (no Path)."""
        self._shared_str = str(self._shared)

    # -- what tasks run ----------------------------------------------------------------
    def learn(self, spec_data: dict[str, Any], given: WorkflowSpec | None = None) -> None:
        """Remember the commands of a workflow's tasks (from its WORKFLOW_CREATED): the
        recorded spec validated, or ``given``, the model it was recorded from (the same
        tasks: the record is its dump)."""
        spec = given if given is not None else WorkflowSpec.model_validate(spec_data)
        for phase in spec.phases:
            for t in phase.tasks:
                self.specs[task_key(spec.id, t.id)] = t

    def on_event(self, ev: Any) -> None:
        if ev.type == WORKFLOW_CREATED:
            data = ev.data["spec"]
            engine = self.fleet.engine
            given = engine.creating if engine is not None else None  # created here from a model, now
            self.learn(data, given if given is not None and given.id == data.get("id") else None)

    def task_repo(self, task_id: str) -> str | None:
        """The repository the task works in a worktree of (from its workflow file), if any."""
        spec = self.specs.get(task_id)
        return spec.repo if spec is not None else None

    def attempts_allowed(self, task_id: str) -> int | None:
        """Per-task retry policy from the workflow file: attempts = retries + 1."""
        spec = self.specs.get(task_id)
        return None if spec is None or spec.retries is None else spec.retries + 1

    # -- starting a run ------------------------------------------------------------------
    def start_task(self, agent_id: str, task: Task) -> None:
        """Send the run's ``start`` command to the agent's host (after the log holds it)."""
        fleet = self.fleet
        h = fleet.hosts.get(agent_id)
        spec = self.specs.get(task.id)
        if h is None or h.dead:
            fleet.fail_later(agent_id, task.id, "agent not running")
            return
        if spec is None or not spec.command:
            fleet.fail_later(agent_id, task.id, "the task has no command")
            return
        engine = fleet.engine
        if engine is not None and task.workflow in engine.state.workflows:
            lim = engine.cpu_limits(task.workflow, task.id)
            nice, cpu_cores = int(lim["nice"]), (lim["cpu_cores"] if task.cpu else None)
        else:
            nice, cpu_cores = MEDIUM_NICE, task.cpu or None
        tmp = self._tmp_str + temp_name(task.id, task.attempts)  # made by the agent's runner (``make_dirs``)
        shared = self._shared_str
        env = {
            **(spec.env or {}),
            "TMPDIR": tmp,
            "TMP": tmp,
            "TEMP": tmp,
            "OPSDECK_RUN_DIR": shared,
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
            "context": context_json(task.context),
            "interactive": spec.interactive or spec.tty,
            "tty": spec.tty,
            "input_wait_s": engine.config.intervals.input_wait_s if engine is not None else None,
        }
        self.io.start(h, agent_id, task.id, spec.repo, msg)

    # -- controls over a running task ---------------------------------------------------
    def pause_task(self, agent_id: str, task_id: str) -> None:
        self.fleet.command(agent_id, {"op": "pause", "task": task_id})

    def resume_task(self, agent_id: str, task_id: str) -> None:
        self.fleet.command(agent_id, {"op": "resume", "task": task_id})

    def stop_task(self, agent_id: str, task_id: str) -> None:
        self.fleet.command(agent_id, {"op": "stop", "task": task_id})

    def ping_agent(self, agent_id: str) -> None:
        """An active health check: the agent's host answers with a heartbeat."""
        self.fleet.command(agent_id, {"op": "ping"})

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
            h = self.fleet.hosts.get(agent_id)
            if h is None or h.dead:
                out.append({"task": task_id, "agent": agent_id, "applied": {}, "errors": {"agent": "not running"}})
                continue
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._limit_waits.setdefault((agent_id, task_id), []).append(fut)
            msg = {"op": "limit", "task": task_id, "nice": lim.get("nice"), "cpu_cores": lim.get("cpu_cores")}
            self.fleet.send(h, msg)
            waits.append((agent_id, task_id, lim, fut))
        for agent_id, task_id, lim, fut in waits:
            base = {"task": task_id, "agent": agent_id, "requested": lim, "mechanism": self.mechanisms.cpu}
            try:
                ans = await asyncio.wait_for(fut, timeout_s)
                before, applied = ans.get("before", {}), ans.get("applied") or {}
                out.append(
                    base
                    | {
                        "applied": ans.get("applied", {}),
                        "errors": ans.get("errors", {}),
                        "before": before,
                        "changed": any(before.get(k) != v for k, v in applied.items()),
                        "pgid": ans.get("pgid"),
                        "mechanism": ans.get("mechanism") or self.mechanisms.cpu,
                    }
                )
            except TimeoutError:
                out.append(base | {"applied": {}, "errors": {"agent": f"no answer within {timeout_s:g}s"}})
            finally:
                lst = self._limit_waits.get((agent_id, task_id), [])
                if fut in lst:
                    lst.remove(fut)
        return out

    def limited(self, agent_id: str, task_id: str, msg: dict[str, Any]) -> None:
        """A host's answer to a ``limit`` command: wakes the :meth:`relimit` waiting on it."""
        for fut in self._limit_waits.get((agent_id, task_id), []):
            if not fut.done():
                fut.set_result(msg)

    # -- measurements -----------------------------------------------------------------------
    def measure_task(
        self, agent_id: str, task_id: str, pid: int | None = None, create_time: float | None = None
    ) -> TaskMeasure | None:
        """psutil of the task's process tree (the one ``pid``/``create_time`` name, else
        the agent's current one): None when it is gone or not on this machine."""
        h = self.fleet.hosts.get(agent_id)
        if pid is None:
            if h is None or h.dead or not self.links.measurable(h):
                return None
            pid, create_time = h.task_pgid, h.task_create_time
        if pid is None:
            return None
        return self.sampler.group(pid, create_time)

    # -- the files of task runs -------------------------------------------------------------
    def shared_dir(self) -> Path:
        """One directory for every task of the run (``OPSDECK_RUN_DIR``, 0700): where
        tasks hand files to each other, since each run has its own ``TMPDIR`` and the
        cleanup deletes finished runs' temp directories."""
        return self._shared

    def temp_dir(self, task_id: str, attempt: int) -> Path:
        """Each task run's own ``TMPDIR`` (inside the run directory, 0700)."""
        return self._tmp_root / temp_name(task_id, attempt)

    def _live_temp_names(self) -> set[str]:
        """The names of the TMPDIRs in the temp root of runs whose first process still
        lives (an agent's current run, its pid verified by its create time: a run being
        stopped is no longer running in the log while it has its stop grace to end in),
        read from the environment it was started with."""
        names = set()
        for h in self.fleet.hosts.values():
            pid, created = h.task_pgid, h.task_create_time
            if pid is None or created is None or not self.links.measurable(h) or not same_process(pid, created):
                continue
            try:
                tmp = psutil.Process(pid).environ().get("TMPDIR", "")
            except psutil.Error:
                continue
            if same_process(pid, created) and os.path.dirname(tmp) == str(self._tmp_root):  # read of that process
                names.add(os.path.basename(tmp))
        return names

    def cleanup_temp(self) -> dict[str, Any]:
        """Delete the temp directories of task runs that are not running now and whose
        process has ended; count the files and bytes removed."""
        root = self._tmp_root
        keep = self._live_temp_names()
        engine = self.fleet.engine
        if engine is not None:
            for t in engine.state.tasks.values():
                if t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
                    keep.add(temp_name(t.id, t.attempts))
        files = size = dirs = 0
        kept = []
        for d in sorted(root.iterdir()) if root.is_dir() else []:
            if d.name in keep or not d.is_dir() or d.is_symlink():
                kept.append(d.name)
                continue
            n, b, gone = remove_tree(d)
            files, size, dirs = files + n, size + b, dirs + gone
        return {
            "dirs_removed": dirs,
            "files_removed": files,
            "bytes_removed": size,
            "kept_running": kept,
            "worktrees_removed": self.io.prune_worktrees({k: r for k in self.specs if (r := self.task_repo(k))}),
        }
