"""The runtime bridge: runtimes report facts, the engine turns them into events.

:class:`RuntimeBridge` connects a runtime to the projection (agents and running
tasks brought back on attach), dispatches queued work after each instant's facts,
records what runtimes report about tasks and agents, and merges the reports an
isolated agent buffered with what the engine did meanwhile (``core.merge``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..clock import VirtualClock, seconds
from ..event_types import (
    AGENT_ERROR,
    AGENT_RECONNECTED,
    AGENT_SEQ_APPLIED,
    PARTITION_MERGED,
    PHASE_COMPLETED,
    PHASE_STARTED,
    RESOURCE_RESERVED,
    TASK_ASSIGNED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_INPUT_RESUMED,
    TASK_PROGRESS,
    TASK_REASSIGNED,
    TASK_STARTED,
    TASK_WAITING_INPUT,
    TASK_WORKTREE,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_STARTED,
)
from ..merge import BufferedReport, TaskView, merge
from ..models import LIVE_AGENT, TERMINAL_WORKFLOW, AgentStatus, Task, TaskStatus, WorkflowStatus
from ..runtimes import Runtime, RuntimeSink
from ..scheduler import dispatch

if TYPE_CHECKING:
    from .contract import EngineCore


FROZEN_FACT = "runtime fact: the task was running when the workflow was frozen"
"""What a task's end says of a workflow frozen while it ran (:meth:`RuntimeBridge.mark_frozen`)."""


class Reports:
    """The sink a runtime reports to (:class:`~core.runtimes.RuntimeSink`): the task
    facts and an agent's failure or reconnection (they take tasks back or merge them)
    bound to the bridge's methods, so a task's start and finish are one call each, not
    the facade's forwarding call and then the bridge's; heartbeats, unreachability and
    usage to the engine's own (which hand them to its liveness part)."""

    __slots__ = (
        "agent_failed",
        "agent_heartbeat",
        "agent_reconnected",
        "agent_unreachable",
        "system_usage",
        "task_failed",
        "task_finished",
        "task_input_wait",
        "task_progress",
        "task_started",
        "task_workspace",
        "usage",
    )

    def __init__(self, bridge: RuntimeBridge, engine: RuntimeSink) -> None:
        self.task_started = bridge.task_started
        self.task_progress = bridge.task_progress
        self.task_finished = bridge.task_finished
        self.task_failed = bridge.task_failed
        self.task_input_wait = bridge.task_input_wait
        self.task_workspace = bridge.task_workspace
        self.agent_failed = bridge.agent_failed
        self.agent_reconnected = bridge.agent_reconnected
        self.agent_heartbeat = engine.agent_heartbeat
        self.agent_unreachable = engine.agent_unreachable
        self.usage = engine.usage
        self.system_usage = engine.system_usage


class RuntimeBridge:
    """Runtime wiring, dispatch and the facts runtimes report for one engine."""

    def __init__(self, engine: EngineCore) -> None:
        self.engine = engine
        self.emit = engine.log.emit
        """The log's own emit (what ``Engine.emit`` forwards to): every task fact is an
        event, and the forwarding call cost about 0.1 us each."""
        self.dispatch_pending = False
        self.restoring = False
        """While attach brings running tasks back: their start is not news."""

    # -- wiring and dispatch ----------------------------------------------------------
    def attach(self, runtime: Runtime) -> None:
        """Connect a runtime and bring it up to the projection: agents, running tasks."""
        e = self.engine
        e.runtime = runtime
        runtime.attach(Reports(self, e))
        now = e.clock.now()
        for a in sorted(e.state.agents.values(), key=lambda a: a.id):
            if a.status in LIVE_AGENT:
                runtime.spawn_agent(a)
                e.telemetry.liveness[a.id] = now
        # Tasks the projection has running are restored, not restarted: a start the
        # runtime reports for them now is the same start the log already holds.
        self.restoring = True
        try:
            for a in sorted(e.state.agents.values(), key=lambda a: a.id):
                if a.status in LIVE_AGENT and a.current_task:
                    t = e.state.tasks[a.current_task]
                    runtime.start_task(a.id, t)
                    if t.status is TaskStatus.PAUSED:
                        runtime.pause_task(a.id, t.id)
        finally:
            self.restoring = False
        self.request_dispatch()

    def request_dispatch(self) -> None:
        """Dispatch after the facts of this instant have been applied."""
        e = self.engine
        if self.dispatch_pending or e.runtime is None:
            return
        self.dispatch_pending = True
        if isinstance(e.clock, VirtualClock):
            e.clock.call_later(0.0, self._dispatch_now)
        else:
            try:
                asyncio.get_running_loop().call_soon(self._dispatch_now)
            except RuntimeError:
                self._dispatch_now()

    def _dispatch_now(self) -> None:
        self.dispatch_pending = False
        e = self.engine
        if e.runtime is None or e.readonly or e.log.held.paused:  # paused: dispatched again at the next commit
            return
        self.admit()
        state = e.state
        emit, runtime, tasks = self.emit, e.runtime, state.tasks
        for key, agent in dispatch(state, e.config.capacity, e.clock.now()):
            t = tasks[key]
            wid = t.workflow
            if (wid, t.phase) not in state.phase_started:
                emit(PHASE_STARTED, "coordination", "workflow", {"workflow_id": wid, "phase": t.phase})
            # Keys in sorted order (as in every hot task fact here): the line reuses the stored text.
            emit(
                TASK_ASSIGNED,
                "coordination",
                "scheduler",
                {"agent": agent, "task": key, "workflow_id": wid},
                sorted_keys=True,
            )
            runtime.start_task(agent, t)

    def admit(self) -> None:
        """Start queued workflows whose dependencies are met, within the concurrency cap."""
        e = self.engine
        s = e.state
        if not s.queued:
            return
        running = len(s.active)
        queued = sorted(
            (w for w in (s.workflows[wid] for wid in s.queued) if w.status is WorkflowStatus.PENDING),
            key=lambda w: (-s.band_rank(w.id), w.created_at, w.created_seq),
        )
        for w in queued:
            if running >= e.config.capacity.concurrent_workflows:
                break
            if s.dependency_met(w):
                self.emit(
                    WORKFLOW_STARTED,
                    "coordination",
                    "workflow",
                    {"workflow_id": w.id, "priority": w.priority, "band": w.band.value},
                )
                running += 1

    # -- facts about tasks --------------------------------------------------------------
    def owned(self, agent_id: str, task_id: str) -> Task | None:
        """The task when ``agent_id`` is the agent the projection has on ``task_id``, else None."""
        s = self.engine.state
        t = s.tasks.get(task_id)
        if t is None or t.agent != agent_id:
            return None
        a = s.agents.get(agent_id)
        return t if a is not None and a.current_task == task_id else None

    def task_started(self, agent_id: str, task_id: str, at: float | None = None) -> None:
        """TASK_STARTED, now; or at ``at`` when the runtime learnt of the start late, kept
        between the task's assignment and now (a host's clock may differ from this one's;
        a figure that is not a time is not used)."""
        e = self.engine
        now = e.telemetry.liveness[agent_id] = e.clock.now()
        if self.restoring:
            return
        # owned(), written out (a call less for each task's start and end)
        s = e.state
        t = s.tasks.get(task_id)
        if t is None or t.agent != agent_id:
            return
        a = s.agents.get(agent_id)
        if a is not None and a.current_task == task_id:
            if at is None:  # its time is the reading above (no clock read between)
                self.emit(TASK_STARTED, "agent", "execution", {"agent": agent_id, "task": task_id}, None, now, True)
                return
            # A float (an int read off the wire too: the stored REAL reads back as one, and the
            # chain hashes its text), or now for what is not a time.
            began = seconds(at)
            began = now if began is None else min(max(began, t.started_at if t.started_at is not None else began), now)
            self.emit(TASK_STARTED, "agent", "execution", {"agent": agent_id, "task": task_id}, None, began, True)

    def task_progress(
        self,
        agent_id: str,
        task_id: str,
        progress: float,
        output: list[str] | None = None,
        partial: dict[str, Any] | None = None,
    ) -> None:
        e = self.engine
        e.telemetry.liveness[agent_id] = e.clock.now()
        t = self.owned(agent_id, task_id)
        if t is None or e.log.held.skip_progress(partial, t.context.partial_results):
            return
        data: dict[str, Any] = {"task": task_id, "agent": agent_id, "progress": round(float(progress), 4)}
        if output:
            data["output"] = list(output)[-5:]
        if partial:
            data["partial"] = partial
        self.emit(TASK_PROGRESS, "agent", "execution", data)

    def task_input_wait(self, agent_id: str, task_id: str, reason: str | None) -> None:
        """An agent host saw its task wait for input, or go on: recorded once per change."""
        e = self.engine
        e.telemetry.liveness[agent_id] = e.clock.now()
        if self.owned(agent_id, task_id) is None:
            return
        t = e.state.tasks[task_id]
        if reason is not None and t.waiting_input is None:
            self.emit(
                TASK_WAITING_INPUT, "agent", "execution", {"task": task_id, "agent": agent_id, "reason": reason[:500]}
            )
        elif reason is None and t.waiting_input is not None:
            self.emit(TASK_INPUT_RESUMED, "agent", "execution", {"task": task_id, "agent": agent_id})

    def task_workspace(self, agent_id: str, task_id: str, path: str, branch: str, repo: str) -> None:
        if self.owned(agent_id, task_id) is not None:
            data = {"task": task_id, "path": path, "branch": branch, "repo": repo, "outcome": "opened"}
            self.emit(TASK_WORKTREE, "agent", "execution", data)

    def mark_frozen(self, wf_id: str, data: dict[str, Any]) -> None:
        """A task of a frozen workflow that ends is a runtime fact the freeze cannot refuse
        (it was running before): its event says so."""
        wf = self.engine.state.workflows.get(wf_id)
        if wf is not None and wf.frozen:
            data["during_freeze"] = FROZEN_FACT

    def task_finished(
        self,
        agent_id: str,
        task_id: str,
        output: list[str] | None = None,
        result: Any = None,
        ran_s: float | None = None,
    ) -> None:
        """TASK_COMPLETED. Its ``duration_s`` is how long the run took: the runtime's
        measure (``ran_s``) where it gives one, else the time since the task's assignment
        (``started_at``: a simulated run starts then). A real run starts later (a host
        still starting, the start command's way) and its reports come later than they
        happened. The response time stays the time since its assignment."""
        e = self.engine
        now = e.clock.now()
        e.telemetry.liveness[agent_id] = now
        s = e.state
        t = s.tasks.get(task_id)  # owned(), written out
        if t is None or t.agent != agent_id:
            return
        a = s.agents.get(agent_id)
        if a is None or a.current_task != task_id:
            return
        wid = t.workflow
        # Keys added in sorted order: the line reuses the stored text (not with a result, whose
        # own keys may be in any order).
        data: dict[str, Any] = {"agent": agent_id}
        started = t.started_at
        took = None if started is None else now - started
        ran = took if ran_s is None else ran_s
        if ran is not None:
            data["duration_s"] = ran if ran == 0.0 else round(ran, 3)  # round() costs a microsecond
        wf = s.workflows.get(wid)
        if wf is not None and wf.frozen:  # mark_frozen(), written out
            data["during_freeze"] = FROZEN_FACT
        if output:
            data["output"] = output[-5:] if type(output) is list else list(output)[-5:]  # a slice is a new list
        if result is not None:
            data["result"] = result
        data["task"] = task_id
        data["workflow_id"] = wid
        self.emit(TASK_COMPLETED, "agent", "execution", data, None, now, result is None)
        e.telemetry.task_done(now, took, t.duration_s)
        phase = t.phase
        if s.phase_left.get((wid, phase)) == 0 or s.wf_left.get(wid) == 0:  # after_task()'s test, before its call
            self.after_task(wid, phase)
        if not self.dispatch_pending:
            self.request_dispatch()

    def after_task(self, wf_id: str, phase: str) -> None:
        """Complete the phase and the workflow a finished task was the last of."""
        e = self.engine
        s = e.state
        if s.phase_left.get((wf_id, phase)) != 0 and s.wf_left.get(wf_id) != 0:
            return  # not the last task of its phase nor of its workflow (most tasks)
        wf = s.workflows.get(wf_id)
        if wf is None or wf.status in TERMINAL_WORKFLOW:
            return
        if s.phase_left.get((wf_id, phase)) == 0:
            self.emit(PHASE_COMPLETED, "coordination", "workflow", {"workflow_id": wf_id, "phase": phase})
            e.checkpoints.due = "phase_complete"
        if s.wf_left.get(wf_id) == 0:
            took = e.clock.now() - (wf.started_at or wf.created_at)
            self.emit(
                WORKFLOW_COMPLETED, "coordination", "workflow", {"workflow_id": wf_id, "duration_s": round(took, 3)}
            )
            if wf.guarantee is not None:
                self.emit(RESOURCE_RESERVED, "resource", "allocation", {"workflow_id": wf_id, "guarantee": None})

    def task_failed(self, agent_id: str, task_id: str, error: str, output: list[str] | None = None) -> None:
        e = self.engine
        e.telemetry.liveness[agent_id] = e.clock.now()
        if self.owned(agent_id, task_id) is None or e.spend.held_failure(agent_id, task_id):
            return
        t = e.state.tasks[task_id]
        # The task's own retry policy (a workflow file's), else the engine's.
        allowed = e.runtime.attempts_allowed(task_id) if e.runtime is not None else None
        retry = t.attempts < (allowed if allowed is not None else e.config.retries.attempts)
        data: dict[str, Any] = {
            "task": task_id,
            "agent": agent_id,
            "workflow_id": t.workflow,
            "error": error,
            "attempt": t.attempts,
            "retry": retry,
        }
        if output:
            data["output"] = list(output)[-5:]
        self.mark_frozen(t.workflow, data)
        self.emit(TASK_FAILED, "agent", "execution", data)
        if not retry:
            self.emit(
                WORKFLOW_FAILED,
                "coordination",
                "workflow",
                {"workflow_id": t.workflow, "task": task_id, "error": error},
            )
        self.request_dispatch()

    def agent_failed(self, agent_id: str, error: str) -> None:
        e = self.engine
        a = e.state.agents.get(agent_id)
        if a is None or a.status in (AgentStatus.FAILED, AgentStatus.RETIRED):
            return
        task = a.current_task
        self.emit(AGENT_ERROR, "agent", "health", {"agent": agent_id, "pool": a.pool, "error": error, "task": task})
        if task:
            t = e.state.tasks[task]
            self.emit(
                TASK_REASSIGNED,
                "coordination",
                "scheduler",
                {"task": task, "from": agent_id, "reason": "agent_failed", "progress": t.context.progress},
            )
        e.telemetry.liveness.pop(agent_id, None)
        self.request_dispatch()

    # -- a partition heals --------------------------------------------------------------
    def agent_reconnected(self, agent_id: str, buffered: list[BufferedReport]) -> None:
        """Apply an agent's buffered reports exactly once, in its own sequence order,
        merged with what the engine did while the agent was cut off (``core.merge``):
        a report about a task the agent still owns applies as it is; a task that was
        moved to another agent meanwhile takes the merged result (completed once,
        whichever side finished first; progress by maximum)."""
        e = self.engine
        a = e.state.agents.get(agent_id)
        if a is None:
            return
        e.telemetry.liveness[agent_id] = e.clock.now()
        fresh = sorted((b for b in buffered if b.seq > a.applied_seq), key=lambda b: b.seq)
        dropped = len(buffered) - len({b.seq for b in fresh})
        if a.status is AgentStatus.UNREACHABLE:
            self.emit(
                AGENT_RECONNECTED,
                "network",
                "agent_coordination",
                {"agent": agent_id, "buffered": len(buffered), "duplicates_dropped": dropped},
            )
        seen: set[int] = set()
        foreign: list[BufferedReport] = []
        for b in fresh:
            if b.seq in seen:
                continue
            seen.add(b.seq)
            self.emit(AGENT_SEQ_APPLIED, "network", "agent_coordination", {"agent": agent_id, "seq": b.seq})
            kind, task = b.kind, b.task_id
            if self.owned(agent_id, task) is None:
                foreign.append(b)  # the task moved while the agent was cut off: merged below
            elif kind == "started":
                self.task_started(agent_id, task)
            elif kind == "progress":
                self.task_progress(agent_id, task, b.reached, b.output)
            elif kind == "finished":
                self.task_finished(agent_id, task, b.output)
            elif kind == "failed":
                self.task_failed(agent_id, task, "failed" if b.error is None else b.error, b.output)
        if foreign:
            self.merge_partition(agent_id, foreign)
        self.request_dispatch()

    def merge_partition(self, agent_id: str, reports: list[BufferedReport]) -> None:
        """Merge an isolated agent's reports about tasks moved away from it with the
        engine's side of those tasks, and bring the state to the merged result."""
        e = self.engine
        s = e.state
        base = {
            b.task_id: TaskView(s.tasks[b.task_id].context.progress, s.tasks[b.task_id].status.value)
            for b in reports
            if b.task_id in s.tasks
        }
        views = merge(((agent_id, b) for b in reports if b.task_id in s.tasks), base)
        out: dict[str, dict[str, Any]] = {}
        for key, v in sorted(views.items()):
            t = s.tasks[key]
            if t.status is TaskStatus.COMPLETED:
                res = "already_completed"  # the other side finished first: the isolated copy's result is dropped
            elif v.status == TaskStatus.COMPLETED:
                if t.agent:
                    e.release_task(key, reason="completed_on_isolated_agent", actor="merge")
                self.emit(
                    TASK_COMPLETED,
                    "agent",
                    "execution",
                    {"task": key, "agent": agent_id, "workflow_id": t.workflow, "merged": True},
                    actor="merge",
                )
                e.telemetry.task_done(e.clock.now(), None, t.duration_s)  # its start on the isolated side is unknown
                self.after_task(t.workflow, t.phase)
                res = "completed_by_isolated_agent"
            elif v.progress > t.context.progress + 1e-9:
                if t.agent:  # restart the moved copy from the further point
                    e.release_task(key, reason="resume_from_merged_progress", actor="merge")
                self.emit(
                    TASK_PROGRESS,
                    "agent",
                    "execution",
                    {"task": key, "agent": agent_id, "progress": round(v.progress, 4), "merged": True},
                    actor="merge",
                )
                res = "progress_merged"
            else:
                res = "current_copy_ahead"
            out[key] = {
                "resolution": res,
                "merged_progress": round(v.progress, 4),
                "merged_status": v.status,
                "reports": len(v.applied),
            }
        self.emit(PARTITION_MERGED, "network", "agent_coordination", {"agent": agent_id, "tasks": out}, actor="merge")
