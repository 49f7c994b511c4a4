"""The folds of the fleet and its work: pools, agents, workflows, checkpoints,
rollbacks, settings and the command audit count (a task's folds: ``core.task_reducers``).

Each function folds one event type into a :class:`~core.projection.State`; the event
catalogue (``core.event_types``) names which. They read only the event and the state,
so a replay of the log (or a checkpoint plus replay) rebuilds the state exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .events import Event
from .models import (
    EMPTY_CONTEXT,
    TASK_DEFAULTS,
    TERMINAL_WORKFLOW,
    Agent,
    AgentStatus,
    Checkpoint,
    FinishedWorkflow,
    Pool,
    Resources,
    Task,
    TaskContext,
    TaskStatus,
    Workflow,
    WorkflowSpec,
    WorkflowStatus,
    band_of,
)
from .task_reducers import release_agent

if TYPE_CHECKING:
    from .projection import State

Fold = Callable[["State", Event], None]


def pool_created(s: State, ev: Event) -> None:
    pool = Pool.model_validate(ev.data["pool"])
    s.replacing("pools", s.pools, pool.name)
    s.pools[pool.name] = pool


def pool_resized(s: State, ev: Event) -> None:
    s.changing("pools", s.pools, ev.data["pool"])
    p = s.pools[ev.data["pool"]]
    if "min_size" in ev.data:
        p.min_size = ev.data["min_size"]
    if "max_size" in ev.data:
        p.max_size = ev.data["max_size"]


def agent_allocated(s: State, ev: Event) -> None:
    d = ev.data
    s.replacing("agents", s.agents, d["agent"])
    s.agents[d["agent"]] = Agent(
        id=d["agent"], pool=d["pool"], specializations=list(d["specializations"]), last_heartbeat=ev.ts
    )


def agent_retired(s: State, ev: Event) -> None:
    s.changing("agents", s.agents, ev.data["agent"])
    a = s.agents[ev.data["agent"]]
    a.status = AgentStatus.RETIRED
    a.current_task = None


def agent_failed(s: State, ev: Event) -> None:
    s.changing("agents", s.agents, ev.data["agent"])
    a = s.agents[ev.data["agent"]]
    a.status = AgentStatus.FAILED
    a.failures += 1
    a.current_task = None


def agent_unreachable(s: State, ev: Event) -> None:
    s.changing("agents", s.agents, ev.data["agent"])
    a = s.agents[ev.data["agent"]]
    if a.status not in (AgentStatus.FAILED, AgentStatus.RETIRED):
        a.status = AgentStatus.UNREACHABLE


def agent_reconnected(s: State, ev: Event) -> None:
    s.changing("agents", s.agents, ev.data["agent"])
    a = s.agents[ev.data["agent"]]
    if a.status == AgentStatus.UNREACHABLE:
        t = s.tasks.get(a.current_task) if a.current_task else None
        if t is not None and t.status == TaskStatus.PAUSED:
            a.status = AgentStatus.PAUSED
        else:
            a.status = AgentStatus.BUSY if a.current_task else AgentStatus.IDLE
    a.last_heartbeat = ev.ts


def agent_backoff(s: State, ev: Event) -> None:
    s.changing("agents", s.agents, ev.data["agent"])
    s.agents[ev.data["agent"]].backoff_until = ev.data["until"]


_new = object.__new__
_SPEC_DEFAULTS = {k: f.get_default(call_default_factory=True) for k, f in WorkflowSpec.model_fields.items()}


def workflow_created(s: State, ev: Event) -> None:
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
    if s.journal is not None:
        s.replacing("workflows", s.workflows, wid)
        s.replacing("finished", s.finished, wid)
    d_dur, d_cpu, d_mem = TASK_DEFAULTS["duration_s"], TASK_DEFAULTS["cpu"], TASK_DEFAULTS["memory_gb"]
    pending = TaskStatus.PENDING
    tasks = s.tasks
    keys = wf.tasks
    ready: deque[str] = deque()
    dependents, pending_deps, phase_left = s.dependents, s.pending_deps, s.phase_left
    journal = s.journal
    prev_phase: list[str] = []
    # The workflow's task ids -> their keys: a dependency takes the key built for its task (one
    # string, hashed once) rather than a new one formatted for each.
    key_of: dict[str, str] = {}
    for phase in phases:
        names = []
        pname = phase["name"]
        for ts in phase.get("tasks", ()):
            tid = ts["id"]
            key = key_of[tid] = f"{wid}/{tid}"
            if journal is not None:
                s.replacing("tasks", tasks, key)
            dep = ts.get("depends_on")
            # The scheduler's indexes as the task is built (a second pass cost a third of the
            # fold); a dependency is an earlier task of the workflow (checked where the spec
            # entered), whose list exists. A loop, not a comprehension: on Python 3.11 that
            # is a function call per task (about 1,500 instructions).
            dependents.setdefault(key, [])
            deps: list[str]
            if dep:
                deps = []
                for d in dep:
                    dk = key_of[d]  # an earlier task of the workflow: checked where the spec entered
                    deps.append(dk)
                    dependents[dk].append(key)
            else:
                deps = list(prev_phase)
                for dk in deps:
                    dependents[dk].append(key)
            pending_deps[key] = len(deps)
            if not deps:
                ready.append(key)
            # Task(key, wid, pname, specialization, deps, duration_s, cpu, memory_gb, ...), its
            # fields set here in their declared order (the instances share one key table): the
            # dataclass's __init__ through its type costs about 100 ns more a task. Every field
            # is set (a test compares a task built so with the dataclass's).
            t = _new(Task)
            t.id = key
            t.workflow = wid
            t.phase = pname
            t.specialization = ts["specialization"]
            t.depends_on = deps
            # A recorded number is a float (so validated where it entered, and so JSON keeps it):
            # float() of another (an injected line's int) only, a call less each
            x = ts.get("duration_s", d_dur)
            t.duration_s = x if x.__class__ is float else float(x)
            x = ts.get("cpu", d_cpu)
            t.cpu = x if x.__class__ is float else float(x)
            x = ts.get("memory_gb", d_mem)
            t.memory_gb = x if x.__class__ is float else float(x)
            t.status = pending
            t.agent = None
            t.attempts = 0
            t.started_at = None
            t.finished_at = None
            inputs = ts.get("inputs")
            t.context = TaskContext(inputs=dict(inputs)) if inputs else EMPTY_CONTEXT
            odd = "interactive" in ts or "tty" in ts or "repo" in ts  # left out by most (defaults are not recorded)
            if odd:
                t.interactive = bool(ts.get("interactive") or ts.get("tty"))
                t.tty = bool(ts.get("tty"))
            else:
                t.interactive = t.tty = False
            t.waiting_input = None
            t.waiting_since = None
            t.worktree = None
            t.branch = None
            t.repo = ts.get("repo") if odd else None
            tasks[key] = t
            keys.append(key)
            names.append(key)
        phase_left[(wid, pname)] = phase_left.get((wid, pname), 0) + len(names)
        prev_phase = names
    s.workflows[wf.id] = wf
    s.index_workflow(wf)
    s.wf_left[wid] = len(keys)  # every task is pending: what count_workflow would find
    s.ready[wid] = ready
    s.running_by_wf[wid] = set()


def _hot(s: State, wf_id: str) -> Workflow | None:
    """The live workflow, or None when it has finished (a late allocation change of a
    finished workflow changes nothing); an unknown id is refused."""
    wf = s.workflows.get(wf_id)
    if wf is None and wf_id not in s.finished:
        raise KeyError(wf_id)
    if wf is not None:
        s.changing("workflows", s.workflows, wf_id)
    return wf


def wf_status(status: WorkflowStatus) -> Fold:
    def fn(s: State, ev: Event) -> None:
        wf = _hot(s, ev.data["workflow_id"])
        if wf is None:
            return  # finished already: the engine refuses such changes, an old log may hold one
        wf.status = status
        if status == WorkflowStatus.RUNNING and wf.started_at is None:
            wf.started_at = ev.ts
        if status in TERMINAL_WORKFLOW:
            wf.finished_at = ev.ts
        s.index_workflow(wf)
        if status in TERMINAL_WORKFLOW:
            s.maybe_archive(wf.id, ev.seq)

    return fn


def wf_frozen(s: State, ev: Event) -> None:
    wf = _hot(s, ev.data["workflow_id"])
    if wf is not None:
        wf.frozen = bool(ev.data.get("frozen", True))


def allocated(s: State, ev: Event) -> None:
    wf = _hot(s, ev.data["workflow_id"])
    if wf is None:
        return
    wf.allocation = Resources.model_validate(ev.data["allocation"])
    if ev.data.get("base"):
        wf.base_allocation = wf.allocation.model_copy()


def reserved(s: State, ev: Event) -> None:
    wf = _hot(s, ev.data["workflow_id"])
    if wf is None:
        return
    g = ev.data.get("guarantee")
    wf.guarantee = Resources.model_validate(g) if g else None
    s.index_workflow(wf)


def wf_queued(s: State, ev: Event) -> None:
    wf = _hot(s, ev.data["workflow_id"])
    if wf is None:
        return
    wf.queued = True
    s.index_workflow(wf)


def limited(s: State, ev: Event) -> None:
    lim = ev.data.get("limit")
    wf = _hot(s, ev.data["workflow_id"])
    if wf is not None:
        wf.stage_limit = Resources.model_validate(lim) if lim else None


def seq_applied(s: State, ev: Event) -> None:
    s.changing("agents", s.agents, ev.data["agent"])
    a = s.agents[ev.data["agent"]]
    a.applied_seq = max(a.applied_seq, int(ev.data["seq"]))


def deallocated(s: State, ev: Event) -> None:
    wf = _hot(s, ev.data["workflow_id"])
    if wf is None:
        return
    wf.allocation = Resources.model_validate(ev.data["allocation"])


def checkpoint(s: State, ev: Event) -> None:
    d = ev.data
    s.replacing("checkpoints", s.checkpoints, d["id"])
    s.checkpoints[d["id"]] = Checkpoint(
        id=d["id"],
        seq=d["seq"],
        ts=ev.ts,
        kind=d["kind"],
        label=d.get("label", ""),
        state_hash=d["state_hash"],
        workflow=d.get("workflow"),
    )


def restored(s: State, ev: Event) -> None:
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
    if s.journal is not None:  # reindex() rebuilds every workflow's derived indexes
        s.journal.workflows.update(s.workflows)
    s.reindex()
    s.archive_idle(ev.seq)


def _restore_workflow(s: State, snap: dict[str, Any], wf_id: str) -> None:
    current = s.workflows.get(wf_id)
    if s.journal is not None:
        s.replacing("workflows", s.workflows, wf_id)
        s.replacing("finished", s.finished, wf_id)
        for key in current.tasks if current is not None else ():
            s.replacing("tasks", s.tasks, key)
        for key in snap["workflows"].get(wf_id, {}).get("tasks", ()):
            s.replacing("tasks", s.tasks, key)
    if current is not None:
        for key in current.tasks:
            cur = s.tasks[key]
            if cur.agent and cur.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
                release_agent(s, cur.agent, key, False)
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


def setting(s: State, ev: Event) -> None:
    s.replacing("settings", s.settings, ev.data["key"])
    s.settings[ev.data["key"]] = ev.data["value"]


def command(s: State, ev: Event) -> None:
    s.commands_executed += 1
