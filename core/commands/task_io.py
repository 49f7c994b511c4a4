"""``/coordination-hub`` operations on one task's process: its input and its worktree.

What reaches a task is said only once its agent host has done it: ``send-input``
answers with the bytes the host wrote to the task's stdin, and an event records
them (who, what, how much). A worktree is merged or discarded by git in the
repository, and the answer is git's outcome (the commit, or why nothing happened).
"""

from __future__ import annotations

import asyncio

from ..event_types import TASK_INPUT_SENT, TASK_WORKTREE
from ..models import Task, TaskStatus
from ..runtimes import NotApplicable
from ..runtimes import terminal as term
from ..runtimes import worktree as W
from . import payloads as P
from .context import Context
from .coordination_hub import C
from .registry import Operations, Outcome
from .responses import CommandError

OPS = Operations(C, None)
operation = OPS.operation


def _task(ctx: Context, task_id: str) -> Task:
    t = ctx.state.tasks.get(task_id)
    if t is None:
        raise CommandError("UNKNOWN_TASK", f"no task {task_id!r}", suggestions=["/workflow-status tasks"])
    return t


@operation(
    C,
    "send-input",
    kind="lifecycle",
    payload=P.SendInput,
    summary="write a line to a running task's stdin (interactive or tty tasks; audited)",
    word_args=("task", "text"),
)
async def send_input(ctx: Context, p: P.SendInput) -> Outcome:
    """Write ``text`` (and a newline) to the task's stdin through its agent host.

    Only a running task of ``interactive = true`` or ``tty = true`` has a stdin to
    write to; the answer is what the host wrote, recorded as TASK_INPUT_SENT."""
    t = _task(ctx, p.task)
    if t.status is not TaskStatus.RUNNING or t.agent is None:
        raise CommandError(
            "INVALID_STATE", f"{t.id} is {t.status.value}: no process of it reads input now", {"task": t.id}
        )
    rt = ctx.engine.runtime
    if rt is None:
        raise CommandError("NOT_APPLICABLE", "no runtime is attached: nothing runs the task")
    data = (p.text + ("\n" if p.newline else "")).encode()
    try:
        written = await rt.send_input(t.agent, t.id, data)
    except NotApplicable as exc:
        raise CommandError("NOT_APPLICABLE", str(exc), {"task": t.id, "runtime": rt.name}) from None
    except (OSError, TimeoutError, ValueError) as exc:
        raise CommandError("INPUT_NOT_WRITTEN", f"{t.id}: {exc}", {"task": t.id, "agent": t.agent}) from None
    ctx.engine.emit(
        TASK_INPUT_SENT,
        "coordination",
        "agent",
        {"task": t.id, "agent": t.agent, "size": written, "text": p.text},
        actor=ctx.actor,
    )
    return Outcome(
        {"task": t.id, "agent": t.agent, "bytes": written},
        f"wrote {written} bytes to {t.id}'s stdin on {t.agent}",
    )


async def _worktree(ctx: Context, task_id: str) -> W.Worktree:
    """The task's worktree, live or archived with its finished workflow (its checkout is
    made again from its branch if cleanup removed it)."""
    rt = ctx.engine.runtime
    t = ctx.state.tasks.get(task_id)
    repo = (t.repo if t is not None else None) or (rt.task_repo(task_id) if rt is not None else None)
    root = rt.worktree_root() if rt is not None else None
    if repo is None or root is None:
        if t is None and (rt is None or rt.task_repo(task_id) is None):
            raise CommandError("UNKNOWN_TASK", f"no task {task_id!r} with a worktree", {"task": task_id})
        raise CommandError("INVALID_STATE", f"{task_id} has no worktree (its workflow has no repo)", {"task": task_id})
    try:
        return await asyncio.to_thread(W.open_worktree, repo, root, task_id, False)
    except W.WorktreeError as exc:
        raise CommandError("INVALID_STATE", str(exc), {"task": task_id}) from None


@operation(C, "diff", kind="analysis", payload=P.TaskRefPayload, summary="a task's worktree diff", word_args=("task",))
async def task_diff(ctx: Context, p: P.TaskRefPayload) -> Outcome:
    """``git diff --stat`` and the diff of the task's worktree against the commit it started from."""
    wt = await _worktree(ctx, p.task)
    try:
        stat, text = await asyncio.to_thread(lambda: (W.diff_stat(wt), W.diff(wt)))
    except W.WorktreeError as exc:
        raise CommandError("GIT_FAILED", str(exc), {"task": p.task}) from None
    files = len([ln for ln in stat.splitlines()[:-1] if "|" in ln])
    return Outcome(
        {"task": p.task, "branch": wt.branch, "base": wt.base, "stat": stat, "diff": text},
        f"{p.task} on {wt.branch}: {files} file(s) changed" if files else f"{p.task} on {wt.branch}: no changes",
    )


async def _end_worktree(ctx: Context, p: P.TaskRefPayload, merge: bool) -> Outcome:
    t = ctx.state.tasks.get(p.task)
    if t is not None and t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
        raise CommandError("INVALID_STATE", f"{t.id} is {t.status.value}: its worktree is in use", {"task": t.id})
    wt = await _worktree(ctx, p.task)
    tid = p.task
    try:
        if merge:
            commit = await asyncio.to_thread(W.merge, wt, f"opsdeck: merge {tid} ({wt.branch})")
        else:
            await asyncio.to_thread(W.remove, wt)
            commit = None
    except W.WorktreeError as exc:
        raise CommandError("GIT_FAILED", str(exc), {"task": tid}) from None
    outcome = "merged" if merge else "discarded"
    ctx.engine.emit(
        TASK_WORKTREE,
        "coordination",
        "agent",
        {
            "task": tid,
            "path": str(wt.path),
            "branch": wt.branch,
            "repo": str(wt.repo),
            "outcome": outcome,
            "commit": commit,
        },
        actor=ctx.actor,
    )
    what = f"merged into {wt.repo} at {commit[:10]}" if commit else f"discarded (branch {wt.branch} deleted)"
    return Outcome({"task": tid, "branch": wt.branch, "outcome": outcome, "commit": commit}, f"{tid}: {what}")


@operation(
    C,
    "merge",
    kind="destructive",
    payload=P.TaskRefPayload,
    summary="merge a finished task's worktree branch into its repository",
    word_args=("task",),
)
async def merge(ctx: Context, p: P.TaskRefPayload) -> Outcome:
    """Commit what the task left, merge its branch into the repository's checked-out
    branch (a conflict changes nothing), then remove the worktree and the branch."""
    return await _end_worktree(ctx, p, merge=True)


@operation(
    C,
    "discard",
    kind="destructive",
    payload=P.TaskRefPayload,
    summary="remove a finished task's worktree and its branch",
    word_args=("task",),
)
async def discard(ctx: Context, p: P.TaskRefPayload) -> Outcome:
    """Throw the task's work away: its worktree and its branch are deleted."""
    return await _end_worktree(ctx, p, merge=False)


@operation(
    C,
    "screen",
    kind="analysis",
    payload=P.TaskRefPayload,
    summary="a task's terminal screen, replayed from its output file",
    word_args=("task",),
)
async def screen(ctx: Context, p: P.TaskRefPayload) -> Outcome:
    """The task's screen as its terminal shows it (a ``tty = true`` task draws it; any
    other task's output is shown as lines), rebuilt from the tail of its output file."""
    t = _task(ctx, p.task)
    rt = ctx.engine.runtime
    if t.agent is None or t.attempts == 0:
        raise CommandError("INVALID_STATE", f"{t.id} has not run yet: it has no output", {"task": t.id})
    path = rt.task_output(t.agent, t.id, t.attempts) if rt is not None else None
    if path is None:
        raise CommandError(
            "NOT_APPLICABLE",
            f"the {rt.name if rt else 'detached'} runtime keeps no output file for {t.id}",
            {"task": t.id},
        )
    try:
        shown = await asyncio.to_thread(term.screen_of, path)
    except FileNotFoundError:
        raise CommandError("NO_OUTPUT", f"{t.id} has printed nothing yet ({path} does not exist)") from None
    except OSError as exc:
        raise CommandError("NO_OUTPUT", f"{path}: {exc.strerror}", {"task": t.id}) from None
    return Outcome(
        {
            "task": t.id,
            "lines": shown.lines,
            "cursor": list(shown.cursor),
            "replayed_bytes": shown.replayed,
            "file": str(path),
            "status": t.status.value,
        },
        f"{t.id}: screen rebuilt from the last {shown.replayed:,} bytes of {path.name}",
    )
