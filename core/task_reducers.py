"""The folds of a task's life: assigned, started, progress, completed, failed, reassigned,
paused and resumed, waiting for input, its worktree and its transferred context.

Each function folds one event type into a :class:`~core.projection.State`; the event
catalogue (``core.event_types``) names which. A task's agent is released here too, where
a task ends or leaves it (a rollback releases through :func:`release_agent` as well).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .events import Event
from .models import DONE_CONTEXT, TERMINAL_WORKFLOW, AgentStatus, TaskContext, TaskStatus

if TYPE_CHECKING:
    from .projection import State

OUTPUT_LINES = 20
"""Output lines a task keeps."""

# The members the hot folds use, bound once (an enum class's attribute costs 0.2-0.4 us
# on Python 3.11: see core.scheduler).
_IDLE, _BUSY, _PAUSED = AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED
_PENDING, _RUNNING, _COMPLETED = TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.COMPLETED


def task_assigned(s: State, ev: Event) -> None:
    d = ev.data
    key = d["task"]
    agent_id = d["agent"]
    if s.journal is not None:
        s.changing("tasks", s.tasks, key)
        s.changing("agents", s.agents, agent_id)
    t = s.tasks[key]
    a = s.agents[agent_id]
    t.status = _RUNNING
    t.agent = a.id
    t.attempts += 1
    t.started_at = ev.ts
    t.waiting_input = None
    t.waiting_since = None
    # The task is a plain record (set above); the agent a pydantic model: its fields set in
    # its __dict__, past pydantic's per-field __setattr__ (no assignment validation is
    # configured, so the result is the same).
    ad = a.__dict__
    ad["status"] = _BUSY
    ad["current_task"] = key
    ad["last_heartbeat"] = ev.ts
    wid = t.workflow
    q = s.ready[wid]
    if q and q[0] == key:
        q.popleft()
    else:
        try:
            q.remove(key)
        except ValueError:
            pass
    s.running_by_wf[wid].add(key)
    s.phase_started.add((wid, t.phase))


def task_started(s: State, ev: Event) -> None:
    a = s.agents.get(ev.data.get("agent", ""))
    if a is not None:
        if s.journal is not None:
            s.changing("agents", s.agents, a.id)
        a.__dict__["last_heartbeat"] = ev.ts  # hot path: no pydantic __setattr__ (nothing to validate)


def task_progress(s: State, ev: Event) -> None:
    d = ev.data
    s.changing("tasks", s.tasks, d["task"])
    t = s.tasks[d["task"]]
    ctx = t.own_context()
    if "progress" in d:
        ctx.progress = float(d["progress"])
    if "output" in d:
        ctx.last_output = (ctx.last_output + list(d["output"]))[-OUTPUT_LINES:]
    if "partial" in d:
        ctx.partial_results.update(d["partial"])
    a = s.agents.get(d.get("agent") or "")
    if a is not None:
        s.changing("agents", s.agents, a.id)
        a.last_heartbeat = ev.ts


def release_agent(s: State, agent_id: str | None, key: str, done: bool) -> None:
    if not agent_id:
        return
    a = s.agents.get(agent_id)
    if a is None:
        return
    ad = a.__dict__
    if ad["current_task"] != key:
        return
    if s.journal is not None:
        s.changing("agents", s.agents, agent_id)
    ad["current_task"] = None
    if done:
        ad["tasks_done"] += 1
    st = ad["status"]
    if st is _BUSY or st is _PAUSED:
        ad["status"] = _IDLE


def task_completed(s: State, ev: Event) -> None:
    d = ev.data
    key = d["task"]
    if s.journal is not None:
        s.changing("tasks", s.tasks, key)
    t = s.tasks[key]
    wid = t.workflow
    release_agent(s, t.agent, key, True)
    if t.status is not _COMPLETED:
        s.phase_left[(wid, t.phase)] -= 1
        s.wf_left[wid] -= 1
    t.status = _COMPLETED
    t.finished_at = ev.ts
    if t.context.shared:
        t.context = DONE_CONTEXT
    else:
        t.context.progress = 1.0
    if "result" in d:
        t.own_context().partial_results["result"] = d["result"]
    s.running_by_wf[wid].discard(key)
    children = s.dependents.get(key)
    if children:
        pending = s.pending_deps
        tasks = s.tasks
        queue = s.ready[wid]
        for child in children:
            n = pending[child] - 1
            pending[child] = n
            if n == 0:
                c = tasks[child]
                if c.status is _PENDING:
                    if c.workflow == wid:
                        queue.append(child)
                    else:
                        s.ready[c.workflow].append(child)
    if s.workflows[wid].status in TERMINAL_WORKFLOW:
        s.maybe_archive(wid, ev.seq)


def task_failed(s: State, ev: Event) -> None:
    d = ev.data
    key = d["task"]
    s.changing("tasks", s.tasks, key)
    t = s.tasks[key]
    release_agent(s, t.agent, key, False)
    if "output" in d:
        ctx = t.own_context()
        ctx.last_output = (ctx.last_output + list(d["output"]))[-OUTPUT_LINES:]
    s.running_by_wf[t.workflow].discard(key)
    if d.get("retry", False):
        t.status = TaskStatus.PENDING
        t.agent = None
        s.ready[t.workflow].appendleft(key)
    else:
        t.status = TaskStatus.FAILED
        t.finished_at = ev.ts
    if s.workflows[t.workflow].status in TERMINAL_WORKFLOW:
        s.maybe_archive(t.workflow, ev.seq)


def task_reassigned(s: State, ev: Event) -> None:
    """A task taken off its agent (failed, unreachable or released) back to the queue."""
    d = ev.data
    key = d["task"]
    s.changing("tasks", s.tasks, key)
    t = s.tasks[key]
    old = s.agents.get(t.agent or "")
    if old is not None and old.current_task == key:
        s.changing("agents", s.agents, old.id)
        old.current_task = None
        if old.status in (AgentStatus.BUSY, AgentStatus.PAUSED):
            old.status = AgentStatus.IDLE
    if "context" in d:
        t.context = TaskContext.model_validate(d["context"])
    if t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
        t.status = TaskStatus.PENDING
        t.agent = None
        s.running_by_wf[t.workflow].discard(key)
        s.ready[t.workflow].appendleft(key)
    if s.workflows[t.workflow].status in TERMINAL_WORKFLOW:
        s.maybe_archive(t.workflow, ev.seq)


def task_paused(s: State, ev: Event) -> None:
    s.changing("tasks", s.tasks, ev.data["task"])
    t = s.tasks[ev.data["task"]]
    if t.status == TaskStatus.RUNNING:
        t.status = TaskStatus.PAUSED
        a = s.agents.get(t.agent or "")
        if a is not None and a.status == AgentStatus.BUSY:
            s.changing("agents", s.agents, a.id)
            a.status = AgentStatus.PAUSED


def task_resumed(s: State, ev: Event) -> None:
    s.changing("tasks", s.tasks, ev.data["task"])
    t = s.tasks[ev.data["task"]]
    if t.status == TaskStatus.PAUSED:
        t.status = TaskStatus.RUNNING
        a = s.agents.get(t.agent or "")
        if a is not None and a.status == AgentStatus.PAUSED:
            s.changing("agents", s.agents, a.id)
            a.status = AgentStatus.BUSY


def task_waiting_input(s: State, ev: Event) -> None:
    t = s.tasks.get(ev.data["task"])
    if t is None:  # archived with its workflow
        return
    s.changing("tasks", s.tasks, ev.data["task"])
    t.waiting_input = ev.data["reason"]
    t.waiting_since = ev.ts


def task_input_resumed(s: State, ev: Event) -> None:
    t = s.tasks.get(ev.data["task"])
    if t is None:  # archived with its workflow
        return
    s.changing("tasks", s.tasks, ev.data["task"])
    t.waiting_input = None
    t.waiting_since = None


def task_worktree(s: State, ev: Event) -> None:
    d = ev.data
    t = s.tasks.get(d["task"])
    if t is None:  # archived with its workflow: the event is its record
        return
    s.changing("tasks", s.tasks, d["task"])
    outcome = d.get("outcome") or "opened"
    t.worktree = d.get("path") if outcome == "opened" else None
    t.branch = d.get("branch") if outcome in ("opened", "pruned") else None
    if d.get("repo"):
        t.repo = d["repo"]


def context_transferred(s: State, ev: Event) -> None:
    s.changing("tasks", s.tasks, ev.data["task"])
    t = s.tasks[ev.data["task"]]
    t.context = TaskContext.model_validate(ev.data["context"])
