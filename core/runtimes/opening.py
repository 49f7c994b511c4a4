"""Opening a database on a real runtime and bringing it to the workflow file.

Shared by the local and the Ray runtimes (:func:`core.runtimes.local.open_local`,
:func:`core.runtimes.ray.open_ray`): each builds its runtime, then this opens the
engine on it, adopts or fails what a previous console left, and creates what the
database lacks (pools, workflows) and sizes the pools.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
