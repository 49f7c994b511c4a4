"""What passes in and out of a real runtime's task: the operator's input, the output
files, the task's git worktree, and the hosts' waiting-for-input reports.

Shared by the local and Ray runtimes through :class:`~.dispatch.Dispatch`. Input is
written by the task's runner and answered with the bytes written; the answer (or its
absence within :data:`INPUT_TIMEOUT_S`) is what ``send-input`` says. A worktree is
made (in a thread: git may be slow) before the task's start is sent, and reported to
the engine as a fact of the run. Output files exist where the runner keeps them
(``output_root``: the local runtime's hosts; a Ray node's files are not reachable).
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any, Generic

from ..models import TaskStatus
from . import NotApplicable
from . import worktree as W
from .fleet import Fleet, H
from .output import output_path

INPUT_TIMEOUT_S = 15.0


class TaskIO(Generic[H]):
    def __init__(self, fleet: Fleet[H], run_dir: Path, output_root: Path | None) -> None:
        self.fleet = fleet
        self.output_root = output_root
        self.worktree_root = run_dir / "worktrees"
        self._ids = itertools.count(1)
        self._input_waits: dict[int, asyncio.Future[dict[str, Any]]] = {}

    # -- output files ------------------------------------------------------------------
    def output_dir(self, agent_id: str) -> Path | None:
        return self.output_root / agent_id if self.output_root is not None else None

    def task_output(self, agent_id: str, task_id: str, attempt: int) -> Path | None:
        d = self.output_dir(agent_id)
        return output_path(d, task_id, attempt) if d is not None else None

    # -- input -----------------------------------------------------------------------------
    async def send_input(self, agent_id: str, task_id: str, data: bytes) -> int:
        h = self.fleet.hosts.get(agent_id)
        if h is None or h.dead:
            raise NotApplicable(f"agent {agent_id} is not running: nothing can reach {task_id}")
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._input_waits[rid] = fut
        text = data.decode("utf-8", "surrogateescape")
        self.fleet.send(h, {"op": "input", "task": task_id, "id": rid, "data": text})
        try:
            ans = await asyncio.wait_for(fut, INPUT_TIMEOUT_S)
        except TimeoutError:
            raise TimeoutError(
                f"agent {agent_id} did not answer within {INPUT_TIMEOUT_S:g}s: whether the input arrived is unknown"
            ) from None
        finally:
            self._input_waits.pop(rid, None)
        if ans.get("error"):
            raise NotApplicable(str(ans["error"]))
        return int(ans.get("bytes") or 0)

    def report(self, agent_id: str, kind: str, task: str | None, attempt: Any, msg: dict[str, Any]) -> None:
        """A runner's report about a task's input: an answer to ``input``, or a wait seen."""
        if kind == "input_written":
            rid = msg.get("id")
            fut = self._input_waits.get(rid) if isinstance(rid, int) else None
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        sink = self.fleet.sink
        if sink is not None and task and self.fleet.owns_attempt(agent_id, task, attempt):
            reason = msg.get("reason")
            sink.task_input_wait(agent_id, task, str(reason) if reason else None)

    # -- worktrees -------------------------------------------------------------------------
    def start(self, h: H, agent_id: str, task_id: str, repo: str | None, msg: dict[str, Any]) -> None:
        """Send the run's start; in the task's own worktree first when it has a repository."""
        if not repo:
            self.fleet.send(h, msg)
            return

        async def go() -> None:
            try:
                wt = await asyncio.to_thread(W.open_worktree, repo, self.worktree_root, task_id)
            except W.WorktreeError as exc:
                self.fleet.fail_later(agent_id, task_id, f"could not open its worktree: {exc}")
                return
            msg["cwd"] = str(wt.path)
            msg["env"] = {**msg.get("env", {}), "OPSDECK_BRANCH": wt.branch}
            if self.fleet.sink is not None:
                self.fleet.sink.task_workspace(agent_id, task_id, str(wt.path), wt.branch, str(wt.repo))
            self.fleet.send(h, msg)

        asyncio.get_running_loop().create_task(go())

    def prune_worktrees(self, repos: dict[str, str]) -> list[dict[str, str]]:
        """Remove the checkouts of tasks that are not running (``repos``: task -> its
        repository); their branches stay: the work is not thrown away (``merge`` and
        ``discard`` decide). What was removed."""
        engine = self.fleet.engine
        if engine is None or not self.worktree_root.is_dir():
            return []
        busy = {t.id for t in engine.state.tasks.values() if t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED)}
        removed: list[dict[str, str]] = []
        for task, repo in sorted(repos.items()):
            path = self.worktree_root / W.slug(task)
            if task in busy or not path.is_dir() or path.is_symlink():
                continue
            W.git(Path(repo), "worktree", "remove", "--force", str(path), check=False)
            W.git(Path(repo), "worktree", "prune", check=False)
            if not path.exists():
                removed.append({"task": task, "path": str(path), "branch": W.branch_for(task), "repo": repo})
        return removed
