"""What the engine's parts see of the engine they serve.

Each part (log, opening, bridge, liveness, checkpoints, operations) holds its engine
as an :class:`EngineCore`: the shared state it reads and writes, and the few calls it
makes on the engine or on a sibling part. Naming them here keeps imports one way: the
facade composes the parts, and no part imports the facade or a sibling it only calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..clock import Clock
from ..collector import Collector
from ..config import Config
from ..events import Event
from ..models import Workflow
from ..projection import State
from ..runtimes import Runtime, RuntimeSink
from ..store import Store
from ..store_tables import CheckpointRow
from ..telemetry import Telemetry
from .held import HeldLimits


@dataclass
class HeldCheckpoint:
    """A checkpoint's row waiting for the commit of its CHECKPOINT_CREATED: both go in one
    transaction (neither can be committed without the other), and come back together
    when it is refused."""

    seq: int
    """Its CHECKPOINT_CREATED's."""
    row: CheckpointRow
    committed: Callable[[], None]
    """Told once the commit holding the row returned (the history entries it wrote are kept)."""


class LogWriter(Protocol):
    """The engine's log as its parts write to it: events (the bridge emits the runtime's
    facts straight to it, one call per event rather than the facade's forwarding call as
    well), the archive, which opening fills with workflows finished since a checkpoint,
    and the limits on what refused commits hold (the bridge pauses new work at them)."""

    held: HeldLimits

    def emit(
        self,
        type_: str,
        component: str,
        scope: str,
        data: dict[str, Any] | None = None,
        actor: str | None = None,
        at: float | None = None,
        sorted_keys: bool = False,
    ) -> Event: ...

    async def store_archive(self, archive: list[tuple[str, int, str, str]]) -> None: ...

    checkpoint_rows: list[HeldCheckpoint]

    def hold_checkpoint(self, held: HeldCheckpoint) -> None: ...


class CheckpointCue(Protocol):
    """The checkpoint owed at the next maintenance (the bridge cues one when a phase completes)."""

    due: str | None


class WorkflowLookup(Protocol):
    """Finding a workflow an operation may act on (checkpoints and resources refuse the rest)."""

    def live(self, wf_id: str) -> Workflow: ...

    def changeable(self, wf_id: str) -> Workflow: ...


class Admission(Protocol):
    """Starting queued workflows (after an operation frees a slot)."""

    def admit(self) -> None: ...


class HeldWork(Protocol):
    """Runs that hit a rate limit: their failure puts them back in the queue (a hold)."""

    def held_failure(self, agent_id: str, task_id: str) -> bool: ...


class EngineCore(RuntimeSink, Protocol):
    """The engine as its parts use it: state, store, clock, runtime, and the shared calls."""

    config: Config
    clock: Clock
    store: Store | None
    state: State
    telemetry: Telemetry
    actor: str
    head_hash: str
    store_lock: asyncio.Lock
    runtime: Runtime | None
    readonly: bool
    auto_checkpoints: bool
    collector: Collector

    @property
    def log(self) -> LogWriter: ...

    @property
    def checkpoints(self) -> CheckpointCue: ...

    @property
    def workflows(self) -> WorkflowLookup: ...

    @property
    def bridge(self) -> Admission: ...

    @property
    def spend(self) -> HeldWork: ...

    def emit(
        self, type_: str, component: str, scope: str, data: dict[str, Any] | None = None, actor: str | None = None
    ) -> Event: ...

    async def flush(self, all_samples: bool = False) -> None: ...

    def request_dispatch(self) -> None: ...

    def release_task(self, key: str, reason: str = "released", actor: str | None = None) -> str | None: ...
