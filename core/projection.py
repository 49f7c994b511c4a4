"""The projection: in-memory state as a fold over events.

``State.apply(event)`` is the only way the state changes. Replaying the log from the
start, or loading a checkpoint snapshot and replaying the rest, gives the same state
and the same :meth:`State.state_hash`. Scheduler indexes (dependency counters, ready
queues) are derived from the state and rebuilt after a snapshot load, so they are
never part of the hash.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, MutableMapping
from operator import attrgetter
from typing import Any

from .events import Event, canonical_json
from .incident_models import Incident, Plan
from .journal import Journal, Part
from .models import (
    BAND_RANK,
    TERMINAL_WORKFLOW,
    Agent,
    AgentStatus,
    Checkpoint,
    FinishedWorkflow,
    Pool,
    Resources,
    Resumption,
    Task,
    TaskStatus,
    Workflow,
    WorkflowStatus,
    tasks_json,
)
from .projection_history import HistoryCache, HistoryRows
from .projection_index import WorkIndexes
from .projection_snapshot import load_into, snapshot_of
from .usage.models import UsageLedger

_status_of = attrgetter("status")
_attempts_of = attrgetter("attempts")
_FAILED = TaskStatus.FAILED

Fold = Callable[["State", Event], None]
"""How one event type changes the state (declared with the type in the event catalogue)."""


def task_key(workflow: str, task: str) -> str:
    return f"{workflow}/{task}"


HOLDING = frozenset({AgentStatus.BUSY, AgentStatus.PAUSED, AgentStatus.UNREACHABLE})
"""Agent states in which an agent can hold a task: running it, paused with it (a paused
task keeps its agent) or cut off while holding it."""


def agent_in_use(a: Agent) -> bool:
    """The agent holds a task, in one of :data:`HOLDING`'s states: an agent slot in use.
    What the header's AGT gauge counts (of the capacity's agent slots) and the pools
    pane's 'in use' (of the agents listed): one definition for both."""
    return bool(a.current_task) and a.status in HOLDING


ArchiveRow = tuple[str, int, str, str]
"""(workflow id, finished seq, status, JSON of the workflow and its tasks)"""


class State(WorkIndexes):
    """Everything the engine knows, folded from the event log.

    The hot state is live work: ``workflows`` and ``tasks`` hold workflows that are not
    finished (or whose last tasks still hold agents). A finished workflow leaves them for
    ``finished`` (a summary per workflow, no tasks), so that dispatch, checkpoints and
    memory follow live work, not history. Its full record goes to ``archive_out`` when
    someone collects it (the engine, into the store's archive table)."""

    def __init__(self, folds: Mapping[str, Fold], collect_archive: bool = False) -> None:
        self.folds = folds
        """Event type -> fold: the event catalogue's (``core.event_types.EVENTS.folds``), given
        by whoever builds the state so that the projection does not import the folds it runs;
        a type without one is counted in ``observed``."""
        self.seq = 0
        self.clock = 0.0
        self.pools: dict[str, Pool] = {}
        self.agents: dict[str, Agent] = {}
        self.workflows: dict[str, Workflow] = {}
        self.tasks: dict[str, Task] = {}
        self.finished: MutableMapping[str, FinishedWorkflow] = {}
        self.archive_out: list[ArchiveRow] | None = [] if collect_archive else None
        """Records of workflows that left the hot state, until the engine stores them."""
        self.checkpoints: dict[int, Checkpoint] = {}
        self.incidents: dict[str, Incident] = {}
        self.plans: dict[str, Plan] = {}
        self.resumptions: dict[str, Resumption] = {}
        self.learning: dict[str, Any] = {}
        self.settings: dict[str, Any] = {}
        self.commands_executed = 0
        self.observed: dict[str, int] = {}
        self.usage = UsageLedger()
        """Tokens and money spent per task, agent, workflow and pool; budgets; pool holds."""
        self.reindex()  # the derived indexes (:class:`WorkIndexes`), empty
        self.journal: Journal | None = None
        """The open unit of work's journal: folds record there what they overwrite."""
        self.history = HistoryCache()
        """Hashes of the finished and checkpoint entries, for the snapshot's digests."""

    # -- folding --------------------------------------------------------------
    def apply(self, ev: Event) -> None:
        """Fold one event (its fold is declared in the event catalogue). The sequence
        number and clock move only once the fold has succeeded: a rejected event leaves no gap behind it."""
        fn = self.folds.get(ev.type)
        if fn is not None:
            fn(self, ev)
        else:
            self.observed[ev.type] = self.observed.get(ev.type, 0) + 1
        self.seq = ev.seq
        if ev.ts > self.clock:
            self.clock = ev.ts

    # -- the journal: taking a unit of work back -------------------------------------
    def changing(self, part: Part, records: dict[Any, Any], key: Any) -> None:
        """A fold is about to change ``records[key]`` in place or create it (``records``
        is this state's ``part``): inside a unit, the journal keeps what it was."""
        if self.journal is not None:
            self.journal.changing(part, records, key)
            if part == "tasks":
                t = records.get(key)
                if t is not None:
                    self.journal.workflows.add(t.workflow)
            elif part == "workflows":
                self.journal.workflows.add(key)

    def replacing(self, part: Part, records: MutableMapping[Any, Any], key: Any) -> None:
        """As :meth:`changing`, for a record the fold replaces or removes, never changes
        in place: the object itself is kept, not a copy."""
        if self.journal is not None:
            self.journal.replacing(part, records, key)
            if part == "tasks":
                t = records.get(key)
                if t is not None:
                    self.journal.workflows.add(t.workflow)
            elif part == "workflows":
                self.journal.workflows.add(key)

    def begin_journal(self) -> Journal:
        """Start recording what folds change (inside any journal already open)."""
        j = Journal(self.journal, self.seq, self.clock, self.commands_executed, dict(self.observed), self.archive_out)
        j.usage_ignored = self.usage.ignored_lines
        self.journal = j
        return j

    def keep_journal(self, j: Journal) -> None:
        """Keep what ``j`` recorded (the journal around it can still take it back)."""
        self.journal = j.parent
        if j.parent is not None:
            j.merge_into(j.parent)

    def undo_journal(self, j: Journal) -> None:
        """Back to the state ``j`` began from, in place: the records it saw written get
        their pre-images back and the touched workflows' derived indexes are rebuilt;
        the cost follows what changed, not the size of the state."""
        self.journal = j.parent
        for wid in j.workflows:
            self._unindex(wid)
        j.put_back(self._parts())
        for wid in j.workflows:
            self._unindex(wid)
            wf = self.workflows.get(wid)
            if wf is not None:
                self._index(wf)
        self.seq, self.clock, self.commands_executed, self.observed = j.seq, j.clock, j.commands_executed, j.observed
        self.usage.ignored_lines = j.usage_ignored
        if j.archive is not None and j.archive is self.archive_out:
            del j.archive[j.archive_len :]

    def _parts(self) -> dict[Part, MutableMapping[Any, Any]]:
        return {
            "pools": self.pools,
            "agents": self.agents,
            "workflows": self.workflows,
            "tasks": self.tasks,
            "finished": self.finished,
            "checkpoints": self.checkpoints,
            "incidents": self.incidents,
            "plans": self.plans,
            "resumptions": self.resumptions,
            "learning": self.learning,
            "settings": self.settings,
            "usage_tasks": self.usage.tasks,
            "usage_agents": self.usage.agents,
            "usage_workflows": self.usage.workflows,
            "usage_pools": self.usage.pools,
            "usage_budgets": self.usage.budgets,
            "usage_holds": self.usage.holds,
        }

    # -- snapshots ------------------------------------------------------------
    def snapshot(self, *, full: bool = False, checkpoint_labels: bool = False) -> dict[str, Any]:
        """A JSON-ready dict of the hashed state (``core.projection_snapshot.snapshot_of``):
        live work whole, finished workflows and checkpoint records as digests; ``full``
        (or ``checkpoint_labels``) gives the whole form older stores wrote."""
        return snapshot_of(self, full=full or checkpoint_labels, checkpoint_labels=checkpoint_labels)

    def state_hash(self) -> str:
        return hash_snapshot(self.snapshot())

    @classmethod
    def from_snapshot(
        cls,
        folds: Mapping[str, Fold],
        snap: dict[str, Any],
        collect_archive: bool = False,
        history: HistoryRows | None = None,
    ) -> State:
        """A state from a snapshot; a compact one with its history entries (``history``,
        as the store keeps them, checked against its digests by whoever read them)."""
        s = cls(folds, collect_archive)
        s.load_snapshot(snap, history=history)
        return s

    def load_snapshot(
        self, snap: dict[str, Any], *, keep_history: bool = False, history: HistoryRows | None = None
    ) -> None:
        """Replace the state with a snapshot (``core.projection_snapshot.load_into``);
        ``keep_history`` keeps incidents, plans, checkpoints and counters (a rollback
        restores the fleet, not the history); a compact snapshot needs its ``history``."""
        load_into(self, snap, keep_history=keep_history, history=history)
        self.reindex()
        self.archive_idle(self.seq)

    # -- leaving the hot state ----------------------------------------------------
    def archive_idle(self, seq: int) -> None:
        """Archive every terminal workflow none of whose tasks holds an agent."""
        for wf in [w for w in self.workflows.values() if w.status in TERMINAL_WORKFLOW]:
            self.maybe_archive(wf.id, seq)

    def maybe_archive(self, wf_id: str, seq: int) -> None:
        wf = self.workflows.get(wf_id)
        if wf is None or wf.status not in TERMINAL_WORKFLOW or self.running_by_wf.get(wf_id):
            return
        if self.journal is not None:
            self.replacing("workflows", self.workflows, wf_id)
            self.replacing("finished", self.finished, wf_id)
            for k in wf.tasks:
                self.replacing("tasks", self.tasks, k)
        tasks = [self.tasks.pop(k) for k in wf.tasks]
        # Counted by C-level maps over the tasks, not a loop of Python statements per task.
        by_status = Counter(map(_status_of, tasks))
        counts = {s._value_: n for s, n in by_status.items()}  # _value_: without Enum.value's descriptor
        tries = list(map(_attempts_of, tasks))
        attempts = sum(tries)
        failed = [t.id for t in tasks if t.status is _FAILED] if _FAILED in by_status else []
        retried = {t.id: n for t, n in zip(tasks, tries, strict=True) if n > 1} if max(tries, default=0) > 1 else {}
        self.finished[wf_id] = FinishedWorkflow(
            id=wf.id,
            name=wf.name,
            priority=wf.priority,
            band=wf.band,
            status=wf.status,
            depends_on=wf.depends_on,
            allocation=wf.allocation,
            phases=wf.phases,
            created_at=wf.created_at,
            created_seq=wf.created_seq,
            started_at=wf.started_at,
            finished_at=wf.finished_at,
            finished_seq=seq,
            task_count=len(tasks),
            task_status=dict(sorted(counts.items())),
            attempts=attempts,
            failed_tasks=failed,
            retried=retried,
        )
        if self.archive_out is not None:
            record = f'{{"workflow":{wf.model_dump_json()},"tasks":{tasks_json(tasks)}}}'
            self.archive_out.append((wf_id, seq, wf.status.value, record))
        self._unindex(wf_id)
        del self.workflows[wf_id]

    def take_archive(self) -> list[ArchiveRow]:
        rows = self.archive_out or []
        if self.archive_out is not None:
            self.archive_out = []
        return rows

    # -- queries over hot and finished workflows ------------------------------------
    def knows(self, wf_id: str) -> bool:
        """A workflow of this state, live or finished."""
        return wf_id in self.workflows or wf_id in self.finished

    def status_of(self, wf_id: str) -> WorkflowStatus | None:
        w = self.workflows.get(wf_id) or self.finished.get(wf_id)
        return w.status if w is not None else None

    def any_workflow(self, wf_id: str) -> Workflow | FinishedWorkflow | None:
        return self.workflows.get(wf_id) or self.finished.get(wf_id)

    def all_workflows(self) -> list[Workflow | FinishedWorkflow]:
        """Every workflow, live ones and finished summaries (listings)."""
        return [*self.workflows.values(), *self.finished.values()]

    def all_workflow_ids(self) -> list[str]:
        return sorted([*self.workflows, *self.finished])

    # -- queries --------------------------------------------------------------
    def live_agents(self) -> list[Agent]:
        return [a for a in self.agents.values() if a.status not in (AgentStatus.FAILED, AgentStatus.RETIRED)]

    def workflow_tasks(self, wf_id: str) -> list[Task]:
        return [self.tasks[k] for k in self.workflows[wf_id].tasks]

    def workflow_progress(self, wf_id: str) -> float:
        done = self.finished.get(wf_id)
        if done is not None:
            return done.progress
        keys = self.workflows[wf_id].tasks
        if not keys:
            return 1.0
        total = 0.0
        for k in keys:
            t = self.tasks[k]
            if t.status == TaskStatus.COMPLETED:
                total += 1.0
            else:
                total += min(t.context.progress, 0.99)
        return total / len(keys)

    def current_phase(self, wf_id: str) -> str | None:
        if wf_id in self.finished:
            return None
        wf = self.workflows[wf_id]
        for phase in wf.phases:
            for k in wf.tasks:
                t = self.tasks[k]
                if t.phase == phase and t.status != TaskStatus.COMPLETED:
                    return phase
        return None

    def in_use(self, wf_id: str) -> Resources:
        """What a workflow's running tasks hold now (paused tasks hold nothing)."""
        cpu = mem = 0.0
        n = 0
        for k in self.running_by_wf.get(wf_id, ()):
            t = self.tasks[k]
            if t.status == TaskStatus.RUNNING:
                cpu += t.cpu
                mem += t.memory_gb
                n += 1
        return Resources(cpu_cores=cpu, memory_gb=mem, agents=n)

    def band_rank(self, wf_id: str) -> int:
        return BAND_RANK[self.workflows[wf_id].band]

    def dependency_met(self, wf: Workflow) -> bool:
        return all(self.status_of(dep) is WorkflowStatus.COMPLETED for dep in wf.depends_on)

    def critical_path(self, wf_id: str) -> list[str]:
        """Longest remaining chain of task durations through the workflow's DAG."""
        if wf_id in self.finished:
            return []
        wf = self.workflows[wf_id]
        best: dict[str, tuple[float, list[str]]] = {}
        for k in wf.tasks:  # tasks are stored in topological order
            t = self.tasks[k]
            own = 0.0 if t.status == TaskStatus.COMPLETED else t.duration_s * (1 - t.context.progress)
            prev = max((best[d] for d in t.depends_on), key=lambda x: x[0], default=(0.0, []))
            best[k] = (prev[0] + own, prev[1] + [k])
        if not best:
            return []
        length, path = max(best.values(), key=lambda x: x[0])
        return [k for k in path if self.tasks[k].status != TaskStatus.COMPLETED] if length > 0 else []


def hash_snapshot(snap: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(snap).encode("utf-8")).hexdigest()
