"""The runtimes of real agents, by the name an operator chooses (``--runtime``).

One declaration per runtime kind: its name, what it is for, whether it takes a
cluster address, what keeps it from starting here, and how to open a database on
it. The command line lists its choices from here and the host opens through here,
so adding a real runtime is one entry (plus its module), never a comparison of names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config
    from ..engine import Engine
    from ..models import WorkflowSpec
    from ..workflow_file import WorkflowFile
    from . import Runtime

Opener = Callable[..., Awaitable["tuple[Engine, Runtime]"]]


@dataclass(frozen=True)
class RealRuntime:
    """A runtime kind whose agents are real processes."""

    name: str
    help: str
    cluster: bool
    """Agents are placed on a cluster (``--address`` joins one)."""
    problem: Callable[[str | None], str | None]
    """Why it cannot be used here with this address (checked before anything is created), or None."""
    open: Opener
    """``await open(db, wfile, specs, config, address=..., subscriber=...)`` -> (engine, runtime)."""


def _local_problem(address: str | None) -> str | None:
    return None


async def _open_local(
    db: str | Path,
    wfile: WorkflowFile,
    specs: list[WorkflowSpec],
    config: Config | None = None,
    *,
    address: str | None = None,
    subscriber: Any = None,
) -> tuple[Engine, Runtime]:
    from .local import open_local

    return await open_local(db, wfile, specs, config, subscriber=subscriber)


def _ray_problem(address: str | None) -> str | None:
    try:
        from .ray import check_address  # Ray is an optional install: imported only when asked for
    except ImportError as exc:
        if exc.name != "ray" and not (exc.name or "").startswith("ray."):
            raise
        return "the Ray runtime needs Ray, which is not installed: pip install -e '.[ray]'"
    if address:
        try:
            check_address(address)
        except ConnectionError as exc:
            return f"cannot reach the Ray cluster: {exc}"
    return None


async def _open_ray(
    db: str | Path,
    wfile: WorkflowFile,
    specs: list[WorkflowSpec],
    config: Config | None = None,
    *,
    address: str | None = None,
    subscriber: Any = None,
) -> tuple[Engine, Runtime]:
    from .ray import open_ray

    return await open_ray(db, wfile, specs, config, address=address, subscriber=subscriber)


REAL_RUNTIMES: dict[str, RealRuntime] = {
    r.name: r
    for r in (
        RealRuntime("local", "agent processes on this machine", False, _local_problem, _open_local),
        RealRuntime("ray", "one Ray actor per agent (pip install -e '.[ray]')", True, _ray_problem, _open_ray),
    )
}


def real_runtime(name: str) -> RealRuntime:
    """The declaration of ``name``; ValueError naming the known ones otherwise."""
    kind = REAL_RUNTIMES.get(name)
    if kind is None:
        raise ValueError(f"runtime {name!r}: the runtimes of real agents are {', '.join(REAL_RUNTIMES)}")
    return kind
