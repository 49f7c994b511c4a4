"""The local runtime's part for what passes in and out of a task's process: the
operator's input, the output files, the task's git worktree, waiting-for-input reports.

Input is written by the task's agent host and answered with the bytes written; the
answer (or its absence within :data:`INPUT_TIMEOUT_S`) is what ``send-input`` says.
A worktree is made (in a thread: git may be slow) before the task's start is sent,
and reported to the engine as a fact of the run.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import NotApplicable
from . import worktree as W
from .output import output_path

if TYPE_CHECKING:
    from ..engine import Engine
    from . import RuntimeSink

INPUT_TIMEOUT_S = 15.0


class HostLike(Protocol):
    agent: str
    dead: bool


class LocalParts(Protocol):
    """What this part uses of the local runtime."""

    run_dir: Path
    sink: RuntimeSink | None
    engine: Engine | None
    hosts: dict[str, Any]

    def _send(self, h: Any, msg: dict[str, Any]) -> None: ...

    def _fail_later(self, agent_id: str, task_id: str, why: str) -> None: ...

    def _owns_attempt(self, agent_id: str, task_id: str, attempt: Any) -> bool: ...


class TaskIO:
    def __init__(self, rt: LocalParts) -> None:
        self.rt = rt
        self._ids = itertools.count(1)
        self._input_waits: dict[int, asyncio.Future[dict[str, Any]]] = {}

    # -- output files ------------------------------------------------------------------
    def output_dir(self, agent_id: str) -> Path:
        return self.rt.run_dir / "output" / agent_id

    def task_output(self, agent_id: str, task_id: str, attempt: int) -> Path | None:
        return output_path(self.output_dir(agent_id), task_id, attempt)

    def worktree_root(self) -> Path:
        return self.rt.run_dir / "worktrees"

    # -- input -----------------------------------------------------------------------------
    async def send_input(self, agent_id: str, task_id: str, data: bytes) -> int:
        h = self.rt.hosts.get(agent_id)
        if h is None or h.dead:
            raise NotApplicable(f"agent {agent_id} is not running: nothing can reach {task_id}")
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._input_waits[rid] = fut
        self.rt._send(h, {"op": "input", "task": task_id, "id": rid, "data": data.decode("utf-8", "surrogateescape")})
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
        """An agent host's report about a task's input."""
        if kind == "input_written":
            rid = msg.get("id")
            fut = self._input_waits.get(rid) if isinstance(rid, int) else None
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        sink = self.rt.sink
        if sink is not None and task and self.rt._owns_attempt(agent_id, task, attempt):
            reason = msg.get("reason")
            sink.task_input_wait(agent_id, task, str(reason) if reason else None)

    # -- worktrees -------------------------------------------------------------------------
    def start_in_worktree(self, h: Any, agent_id: str, task_id: str, repo: str, msg: dict[str, Any]) -> None:
        """Open the task's worktree (off the loop), then send its start with that as cwd."""

        async def go() -> None:
            try:
                wt = await asyncio.to_thread(W.open_worktree, repo, self.worktree_root(), task_id)
            except W.WorktreeError as exc:
                self.rt._fail_later(agent_id, task_id, f"could not open its worktree: {exc}")
                return
            msg["cwd"] = str(wt.path)
            msg["env"] = {**msg.get("env", {}), "OPSDECK_BRANCH": wt.branch}
            if self.rt.sink is not None:
                self.rt.sink.task_workspace(agent_id, task_id, str(wt.path), wt.branch, str(wt.repo))
            self.rt._send(h, msg)

        asyncio.get_running_loop().create_task(go())

    def prune_worktrees(self, keep: set[str]) -> list[str]:
        """Remove the checkouts of tasks not in ``keep`` (their branches stay); the tasks' slugs."""
        engine = self.rt.engine
        root = self.worktree_root()
        if engine is None or not root.is_dir():
            return []
        repos = {t.repo for t in engine.state.tasks.values() if t.repo}
        removed: list[str] = []
        for repo in sorted(r for r in repos if r):
            try:
                removed += W.prune(repo, root, keep)
            except W.WorktreeError:
                continue
        return removed
