"""Merging what partitioned agents did while they were cut off.

Buffered reports carry per-agent sequence numbers. The merge rules commute (any
order of the same reports gives the same result) and are idempotent (a duplicate
changes nothing): progress merges by maximum, a task's status by the order
pending < running < completed, applied sequence numbers by union. The engine applies
reconnection buffers in sequence order and drops every sequence number at or below
the agent's ``applied_seq``; ``SeqTap`` watches that no sequence is applied twice,
and ``partition_report`` measures how much of the fleet kept making progress.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import Event

if TYPE_CHECKING:
    from ..engine import Engine

_RANK = {"pending": 0, "running": 1, "completed": 2}


@dataclass(frozen=True)
class TaskView:
    progress: float = 0.0
    status: str = "pending"
    applied: frozenset[tuple[str, int]] = field(default_factory=frozenset)


def merge_one(view: TaskView, agent: str, report: dict[str, Any]) -> TaskView:
    """Fold one buffered report into a task's view; commutative and idempotent."""
    kind = report["kind"]
    status = {"started": "running", "progress": "running", "finished": "completed"}.get(kind, view.status)
    if _RANK.get(status, 0) < _RANK.get(view.status, 0):
        status = view.status
    progress = max(view.progress, float(report.get("progress", 1.0 if kind == "finished" else 0.0)))
    return TaskView(progress, status, view.applied | {(agent, int(report["seq"]))})


def merge(reports: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, TaskView]:
    """Merge (agent, report) pairs in any order into per-task views."""
    out: dict[str, TaskView] = {}
    for agent, rep in reports:
        key = rep["task_id"]
        out[key] = merge_one(out.get(key, TaskView()), agent, rep)
    return out


class SeqTap:
    """Counts reconnections and applied buffered sequence numbers from the event stream."""

    def __init__(self, engine: Engine) -> None:
        self.applied: dict[tuple[str, int], int] = {}
        self.buffered = 0
        self.dropped = 0
        engine.subscribe(self._on_event)

    def _on_event(self, ev: Event) -> None:
        if ev.type == "AGENT_SEQ_APPLIED":
            k = (ev.data["agent"], int(ev.data["seq"]))
            self.applied[k] = self.applied.get(k, 0) + 1
        elif ev.type == "AGENT_RECONNECTED":
            self.buffered += int(ev.data.get("buffered", 0))
            self.dropped += int(ev.data.get("duplicates_dropped", 0))


def agent_marks(engine: Engine) -> dict[str, list[Any]]:
    """Per live agent: [current task, its progress, tasks done] (to measure progress later)."""
    s = engine.state
    out = {}
    for a in s.agents.values():
        t = s.tasks.get(a.current_task) if a.current_task else None
        out[a.id] = [a.current_task, t.context.progress if t else 0.0, a.tasks_done]
    return out


def partition_report(engine: Engine, inc: dict[str, Any], tap: SeqTap | None = None) -> dict[str, Any]:
    s = engine.state
    marks: dict[str, list[Any]] = inc.get("evidence", {}).get("agent_marks", {})
    busy = {a: m for a, m in marks.items() if m[0]}
    progressed = []
    for a, (task, prog, done) in busy.items():
        ag = s.agents.get(a)
        if ag is None:
            continue
        t = s.tasks.get(task)
        if ag.tasks_done > done or (t is not None and (t.context.progress > prog + 1e-9 or t.status.value == "completed")):
            progressed.append(a)
    share = 100.0 * len(progressed) / len(busy) if busy else 100.0
    onset = float(inc.get("fault_at") or inc["detected_at"])
    series = engine.telemetry.get("throughput_per_min")
    before = [v for t, v in series.since(onset - 900.0) if t < onset]
    during = [v for t, v in series.since(onset)]
    b = sum(before) / len(before) if before else 0.0
    d = sum(during) / len(during) if during else 0.0
    drop = 100.0 * (b - d) / b if b > 0 else 0.0
    impact = "minimal" if drop < 10 else "moderate" if drop < 30 else "severe"
    cut = set(inc.get("evidence", {}).get("unreachable", []))
    dup = sorted(f"{a}#{n}" for (a, n), c in (tap.applied.items() if tap else []) if c > 1)
    return {
        "functionality_preserved_pct": round(share, 1),
        "agents_progressing": sorted(progressed),
        "agents_with_work": len(busy),
        "unreachable_progressing": sorted(a for a in progressed if a in cut),
        "throughput_before": round(b, 3),
        "throughput_during": round(d, 3),
        "performance_impact": impact,
        "buffered_applied": sum(1 for (a, _), _c in (tap.applied.items() if tap else []) if a in cut),
        "duplicates_dropped": tap.dropped if tap else 0,
        "duplicates_applied": dup,
    }
