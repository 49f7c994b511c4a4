"""The console's one link to a fleet: a projection to read, ``send`` to act, events to follow.

The console's panes read ``state``, ``telemetry``, ``config``, ``utilisation()`` and
``clock.now()``; every action is one slash command sent with :meth:`Link.send`; new
events arrive through :meth:`Link.subscribe`. Two implementations, so an embedded
console and an attached one are the same code:

- :class:`EmbeddedLink`: the console runs the host in its own process (``opsdeck
  demo``, ``opsdeck run FILE``) and reads the host's live projection;
- :class:`~core.host.attached.AttachedLink`: another process holds the database; the console reads a
  :class:`~core.host.replica.Replica` kept current from the host's event stream and
  sends commands to its socket. Read-only, it refuses every mutation and answers
  queries from the replica; with no host at all it tails the store.

Nothing here imports textual.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..commands.responses import error
from ..config import Config
from ..engine.checkpoints import unrecorded_words
from ..events import Event

if TYPE_CHECKING:
    from ..projection import State
    from ..telemetry import Telemetry
    from .host import Host

ACTOR = "operator"
UNHEARD_MAX = 20
"""Messages kept for the first listener (:meth:`Link.on_trouble`): the last ones said."""

EventFn = Callable[[Event], None]
StatusFn = Callable[[str | None], None]
TroubleFn = Callable[[str], None]


def refusal(code: str, message: str) -> dict[str, Any]:
    return error(code, message, {}, [])


class Link:
    """What the console reads and how it acts; see the module docstring."""

    kind = "embedded"
    readonly = False

    def __init__(self) -> None:
        self._subscribers: list[EventFn] = []
        self._status: list[StatusFn] = []
        self._trouble: list[TroubleFn] = []
        self._behind: dict[str, str] = {}
        """What is behind (:attr:`stale`), by part: ``events``, ``gauges``."""
        self._unheard: list[str] = []
        """What was said before anyone listened (while opening): told to the first listener."""

    # -- what the panes read --------------------------------------------------------
    @property
    def source(self) -> Any:
        """The engine (live or replica) whose projection the panes read."""
        raise NotImplementedError

    @property
    def state(self) -> State:
        return self.source.state

    @property
    def telemetry(self) -> Telemetry:
        return self.source.telemetry

    @property
    def config(self) -> Config:
        return self.source.config

    def utilisation(self) -> dict[str, float]:
        return self.source.utilisation()

    async def archived(self, wf_id: str) -> dict[str, Any] | None:
        """A finished workflow's record (its tasks) from the archive: for detail screens."""
        return await self.source.archived(wf_id)

    @property
    def clock(self) -> Any:
        return self.source.clock

    @property
    def committed_seq(self) -> int:
        """The last sequence number the store holds (what the log pane can read)."""
        return self.state.seq

    # -- host facts -----------------------------------------------------------------
    host_pid: int | None = None
    clock_running = False
    speed = 0.0
    gone: str | None = None
    """Why actions cannot reach a host right now (``the host (pid N) is gone``), or None."""
    trouble: str | None = None
    """What stopped on the console's side while the host may still run (its clock, the
    following of its events), in a few words for the header; None when nothing did."""

    @property
    def stale(self) -> str | None:
        """What is behind on the console's side for now and tried again (a store read
        that met a lock, gauges not refreshed), in a few words; None when nothing is."""
        return "; ".join(self._behind.values()) or None

    def describe(self) -> str:
        raise NotImplementedError

    # -- acting and following ---------------------------------------------------------
    async def send(self, text: str) -> dict[str, Any]:
        raise NotImplementedError

    def subscribe(self, fn: EventFn) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    def on_status(self, fn: StatusFn) -> None:
        """``fn(message)`` when the host goes (a message) or comes back (None)."""
        self._status.append(fn)

    def on_trouble(self, fn: TroubleFn) -> None:
        """``fn(message)`` once when something stops that does not refuse actions, or
        falls behind for now (:attr:`stale`) and when it catches up again: the message
        says what failed (the exception's type and words) and what goes on. What was said
        before the first ``fn`` (while the link opened) is told to it at once."""
        self._trouble.append(fn)
        unheard, self._unheard = self._unheard, []
        for message in unheard:
            fn(message)

    def _set_trouble(self, short: str, message: str) -> None:
        self.trouble = short
        self._say(message)

    def _set_stale(self, part: str, short: str | None, message: str) -> None:
        """``part`` is behind (``short`` says how) or, with None, caught up: said."""
        if short is None:
            self._behind.pop(part, None)
        else:
            self._behind[part] = short
        self._say(message)

    def _say(self, message: str) -> None:
        if not self._trouble:
            self._unheard = [*self._unheard[-(UNHEARD_MAX - 1) :], message]
        for fn in list(self._trouble):
            fn(message)

    def _publish(self, ev: Event) -> None:
        for fn in list(self._subscribers):
            fn(ev)

    def _set_gone(self, message: str | None) -> None:
        if message == self.gone:
            return
        self.gone = message
        for fn in list(self._status):
            fn(message)

    async def start(self) -> None:
        """Begin running (embedded) or following (attached)."""

    async def close(self) -> None:
        raise NotImplementedError


class EmbeddedLink(Link):
    """The host runs in this process; the panes read its engine directly."""

    kind = "embedded"

    def __init__(self, host: Host, listen: str | None = None) -> None:
        super().__init__()
        self.host = host
        self.listen = listen
        """``HOST:PORT``: the endpoint on TCP too (commands need the token)."""
        self.host_pid = os.getpid()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe = host.subscribe(self._publish)
        host.storage.notify = self._storage_said
        unrecorded = host.engine.opening.unrecorded
        if unrecorded:  # said to the console's first listener
            self._say(f"{host.db.name}: {unrecorded_words(unrecorded)}; nothing was removed")

    @property
    def source(self) -> Any:
        return self.host.engine

    @property
    def committed_seq(self) -> int:
        return self.host.engine.committed_seq

    @property
    def clock_running(self) -> bool:  # type: ignore[override]
        return bool(self.host.clock_running) and self.trouble is None

    @property
    def speed(self) -> float:  # type: ignore[override]
        return float(self.host.speed)

    def describe(self) -> str:
        return f"embedded host pid {self.host_pid}" + (f", {self.trouble}" if self.trouble else "")

    def _storage_said(self, message: str) -> None:
        """The host's storage notices (writes refused, new work paused, writes accepted
        again): said, and shown as behind while writes are refused."""
        st = self.host.storage
        short = None
        if st.problem is not None:
            short = f"storage {st.problem.kind}" + (", new work paused" if st.limits.paused else "")
        self._set_stale("storage", short, message)

    async def send(self, text: str) -> dict[str, Any]:
        return await self.host.execute(text, ACTOR)

    async def start(self) -> None:
        """Open the host's endpoint (other consoles, ``exec`` and scripts attach to it)
        and start pacing its clock."""
        if self._task is None:
            await self.host.serve(self.listen)
            self._task = asyncio.create_task(self.host.run(self._stop))
            self._task.add_done_callback(self._ran)

    def _ran(self, task: asyncio.Task[None]) -> None:
        """The pacing loop ended: if by an error, say which (a clean stop says nothing)."""
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            return
        why = f"{type(exc).__name__}: {exc}"
        self._set_trouble(
            f"clock stopped ({why})",
            f"the host's clock stopped: {why}; commands still run and commit, the clock no longer moves by itself",
        )

    async def close(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await task
            except Exception:  # noqa: BLE001 - already said by _ran; the close goes on to commit
                pass
        self._unsubscribe()
        await self.host.close()
