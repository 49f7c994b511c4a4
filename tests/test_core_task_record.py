"""A task is held as a plain dataclass (``core.models.Task``): what it encodes to must be
what the pydantic model it replaced encoded to, byte for byte, for every combination of
its fields (snapshots are hashed, archive records stored). Tasks share only read-only
contexts (the empty one, the completed one): a mutable context shared between tasks
would let one task's progress reach another.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.event_types import EVENTS
from core.events import Event, canonical_json
from core.models import Task, TaskContext, TaskStatus, tasks_json
from core.projection import State
from core.projection_snapshot import restored_task
from core.session import memory_sim

orjson = pytest.importorskip("orjson")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class RefContext(_Model):
    """TaskContext as the pydantic model the stored format was written from."""

    inputs: dict[str, Any] = Field(default_factory=dict)
    progress: float = 0.0
    partial_results: dict[str, Any] = Field(default_factory=dict)
    last_output: list[str] = Field(default_factory=list)


class RefTask(_Model):
    """Task as the pydantic model the stored format was written from."""

    id: str
    workflow: str
    phase: str
    specialization: str
    depends_on: list[str] = Field(default_factory=list)
    duration_s: float = 60.0
    cpu: float = 1.0
    memory_gb: float = 0.5
    status: TaskStatus = TaskStatus.PENDING
    agent: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    context: RefContext = Field(default_factory=RefContext)
    interactive: bool = False
    tty: bool = False
    waiting_input: str | None = None
    waiting_since: float | None = None
    worktree: str | None = None
    branch: str | None = None
    repo: str | None = None


_OPTIONAL = {
    "agent": "agent-1",
    "started_at": 12.5,
    "finished_at": 99.0,
    "waiting_input": "password: ",
    "waiting_since": 13.0,
    "worktree": "/tmp/wt/a",
    "branch": "opsdeck/a",
    "repo": "/srv/repo",
}


def _records(seed: int) -> list[dict[str, Any]]:
    """JSON-ready tasks: every subset of the optional fields set, every status, both
    flags, contexts empty and full, with ints where floats are declared."""
    rng = random.Random(seed)
    out = []
    names = sorted(_OPTIONAL)
    for i, (n, status) in enumerate(itertools.product(range(len(names) + 1), TaskStatus)):
        d: dict[str, Any] = {"id": f"w/t{i}", "workflow": "w", "phase": "p", "specialization": "x"}
        for k in rng.sample(names, n):
            d[k] = _OPTIONAL[k]
        d["status"] = status.value
        if i % 2:
            d |= {"interactive": True, "tty": bool(i % 4 == 1), "attempts": i % 5, "duration_s": i, "cpu": 2}
            d["depends_on"] = [f"w/t{j}" for j in range(i % 3)]
        if i % 3:
            d["context"] = {
                "inputs": {"n": i, "text": "é\u2028", "nested": {"a": [1, 2.5, None]}},
                "progress": rng.random(),
                "partial_results": {"result": rng.choice([None, 1, "ok", {"rows": 3}])},
                "last_output": [f"line {j}" for j in range(i % 4)],
            }
        out.append(d)
    return out


def test_a_task_encodes_as_the_pydantic_model_did_for_every_field_combination() -> None:
    records = _records(3)
    tasks = [Task.model_validate(d) for d in records]
    refs = [RefTask.model_validate(d) for d in records]
    for t, r in zip(tasks, refs, strict=True):
        assert t.model_dump(mode="json") == r.model_dump(mode="json")
        assert list(t.model_dump(mode="json")) == list(r.model_dump(mode="json"))
        assert canonical_json(t.model_dump(mode="json")) == canonical_json(r.model_dump(mode="json"))
        assert t.model_dump() == r.model_dump()  # python mode: the status stays a TaskStatus
        assert Task.model_validate(t.model_dump(mode="json")) == t
    # An archive record's tasks: the bytes the pydantic models' fields gave through orjson.
    ref_bytes = orjson.dumps([r.__dict__ for r in refs], default=lambda m: m.__dict__).decode()
    assert tasks_json(tasks) == ref_bytes
    assert json.loads(tasks_json(tasks)) == [r.model_dump(mode="json") for r in refs]


def test_a_task_orjson_cannot_encode_is_written_by_pydantic() -> None:
    big = [Task(id="w/b", workflow="w", phase="p", specialization="x", context=TaskContext(inputs={"n": 2**70}))]
    ref = RefTask(id="w/b", workflow="w", phase="p", specialization="x", context=RefContext(inputs={"n": 2**70}))
    assert tasks_json(big) == f"[{ref.model_dump_json()}]"


@pytest.mark.parametrize(
    "bad",
    [
        {"bogus": 1},
        {"status": "sleeping"},
        {"attempts": "many"},
        {"context": {"progres": 0.5}},
        {"depends_on": "w/a"},
    ],
)
def test_a_bad_task_record_is_refused_as_the_pydantic_model_refused_it(bad: dict[str, Any]) -> None:
    d = {"id": "w/a", "workflow": "w", "phase": "p", "specialization": "x", **bad}
    with pytest.raises(ValidationError):
        RefTask.model_validate(d)
    with pytest.raises(ValidationError):
        Task.model_validate(d)


def _state_with_tasks(n: int) -> State:
    s = State(EVENTS.folds)
    tasks: list[dict[str, Any]] = [{"id": f"t{i}", "specialization": "x"} for i in range(n)]
    tasks[-1]["inputs"] = {"k": [1]}
    spec = {"id": "w", "phases": [{"name": "p", "tasks": tasks}]}
    s.apply(Event(1, 0.0, "WORKFLOW_CREATED", "coordination-hub", "workflow", {"spec": spec}))
    return s


def _no_mutable_context_shared(tasks: list[Task]) -> None:
    """Two tasks hold the same context object (or container) only when it is read-only."""
    seen: dict[int, Task] = {}
    for t in tasks:
        ctx = t.context
        for obj in (ctx, ctx.inputs, ctx.partial_results, ctx.last_output):
            other = seen.setdefault(id(obj), t)
            if other is not t:
                assert ctx.shared and other.context.shared, (
                    f"{t.id} and {other.id} share a mutable {type(obj).__name__}"
                )


def _refused(write: Any) -> None:
    with pytest.raises(TypeError, match="read-only"):
        write()


def test_a_shared_context_refuses_every_write_and_stays_as_it_was() -> None:
    s = _state_with_tasks(3)
    a, b = s.tasks["w/t0"], s.tasks["w/t1"]
    assert a.context is b.context and a.context.shared  # no context of its own until one is written
    ctx = a.context
    _refused(lambda: setattr(ctx, "progress", 0.5))
    _refused(lambda: ctx.partial_results.__setitem__("rows", 1))
    _refused(lambda: ctx.partial_results.update(rows=1))
    _refused(lambda: ctx.inputs.setdefault("k", 1))
    _refused(lambda: ctx.last_output.append("x"))
    _refused(lambda: ctx.last_output.extend(["x"]))
    assert b.context == TaskContext() and a.context == TaskContext()
    # orjson encodes it as it does a task's own (an archive record is not left to pydantic's serializer).
    assert orjson.dumps(ctx) == orjson.dumps(TaskContext()) == orjson.dumps(RefContext().__dict__)
    assert a.model_dump(mode="json")["context"] == RefContext().model_dump(mode="json")


def test_a_fold_writing_one_tasks_context_reaches_no_other_task() -> None:
    """Every write a fold makes goes to the task's own context: progress, output and
    results of one task leave the others' (and the shared one) as they were."""
    s = _state_with_tasks(4)
    ev = [
        ("TASK_PROGRESS", {"task": "w/t0", "progress": 0.5, "output": ["hello"], "partial": {"rows": 3}}),
        ("TASK_ASSIGNED", {"task": "w/t1", "agent": "a1"}),
        ("TASK_COMPLETED", {"task": "w/t1", "result": {"ok": True}}),
        ("TASK_FAILED", {"task": "w/t3", "output": ["boom"], "retry": True}),
    ]
    s.apply(Event(2, 1.0, "AGENT_ALLOCATED", "fleet", "agent", {"agent": "a1", "pool": "p", "specializations": ["x"]}))
    for i, (type_, data) in enumerate(ev, start=3):
        s.apply(Event(i, float(i), type_, "agent", "task", data))
    t0, t1, t2, t3 = (s.tasks[f"w/t{i}"] for i in range(4))
    assert (t0.context.progress, t0.context.last_output, t0.context.partial_results) == (0.5, ["hello"], {"rows": 3})
    assert (t1.context.progress, t1.context.partial_results) == (1.0, {"result": {"ok": True}})
    assert (t3.context.inputs, t3.context.last_output) == ({"k": [1]}, ["boom"])
    assert t2.context == TaskContext() and t2.context.shared
    _no_mutable_context_shared(list(s.tasks.values()))
    t0.context.inputs["k"] = 1  # a task's own context takes writes in place
    assert t2.context.inputs == {} and t3.context.inputs == {"k": [1]}


def test_a_completed_task_without_results_shares_the_done_context_read_only() -> None:
    s = _state_with_tasks(2)
    s.apply(Event(2, 1.0, "AGENT_ALLOCATED", "fleet", "agent", {"agent": "a1", "pool": "p", "specializations": ["x"]}))
    for key in ("w/t0", "w/t1"):
        s.apply(Event(s.seq + 1, 2.0, "TASK_ASSIGNED", "agent", "task", {"task": key, "agent": "a1"}))
        s.apply(Event(s.seq + 1, 3.0, "TASK_COMPLETED", "agent", "task", {"task": key}))
    b, a = s.tasks["w/t0"], s.tasks["w/t1"]  # a has inputs: its own context
    assert b.context.progress == 1.0 and b.context.shared
    assert a.model_dump(mode="json")["context"] == RefContext(progress=1.0, inputs={"k": [1]}).model_dump(mode="json")
    _refused(lambda: setattr(b.context, "progress", 0.0))
    own = b.own_context()
    own.progress = 0.25
    assert b.context is own and not own.shared and s.tasks["w/t0"].context.progress == 0.25
    assert Task(id="w/z", workflow="w", phase="p", specialization="x").context.progress == 0.0


def test_no_mutable_context_is_shared_after_a_demo_run() -> None:
    """A simulated demo (progress, output, reassignments, results, retries): whatever
    contexts tasks share are the read-only ones."""
    eng = memory_sim(seed=5, duration_scale=0.2)
    spec = next(iter(eng.state.agents.values())).specializations[0]
    tasks = [{"id": f"t{i}", "specialization": spec, "duration_s": 300 * (i % 3)} for i in range(12)]
    eng.create_workflow({"id": "plain", "priority": 95, "phases": [{"name": "p", "tasks": tasks}]})
    eng.start_workflow("plain")
    asyncio.run(eng.advance(1800))
    tasks = list(eng.state.tasks.values())
    assert any(t.context.shared for t in tasks) and any(not t.context.shared for t in tasks)
    _no_mutable_context_shared(tasks)


def test_a_restored_task_holds_the_shared_context_of_its_values_and_encodes_as_before() -> None:
    """A snapshot's tasks come back holding the shared context when they have none of
    their own (as the folds left them), their own otherwise (values, or a -0.0 progress
    that encodes differently from 0.0); the restored state encodes as the one snapshotted,
    and a later fold's write goes to the one task. A bad record is still refused."""
    s = _state_with_tasks(4)
    s.apply(Event(2, 1.0, "AGENT_ALLOCATED", "fleet", "agent", {"agent": "a1", "pool": "p", "specializations": ["x"]}))
    s.apply(Event(3, 2.0, "TASK_ASSIGNED", "agent", "task", {"task": "w/t0", "agent": "a1"}))
    s.apply(Event(4, 3.0, "TASK_COMPLETED", "agent", "task", {"task": "w/t0"}))
    s.apply(Event(5, 4.0, "TASK_PROGRESS", "agent", "task", {"task": "w/t1", "progress": "-0.0"}))
    snap = s.snapshot(full=True)
    r = State.from_snapshot(EVENTS.folds, json.loads(canonical_json(snap)))
    assert canonical_json(r.snapshot(full=True)) == canonical_json(snap)
    t0, t1, t2, t3 = (r.tasks[f"w/t{i}"] for i in range(4))
    assert t0.context.shared and t0.context.progress == 1.0 and t2.context.shared and t2.context.progress == 0.0
    assert not t1.context.shared and not t3.context.shared and t3.context.inputs == {"k": [1]}
    _no_mutable_context_shared(list(r.tasks.values()))
    r.apply(Event(6, 5.0, "TASK_PROGRESS", "agent", "task", {"task": "w/t2", "progress": 0.5, "partial": {"n": 1}}))
    assert r.tasks["w/t2"].context.progress == 0.5 and r.tasks["w/t0"].context.partial_results == {}
    with pytest.raises(ValidationError):
        restored_task({"id": "w/x", "workflow": "w", "phase": "p", "specialization": "x", "extra": 1})


def test_a_created_task_holds_each_spec_value_in_the_field_of_its_name() -> None:
    """The fold builds a task with its first fields by position: every one of them (and
    the ones given by name) holds the spec's value of that name, the defaults where the
    spec leaves one out. A field reordered in ``Task`` or an argument moved in the fold
    puts a value in a neighbour's field (same types: nothing else would notice)."""
    s = State(EVENTS.folds)
    first = {"id": "a", "specialization": "spec-a", "duration_s": 11.0, "cpu": 2.5, "memory_gb": 3.25}
    second = {"id": "b", "specialization": "spec-b", "depends_on": ["a"], "inputs": {"k": 1}}
    spec = {"id": "wf", "phases": [{"name": "ph1", "tasks": [first]}, {"name": "ph2", "tasks": [second]}]}
    s.apply(Event(1, 0.0, "WORKFLOW_CREATED", "coordination-hub", "workflow", {"spec": spec}))
    a, b = s.tasks["wf/a"], s.tasks["wf/b"]
    got = {name: getattr(a, name) for name in ("id", "workflow", "phase", "specialization", "depends_on")}
    assert got == {"id": "wf/a", "workflow": "wf", "phase": "ph1", "specialization": "spec-a", "depends_on": []}
    assert (a.duration_s, a.cpu, a.memory_gb, a.status) == (11.0, 2.5, 3.25, TaskStatus.PENDING)
    defaults = Task(id="x", workflow="w", phase="p", specialization="s")
    assert (b.id, b.phase, b.specialization, b.depends_on) == ("wf/b", "ph2", "spec-b", ["wf/a"])
    assert (b.duration_s, b.cpu, b.memory_gb) == (defaults.duration_s, defaults.cpu, defaults.memory_gb)
    assert b.context.inputs == {"k": 1} and a.context.shared
    assert s.dependents["wf/a"] == ["wf/b"] and s.pending_deps["wf/b"] == 1
