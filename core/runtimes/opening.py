"""Opening a database on a real runtime and bringing it to the workflow file.

Shared by the local and the Ray runtimes (:func:`core.runtimes.local.open_local`,
:func:`core.runtimes.ray.open_ray`): each builds its runtime, then this opens the
engine on it, adopts or fails what a previous console left, and creates what the
database lacks (pools, workflows) and sizes the pools.

What a restarted console says while it finds again the agents of the last run: the
local runtime proves each live agent host (up to one handshake's time, all at once:
about 10 s for a stopped or hung one); the Ray runtime looks its agents' actors up by
name in the cluster. Either comes before any pane can show the run. Whoever opens a
runtime says so through :data:`PROVING`, set in the task that opens it (the console's
header, the headless verbs' stderr): nothing is said where nobody set it. The words are
:class:`Proving`'s, each runtime naming what it finds (:data:`AGENT_HOSTS`,
:data:`RAY_ACTORS`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..clock import WallClock
from ..config import Config
from . import Runtime

if TYPE_CHECKING:
    from ..engine import Engine
    from ..models import WorkflowSpec
    from ..workflow_file import WorkflowFile


class OpenableRuntime(Runtime, Protocol):
    """What opening needs of a runtime of real agents beyond the contract."""

    async def machine_capacity(self) -> tuple[float, float, str]:
        """(cores, memory GB, basis): the capacity unless the config sets one."""
        ...

    async def prepare(self, engine: Engine) -> None:
        """Before attach: learn task commands from the log, adopt or fail stored hosts."""
        ...

    def replenish(self, pool: str, target: int | None = None) -> list[str]: ...


R = TypeVar("R", bound=OpenableRuntime)


async def open_with(
    make: Callable[[Config], Awaitable[R]],
    db: str | Path,
    wfile: WorkflowFile,
    specs: list[WorkflowSpec],
    config: Config | None = None,
    subscriber: Any = None,
) -> tuple[Engine, R]:
    """Open ``db`` with the runtime ``await make(config)`` builds and bring it to the
    workflow file; see :func:`core.runtimes.local.open_local`."""
    from ..engine import Engine
    from ..workflow_file import WorkflowFileError, config_problems

    config = config or Config()
    rt = wfile.runtime
    config = config.model_copy(
        update={
            "intervals": config.intervals.model_copy(update={"heartbeat_s": rt.heartbeat_s, "sample_s": rt.sample_s})
        }
    )
    problems = config_problems(wfile, specs, config)
    if problems:
        raise WorkflowFileError("workflow file", problems)
    runtime = await make(config)  # first: a runtime that cannot start leaves no database behind
    config = config.model_copy(update={"capacity": config.capacity.filled(*await runtime.machine_capacity())})
    try:
        engine = await Engine.open(db, config=config, clock=WallClock())
    except BaseException:
        await runtime.shutdown(release=False)
        raise
    if subscriber is not None:
        engine.subscribe(subscriber)
    try:
        await runtime.prepare(engine)
        engine.attach_runtime(runtime)
        _bring_to_file(engine, runtime, wfile, specs)
        await engine.flush()
    except BaseException:
        await runtime.shutdown(release=False)
        await engine.close()
        raise
    return engine, runtime


def _set_budgets(engine: Engine, wfile: WorkflowFile) -> None:
    """The file's budgets, where the database has none yet (a raise made since stays)."""
    led = engine.state.usage
    for w in wfile.workflows:
        if w.budget is not None and led.budget_of("workflow", w.id) is None and engine.state.knows(w.id):
            engine.spend.set_budget("workflow", w.id, w.budget.budget(), w.budget.warn_share, actor="opsdeck run")
    for p in wfile.pools:
        if p.budget is not None and led.budget_of("pool", p.name) is None:
            engine.spend.set_budget("pool", p.name, p.budget.budget(), p.budget.warn_share, actor="opsdeck run")


def _bring_to_file(engine: Engine, runtime: OpenableRuntime, wfile: WorkflowFile, specs: list[WorkflowSpec]) -> None:
    """Create what the database lacks (pools, workflows), queue them, size the pools."""
    from ..engine import EngineError

    state = engine.state
    for p in wfile.pools:
        if p.name not in state.pools:
            min_size = p.min_size if p.min_size is not None else p.size
            max_size = p.max_size if p.max_size is not None else max(p.size, 20)
            engine.create_pool(p.name, list(p.specializations), min_size=min_size, max_size=max_size)
    for spec in specs:
        if not state.knows(spec.id):
            engine.create_workflow(spec, actor="opsdeck run")
        wf = state.workflows.get(spec.id)
        if wf is not None and wf.status.value == "pending" and not wf.queued:
            try:
                engine.start_workflow(spec.id, actor="opsdeck run")
            except EngineError:
                pass
    for p in wfile.pools:
        runtime.replenish(p.name, target=p.size)
    _set_budgets(engine, wfile)
    key = f"{runtime.name}_runtime"  # what the console shows: the limit mechanisms in force
    if state.settings.get(key) != runtime.describe():
        engine.set_setting(key, runtime.describe())


# -- what a restarted console says while it finds the last run's agents ---------------
@dataclass(frozen=True)
class Finding:
    """What a runtime finds again of the last run, in words."""

    noun: str
    """One of them: ``agent host``."""
    doing: str
    done: str
    missing: str
    """What became of those not found, after their count."""

    def plural(self, n: int) -> str:
        return f"{n} {self.noun}{'' if n == 1 else 's'}"


AGENT_HOSTS = Finding("agent host", "proving", "proved", "not proved (nothing was signalled)")
"""The local runtime's: each live host a trusted ``processes`` row names proves itself on its socket."""
RAY_ACTORS = Finding(
    "Ray actor", "finding", "found", "not found (their agents are failed; their tasks go back to be run again)"
)
"""The Ray runtime's: each live agent's detached actor looked up by its name in the namespace."""


@dataclass
class Proving:
    """The agents of the last run being found again, and when done how many were."""

    hosts: int
    finding: Finding = AGENT_HOSTS
    started: float = field(default_factory=time.monotonic)
    took_s: float | None = None
    """Set when every proof ended."""
    proved: int = 0
    """Hosts that proved themselves (adopted, or ended as the log asks)."""
    unanswered: int = 0
    """Hosts adopted without a proof: each held the row's socket as the row's pid and did
    not answer in time (stopped or hung); their connection proves them or judges them stuck."""

    def ended(self, proved: int, unanswered: int = 0) -> None:
        """Every proof ended: ``proved`` hosts proved themselves, ``unanswered`` were
        adopted for holding their socket without answering."""
        self.proved = proved
        self.unanswered = unanswered
        self.took_s = time.monotonic() - self.started

    @property
    def title(self) -> str:
        """What is found, for a heading: ``agent hosts``."""
        return f"{self.finding.noun}s"

    def words(self) -> str:
        what = self.finding
        hosts = what.plural(self.hosts)
        if self.took_s is None:
            return f"{what.doing} {hosts} of the last run…"
        left = self.hosts - self.proved - self.unanswered
        one = self.unanswered == 1
        silent = (
            f"; {self.unanswered} adopted without answering (holding {'its' if one else 'their'} socket: stopped"
            f" or hung; {'its connection proves it or judges it' if one else 'their connections prove them or judge them'}"
            " stuck)"
            if self.unanswered
            else ""
        )
        not_proved = f"; {left} {what.missing}" if left else ""
        return f"{what.done} {self.proved} of {hosts} of the last run in {self.took_s:.1f}s{silent}{not_proved}"


PROVING: ContextVar[Callable[[Proving], None] | None] = ContextVar("opsdeck_proving", default=None)
"""Told a :class:`Proving` when the proofs start and again when they end."""


def tell(proving: Proving) -> None:
    said = PROVING.get()
    if said is not None:
        said(proving)
