"""The incident-kind catalogue: what the pipeline knows about each kind of incident.

An :class:`IncidentKind` holds everything one kind needs — its detector, the extra
evidence it records when an incident opens, its playbook, its success criterion
(a validation gate) with the window it may take to hold, and its drill (the fault
it injects). The manager, the executor, the drills and the console iterate over a
:class:`Catalogue` instead of naming kinds; adding a kind is one module building an
``IncidentKind`` and one entry in ``kinds.CATALOGUE`` (or ``CATALOGUE.with_kind``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .validation import SHARED_GATES, Gate

if TYPE_CHECKING:
    from ..engine import Engine
    from ..models import Agent
    from ..runtimes import Runtime
    from .detectors import Detector, Finding
    from .playbooks import PlanDraft


class UnknownKind(KeyError):
    """A kind name the catalogue does not hold."""


class DrillError(ValueError):
    """A drill that cannot run here or now (no work left, wrong runtime, no store)."""


class RunningDrill(Protocol):
    """What a kind's drill functions use of the drill that runs them (``drills.Drill``
    is one): its engine, its schedule, the fault recorded so far."""

    engine: Engine
    fault: dict[str, Any]
    injected_at: float | None
    cancelled: bool
    heal_after_s: float
    gap_s: float | None

    def later(self, delay: float, fn: Any) -> None: ...

    def real_faults(self) -> Runtime: ...

    def sim(self) -> Runtime: ...

    def busy_agents(self, required: bool = False) -> list[Agent]: ...


@dataclass(frozen=True)
class DrillSpec:
    """How a drill of the kind injects its fault."""

    inject: Callable[[RunningDrill], Awaitable[dict[str, Any]]]
    """Injects the fault into the drill's engine and returns what it did (the
    DRILL_FAULT_INJECTED payload); raises ``DrillError`` when it cannot."""
    confirm: Callable[[RunningDrill], Awaitable[dict[str, Any]]]
    """Checks, independently of the injection, that the fault is real (a killed
    process is gone, a damaged checkpoint fails verification...): ``confirmed``
    plus what was checked. Polled after the injection until it confirms."""
    on_real_processes: bool = False
    """The fault can be injected on the local runtime too, not only the simulation."""
    prepare: Callable[[RunningDrill, bool], float] | None = None
    """Called when the drill is armed (live or not); returns extra seconds to wait
    before the fault (e.g. a phase drawn from the seed)."""
    detect_within_s: float | None = None
    """How long after the fault detection may take before the drill ends
    ``not_detected`` (None: the drill's whole budget)."""


@dataclass(frozen=True)
class IncidentKind:
    name: str
    """The scenario name, e.g. ``resource-exhaustion``."""
    detector: Callable[[Engine], Detector]
    playbook: Callable[[Engine, Finding], PlanDraft]
    criterion: str
    """The name of the validation gate that resolves an incident of this kind."""
    gate: Gate
    window: Callable[[Engine], float]
    """How long, once every step of a plan has run, the criterion may take to hold."""
    drill: DrillSpec
    evidence: Callable[[Engine, Finding], dict[str, Any]] | None = None
    """Extra evidence recorded when an incident opens (what its criterion compares with)."""


class Catalogue:
    """An ordered, immutable set of incident kinds, looked up by name."""

    def __init__(self, kinds: Iterable[IncidentKind], shared_gates: dict[str, Gate] | None = None) -> None:
        self._kinds: dict[str, IncidentKind] = {}
        for k in kinds:
            if k.name in self._kinds:
                raise ValueError(f"incident kind {k.name!r} listed twice")
            self._kinds[k.name] = k
        self._shared = dict(SHARED_GATES if shared_gates is None else shared_gates)

    def __iter__(self) -> Iterator[IncidentKind]:
        return iter(self._kinds.values())

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __len__(self) -> int:
        return len(self._kinds)

    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def get(self, name: str) -> IncidentKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownKind(f"unknown incident kind {name!r}; known: {', '.join(self._kinds)}") from None

    def with_kind(self, kind: IncidentKind) -> Catalogue:
        """A new catalogue with one more kind (this one is left as it is)."""
        return Catalogue([*self._kinds.values(), kind], self._shared)

    def live_drills(self) -> tuple[str, ...]:
        """Kinds whose drill can inject its fault on real processes."""
        return tuple(k.name for k in self if k.drill.on_real_processes)

    def gates(self) -> dict[str, Gate]:
        """Every gate a plan step or criterion may name: the kinds' criteria and the
        shared ones (e.g. ``resumption_done``)."""
        return {**self._shared, **{k.criterion: k.gate for k in self}}

    def gate(self, name: str) -> Gate:
        g = self.gates().get(name)
        if g is None:
            raise UnknownKind(f"unknown validation {name!r}; known: {', '.join(sorted(self.gates()))}")
        return g
