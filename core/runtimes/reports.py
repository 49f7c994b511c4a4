"""What agent hosts report, turned into the engine's facts.

Every report of a real runtime's hosts arrives at :meth:`Reports.on_report` (the local
runtime's socket reader and the Ray runtime's polls both end here): ``hello`` (what
the host runs and finished, on each connection), ``heartbeat`` (a task's progress,
its new output lines and partial results), ``started``, ``finished`` / ``failed`` /
``stopped``, ``limited`` (the answer to new CPU limits) and an oversize notice.

The projection is the truth: a report about a (task, attempt) the log does not have
running on that agent changes nothing, except a finished run of a task moved away
from a cut-off agent, which the conflict-free merge decides.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from typing import Any, Generic

from pydantic import ValidationError

from ..clock import seconds
from ..merge import BufferedReport
from ..models import AgentStatus, TaskStatus
from ..usage.models import UsageReport
from .dispatch import Dispatch
from .fleet import Fleet, H, Links
from .wire import MAX_LINE, OVERSIZE

_UNREACHABLE = AgentStatus.UNREACHABLE
"""Bound once: Python 3.11 reads an enum class's attribute through its slow path (about 70 ns), at every report."""

GROUP_ROW_AFTER_S = 0.1
"""How long a run lasts before its process group is written to its host's row."""


def run_time(msg: dict[str, Any]) -> float | None:
    """A run's start to its end as its host measured it (``elapsed_s``, plus ``paused_s``
    if it was paused); None where the report has no such figure (a garbled one included)."""
    ran, paused = seconds(msg.get("elapsed_s")), seconds(msg.get("paused_s", 0.0))
    if ran is None or paused is None or ran + paused == math.inf:
        return None
    return ran + paused


class Reports(Generic[H]):
    """Applies a host's reports to the engine (through the sink)."""

    def __init__(self, fleet: Fleet[H], links: Links[H], dispatch: Dispatch[H]) -> None:
        self.fleet = fleet
        self.links = links
        self.dispatch = dispatch

    def on_report(self, h: H, msg: dict[str, Any]) -> None:
        fleet = self.fleet
        sink, engine = fleet.sink, fleet.engine
        if sink is None or engine is None:
            return
        h.last_report = time.monotonic()
        kind = msg.get("t")
        task: str | None = msg.get("task")
        attempt = msg.get("attempt")
        a = engine.state.agents.get(h.agent)
        if a is not None and a.status is _UNREACHABLE:
            sink.agent_reconnected(h.agent, [])  # it was only late (a busy machine, a stalled loop)
        if kind == "hello":
            self._hello(h, msg)
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
                fleet.send(h, {"op": "stop", "task": cur})
            return
        if task and msg.get("usage") is not None and fleet.owns_attempt(h.agent, task, attempt):
            self._task_usage(h.agent, task, int(attempt or 0), msg["usage"])
        if kind == "heartbeat":
            if task and fleet.owns_attempt(h.agent, task, attempt) and msg.get("changed"):
                engine.task_progress(
                    h.agent, task, float(msg.get("progress", 0.0)), msg.get("output"), msg.get("partial")
                )
            else:
                sink.agent_heartbeat(h.agent)
            return
        if kind in ("input_wait", "input_written"):
            self.dispatch.io.report(h.agent, kind, task, attempt, msg)
            return
        if kind == "limited" and task is not None:
            self.dispatch.limited(h.agent, task, msg)
            return
        if kind == "started":
            h.task_pgid, h.task_create_time = msg.get("pgid"), msg.get("create_time")
            self._save_group_later(h)
            if task is not None and fleet.owns_attempt(h.agent, task, attempt):
                if not fleet.restored:
                    sink.task_started(h.agent, task)
                elif fleet.start_is_news(task, attempt):  # the answer to a re-sent start says when it began
                    sink.task_started(h.agent, task, msg.get("started_at"))
                else:
                    sink.agent_heartbeat(h.agent)  # the answer to a re-sent start: only its group is news
            return
        if kind in ("finished", "failed", "stopped"):
            self._ended(h, kind, task, attempt, msg)

    def _save_group_later(self, h: H) -> None:
        """Record the run's process group in the host's ``processes`` row once it has run
        :data:`GROUP_ROW_AFTER_S` (skipped for a run that ended by then: nothing is left
        to kill). The row is what a restarted console kills a dead host's task group
        by; while this console lives it uses what it holds (``h.task_pgid``). Written on
        every start, the row was a transaction of its own per task (most of the console's
        CPU on short tasks); the window in which a crash of both console and host leaves a
        task without a row grows from the report's own delay by this much. One timer per
        host at a time (not one per run): when it fires for a run that ended, it moves on
        to the run started since, if any."""
        h.group_since = time.monotonic()
        if h.group_timer is None:
            h.group_timer = asyncio.get_running_loop().call_later(GROUP_ROW_AFTER_S, self._save_group, h)

    def _save_group(self, h: H) -> None:
        h.group_timer = None
        if h.dead or h.task_pgid is None:
            return  # the run ended (or the host is gone): nothing to record until the next start
        left = h.group_since + GROUP_ROW_AFTER_S - time.monotonic()
        if left > 0:  # the run now is a later one: its own GROUP_ROW_AFTER_S is not over yet
            h.group_timer = asyncio.get_running_loop().call_later(left, self._save_group, h)
            return
        self.links.save(h)

    def _hello(self, h: H, msg: dict[str, Any]) -> None:
        """A (re)connection: the starts the host held for a console that went before
        they were written (recorded at their runs' times), what the host runs now
        (stopped unless the log assigns it) and the runs it finished meanwhile (applied
        as if reported now)."""
        fleet = self.fleet
        sink = fleet.sink
        assert sink is not None
        held_runs, cur, done_runs = msg.get("held") or [], msg.get("current") or None, msg.get("done") or []
        if (
            type(held_runs) is not list
            or (cur is not None and type(cur) is not dict)
            or type(done_runs) is not list
            or any(type(d) is not dict for d in done_runs)
        ):  # checked before anything is applied: a hello read in part would apply half
            raise ValueError("a hello whose held or done is not a list of objects, or current not an object")
        h.connected_once = True
        h.lost = False
        sink.agent_heartbeat(h.agent)
        for held in held_runs:
            if type(held) is not dict:
                continue
            task, attempt = str(held.get("task")), held.get("attempt")
            if fleet.owns_attempt(h.agent, task, attempt) and (
                not fleet.restored or fleet.start_is_news(task, attempt)
            ):
                sink.task_started(h.agent, task, held.get("started_at"))
        if cur:
            h.task_pgid, h.task_create_time = cur.get("pgid"), cur.get("create_time")
            if not fleet.owns_attempt(h.agent, cur.get("task"), cur.get("attempt")):
                fleet.send_first(h, {"op": "stop", "task": cur.get("task")})
        for done in done_runs:
            self.on_report(h, done)

    def _ended(self, h: H, kind: str, task: str | None, attempt: Any, msg: dict[str, Any]) -> None:
        """A run's end: its last progress, then finished or failed (a stop was asked for)."""
        fleet = self.fleet
        sink, engine = fleet.sink, fleet.engine
        assert sink is not None and engine is not None
        h.task_pgid = h.task_create_time = None
        if task is None or kind == "stopped":
            return
        if not fleet.owns_attempt(h.agent, task, attempt):  # asked once
            if kind == "finished" and task:
                self._merge_moved(h.agent, task, attempt)
            return
        began = msg.get("started_at")
        if fleet.restored and (began is not None or kind == "finished") and fleet.start_unrecorded(task, attempt):
            # A run that ended while no console listened, its start never recorded (the
            # killed console had read the report, or it is gone from the host): it did
            # start, when its end report says. A failure that says no start never ran; a
            # finished run did (a host that does not say when, an older one: now).
            sink.task_started(h.agent, task, began)
        if msg.get("partial") or msg.get("progress"):
            engine.task_progress(h.agent, task, float(msg.get("progress") or 0.0), None, msg.get("partial") or None)
        if kind == "finished":
            result = {"rc": msg.get("rc"), "elapsed_s": msg.get("elapsed_s")}
            sink.task_finished(h.agent, task, msg.get("output"), result, run_time(msg))
        else:
            sink.task_failed(h.agent, task, str(msg.get("error", "failed")), msg.get("output"))
        # Committed by the pump's next flush, with the start of the agent's next task if
        # there is one (the same flush), else on its own: a workflow's last end is not
        # left waiting for the host's pacing flush.
        fleet.poke()

    def _task_usage(self, agent_id: str, task_id: str, attempt: int, raw: Any) -> None:
        """A run's usage report, validated at this boundary (a malformed one is dropped
        with a note in the agent's log, never applied)."""
        engine = self.fleet.engine
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
        engine = self.fleet.engine
        t = engine.state.tasks.get(task_id) if engine is not None else None
        if engine is None or t is None or t.status is TaskStatus.COMPLETED:
            return
        wf = engine.state.workflows.get(t.workflow)
        if wf is None or wf.status.value not in ("running", "paused"):
            return
        engine.merge_partition(agent_id, [BufferedReport(int(attempt or 0), "finished", task_id)])
