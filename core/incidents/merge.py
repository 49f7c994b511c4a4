"""Watching a partition's recovery: what was moved, applied and completed.

The merge itself (``core.merge``) runs in the engine on every reconnection: buffered
reports in sequence order, every sequence number at or below the agent's
``applied_seq`` dropped, the two sides of each task merged by commuting rules.
``SeqTap`` watches that no sequence is applied twice and no task completes twice,
and ``partition_report`` measures how much of the fleet kept making progress.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..event_types import (
    AGENT_RECONNECTED,
    AGENT_SEQ_APPLIED,
    PARTITION_MERGED,
    TASK_COMPLETED,
    TASK_REASSIGNED,
)
from ..events import Event
from ..incident_models import Incident, KindEvidence

if TYPE_CHECKING:
    from ..engine import Engine


COMPLETIONS_KEPT_MIN = 1024
"""Tasks :attr:`SeqTap.completions` holds before it first drops those it no longer needs."""


class SeqTap:
    """Counts, from the event stream: reconnections and their buffered reports,
    applied sequence numbers, tasks moved off each agent, completions per task."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.applied: dict[tuple[str, int], int] = {}
        self.buffered = 0
        self.dropped = 0
        self.buffered_by: dict[str, int] = {}
        self.dropped_by: dict[str, int] = {}
        self.moved_from: dict[str, list[str]] = {}
        self.completions: dict[str, list[float]] = {}
        """Completion times per task, for the live tasks and those completed more than once
        (the partition check asks whether a task held at detection completed twice since):
        a task completed once that left the hot state (archived with its workflow) cannot
        complete again, and is dropped once the dict doubled (:meth:`_drop_finished`)."""
        self._drop_at = COMPLETIONS_KEPT_MIN
        self.merged: list[dict[str, Any]] = []
        engine.observe(self._on_event)

    def _on_event(self, ev: Event) -> None:
        d = ev.data
        if ev.type == AGENT_SEQ_APPLIED:
            k = (d["agent"], int(d["seq"]))
            self.applied[k] = self.applied.get(k, 0) + 1
        elif ev.type == AGENT_RECONNECTED:
            n, dup = int(d.get("buffered", 0)), int(d.get("duplicates_dropped", 0))
            self.buffered += n
            self.dropped += dup
            self.buffered_by[d["agent"]] = self.buffered_by.get(d["agent"], 0) + n
            self.dropped_by[d["agent"]] = self.dropped_by.get(d["agent"], 0) + dup
        elif ev.type == TASK_REASSIGNED and d.get("from"):
            self.moved_from.setdefault(d["from"], []).append(d["task"])
        elif ev.type == TASK_COMPLETED:
            times = self.completions.get(d["task"])
            if times is not None:
                times.append(ev.ts)
            else:
                self.completions[d["task"]] = [ev.ts]
                if len(self.completions) > self._drop_at:
                    self._drop_finished()
        elif ev.type == PARTITION_MERGED:
            self.merged.append(d)

    def _drop_finished(self) -> None:
        """Keep the live tasks' completions and every task completed more than once; next
        time when twice as many are held (amortised: one pass per as many completions)."""
        live = self.engine.state.tasks
        self.completions = {t: c for t, c in self.completions.items() if len(c) > 1 or t in live}
        self._drop_at = max(COMPLETIONS_KEPT_MIN, 2 * len(self.completions))


class PartitionEvidence(KindEvidence):
    """What the partition's criterion and report read of its evidence."""

    unreachable: list[str] = Field(default_factory=list)
    agent_marks: dict[str, list[Any]] = Field(default_factory=dict)
    """Per agent at detection: [current task, its progress, tasks done] (:func:`agent_marks`)."""


def agent_marks(engine: Engine) -> dict[str, list[Any]]:
    """Per live agent: [current task, its progress, tasks done] (to measure progress later)."""
    s = engine.state
    out = {}
    for a in s.agents.values():
        t = s.tasks.get(a.current_task) if a.current_task else None
        out[a.id] = [a.current_task, t.context.progress if t else 0.0, a.tasks_done]
    return out


def partition_report(engine: Engine, inc: Incident, tap: SeqTap | None = None) -> dict[str, Any]:
    s = engine.state
    marks = inc.evidence.of(PartitionEvidence).agent_marks
    busy = {a: m for a, m in marks.items() if m[0]}
    progressed = []
    for a, (task, prog, done) in busy.items():
        ag = s.agents.get(a)
        if ag is None:
            continue
        t = s.tasks.get(task)
        if ag.tasks_done > done or (
            t is not None and (t.context.progress > prog + 1e-9 or t.status.value == "completed")
        ):
            progressed.append(a)
    share = 100.0 * len(progressed) / len(busy) if busy else 100.0
    onset = float(inc.fault_at or inc.detected_at)
    series = engine.telemetry.get("throughput_per_min")
    before = [v for t, v in series.since(onset - 900.0) if t < onset]
    during = [v for t, v in series.since(onset)]
    b = sum(before) / len(before) if before else 0.0
    d = sum(during) / len(during) if during else 0.0
    drop = 100.0 * (b - d) / b if b > 0 else 0.0
    impact = "minimal" if drop < 10 else "moderate" if drop < 30 else "severe"
    cut = set(inc.evidence.of(PartitionEvidence).unreachable)
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
