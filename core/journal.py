"""The journal of a unit of work: what its folds changed, as it was before.

A command that fails must leave the state exactly as it found it. Copying the whole
state before each command made a command cost follow the live state (seconds with
100k live tasks); the journal instead keeps, for each record a fold writes, its value
before the first write inside the unit (a copy when the fold changes it in place, the
object itself when the fold replaces or removes it, or "absent" when the fold creates
it). Taking the unit back puts those values back: the cost follows what changed.

Folds say what they write through ``State.changing`` / ``State.replacing`` (the
projection's side of this contract); the journal itself knows records only as values
in the state's keyed parts.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable, MutableMapping
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel

from .models import Task, Workflow

Part = Literal[
    "pools",
    "agents",
    "workflows",
    "tasks",
    "finished",
    "checkpoints",
    "incidents",
    "plans",
    "resumptions",
    "learning",
    "settings",
    "usage_tasks",
    "usage_agents",
    "usage_workflows",
    "usage_pools",
    "usage_budgets",
    "usage_holds",
]
"""The state's keyed parts a fold can write (each a dict of records)."""


class _Absent:
    """The pre-image of a record the unit created: taking it back removes the record."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()

_SHARED: dict[type, frozenset[str]] = {Workflow: frozenset({"tasks"})}
"""Fields no fold changes in place once the record is built, shared with the pre-image
rather than copied: a workflow's task list can hold 100,000 keys."""
_SCALARS = (str, int, float, bool, type(None), Enum)


def pre_image(value: Any) -> Any:
    """A copy of ``value`` that later in-place writes to ``value`` do not reach: a model or
    a task copied field by field, each field that is not a scalar (immutable, shared) deep
    copied. A task's (a shared context copies as itself) takes ~3.6 us CPU where a deep copy
    of the whole took ~11 (medians, interleaved). The field-by-field path is for ``Task``
    itself: anything else, a subclass of it too, is deep-copied whole, its own class kept."""
    if type(value) is Task:
        fields = value.__dict__.copy()
        for k, x in fields.items():
            if not isinstance(x, _SCALARS):
                fields[k] = copy.deepcopy(x)
        task = object.__new__(Task)
        task.__dict__ = fields
        return task
    if isinstance(value, BaseModel):
        out = copy.copy(value)  # a new __dict__ holding the same field values
        shared = _SHARED.get(type(value), frozenset())
        fields = out.__dict__
        for k, x in fields.items():
            if k not in shared and not isinstance(x, _SCALARS):
                fields[k] = copy.deepcopy(x)
        return out
    if isinstance(value, _SCALARS):
        return value
    return copy.deepcopy(value)


class Journal:
    """Pre-images of the records one unit of work wrote, and the counters it started from.

    Journals nest: a journal begun while another is open records into itself; kept, it
    hands the outer one the pre-images the outer one lacks; taken back, it restores
    only its own."""

    __slots__ = (
        "archive",
        "archive_len",
        "clock",
        "commands_executed",
        "observed",
        "parent",
        "pre",
        "seq",
        "usage_ignored",
        "workflows",
    )

    def __init__(
        self,
        parent: Journal | None,
        seq: int,
        clock: float,
        commands_executed: int,
        observed: dict[str, int],
        archive: list[Any] | None,
    ) -> None:
        self.parent = parent
        self.seq = seq
        self.clock = clock
        self.commands_executed = commands_executed
        self.observed = observed
        self.archive = archive
        """The state's archive list when the unit began (a flush may hand it a new one)."""
        self.archive_len = len(archive) if archive is not None else 0
        self.usage_ignored = 0
        """The usage ledger's count of unreadable lines (set by the state)."""
        self.pre: dict[Part, dict[Hashable, Any]] = {}
        self.workflows: set[str] = set()
        """Workflows whose derived indexes (ready queues, counters) are rebuilt when taken back."""

    def changing(self, part: Part, records: dict[Any, Any], key: Hashable) -> None:
        """``records[key]`` is about to change in place (or be created): keep a copy first."""
        saved = self.pre.setdefault(part, {})
        if key not in saved:
            v = records.get(key, ABSENT)
            saved[key] = v if v is ABSENT else pre_image(v)

    def replacing(self, part: Part, records: MutableMapping[Any, Any], key: Hashable) -> None:
        """``records[key]`` is about to be replaced or removed (never changed in place):
        the object itself is its pre-image."""
        saved = self.pre.setdefault(part, {})
        if key not in saved:
            saved[key] = records.get(key, ABSENT)

    def keys(self, part: Part) -> Iterable[Hashable]:
        return self.pre.get(part, {}).keys()

    def merge_into(self, outer: Journal) -> None:
        """Kept inside ``outer``: the outer journal takes the pre-images it has not got."""
        for part, saved in self.pre.items():
            into = outer.pre.setdefault(part, {})
            for key, v in saved.items():
                into.setdefault(key, v)
        outer.workflows |= self.workflows

    def put_back(self, parts: dict[Part, MutableMapping[Any, Any]]) -> None:
        """Every record written since the journal began, back to its pre-image."""
        for part, saved in self.pre.items():
            records = parts[part]
            for key, v in saved.items():
                if v is ABSENT:
                    records.pop(key, None)
                else:
                    records[key] = v
