"""Tasks validated as dicts (``workflows._task_chunk``) record what their models'
dump recorded and refuse what the models refuse, with the models' error."""

from __future__ import annotations

import math
import random
from types import MappingProxyType
from typing import Any

from annotated_types import Ge
from pydantic import TypeAdapter, ValidationError

from core.engine.workflows import (
    _NUMBERS,
    _SIMPLE_FIELDS,
    SUBMIT_CHUNK,
    _drained,
    _encoded,
    _simple_rows,
    _task_chunk,
)
from core.events import canonical_json
from core.models import TASK_DEFAULTS, TaskSpec, WorkflowSpec

_MODELS = TypeAdapter(list[TaskSpec])
_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2**70, 0.0, 1.0, 60, 60.0, 0.5, -0.5, 1e-7, 1e300, math.inf, -math.inf, math.nan,
    "", "x", "60", "true", "echo hi", b"x", [], ["a"], ["a", "b"], [1], ("a",), {"a"}, {}, {"A": "1"}, {"A": 1},
    {1: "a"}, {"k": [1, (2, 3)]}, {"k": {"n": None}}, TaskSpec(id="m", specialization="x"),
]  # fmt: skip


def _task(rng: random.Random, i: int) -> Any:
    """A random task: some fields present, each with its default written out or a value
    of any type (valid or not), sometimes an unknown key, a field missing, a mapping not a dict, or a model."""
    if rng.random() < 0.02:
        return TaskSpec(id=f"t{i}", specialization="x", cpu=rng.choice([0.0, 1.0, 2.0]))
    row: dict[str, Any] = {"id": f"t{i}", "specialization": "x"}
    for name in rng.sample(sorted(TaskSpec.model_fields), rng.randint(0, 4)):
        field = TaskSpec.model_fields[name]
        row[name] = field.get_default(call_default_factory=True) if rng.random() < 0.4 else rng.choice(_VALUES)
    if rng.random() < 0.02:
        row["nope"] = 1
    if rng.random() < 0.02:
        del row[rng.choice(["id", "specialization"])]
    return MappingProxyType(row) if rng.random() < 0.02 else row


def _same(a: Any, b: Any) -> bool:
    """Equal, a NaN equal to a NaN (the stored text of a NaN is the same either way)."""
    return repr(a) == repr(b)


def test_random_tasks_give_the_models_bytes_or_the_models_error() -> None:
    rng = random.Random(22)
    valid = invalid = 0
    for n in range(10000):
        rows = [_task(rng, n * 10 + i) for i in range(rng.randint(1, 3))]
        try:
            want = _MODELS.dump_python(_MODELS.validate_python(rows), mode="json", exclude_defaults=True)
        except ValidationError as exc:
            invalid += 1
            try:
                _task_chunk(rows)
            except ValidationError as got:
                assert str(got) == str(exc), rows
                continue
            raise AssertionError(f"accepted what the models refuse: {rows}") from None
        valid += 1
        got = _task_chunk(rows)
        assert _same(got, want), rows
        assert [list(t) for t in got] == [list(t) for t in want]  # the same keys in the same order
        if not any(isinstance(v, float) and math.isnan(v) for t in want for v in t.values()):
            assert canonical_json(got) == canonical_json(want)
    assert valid > 1500 and invalid > 1500  # both sides were exercised


def test_a_refused_task_in_a_later_chunk_gives_the_whole_specs_error() -> None:
    tasks: list[Any] = [{"id": f"t{i}", "specialization": "x"} for i in range(SUBMIT_CHUNK + 3)]
    tasks[SUBMIT_CHUNK + 1] = {"id": "bad", "specialization": "x", "memory_gb": -1}
    raw = {"id": "w", "phases": [{"name": "a", "tasks": tasks}]}
    try:
        _drained(_encoded(raw))
        raise AssertionError("accepted a negative memory_gb")
    except ValidationError as exc:
        try:
            WorkflowSpec.model_validate(raw)
        except ValidationError as whole:
            assert str(exc) == str(whole)
            assert exc.errors()[0]["loc"] == ("phases", 0, "tasks", SUBMIT_CHUNK + 1, "memory_gb")


def test_a_row_with_an_unknown_key_or_not_a_mapping_is_refused_with_the_models_error() -> None:
    for odd in ({"id": "t1", "specialization": "x", "comand": "echo"}, 7, "id", ["id", "specialization"]):
        rows: list[Any] = [{"id": "t0", "specialization": "x"}, odd]
        try:
            _MODELS.validate_python(rows)
            raise AssertionError(f"the models accepted {odd!r}")
        except ValidationError as exc:
            want = str(exc)
        try:
            _task_chunk(rows)
            raise AssertionError(f"accepted {odd!r}")
        except ValidationError as got:
            assert str(got) == want


class _Text(str):
    pass


_ODD: list[tuple[Any, Any]] = [
    ("id", "t\u00e2che"), ("id", "\ud800"), ("id", _Text("t")), ("id", 1), ("specialization", None),
    ("depends_on", ("t0",)), ("depends_on", ["t0", 1]), ("depends_on", ["\ud800"]), ("depends_on", "t0"),
    ("cpu", True), ("cpu", -1), ("cpu", -0.5), ("cpu", math.nan), ("cpu", -math.inf), ("cpu", "1"),
    ("cpu", 2**53 + 1), ("cpu", 2**70), ("memory_gb", None), ("duration_s", 1.5j),
    ("command", "echo hi"), ("nope", 1), (1, "x"),
]  # fmt: skip
_PLAIN_VALUES = [
    ("depends_on", []), ("depends_on", ["t0"]), ("cpu", 0), ("cpu", 1), ("cpu", 1.0), ("cpu", -0.0), ("cpu", math.inf),
    ("cpu", 2**53), ("duration_s", 60), ("duration_s", 60.0), ("memory_gb", 0.5), ("memory_gb", 0.25),
]  # fmt: skip


def _models_say(rows: list[Any]) -> Any:
    try:
        return _MODELS.dump_python(_MODELS.validate_python(rows), mode="json", exclude_defaults=True)
    except ValidationError as exc:
        return str(exc)


def _chunk_says(rows: list[Any]) -> Any:
    try:
        return _task_chunk(rows)
    except ValidationError as exc:
        return str(exc)


def test_plain_rows_are_checked_by_the_simple_path_and_give_the_models_dump() -> None:
    for name, value in _PLAIN_VALUES:
        rows = [{"id": "t0", "specialization": "x"}, {"specialization": "x", name: value, "id": "t1"}]
        assert _simple_rows(rows) is not None, (name, value)  # the path under test answered
        got, want = _chunk_says(rows), _models_say(rows)
        assert _same(got, want), (name, value)
        assert [list(t) for t in got] == [list(t) for t in want]  # the declared order, not the row's


def test_a_value_the_simple_path_does_not_take_goes_to_pydantic_with_the_same_result() -> None:
    for name, value in _ODD:
        rows = [{"id": "t0", "specialization": "x"}, {"id": "t1", "specialization": "x", name: value}]
        assert _simple_rows(rows) is None, (name, value)  # must not be taken as plain
        assert _same(_chunk_says(rows), _models_say(rows)), (name, value)


def test_the_simple_paths_fields_are_taskspecs_declaration() -> None:
    """The simple path writes out TaskSpec's rules for its fields: a change to them there
    (a type, a bound, a default, a field made required) fails here until both agree."""
    fields = TaskSpec.model_fields
    assert {"id", "specialization", "depends_on", *_NUMBERS} == _SIMPLE_FIELDS
    assert [
        (k, fields[k].annotation, fields[k].metadata, fields[k].is_required()) for k in ("id", "specialization")
    ] == [
        ("id", str, [], True),
        ("specialization", str, [], True),
    ]
    assert (fields["depends_on"].annotation, fields["depends_on"].metadata, TASK_DEFAULTS["depends_on"]) == (
        list[str],
        [],
        [],
    )
    for k in _NUMBERS:
        assert (fields[k].annotation, fields[k].metadata) == (float, [Ge(ge=0)]), k
    assert (TASK_DEFAULTS["duration_s"], TASK_DEFAULTS["cpu"], TASK_DEFAULTS["memory_gb"]) == (60.0, 1.0, 0.5)
    assert TaskSpec.model_config.get("extra") == "forbid" and not TaskSpec.__pydantic_decorators__.field_validators
