"""What an event type is, and the catalogue that holds them.

:class:`EventType` is a type's name with its declaration (component, payload model,
fold, severity and its escalations, summary, whether it may be injected); it is a ``str`` equal to its
name, so events keep plain names on the wire and in the store. :class:`Catalogue`
holds the declarations by name with the lookups the projection, the boundary check and
the console need. The declarations themselves are in :mod:`core.event_types`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .event_data import EventData, EventDataError, check_data
from .event_summaries import Summary, default_summary
from .events import Event, Severity
from .projection import Fold, State


@dataclass(frozen=True)
class Escalation:
    """A routine type's event that records a failure is graded worse: ``severity`` when
    its data holds every ``(path, value)`` of ``when`` (a dotted path: ``outcome.validated``).
    The same rule runs in Python (:meth:`applies`) and in SQL (:meth:`sql`)."""

    severity: Severity
    when: tuple[tuple[str, Any], ...]

    def applies(self, data: dict[str, Any]) -> bool:
        for path, want in self.when:
            v: Any = data
            for part in path.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            if v is None or type(v) is not type(want) or v != want:
                return False
        return True

    def sql(self) -> tuple[str, list[Any]]:
        """The condition on the ``data`` column (JSON) that :meth:`applies` tests."""
        conds = [f"json_type(data, '$.{path}') = ? AND json_extract(data, '$.{path}') = ?" for path, _ in self.when]
        args: list[Any] = []
        for _, want in self.when:
            args += [_JSON_TYPES[type(want)](want), want]
        return "(" + " AND ".join(conds) + ")", args


_JSON_TYPES: dict[type, Callable[[Any], str]] = {
    bool: lambda v: "true" if v else "false",
    str: lambda v: "text",
    int: lambda v: "integer",
}


class EventType(str):
    """An event type's name with its declaration; equal to (and hashed as) the name."""

    component: str
    payload: type[EventData] | None
    fold: Fold | None
    severity: Severity
    escalations: tuple[Escalation, ...]
    summary: Summary
    injectable: bool

    def __new__(
        cls,
        name: str,
        component: str,
        *,
        payload: type[EventData] | None = None,
        fold: Fold | None = None,
        severity: Severity = Severity.INFO,
        escalations: tuple[Escalation, ...] = (),
        summary: Summary | None = None,
        injectable: bool = True,
    ) -> EventType:
        self = super().__new__(cls, name)
        self.component = component
        self.payload = payload
        self.fold = fold
        self.severity = severity
        self.escalations = escalations
        self.summary = summary or default_summary
        self.injectable = injectable
        return self

    @property
    def name(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"EventType({str.__repr__(self)})"

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        """Copied or pickled, a declaration is its plain name (what events hold)."""
        return (str, (str(self),))


class Catalogue:
    """Event types by name, with the lookups the projection, the boundary check and
    the console need (fold, severity, summary)."""

    def __init__(self, types: Iterable[EventType]) -> None:
        self._types: dict[str, EventType] = {}
        self.folds: dict[str, Fold] = {}
        """Name -> fold: given to each ``State``, whose ``apply`` looks it up once per event."""
        for t in types:
            self.declare(t)

    def declare(self, t: EventType) -> EventType:
        """Add ``t``; a name declared twice is refused (replay must not depend on order)."""
        if t in self._types:
            raise ValueError(f"event type {t} is declared twice")
        self._types[str(t)] = t
        if t.fold is not None:
            self.folds[str(t)] = t.fold
        return t

    def withdraw(self, t: EventType) -> None:
        self._types.pop(t, None)
        self.folds.pop(t, None)

    @contextmanager
    def declared(self, *types: EventType) -> Iterator[None]:
        """``types`` are known inside the ``with`` block only (tests' toy types)."""
        for t in types:
            self.declare(t)
        try:
            yield
        finally:
            for t in types:
                self.withdraw(t)

    def get(self, name: str) -> EventType | None:
        return self._types.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[EventType]:
        return iter(list(self._types.values()))

    def names(self) -> set[str]:
        return set(self._types)

    def severity(self, type_: str, data: dict[str, Any] | None = None) -> Severity:
        """The event's own ``severity`` field wins (detectors grade what they find);
        then the first of its type's escalations that applies (a failure recorded by a
        routine type); otherwise the type's declared severity; an unknown type is info."""
        if data:
            sev = data.get("severity")
            if isinstance(sev, str) and sev in _SEVERITY_NAMES:
                return Severity(sev)
        t = self._types.get(type_)
        if t is None:
            return Severity.INFO
        if data:
            for esc in t.escalations:
                if esc.applies(data):
                    return esc.severity
        return t.severity

    def of_severity(self, severity: Severity | str) -> list[str]:
        """Types declared at exactly ``severity`` (before escalations and the data's own grade)."""
        return [str(t) for t in self._types.values() if t.severity == severity]

    def severity_sql(self, floor: Severity | str) -> tuple[str, list[Any]]:
        """The SQL condition (on the events table's ``type`` and ``data`` columns) for
        "``floor`` or worse": the rule of :meth:`severity`, for a filter over stored rows."""
        worse = [s.value for s in Severity.or_worse(floor)]
        graded = f"json_extract(data, '$.severity') IN ({','.join('?' * len(_SEVERITY_NAMES))})"
        names = sorted(_SEVERITY_NAMES)
        by_type: list[str] = []
        by_escalation: list[str] = []
        args_type: list[Any] = []
        args_esc: list[Any] = []
        for t in self._types.values():
            escalated = [e for e in t.escalations if e.severity.value in worse]
            if t.severity.value in worse:
                # The declared grade stands unless an escalation to something milder applies.
                milder = [e for e in t.escalations if e.severity.value not in worse]
                cond, a = "type = ?", [str(t)]
                for e in milder:
                    sql, ea = e.sql()
                    cond += f" AND NOT {sql}"
                    a += ea
                by_type.append(f"({cond})")
                args_type += a
            elif escalated:
                for e in escalated:
                    sql, ea = e.sql()
                    by_escalation.append(f"(type = ? AND {sql})")
                    args_esc += [str(t), *ea]
        ungraded = by_type + by_escalation
        cond = f"json_extract(data, '$.severity') IN ({','.join('?' * len(worse))})"
        args: list[Any] = list(worse)
        if ungraded:
            cond = f"({cond} OR (NOT coalesce({graded}, 0) AND ({' OR '.join(ungraded)})))"
            args += names + args_type + args_esc
        return cond, args

    def summarise(self, ev: Event) -> str:
        """One line for a readable log; never raises (an odd payload gets the default)."""
        t = self._types.get(ev.type)
        fn = t.summary if t is not None else default_summary
        try:
            return fn(ev)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            return default_summary(ev)

    def check(self, state: State, type_: str, payload: dict[str, Any]) -> None:
        """Raise EventDataError unless ``payload`` can be injected as ``type_`` into ``state``."""
        t = self._types.get(type_)
        if t is None or (t.payload is None and t.injectable):
            return  # no fold reads it: it is counted as observed, whatever its data
        if not t.injectable:
            raise EventDataError(type_, "", "recorded only by the engine; it cannot be injected")
        assert t.payload is not None
        check_data(state, type_, t.payload, payload)


_SEVERITY_NAMES = frozenset(s.value for s in Severity)
