"""Operations on workflows and their tasks: create, start, pause, resume, cancel.

Each operation checks first and then changes: a refused one raises
:class:`~core.engine.EngineError` and emits nothing. The runtime is told to pause,
resume or stop tasks after the events that say so are folded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from itertools import chain
from typing import TYPE_CHECKING, Annotated, Any, Generic, NotRequired, Required, TypeVar, cast

from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic reads TypedDicts of typing_extensions before 3.12

from ..collector import gc_paused
from ..event_types import (
    TASK_PAUSED,
    TASK_REASSIGNED,
    TASK_RESUMED,
    WORKFLOW_CANCELLED,
    WORKFLOW_CREATED,
    WORKFLOW_FROZEN,
    WORKFLOW_PAUSED,
    WORKFLOW_QUEUED,
    WORKFLOW_RESUMED,
)
from ..models import (
    TASK_DEFAULTS,
    TERMINAL_WORKFLOW,
    PhaseSpec,
    TaskSpec,
    TaskStatus,
    Workflow,
    WorkflowSpec,
    WorkflowStatus,
)
from .log import EngineError

if TYPE_CHECKING:
    from .contract import EngineCore

SUBMIT_CHUNK = 2000
_TASK_LIST = TypeAdapter(list[TaskSpec])
T = TypeVar("T")


def _rows_of(model: type[BaseModel]) -> TypeAdapter[list[dict[str, Any]]]:
    """A validator of a list of ``model``'s dicts that gives dicts, not models: a
    TypedDict of the model's own fields (their types and constraints, its config but
    for unknown keys, which it ignores: see :func:`_task_chunk`), so its values are
    the model's. A field left out stays out (its default is not filled in)."""
    fields = {
        k: (Required if f.is_required() else NotRequired)[
            Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
        ]
        for k, f in model.model_fields.items()
    }
    rows = cast(Any, TypedDict)(f"{model.__name__}Row", fields)
    rows.__pydantic_config__ = {**model.model_config, "extra": "ignore"}
    return TypeAdapter(list[rows])  # type: ignore[valid-type]  # a type built at run time


_TASK_ROWS = _rows_of(TaskSpec)
_TASK_FIELDS = frozenset(TaskSpec.model_fields)
_PLAIN: set[Any] = {str, float, int, bool, str | None, float | None, int | None}
_PLAIN |= {list[str], list[str] | str | None, dict[str, str]}
_DUMPED = tuple(
    (k, TypeAdapter(cast(Any, f.annotation))) for k, f in TaskSpec.model_fields.items() if f.annotation not in _PLAIN
)
"""The fields whose validated value is not already what a JSON dump gives (``inputs``:
``Any`` keeps tuples, sets, bytes): dumped one by one. A validated value of the other
fields is a plain str, float, int, bool, None or new list/dict of str, as dumped."""


_SIMPLE_FIELDS = frozenset({"id", "specialization", "depends_on", "duration_s", "cpu", "memory_gb"})
"""The fields :func:`_simple_rows` checks itself (the tasks of a simulated run, the demo's)."""
_NUMBERS = ("duration_s", "cpu", "memory_gb")
"""Floats of at least 0 (``TaskSpec``'s declaration: a test holds the two together)."""
_D_DURATION, _D_CPU, _D_MEMORY = (TASK_DEFAULTS[k] for k in _NUMBERS)
_EXACT_INT = 2**53
"""The ints a float holds exactly: pydantic's lax float of one is ``float(x)``."""


def _simple_rows(rows: list[Any]) -> list[dict[str, Any]] | None:
    """The rows as :func:`_task_chunk` records them when each is a dict of
    :data:`_SIMPLE_FIELDS` only (its keys counted as they are read: one more is another
    field or an unknown key) holding the plainest values (``id`` and ``specialization``
    ASCII text, ``depends_on`` a list of such, the numbers a float >= 0 or an int
    0..2**53): checked and encoded here, without pydantic's pass and the loop dropping
    defaults (about 0.3 us a task less, measured on 1,000-task chunks). None for anything
    else (a str subclass, a tuple, a bool, NaN, text pydantic may refuse): validated as
    before. The keys come out in the fields' declared order, as the validator gives them."""
    out: list[dict[str, Any]] = []
    add = out.append
    for row in rows:
        if row.__class__ is not dict:
            return None
        tid = row.get("id")
        spec = row.get("specialization")
        if tid.__class__ is not str or spec.__class__ is not str or not tid.isascii() or not spec.isascii():
            return None
        v: dict[str, Any] = {"id": tid, "specialization": spec}
        known = 2  # the row's keys that are fields of this path: any other makes it not simple
        if "depends_on" in row:
            known += 1
            x = row["depends_on"]
            if x.__class__ is not list:
                return None
            if x:  # [] is the default: left out
                for d in x:
                    if d.__class__ is not str or not d.isascii():
                        return None
                v["depends_on"] = x[:]
        # The three numbers written out (a loop over them cost about a tenth more).
        if "duration_s" in row:
            known += 1
            x = row["duration_s"]
            if x.__class__ is int and 0 <= x <= _EXACT_INT:
                x = float(x)
            elif x.__class__ is not float or not x >= 0:  # NaN and negatives too
                return None
            if x != _D_DURATION:
                v["duration_s"] = x
        if "cpu" in row:
            known += 1
            x = row["cpu"]
            if x.__class__ is int and 0 <= x <= _EXACT_INT:
                x = float(x)
            elif x.__class__ is not float or not x >= 0:
                return None
            if x != _D_CPU:
                v["cpu"] = x
        if "memory_gb" in row:
            known += 1
            x = row["memory_gb"]
            if x.__class__ is int and 0 <= x <= _EXACT_INT:
                x = float(x)
            elif x.__class__ is not float or not x >= 0:
                return None
            if x != _D_MEMORY:
                v["memory_gb"] = x
        if len(row) != known:
            return None
        add(v)
    return out


def _task_chunk(rows: list[Any]) -> list[dict[str, Any]]:
    """Tasks as ``list[TaskSpec]``'s ``dump_python(mode="json", exclude_defaults=True)``
    gives them, without building the models (half the cost of a chunk): validated as
    dicts, a value equal to its default dropped (the validated value compared, as the
    dump compares it), and only the fields of :data:`_DUMPED` encoded by their
    serializers. Rows with a key that is no field's (checked here, in one C-level pass
    over all the rows' keys: the validator's own check of each row cost about a
    quarter of its time) or that the dicts' validator refuses are validated as
    models, whose error is the one raised. Rows of the simplest tasks are checked by
    :func:`_simple_rows` instead."""
    simple = _simple_rows(rows)
    if simple is not None:
        return simple
    try:
        known = _TASK_FIELDS.issuperset(chain.from_iterable(rows))
    except TypeError:  # a row that is not iterable: the models say what is wrong
        known = False
    valid: list[dict[str, Any]] | None = None
    if known:
        try:
            valid = _TASK_ROWS.validate_python(rows)
        except ValidationError:
            pass
    if valid is None:
        return _TASK_LIST.dump_python(_TASK_LIST.validate_python(rows), mode="json", exclude_defaults=True)
    defaults = TASK_DEFAULTS
    for v in valid:
        drop: list[str] = []
        for k, x in v.items():  # a loop, not a comprehension: that is a call per task on Python 3.11
            if k in defaults and x == defaults[k]:
                drop.append(k)
        for k in drop:
            del v[k]
        for k, adapter in _DUMPED:
            if k in v:
                v[k] = adapter.dump_python(v[k], mode="json")
    return valid


def _task_count(spec: WorkflowSpec | dict[str, Any]) -> int:
    """How many tasks a spec holds (what is not a list of tasks counts none: it is refused)."""
    if isinstance(spec, WorkflowSpec):
        return sum(len(p.tasks) for p in spec.phases)
    phases = spec.get("phases")
    if not isinstance(phases, list):
        return 0
    return sum(len(p["tasks"]) for p in phases if isinstance(p, dict) and isinstance(p.get("tasks"), list))


class _Steps(Generic[T]):
    """A generator of steps, run one step at a time; :attr:`result` is what it returned."""

    def __init__(self, steps: Generator[None, None, T]) -> None:
        self.steps = steps
        self.result: T

    def step(self) -> bool:
        """Run the next step: whether steps remain (False once it returned)."""
        try:
            next(self.steps)
        except StopIteration as done:
            self.result = done.value
            return False
        return True


def _drained(steps: Generator[None, None, T]) -> T:
    """What a generator of steps returns, run to its end at once."""
    run = _Steps(steps)
    while run.step():
        pass
    return run.result


def _encoded(raw: dict[str, Any]) -> Generator[None, None, tuple[WorkflowSpec, dict[str, Any]]]:
    """Validate a submitted spec and encode it as recorded, a chunk of SUBMIT_CHUNK tasks
    per step (the generator yields between chunks); returns (the spec without its
    phases, the recorded data: what ``WorkflowSpec.model_dump(mode="json",
    exclude_defaults=True)`` gives for the whole spec). Each chunk's validated tasks
    are dropped once encoded (:func:`_task_chunk`): a whole spec's are never held at
    once, and what is built next reuses their memory. A problem raises the ``ValidationError`` of the
    whole spec (its field paths)."""
    phases = raw.get("phases")
    if not isinstance(phases, list) or not all(
        isinstance(p, dict) and isinstance(p.get("tasks"), list) for p in phases
    ):
        spec = WorkflowSpec.model_validate(raw)
        return spec, spec.model_dump(mode="json", exclude_defaults=True)
    try:
        head = WorkflowSpec.model_validate({**raw, "phases": []})
        dumped: list[dict[str, Any]] = []
        for ph in phases:
            shell = PhaseSpec.model_validate({**ph, "tasks": []})
            encoded: list[dict[str, Any]] = []
            rows = ph["tasks"]  # a list: checked above
            for i in range(0, len(rows), SUBMIT_CHUNK):
                encoded += _task_chunk(rows[i : i + SUBMIT_CHUNK])
                yield
            dumped.append({**shell.model_dump(mode="json", exclude_defaults=True, exclude={"tasks"}), "tasks": encoded})
    except ValidationError:
        WorkflowSpec.model_validate(raw)  # the same error, with its paths in the whole spec
        raise
    data = head.model_dump(mode="json", exclude_defaults=True)
    if dumped:  # an empty list is the default: left out, as the whole spec's dump leaves it
        data["phases"] = dumped
    return head, data


class WorkflowOps:
    """The workflow operations of one engine."""

    def __init__(self, engine: EngineCore) -> None:
        self.engine = engine

    def live(self, wf_id: str) -> Workflow:
        """A live workflow; a finished one is refused (it has left the hot state)."""
        state = self.engine.state
        wf = state.workflows.get(wf_id)
        if wf is None:
            done = state.finished.get(wf_id)
            if done is not None:
                raise EngineError(
                    "INVALID_STATE",
                    f"workflow {wf_id!r} is already {done.status.value}",
                    {"workflow_id": wf_id, "status": done.status.value},
                )
            raise EngineError("WORKFLOW_NOT_FOUND", f"no workflow {wf_id!r}", {"known": state.all_workflow_ids()})
        return wf

    def changeable(self, wf_id: str) -> Workflow:
        """A live workflow that is not frozen (a frozen one refuses state changes)."""
        wf = self.live(wf_id)
        if wf.frozen:
            raise EngineError(
                "WORKFLOW_FROZEN",
                f"workflow {wf_id!r} is frozen for data protection: state changes are refused until it is unfrozen",
                {"workflow_id": wf_id},
            )
        return wf

    def create(self, spec: WorkflowSpec | dict[str, Any], actor: str | None = None) -> str:
        """Validate a workflow once and record it, the collector held off meanwhile and a
        big workflow frozen once built (:meth:`Collector.building`)."""
        with self.engine.collector.building(_task_count(spec)):
            if isinstance(spec, WorkflowSpec):
                return self._record(spec, spec.model_dump(mode="json", exclude_defaults=True), actor)
            head, data = _drained(_encoded(spec))
            return self._record(head, data, actor)

    async def submit(self, raw: dict[str, Any], actor: str | None = None) -> str:
        """:meth:`create` for a running console: tasks are validated and encoded in
        chunks (:func:`_encoded`), yielding to the event loop between them, so a
        submission of 100k tasks does not freeze the screen."""
        run = _Steps(_encoded(raw))
        while True:
            with gc_paused():
                if not run.step():
                    break
            await asyncio.sleep(0)
        head, data = run.result
        with self.engine.collector.building(_task_count(raw)):
            return self._record(head, data, actor)

    def _record(self, spec: WorkflowSpec, data: dict[str, Any], actor: str | None) -> str:
        """Check what the schema cannot see and emit WORKFLOW_CREATED with ``data`` (the
        spec as recorded; its tasks are read from it, ``spec`` gives the workflow's own
        fields)."""
        e = self.engine
        state = e.state
        if state.knows(spec.id):
            raise EngineError("WORKFLOW_EXISTS", f"workflow {spec.id!r} exists")
        names: set[str] = set()
        for phase in data.get("phases", ()):
            for t in phase["tasks"]:
                tid = t["id"]
                if tid in names:
                    raise EngineError("INVALID_WORKFLOW", f"task id {tid!r} appears twice in {spec.id!r}")
                for d in t.get("depends_on", ()):
                    if d not in names:
                        raise EngineError(
                            "INVALID_WORKFLOW",
                            f"task {tid!r} depends on {d!r}, which is not an earlier task of {spec.id!r}",
                        )
                names.add(tid)
        for d in spec.depends_on:
            if not state.knows(d):
                raise EngineError("WORKFLOW_NOT_FOUND", f"{spec.id!r} depends on unknown workflow {d!r}")
        lim = e.config.workflow_limits
        a = spec.allocation
        if a.cpu_cores > lim.cpu_cores or a.memory_gb > lim.memory_gb or a.agents > lim.agents:
            raise EngineError(
                "RESOURCE_LIMIT",
                f"allocation {a.model_dump()} exceeds the per-workflow limit {lim.model_dump(exclude={'max_duration_s'})}",
            )
        e.emit(WORKFLOW_CREATED, "coordination", "workflow", {"workflow_id": spec.id, "spec": data}, actor=actor)
        return spec.id

    def start(self, wf_id: str, actor: str | None = None) -> None:
        e = self.engine
        wf = self.changeable(wf_id)
        if wf.status is not WorkflowStatus.PENDING:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is {wf.status.value}, not pending")
        if not wf.queued:
            e.emit(WORKFLOW_QUEUED, "coordination", "workflow", {"workflow_id": wf_id}, actor=actor)
        e.bridge.admit()
        e.request_dispatch()

    def pause(self, wf_id: str, actor: str | None = None, reason: str = "operator") -> list[str]:
        """Stop dispatch to the workflow and pause its running tasks through the runtime."""
        e = self.engine
        wf = self.changeable(wf_id)
        if wf.status is not WorkflowStatus.RUNNING:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is {wf.status.value}, not running")
        e.emit(WORKFLOW_PAUSED, "coordination", "workflow", {"workflow_id": wf_id, "reason": reason}, actor=actor)
        paused = []
        for key in sorted(e.state.running_by_wf.get(wf_id, ())):
            t = e.state.tasks[key]
            if t.status is TaskStatus.RUNNING and t.agent:
                e.emit(TASK_PAUSED, "coordination", "execution", {"task": key, "agent": t.agent}, actor=actor)
                if e.runtime is not None:
                    e.runtime.pause_task(t.agent, key)
                paused.append(key)
        return paused

    def resume(self, wf_id: str, actor: str | None = None) -> list[str]:
        e = self.engine
        wf = self.changeable(wf_id)
        if wf.status is not WorkflowStatus.PAUSED:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is {wf.status.value}, not paused")
        e.emit(WORKFLOW_RESUMED, "coordination", "workflow", {"workflow_id": wf_id}, actor=actor)
        resumed = []
        for key in sorted(e.state.running_by_wf.get(wf_id, ())):
            t = e.state.tasks[key]
            if t.status is TaskStatus.PAUSED and t.agent:
                e.emit(TASK_RESUMED, "coordination", "execution", {"task": key, "agent": t.agent}, actor=actor)
                if e.runtime is not None:
                    e.runtime.resume_task(t.agent, key)
                resumed.append(key)
        e.request_dispatch()
        return resumed

    def release_task(self, key: str, reason: str = "released", actor: str | None = None) -> str | None:
        """Take a task off its agent (stopping it) and put it back in the queue."""
        e = self.engine
        t = e.state.tasks.get(key)
        if t is None:
            raise EngineError("TASK_NOT_FOUND", f"no task {key!r}")
        if t.status not in (TaskStatus.RUNNING, TaskStatus.PAUSED) or not t.agent:
            return None
        agent = t.agent
        if e.runtime is not None:
            e.runtime.stop_task(agent, key)
        e.emit(
            TASK_REASSIGNED,
            "coordination",
            "scheduler",
            {"task": key, "from": agent, "reason": reason, "progress": t.context.progress},
            actor=actor,
        )
        e.request_dispatch()
        return agent

    def cancel(self, wf_id: str, actor: str | None = None) -> None:
        e = self.engine
        wf = self.changeable(wf_id)
        if wf.status in TERMINAL_WORKFLOW:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is already {wf.status.value}")
        for key in sorted(e.state.running_by_wf.get(wf_id, ())):
            e.release_task(key, reason="workflow_cancelled", actor=actor)
        e.emit(WORKFLOW_CANCELLED, "coordination", "workflow", {"workflow_id": wf_id}, actor=actor)
        e.request_dispatch()

    def freeze(self, wf_id: str, frozen: bool = True, actor: str | None = None) -> None:
        self.live(wf_id)
        self.engine.emit(
            WORKFLOW_FROZEN, "coordination", "state_protection", {"workflow_id": wf_id, "frozen": frozen}, actor=actor
        )
