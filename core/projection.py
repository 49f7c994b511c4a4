"""The projection: in-memory state as a fold over events.

``State.apply(event)`` is the only way the state changes. Replaying the log from the
start, or loading a checkpoint snapshot and replaying the rest, gives the same state
and the same :meth:`State.state_hash`. Scheduler indexes (dependency counters, ready
queues) are derived from the state and rebuilt after a snapshot load, so they are
never part of the hash.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from .events import Event, canonical_json
from .models import (
    BAND_RANK,
    TERMINAL_WORKFLOW,
    Agent,
    AgentStatus,
    Checkpoint,
    FinishedWorkflow,
    Pool,
    Resources,
    Task,
    TaskContext,
    TaskSpec,
    TaskStatus,
    Workflow,
    WorkflowSpec,
    WorkflowStatus,
    band_of,
)

Reducer = Callable[["State", Event], None]
REDUCERS: dict[str, Reducer] = {}
"""Event type -> reducer. Other modules (incidents, commands) register their own."""


def reducer(*types: str) -> Callable[[Reducer], Reducer]:
    """Register how an event type folds. One owner per type: a second registration
    would make replay depend on import order, so it is refused."""

    def deco(fn: Reducer) -> Reducer:
        for t in types:
            owner = REDUCERS.get(t)
            if owner is not None and (owner.__module__, owner.__qualname__) != (fn.__module__, fn.__qualname__):
                raise RuntimeError(f"event type {t} is already folded by {owner.__module__}.{owner.__qualname__}")
            REDUCERS[t] = fn
        return fn

    return deco


OUTPUT_LINES = 20
_TASK_LIST_JSON: TypeAdapter[list[Task]] = TypeAdapter(list[Task])


def task_key(workflow: str, task: str) -> str:
    return f"{workflow}/{task}"


ArchiveRow = tuple[str, int, str, str]
"""(workflow id, finished seq, status, JSON of the workflow and its tasks)"""


class State:
    """Everything the engine knows, folded from the event log.

    The hot state is live work: ``workflows`` and ``tasks`` hold workflows that are not
    finished (or whose last tasks still hold agents). A finished workflow leaves them for
    ``finished`` (a summary per workflow, no tasks), so that dispatch, checkpoints and
    memory follow live work, not history. Its full record goes to ``archive_out`` when
    someone collects it (the engine, into the store's archive table)."""

    def __init__(self, collect_archive: bool = False) -> None:
        self.seq = 0
        self.clock = 0.0
        self.pools: dict[str, Pool] = {}
        self.agents: dict[str, Agent] = {}
        self.workflows: dict[str, Workflow] = {}
        self.tasks: dict[str, Task] = {}
        self.finished: dict[str, FinishedWorkflow] = {}
        self.archive_out: list[ArchiveRow] | None = [] if collect_archive else None
        """Records of workflows that left the hot state, until the engine stores them."""
        self.checkpoints: dict[int, Checkpoint] = {}
        self.incidents: dict[str, dict[str, Any]] = {}
        self.plans: dict[str, dict[str, Any]] = {}
        self.resumptions: dict[str, dict[str, Any]] = {}
        self.learning: dict[str, Any] = {}
        self.settings: dict[str, Any] = {}
        self.commands_executed = 0
        self.observed: dict[str, int] = {}
        # Derived, not hashed: rebuilt by _reindex().
        self._pending_deps: dict[str, int] = {}
        self._dependents: dict[str, list[str]] = {}
        self.ready: dict[str, deque[str]] = {}
        self.running_by_wf: dict[str, set[str]] = {}
        self.phase_left: dict[tuple[str, str], int] = {}
        self.wf_left: dict[str, int] = {}
        self.phase_started: set[tuple[str, str]] = set()
        self.active: set[str] = set()
        """Workflows running or paused: what dispatch and admission look at."""
        self.queued: set[str] = set()
        """Pending workflows waiting for admission."""
        self.guaranteed: set[str] = set()
        """Workflows holding a guarantee."""

    # -- folding --------------------------------------------------------------
    def apply(self, ev: Event) -> None:
        """Fold one event. The sequence number and clock move only once its reducer
        has succeeded: a rejected event leaves no gap behind it."""
        fn = REDUCERS.get(ev.type)
        if fn is not None:
            fn(self, ev)
        else:
            self.observed[ev.type] = self.observed.get(ev.type, 0) + 1
        self.seq = ev.seq
        if ev.ts > self.clock:
            self.clock = ev.ts

    def undo_point(self) -> dict[str, Any]:
        """A private copy of the hashed state, for :meth:`restore` if what follows fails."""
        import copy

        return copy.deepcopy(self.snapshot())

    def restore(self, point: dict[str, Any]) -> None:
        """Back to an :meth:`undo_point`, in place (holders of this object see it)."""
        self.load_snapshot(point)

    # -- snapshots ------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready dict of the hashed state."""
        return {
            "seq": self.seq,
            "clock": self.clock,
            "pools": {k: v.model_dump(mode="json") for k, v in sorted(self.pools.items())},
            "agents": {k: v.model_dump(mode="json") for k, v in sorted(self.agents.items())},
            "workflows": {k: v.model_dump(mode="json") for k, v in sorted(self.workflows.items())},
            "tasks": {k: v.model_dump(mode="json") for k, v in sorted(self.tasks.items())},
            "finished": {k: v.model_dump(mode="json") for k, v in sorted(self.finished.items())},
            "checkpoints": {str(k): v.model_dump(mode="json") for k, v in sorted(self.checkpoints.items())},
            "incidents": self.incidents,
            "plans": self.plans,
            "resumptions": self.resumptions,
            "learning": self.learning,
            "settings": self.settings,
            "commands_executed": self.commands_executed,
            "observed": dict(sorted(self.observed.items())),
        }

    def state_hash(self) -> str:
        return hash_snapshot(self.snapshot())

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any], collect_archive: bool = False) -> State:
        s = cls(collect_archive)
        s.load_snapshot(snap)
        return s

    def load_snapshot(self, snap: dict[str, Any], *, keep_history: bool = False) -> None:
        """Replace the state with a snapshot; ``keep_history`` keeps incidents, plans,
        checkpoints and counters (a rollback restores the fleet, not the history).

        The snapshot is consumed, not copied: pydantic builds new models from it and
        the plain-dict parts are taken over (callers pass a freshly decoded snapshot
        or copy it themselves)."""
        self.pools = {k: Pool.model_validate(v) for k, v in snap["pools"].items()}
        self.agents = {k: Agent.model_validate(v) for k, v in snap["agents"].items()}
        self.workflows = {k: Workflow.model_validate(v) for k, v in snap["workflows"].items()}
        self.tasks = {k: Task.model_validate(v) for k, v in snap["tasks"].items()}
        self.finished = {k: FinishedWorkflow.model_validate(v) for k, v in snap.get("finished", {}).items()}
        self.settings = snap.get("settings", {})
        if not keep_history:
            self.seq = snap["seq"]
            self.clock = snap["clock"]
            self.checkpoints = {int(k): Checkpoint.model_validate(v) for k, v in snap["checkpoints"].items()}
            self.incidents = snap["incidents"]
            self.plans = snap["plans"]
            self.resumptions = snap["resumptions"]
            self.learning = snap["learning"]
            self.commands_executed = snap["commands_executed"]
            self.observed = snap["observed"]
        self._reindex()
        self._archive_idle(self.seq)

    def _reindex(self) -> None:
        self._pending_deps = {}
        self._dependents = {}
        self.ready = {}
        self.running_by_wf = {}
        self.phase_left = {}
        self.wf_left = {}
        self.phase_started = set()
        self.active = set()
        self.queued = set()
        self.guaranteed = set()
        for wf in self.workflows.values():
            self._index_workflow(wf)
            self._count_workflow(wf)
            self.ready[wf.id] = deque()
            self.running_by_wf[wf.id] = set()
            for key in wf.tasks:
                t = self.tasks[key]
                self._dependents.setdefault(key, [])
                n = 0
                for dep in t.depends_on:
                    self._dependents.setdefault(dep, []).append(key)
                    if self.tasks[dep].status != TaskStatus.COMPLETED:
                        n += 1
                self._pending_deps[key] = n
            for key in wf.tasks:
                t = self.tasks[key]
                if t.status == TaskStatus.PENDING and self._pending_deps[key] == 0:
                    self.ready[wf.id].append(key)
                elif t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
                    self.running_by_wf[wf.id].add(key)

    def _index_workflow(self, wf: Workflow) -> None:
        """Keep the workflow-level indexes (active, queued, guaranteed) in step with ``wf``."""
        wid = wf.id
        if wf.status is WorkflowStatus.RUNNING or wf.status is WorkflowStatus.PAUSED:
            self.active.add(wid)
        else:
            self.active.discard(wid)
        if wf.queued and wf.status is WorkflowStatus.PENDING:
            self.queued.add(wid)
        else:
            self.queued.discard(wid)
        if wf.guarantee is not None:
            self.guaranteed.add(wid)
        else:
            self.guaranteed.discard(wid)

    def _count_workflow(self, wf: Workflow) -> None:
        left = 0
        for phase in wf.phases:
            self.phase_left[(wf.id, phase)] = 0
        for key in wf.tasks:
            t = self.tasks[key]
            if t.attempts:
                self.phase_started.add((wf.id, t.phase))
            if t.status is not TaskStatus.COMPLETED:
                left += 1
                self.phase_left[(wf.id, t.phase)] += 1
        self.wf_left[wf.id] = left

    # -- leaving the hot state ----------------------------------------------------
    def _archive_idle(self, seq: int) -> None:
        """Archive every terminal workflow none of whose tasks holds an agent."""
        for wf in [w for w in self.workflows.values() if w.status in TERMINAL_WORKFLOW]:
            self._maybe_archive(wf.id, seq)

    def _maybe_archive(self, wf_id: str, seq: int) -> None:
        wf = self.workflows.get(wf_id)
        if wf is None or wf.status not in TERMINAL_WORKFLOW or self.running_by_wf.get(wf_id):
            return
        tasks = [self.tasks.pop(k) for k in wf.tasks]
        counts: dict[str, int] = {}
        attempts = 0
        failed = []
        retried: dict[str, int] = {}
        for t in tasks:
            v = t.status.value
            counts[v] = counts.get(v, 0) + 1
            attempts += t.attempts
            if v == "failed":
                failed.append(t.id)
            if t.attempts > 1:
                retried[t.id] = t.attempts
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
            # Encoded by pydantic-core in one call per list (a few ms for 1,000 tasks).
            record = f'{{"workflow":{wf.model_dump_json()},"tasks":{_TASK_LIST_JSON.dump_json(tasks).decode()}}}'
            self.archive_out.append((wf_id, seq, wf.status.value, record))
        del self.workflows[wf_id]
        for k in wf.tasks:
            self._pending_deps.pop(k, None)
            self._dependents.pop(k, None)
        for ph in wf.phases:
            self.phase_left.pop((wf_id, ph), None)
            self.phase_started.discard((wf_id, ph))
        self.ready.pop(wf_id, None)
        self.running_by_wf.pop(wf_id, None)
        self.wf_left.pop(wf_id, None)
        self.active.discard(wf_id)
        self.queued.discard(wf_id)
        self.guaranteed.discard(wf_id)

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


# -- reducers -------------------------------------------------------------------


@reducer("POOL_CREATED")
def _pool_created(s: State, ev: Event) -> None:
    pool = Pool.model_validate(ev.data["pool"])
    s.pools[pool.name] = pool


@reducer("POOL_RESIZED")
def _pool_resized(s: State, ev: Event) -> None:
    p = s.pools[ev.data["pool"]]
    if "min_size" in ev.data:
        p.min_size = ev.data["min_size"]
    if "max_size" in ev.data:
        p.max_size = ev.data["max_size"]


@reducer("AGENT_ALLOCATED")
def _agent_allocated(s: State, ev: Event) -> None:
    d = ev.data
    s.agents[d["agent"]] = Agent(
        id=d["agent"], pool=d["pool"], specializations=list(d["specializations"]), last_heartbeat=ev.ts
    )


@reducer("AGENT_DEALLOCATED")
def _agent_retired(s: State, ev: Event) -> None:
    a = s.agents[ev.data["agent"]]
    a.status = AgentStatus.RETIRED
    a.current_task = None


@reducer("AGENT_ERROR")
def _agent_failed(s: State, ev: Event) -> None:
    a = s.agents[ev.data["agent"]]
    a.status = AgentStatus.FAILED
    a.failures += 1
    a.current_task = None


@reducer("AGENT_TIMEOUT")
def _agent_unreachable(s: State, ev: Event) -> None:
    a = s.agents[ev.data["agent"]]
    if a.status not in (AgentStatus.FAILED, AgentStatus.RETIRED):
        a.status = AgentStatus.UNREACHABLE


@reducer("AGENT_RECONNECTED")
def _agent_reconnected(s: State, ev: Event) -> None:
    a = s.agents[ev.data["agent"]]
    if a.status == AgentStatus.UNREACHABLE:
        t = s.tasks.get(a.current_task) if a.current_task else None
        if t is not None and t.status == TaskStatus.PAUSED:
            a.status = AgentStatus.PAUSED
        else:
            a.status = AgentStatus.BUSY if a.current_task else AgentStatus.IDLE
    a.last_heartbeat = ev.ts


@reducer("AGENT_BACKOFF")
def _agent_backoff(s: State, ev: Event) -> None:
    s.agents[ev.data["agent"]].backoff_until = ev.data["until"]


def _built(cls: Any, fields: dict[str, Any]) -> Any:
    """A model from values already validated, every field given: what ``model_construct``
    does, without its per-call inspection of default factories (the bulk of its cost)."""
    m = cls.__new__(cls)
    object.__setattr__(m, "__dict__", fields)
    object.__setattr__(m, "__pydantic_fields_set__", set(fields))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


_SPEC_DEFAULTS = {k: f.get_default(call_default_factory=True) for k, f in WorkflowSpec.model_fields.items()}
_TASK_DEFAULTS = {k: f.get_default(call_default_factory=True) for k, f in TaskSpec.model_fields.items()}


@reducer("WORKFLOW_CREATED")
def _workflow_created(s: State, ev: Event) -> None:
    """Build the workflow from its spec as recorded. The spec was validated once, where
    it entered (``Engine.create_workflow``, an injected line's schema; a replayed row
    was validated when it was written), so tasks are built without validating each
    again: a 100k-task submission costs one pass."""
    spec: dict[str, Any] = ev.data["spec"]
    wid = spec["id"]
    priority = spec.get("priority", _SPEC_DEFAULTS["priority"])
    alloc = Resources.model_validate(spec["allocation"]) if "allocation" in spec else _SPEC_DEFAULTS["allocation"]
    guarantee = spec.get("guarantee")
    limits = spec.get("limits")
    phases = spec.get("phases", [])
    wf = Workflow(
        id=wid,
        name=spec.get("name") or wid,
        priority=priority,
        band=band_of(priority),
        depends_on=list(spec.get("depends_on", [])),
        allocation=alloc.model_copy(),
        base_allocation=alloc.model_copy(),
        guarantee=Resources.model_validate(guarantee) if guarantee else None,
        limits=Resources.model_validate(limits) if limits else None,
        phases=[p["name"] for p in phases],
        created_at=ev.ts,
        created_seq=ev.seq,
    )
    d_dur, d_cpu, d_mem = _TASK_DEFAULTS["duration_s"], _TASK_DEFAULTS["cpu"], _TASK_DEFAULTS["memory_gb"]
    pending = TaskStatus.PENDING
    tasks = s.tasks
    keys = wf.tasks
    prev_phase: list[str] = []
    for phase in phases:
        names = []
        pname = phase["name"]
        for ts in phase.get("tasks", ()):
            key = f"{wid}/{ts['id']}"
            dep = ts.get("depends_on")
            deps = [f"{wid}/{d}" for d in dep] if dep else list(prev_phase)
            ctx = _built(
                TaskContext,
                {"inputs": dict(ts.get("inputs") or {}), "progress": 0.0, "partial_results": {}, "last_output": []},
            )
            tasks[key] = _built(
                Task,
                {
                    "id": key,
                    "workflow": wid,
                    "phase": pname,
                    "specialization": ts["specialization"],
                    "depends_on": deps,
                    "duration_s": float(ts.get("duration_s", d_dur)),
                    "cpu": float(ts.get("cpu", d_cpu)),
                    "memory_gb": float(ts.get("memory_gb", d_mem)),
                    "status": pending,
                    "agent": None,
                    "attempts": 0,
                    "started_at": None,
                    "finished_at": None,
                    "context": ctx,
                },
            )
            keys.append(key)
            names.append(key)
        prev_phase = names
    s.workflows[wf.id] = wf
    s._index_workflow(wf)
    s._count_workflow(wf)
    s.ready[wf.id] = deque()
    s.running_by_wf[wf.id] = set()
    for key in wf.tasks:
        t = s.tasks[key]
        s._dependents.setdefault(key, [])
        for dep in t.depends_on:
            s._dependents.setdefault(dep, []).append(key)
        s._pending_deps[key] = len(t.depends_on)
        if not t.depends_on:
            s.ready[wf.id].append(key)


def _hot(s: State, wf_id: str) -> Workflow | None:
    """The live workflow, or None when it has finished (a late allocation change of a
    finished workflow changes nothing); an unknown id is refused."""
    wf = s.workflows.get(wf_id)
    if wf is None and wf_id not in s.finished:
        raise KeyError(wf_id)
    return wf


def _wf_status(status: WorkflowStatus) -> Reducer:
    def fn(s: State, ev: Event) -> None:
        wf = _hot(s, ev.data["workflow_id"])
        if wf is None:
            return  # finished already: the engine refuses such changes, an old log may hold one
        wf.status = status
        if status == WorkflowStatus.RUNNING and wf.started_at is None:
            wf.started_at = ev.ts
        if status in TERMINAL_WORKFLOW:
            wf.finished_at = ev.ts
        s._index_workflow(wf)
        if status in TERMINAL_WORKFLOW:
            s._maybe_archive(wf.id, ev.seq)

    return fn


REDUCERS["WORKFLOW_STARTED"] = _wf_status(WorkflowStatus.RUNNING)
REDUCERS["WORKFLOW_RESUMED"] = _wf_status(WorkflowStatus.RUNNING)
REDUCERS["WORKFLOW_PAUSED"] = _wf_status(WorkflowStatus.PAUSED)
REDUCERS["WORKFLOW_COMPLETED"] = _wf_status(WorkflowStatus.COMPLETED)
REDUCERS["WORKFLOW_FAILED"] = _wf_status(WorkflowStatus.FAILED)
REDUCERS["WORKFLOW_CANCELLED"] = _wf_status(WorkflowStatus.CANCELLED)


@reducer("WORKFLOW_FROZEN")
def _wf_frozen(s: State, ev: Event) -> None:
    wf = _hot(s, ev.data["workflow_id"])
    if wf is not None:
        wf.frozen = bool(ev.data.get("frozen", True))


@reducer("RESOURCE_ALLOCATED")
def _allocated(s: State, ev: Event) -> None:
    wf = _hot(s, ev.data["workflow_id"])
    if wf is None:
        return
    wf.allocation = Resources.model_validate(ev.data["allocation"])
    if ev.data.get("base"):
        wf.base_allocation = wf.allocation.model_copy()


@reducer("RESOURCE_RESERVED")
def _reserved(s: State, ev: Event) -> None:
    wf = _hot(s, ev.data["workflow_id"])
    if wf is None:
        return
    g = ev.data.get("guarantee")
    wf.guarantee = Resources.model_validate(g) if g else None
    s._index_workflow(wf)


@reducer("WORKFLOW_QUEUED")
def _wf_queued(s: State, ev: Event) -> None:
    wf = _hot(s, ev.data["workflow_id"])
    if wf is None:
        return
    wf.queued = True
    s._index_workflow(wf)


@reducer("RESOURCE_LIMITED")
def _limited(s: State, ev: Event) -> None:
    lim = ev.data.get("limit")
    wf = _hot(s, ev.data["workflow_id"])
    if wf is not None:
        wf.stage_limit = Resources.model_validate(lim) if lim else None


@reducer("AGENT_SEQ_APPLIED")
def _seq_applied(s: State, ev: Event) -> None:
    a = s.agents[ev.data["agent"]]
    a.applied_seq = max(a.applied_seq, int(ev.data["seq"]))


@reducer("RESOURCE_DEALLOCATED")
def _deallocated(s: State, ev: Event) -> None:
    wf = _hot(s, ev.data["workflow_id"])
    if wf is None:
        return
    wf.allocation = Resources.model_validate(ev.data["allocation"])


@reducer("TASK_ASSIGNED")
def _task_assigned(s: State, ev: Event) -> None:
    d = ev.data
    key = d["task"]
    t = s.tasks[key]
    a = s.agents[d["agent"]]
    # Hot path: plain dict updates skip pydantic's per-field __setattr__ (no
    # assignment validation is configured, so the result is the same).
    t.__dict__.update(status=TaskStatus.RUNNING, agent=a.id, attempts=t.attempts + 1, started_at=ev.ts)
    a.__dict__.update(status=AgentStatus.BUSY, current_task=key, last_heartbeat=ev.ts)
    q = s.ready[t.workflow]
    if q and q[0] == key:
        q.popleft()
    else:
        try:
            q.remove(key)
        except ValueError:
            pass
    s.running_by_wf[t.workflow].add(key)
    s.phase_started.add((t.workflow, t.phase))


@reducer("TASK_STARTED")
def _task_started(s: State, ev: Event) -> None:
    a = s.agents.get(ev.data.get("agent", ""))
    if a is not None:
        a.last_heartbeat = ev.ts


@reducer("TASK_PROGRESS")
def _task_progress(s: State, ev: Event) -> None:
    d = ev.data
    t = s.tasks[d["task"]]
    if "progress" in d:
        t.context.progress = float(d["progress"])
    if "output" in d:
        t.context.last_output = (t.context.last_output + list(d["output"]))[-OUTPUT_LINES:]
    if "partial" in d:
        t.context.partial_results.update(d["partial"])
    a = s.agents.get(d.get("agent") or "")
    if a is not None:
        a.last_heartbeat = ev.ts


def _release_agent(s: State, agent_id: str | None, key: str, done: bool) -> None:
    if not agent_id:
        return
    a = s.agents.get(agent_id)
    if a is None or a.current_task != key:
        return
    ad = a.__dict__
    ad["current_task"] = None
    if done:
        ad["tasks_done"] = a.tasks_done + 1
    if a.status in (AgentStatus.BUSY, AgentStatus.PAUSED):
        ad["status"] = AgentStatus.IDLE


@reducer("TASK_COMPLETED")
def _task_completed(s: State, ev: Event) -> None:
    d = ev.data
    key = d["task"]
    t = s.tasks[key]
    _release_agent(s, t.agent, key, True)
    if t.status is not TaskStatus.COMPLETED:
        s.phase_left[(t.workflow, t.phase)] -= 1
        s.wf_left[t.workflow] -= 1
    t.__dict__.update(status=TaskStatus.COMPLETED, finished_at=ev.ts)
    t.context.__dict__["progress"] = 1.0
    if "result" in d:
        t.context.partial_results["result"] = d["result"]
    s.running_by_wf[t.workflow].discard(key)
    pending = s._pending_deps
    ready = s.ready
    for child in s._dependents.get(key, ()):
        n = pending[child] - 1
        pending[child] = n
        if n == 0:
            c = s.tasks[child]
            if c.status == TaskStatus.PENDING:
                ready[c.workflow].append(child)
    if s.workflows[t.workflow].status in TERMINAL_WORKFLOW:
        s._maybe_archive(t.workflow, ev.seq)


@reducer("TASK_FAILED", "TASK_TIMEOUT")
def _task_failed(s: State, ev: Event) -> None:
    d = ev.data
    key = d["task"]
    t = s.tasks[key]
    _release_agent(s, t.agent, key, False)
    if "output" in d:
        t.context.last_output = (t.context.last_output + list(d["output"]))[-OUTPUT_LINES:]
    s.running_by_wf[t.workflow].discard(key)
    if d.get("retry", False):
        t.status = TaskStatus.PENDING
        t.agent = None
        s.ready[t.workflow].appendleft(key)
    else:
        t.status = TaskStatus.FAILED
        t.finished_at = ev.ts
    if s.workflows[t.workflow].status in TERMINAL_WORKFLOW:
        s._maybe_archive(t.workflow, ev.seq)


@reducer("TASK_REASSIGNED")
def _task_reassigned(s: State, ev: Event) -> None:
    """A task taken off its agent (failed, unreachable or released) back to the queue."""
    d = ev.data
    key = d["task"]
    t = s.tasks[key]
    old = s.agents.get(t.agent or "")
    if old is not None and old.current_task == key:
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
        s._maybe_archive(t.workflow, ev.seq)


@reducer("TASK_PAUSED")
def _task_paused(s: State, ev: Event) -> None:
    t = s.tasks[ev.data["task"]]
    if t.status == TaskStatus.RUNNING:
        t.status = TaskStatus.PAUSED
        a = s.agents.get(t.agent or "")
        if a is not None and a.status == AgentStatus.BUSY:
            a.status = AgentStatus.PAUSED


@reducer("TASK_RESUMED")
def _task_resumed(s: State, ev: Event) -> None:
    t = s.tasks[ev.data["task"]]
    if t.status == TaskStatus.PAUSED:
        t.status = TaskStatus.RUNNING
        a = s.agents.get(t.agent or "")
        if a is not None and a.status == AgentStatus.PAUSED:
            a.status = AgentStatus.BUSY


@reducer("TASK_CONTEXT_TRANSFERRED")
def _context_transferred(s: State, ev: Event) -> None:
    t = s.tasks[ev.data["task"]]
    t.context = TaskContext.model_validate(ev.data["context"])


@reducer("CHECKPOINT_CREATED")
def _checkpoint(s: State, ev: Event) -> None:
    d = ev.data
    s.checkpoints[d["id"]] = Checkpoint(
        id=d["id"],
        seq=d["seq"],
        ts=ev.ts,
        kind=d["kind"],
        label=d.get("label", ""),
        state_hash=d["state_hash"],
        workflow=d.get("workflow"),
    )


@reducer("STATE_RESTORED")
def _restored(s: State, ev: Event) -> None:
    """A rollback: workflows and tasks return to the embedded snapshot; the fleet's
    agents stay as they are (a dead agent is not revived) and history stays."""
    snap = ev.data["snapshot"]
    only = ev.data.get("workflow")
    ids = (
        [only]
        if only
        else sorted(set(snap["workflows"]) | set(snap.get("finished", {})) | set(s.workflows) | set(s.finished))
    )
    for wf_id in ids:
        _restore_workflow(s, snap, wf_id)
    s._reindex()
    s._archive_idle(ev.seq)


def _restore_workflow(s: State, snap: dict[str, Any], wf_id: str) -> None:
    current = s.workflows.get(wf_id)
    if current is not None:
        for key in current.tasks:
            cur = s.tasks[key]
            if cur.agent and cur.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
                _release_agent(s, cur.agent, key, False)
        if wf_id not in snap["workflows"]:
            for key in current.tasks:
                s.tasks.pop(key, None)
            del s.workflows[wf_id]
    then_done = snap.get("finished", {}).get(wf_id)
    if wf_id not in snap["workflows"]:
        # Finished then (it stays as it was), or created after the checkpoint (it did not exist then).
        if then_done is not None:
            s.finished[wf_id] = FinishedWorkflow.model_validate(then_done)
        else:
            s.finished.pop(wf_id, None)
        return
    s.finished.pop(wf_id, None)
    wf = Workflow.model_validate(snap["workflows"][wf_id])
    s.workflows[wf_id] = wf
    for key in wf.tasks:
        t = Task.model_validate(snap["tasks"][key])
        if t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
            t.status = TaskStatus.PENDING
            t.agent = None
        s.tasks[key] = t


@reducer("SETTING_CHANGED")
def _setting(s: State, ev: Event) -> None:
    s.settings[ev.data["key"]] = ev.data["value"]


@reducer("COMMAND_EXECUTED")
def _command(s: State, ev: Event) -> None:
    s.commands_executed += 1


# The folds of the command language's and the incident pipeline's events, so that a
# replay knows them; they sit beside the projection, never above it.
from . import reducers as _reducers  # noqa: E402,F401


def known_types() -> set[str]:
    """Event types the engine knows: those with a reducer, a severity or a data schema
    (for filters that must refuse a type that can match nothing)."""
    from .event_data import SCHEMAS
    from .events import SEVERITY_BY_TYPE

    return set(REDUCERS) | set(SEVERITY_BY_TYPE) | set(SCHEMAS)
