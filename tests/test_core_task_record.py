"""A task is held as a plain dataclass (``core.models.Task``): what it encodes to must be
what the pydantic model it replaced encoded to, byte for byte, for every combination of
its fields (snapshots are hashed, archive records stored), and each task owns its
context (a context shared between tasks would let one task's progress reach another).
"""

from __future__ import annotations

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
    tasks = [{"id": f"t{i}", "specialization": "x"} for i in range(n)]
    spec = {"id": "w", "phases": [{"name": "p", "tasks": tasks}]}
    s.apply(Event(1, 0.0, "WORKFLOW_CREATED", "coordination-hub", "workflow", {"spec": spec}))
    return s


def test_no_two_tasks_share_a_context_or_its_containers() -> None:
    """Every task of a workflow owns its context: a write through one task's context
    (a fold's, or code changing it in place) reaches no other task."""
    s = _state_with_tasks(3)
    a, b, c = (s.tasks[f"w/t{i}"] for i in range(3))
    for x, y in itertools.combinations((a, b, c), 2):
        assert x.context is not y.context
        for part in ("inputs", "partial_results", "last_output"):
            assert getattr(x.context, part) is not getattr(y.context, part)
    s.apply(
        Event(
            2,
            1.0,
            "TASK_PROGRESS",
            "agent",
            "task",
            {"task": "w/t0", "progress": 0.5, "output": ["hello"], "partial": {"rows": 3}},
        )
    )
    a.context.inputs["k"] = 1
    assert (a.context.progress, a.context.last_output, a.context.partial_results) == (0.5, ["hello"], {"rows": 3})
    for other in (b, c):
        assert other.context == TaskContext()
