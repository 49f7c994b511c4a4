"""The conflict-free merge of what both sides of a partition did to a task.

A cut-off agent keeps working and buffers its reports with its own sequence
numbers; meanwhile the engine may have moved the task to a reachable agent. On
reconnection the two sides are merged by rules that commute (any order of the same
reports gives the same result) and are idempotent (a duplicate changes nothing):
progress by maximum, status by the order pending < running < completed, applied
sequence numbers by union. :meth:`core.engine.Engine.agent_reconnected` uses them
to decide, per task, what the merged state is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

RANK = {"pending": 0, "paused": 1, "running": 1, "completed": 2}

ReportKind = Literal["started", "progress", "finished", "failed"]


@dataclass(frozen=True, slots=True)
class BufferedReport:
    """A fact about a task that an agent could not report while cut off, kept with the
    agent's own sequence number and handed over when its link comes back
    (``RuntimeSink.agent_reconnected``)."""

    seq: int
    kind: ReportKind
    task_id: str
    progress: float | None = None
    """The fraction done, said by a ``progress`` report (the others say none)."""
    output: list[str] | None = None
    """What the task printed, when the report carries it (finished, failed, progress)."""
    error: str | None = None
    """Why the task failed (a ``failed`` report)."""
    at: float | None = None
    """When the agent held it, on its clock (the simulated runtime says; the others do not)."""

    @property
    def reached(self) -> float:
        """The progress the report says the task reached: its own, else all of it for a
        finished task and none for the others."""
        if self.progress is not None:
            return self.progress
        return 1.0 if self.kind == "finished" else 0.0


@dataclass(frozen=True)
class TaskView:
    progress: float = 0.0
    status: str = "pending"
    applied: frozenset[tuple[str, int]] = field(default_factory=frozenset)


def merge_one(view: TaskView, agent: str, report: BufferedReport) -> TaskView:
    """Fold one buffered report into a task's view; commutative and idempotent."""
    status = {"started": "running", "progress": "running", "finished": "completed"}.get(report.kind, view.status)
    if RANK.get(status, 0) < RANK.get(view.status, 0):
        status = view.status
    progress = max(view.progress, float(report.reached))
    return TaskView(progress, status, view.applied | {(agent, report.seq)})


def merge(
    reports: Iterable[tuple[str, BufferedReport]], base: dict[str, TaskView] | None = None
) -> dict[str, TaskView]:
    """Merge (agent, report) pairs in any order into per-task views (over ``base``)."""
    out: dict[str, TaskView] = dict(base or {})
    for agent, rep in reports:
        key = rep.task_id
        out[key] = merge_one(out.get(key, TaskView()), agent, rep)
    return out
