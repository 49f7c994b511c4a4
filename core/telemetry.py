"""Telemetry: usage and performance samples, kept outside the hash chain.

Heartbeats and usage are too frequent to be events; they live here in ring buffers
for detectors and panes, and go to the store's metrics table in batches.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .clock import seconds
from .event_types import (
    COMMAND_EXECUTED,
    INCIDENT_OPENED,
    STATE_RESTORED,
    TASK_ASSIGNED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_REASSIGNED,
    TASK_TIMEOUT,
    WORKFLOW_CANCELLED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_PAUSED,
    WORKFLOW_RESUMED,
    WORKFLOW_STARTED,
)
from .models import TaskStatus, WorkflowStatus
from .store_metrics import Sample, SeriesSamples, pairs

if TYPE_CHECKING:
    from .events import Event
    from .models import Agent
    from .projection import State

# A function-level ``from .models import ...`` cost about 3 us a call (the import
# system's package lookup, in Python), once per task end here; the enum members the
# task timings compare with are bound once (Python 3.11 reads an enum class's
# attributes through EnumType.__getattr__'s slow path).
_PENDING = TaskStatus.PENDING
_WF_RUNNING = WorkflowStatus.RUNNING

HISTORY = 720

SAMPLE_WRITE_S = 0.5
"""Wall seconds between commits of samples alone (no event to commit with them). A host
on the wall clock samples every ``intervals.sample_s`` (5 s by default), so each sample
is committed at the flush after it; a run faster than the wall clock (the headless demo:
a simulated day in about 10 s) commits many flushes' samples in one transaction (one a
flush would be about 3,260 a day, a fifth of its CPU). Samples also go with any events' commit."""
SAMPLE_BATCH_MAX = 10_000
"""Samples held at most before they are committed whatever the wall time."""


@dataclass
class Series:
    """A bounded time series of (t, value)."""

    points: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def add(self, t: float, v: float) -> None:
        self.points.append((t, v))

    def last(self, default: float = 0.0) -> float:
        return self.points[-1][1] if self.points else default

    def values(self, n: int | None = None) -> list[float]:
        vals = [v for _, v in self.points]
        return vals[-n:] if n else vals

    def since(self, t0: float) -> list[tuple[float, float]]:
        return [(t, v) for t, v in self.points if t >= t0]


COMPLETIONS = "completed"
"""The system series counting completed tasks, one point each (the throughput reads it)."""
TASK_DONE_METRICS: tuple[tuple[str, bool], ...] = (("response_time", True), ("efficiency", True), (COMPLETIONS, False))
"""The system series a completed task adds to (:meth:`Telemetry.task_done`), in the order
it adds to them: each name, and whether its samples are stored (a completion is counted
in memory for the throughput, not stored)."""
(_RESPONSE, _RESPONSE_STORED), (_EFFICIENCY, _EFFICIENCY_STORED), (_DONE, _DONE_STORED) = (
    ((name, "system"), stored) for name, stored in TASK_DONE_METRICS
)


class Telemetry:
    """Latest samples per subject and metric, plus the rows waiting for the store."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], Series] = {}
        self.liveness: dict[str, float] = {}
        self.agent_usage: dict[str, tuple[float, float]] = {}
        self.pending: SeriesSamples = {}
        """Samples waiting for the store: per series, ts and value alternating, in the order recorded."""
        self.samples_taken = float("-inf")
        """``time.monotonic()`` when the store last took the pending samples."""
        self.commit_seconds = Histogram(COMMIT_BOUNDS)
        """Wall seconds of each group commit of events (one store transaction)."""
        self.counts: EventCounts | None = None
        """Committed events by type since the log began, once something asks for them."""
        self.tasks = TaskTimings()

    def record(self, t: float, name: str, subject: str, value: float, persist: bool = True) -> None:
        key = (name, subject)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series()
        point = (t, value)
        s.points.append(point)  # Series.add, without the call (a few per task)
        if persist:
            self._hold(key, point)

    def task_done(self, now: float, took: float | None, expected: float) -> None:
        """A task completed: its response time (``took``: seconds since its assignment, None
        when unknown) and its efficiency against its ``expected`` seconds, kept for the
        store, and one completion (not stored). What :meth:`record` does for each, in the
        same order, in one call per task rather than three, written out per series (a
        loop over the three cost about 0.2 us a task)."""
        series = self.series
        if took is not None:
            point = (now, took)
            s = series.get(_RESPONSE)
            if s is None:
                s = series[_RESPONSE] = Series()
            s.points.append(point)
            if _RESPONSE_STORED:  # _hold, written out: one sample each task has
                held = self.pending.get(_RESPONSE)
                if held is None:
                    self.pending[_RESPONSE] = list(point)
                else:
                    held += point
            if took > 0 and expected > 0:
                point = (now, min(expected / took, 1.5))
                s = series.get(_EFFICIENCY)
                if s is None:
                    s = series[_EFFICIENCY] = Series()
                s.points.append(point)
                if _EFFICIENCY_STORED:
                    self._hold(_EFFICIENCY, point)
        s = series.get(_DONE)
        if s is None:
            s = series[_DONE] = Series()
        s.points.append((now, 1.0))
        if _DONE_STORED:
            self._hold(_DONE, (now, 1.0))

    def _hold(self, key: tuple[str, str], point: tuple[float, float]) -> None:
        """A sample waiting for the store (:attr:`pending`)."""
        held = self.pending.get(key)
        if held is None:
            self.pending[key] = list(point)
        else:
            held += point

    def load(self, name: str, subject: str, points: Sequence[tuple[float, float]]) -> None:
        """Samples read back from the store (in time order, not persisted again)."""
        key = (name, subject)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series()
        s.points.extend(points)

    def get(self, name: str, subject: str = "system") -> Series:
        return self.series.get((name, subject)) or Series()

    def last_heard(self, agent: Agent) -> float | None:
        """When ``agent`` was last heard: its last report to this process, else its last
        heartbeat on record (a log reopened), else None (never heard)."""
        return self.liveness.get(agent.id, agent.last_heartbeat)

    def silent_for(self, agent: Agent, now: float) -> float:
        """Seconds since ``agent`` was last heard (:meth:`last_heard`), 0 when never heard:
        not silent yet."""
        last = self.last_heard(agent)
        return now - last if last is not None else 0.0

    @property
    def pending_rows(self) -> list[Sample]:
        """The samples waiting for the store as (ts, name, subject, value), each series'
        in the order recorded, the series in the order first held."""
        return [(t, name, subject, v) for (name, subject), held in self.pending.items() for t, v in pairs(held)]

    def pending_count(self) -> int:
        """How many samples wait for the store."""
        return sum(len(held) for held in self.pending.values()) // 2

    def take_rows(self, force: bool = True) -> SeriesSamples:
        """The samples to store (per series, in the order recorded): all those pending
        when ``force`` (an events' commit takes them, or the engine closes), else all of
        them once :data:`SAMPLE_WRITE_S` of wall time passed since they were last taken
        (or :data:`SAMPLE_BATCH_MAX` are held), none before."""
        if not self.pending:
            return {}
        t = time.monotonic()
        if not force and t - self.samples_taken < SAMPLE_WRITE_S and self.pending_count() < SAMPLE_BATCH_MAX:
            return {}
        self.samples_taken = t
        taken, self.pending = self.pending, {}
        return taken

    def drop_newest(self, n: int) -> None:
        """Forget the ``n`` newest samples waiting for the store (by time; each series
        holds its own in time order), as a bound on what a refusing store leaves held."""
        if n <= 0:
            return
        # Each series is in time order: the n newest of all are among each one's last n.
        last = (
            (flat[i], key) for key, flat in self.pending.items() for i in range(max(0, len(flat) - 2 * n), len(flat), 2)
        )
        newest = sorted(last, reverse=True)[:n]
        for _, key in newest:
            del self.pending[key][-2:]
        self.pending = {key: flat for key, flat in self.pending.items() if flat}

    def put_back(self, taken: SeriesSamples) -> None:
        """Samples :meth:`take_rows` gave that the store did not take: held again, before
        any recorded since, to be stored once by a later commit."""
        held, self.pending = self.pending, dict(taken)
        for key, flat in held.items():
            before = self.pending.get(key)
            self.pending[key] = flat if before is None else before + flat

    def committed(self, rows: Sequence[tuple[Any, ...]], seconds: float) -> None:
        """The engine committed ``rows`` (store event rows) in ``seconds``."""
        self.commit_seconds.observe(seconds)
        if self.counts is not None:
            self.counts.add(rows)


# Upper bounds (seconds) of histogram buckets; +Inf is implied.
COMMIT_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TASK_BOUNDS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)


class Histogram:
    """Bucket counts, sum and count of observed values (cumulative, like Prometheus)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        i = 0
        for b in self.bounds:
            if v <= b:
                break
            i += 1
        self.counts[i] += 1
        self.sum += v
        self.count += 1

    @classmethod
    def of(cls, bounds: Sequence[float], values: Iterable[float]) -> Histogram:
        h = cls(bounds)
        for v in values:
            h.observe(v)
        return h

    def cumulative(self) -> list[tuple[str, float]]:
        """[(le, count of values <= le), ..., ("+Inf", count)]."""
        out: list[tuple[str, float]] = []
        acc = 0
        for b, n in zip(self.bounds, self.counts, strict=False):
            acc += n
            out.append((repr(float(b)), acc))
        out.append(("+Inf", self.count))
        return out


COUNTED_TYPES = (
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_CANCELLED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_TIMEOUT,
    TASK_REASSIGNED,
    INCIDENT_OPENED,
    COMMAND_EXECUTED,
)
"""Event types whose counts since the beginning of the log are kept."""


def failure_reason(event_type: str, error: str) -> str:
    """A task failure's reason as one of a few words (a bounded metric label)."""
    e = error.lower()
    if event_type == TASK_TIMEOUT or e.startswith("timeout"):
        return "timeout"
    if "memory limit" in e:
        return "memory_limit"
    if e.startswith("exit status"):
        return "exit_status"
    if e.startswith("killed by signal"):
        return "signal"
    if e.startswith("could not start") or "has no command" in e:
        return "start_failed"
    if "agent died" in e or "agent not running" in e:
        return "agent_lost"
    return "error"


class EventCounts:
    """Counts of committed events by type (and task failures by reason).

    Seeded from the store (everything up to ``upto``) and then fed by the engine's
    group commits, so the counts equal what the log holds.
    """

    def __init__(self, by_type: dict[str, int], failures: dict[str, int], upto: int) -> None:
        self.by_type = {t: by_type.get(t, 0) for t in COUNTED_TYPES}
        self.failures = dict(failures)
        self.upto = upto

    def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        by_type = self.by_type
        for row in rows:
            seq, type_ = row[0], row[2]
            if seq <= self.upto or type_ not in by_type:
                continue
            by_type[type_] += 1
            if type_ in (TASK_FAILED, TASK_TIMEOUT):
                data = json.loads(row[6])
                reason = failure_reason(type_, str(data.get("error", "")))
                self.failures[reason] = self.failures.get(reason, 0) + 1
        if rows:
            self.upto = max(self.upto, rows[-1][0])


class TaskTimings:
    """How long tasks wait for an agent and how long they run, from the engine's events.

    Fed by an engine subscriber (the projection does not keep when a task became
    ready); times are on the engine's clock (simulated seconds on the sim runtime).
    """

    def __init__(self) -> None:
        self.schedule_to_start = Histogram(TASK_BOUNDS)
        self.execution = Histogram(TASK_BOUNDS)
        self.ready_since: dict[str, float] = {}

    def start(self, state: State, now: float) -> None:
        """Begin with the tasks that are ready now (their wait counts from ``now``)."""
        self._mark_ready(state, state.ready.keys(), now)

    def _mark_ready(self, state: State, workflows: Iterable[str], now: float) -> None:
        for wf_id in workflows:
            wf = state.workflows.get(wf_id)
            if wf is None or wf.status is not _WF_RUNNING:
                continue
            for key in state.ready.get(wf_id, ()):
                self.ready_since.setdefault(key, now)

    def _mark_tasks(self, state: State, keys: Iterable[str], now: float) -> None:
        """Of ``keys``, those ready now (pending, no dependency left, their workflow running):
        a task's end looks at what it can have made ready, not at every ready task of its
        workflow (a scan per end made a flat workflow's run quadratic in its size)."""
        tasks, pending, workflows = state.tasks, state.pending_deps, state.workflows
        for key in keys:
            t = tasks.get(key)
            if t is None or t.status is not _PENDING or pending.get(key) != 0:
                continue
            wf = workflows.get(t.workflow)
            if wf is not None and wf.status is _WF_RUNNING:
                self.ready_since.setdefault(key, now)

    def observe(self, state: State, ev: Event) -> None:
        t = ev.type
        d = ev.data
        if t == TASK_ASSIGNED:
            since = self.ready_since.pop(d["task"], None)
            if since is not None:
                self.schedule_to_start.observe(max(ev.ts - since, 0.0))
        elif t in (TASK_COMPLETED, TASK_FAILED, TASK_TIMEOUT):
            task = state.tasks.get(d.get("task", ""))
            # The run as its runtime measured it (TASK_COMPLETED's own figure; an injected
            # line's that is no number of seconds is not one)
            ran = seconds(d.get("duration_s")) if t == TASK_COMPLETED else None
            if ran is not None:
                self.execution.observe(ran)
            elif task is not None and task.started_at is not None:
                self.execution.observe(max(ev.ts - task.started_at, 0.0))
            if task is not None:  # what its end made ready: itself (a retry), dependents it was the last of
                self._mark_tasks(state, (d["task"], *state.dependents.get(d["task"], ())), ev.ts)
        elif t in (WORKFLOW_STARTED, WORKFLOW_RESUMED, TASK_REASSIGNED):
            wf = d.get("workflow_id") or (state.tasks[d["task"]].workflow if d.get("task") in state.tasks else None)
            if wf is not None:
                self._mark_ready(state, (wf,), ev.ts)
        elif t in (WORKFLOW_COMPLETED, WORKFLOW_FAILED, WORKFLOW_CANCELLED, WORKFLOW_PAUSED):
            prefix = f"{d['workflow_id']}/"
            for key in [k for k in self.ready_since if k.startswith(prefix)]:
                del self.ready_since[key]
        elif t == STATE_RESTORED:
            self.ready_since = {k: v for k, v in self.ready_since.items() if k in state.tasks}
            self._mark_ready(state, state.ready.keys(), ev.ts)
