"""WORKFLOW_CREATED's fold builds each task by setting its fields: every field is set,
in the declared order, with what the dataclass would give."""

from __future__ import annotations

import sys
from dataclasses import fields

import pytest
from pydantic import ValidationError

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.events import Event
from core.models import EMPTY_CONTEXT, Task, TaskContext
from core.work_reducers import workflow_created

TASKS = [
    {"id": "a", "specialization": "x"},
    {"id": "b", "specialization": "x", "duration_s": 5, "cpu": 2, "memory_gb": 0, "depends_on": ["a"]},
    {"id": "c", "specialization": "y", "inputs": {"k": [1, 2]}, "tty": True, "repo": "/r"},
    {"id": "d", "specialization": "y", "interactive": True},
]


def test_a_created_task_holds_every_field_as_the_dataclass_builds_it() -> None:
    eng = Engine(config=Config(), clock=VirtualClock(2.0))
    eng.create_workflow({"id": "w", "phases": [{"name": "p", "tasks": TASKS[:2]}, {"name": "q", "tasks": TASKS[2:]}]})
    tasks = eng.state.tasks
    expected = {
        "w/a": Task("w/a", "w", "p", "x"),
        "w/b": Task("w/b", "w", "p", "x", ["w/a"], 5.0, 2.0, 0.0),
        "w/c": Task(
            "w/c",
            "w",
            "q",
            "y",
            ["w/a", "w/b"],
            context=TaskContext(inputs={"k": [1, 2]}),
            interactive=True,
            tty=True,
            repo="/r",
        ),
        "w/d": Task("w/d", "w", "q", "y", ["w/a", "w/b"], interactive=True),
    }
    assert list(tasks) == list(expected)
    names = [f.name for f in fields(Task)]
    for key, want in expected.items():
        got = tasks[key]
        assert type(got) is Task
        assert list(vars(got)) == names  # every field, in order (an unset one would be missing)
        assert vars(got) == vars(want), key
        assert sys.getsizeof(vars(got)) == sys.getsizeof(vars(want))  # as much memory as the dataclass's
    assert tasks["w/a"].context is EMPTY_CONTEXT and tasks["w/d"].context is EMPTY_CONTEXT
    assert type(tasks["w/b"].duration_s) is float and type(tasks["w/b"].memory_gb) is float


def test_a_refused_workflow_builds_no_task() -> None:
    eng = Engine(config=Config(), clock=VirtualClock(2.0))
    bad = {"id": "a", "specialization": "x", "cpu": -1}
    with pytest.raises(ValidationError, match=r"phases\.0\.tasks\.1\.cpu"):
        eng.create_workflow({"id": "w", "phases": [{"name": "p", "tasks": [TASKS[0], bad]}]})
    assert eng.state.tasks == {} and eng.state.workflows == {}


def test_a_recorded_int_becomes_the_float_the_dataclass_holds() -> None:
    """A spec folded as a line may write a number as an int (JSON keeps 5 as 5): the task
    holds float(5), as when the spec was validated where it entered."""
    eng = Engine(config=Config(), clock=VirtualClock(2.0))
    spec = {"id": "w", "phases": [{"name": "p", "tasks": [TASKS[0], {**TASKS[1], "memory_gb": True}]}]}
    workflow_created(eng.state, Event(1, 2.0, "WORKFLOW_CREATED", "coordination", "workflow", {"spec": spec}))
    b = eng.state.tasks["w/b"]
    assert (b.duration_s, b.cpu, b.memory_gb) == (5.0, 2.0, 1.0)
    assert type(b.duration_s) is float and type(b.cpu) is float and type(b.memory_gb) is float
    assert b.depends_on == ["w/a"] and eng.state.dependents["w/a"] == ["w/b"]
