"""The console's one link to a fleet: a projection to read, ``send`` to act, events to follow.

The console's panes read ``state``, ``telemetry``, ``config``, ``utilisation()`` and
``clock.now()``; every action is one slash command sent with :meth:`Link.send`; new
events arrive through :meth:`Link.subscribe`. Two implementations, so an embedded
console and an attached one are the same code:

- :class:`EmbeddedLink`: the console runs the host in its own process (``opsdeck
  demo``, ``opsdeck run FILE``) and reads the host's live projection;
- :class:`AttachedLink`: another process holds the database; the console reads a
  :class:`~core.host.replica.Replica` kept current from the host's event stream and
  sends commands to its socket. Read-only, it refuses every mutation and answers
  queries from the replica; with no host at all it tails the store.

Nothing here imports textual.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..commands.executor import resolve_spec, run_command
from ..commands.responses import error
from ..config import Config
from ..events import Event
from .client import HostClient, HostGone
from .errors import UndecodableEvent, the_host
from .language import LANGUAGE, services
from .replica import Replica, ReplicaGap

if TYPE_CHECKING:
    from ..projection import State
    from ..telemetry import Telemetry
    from .host import Host

ACTOR = "operator"
POLL_S = 0.5
"""How often an attached link reads health and gauges, and looks for a new host."""
CANCEL_AGAIN_S = 0.1
"""How long closing waits on a follower task before cancelling it again."""

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
        """``fn(message)`` once when something stops that does not refuse actions: the
        message says what failed (the exception's type and words) and what goes on."""
        self._trouble.append(fn)

    def _set_trouble(self, short: str, message: str) -> None:
        self.trouble = short
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

    @property
    def source(self) -> Any:
        return self.host.engine

    @property
    def committed_seq(self) -> int:
        eng = self.host.engine
        return eng.state.seq - eng.unflushed

    @property
    def clock_running(self) -> bool:  # type: ignore[override]
        return bool(self.host.clock_running) and self.trouble is None

    @property
    def speed(self) -> float:  # type: ignore[override]
        return float(self.host.speed)

    def describe(self) -> str:
        return f"embedded host pid {self.host_pid}" + (f", {self.trouble}" if self.trouble else "")

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


class HostClock:
    """The host's clock as an attached client sees it: the last reported time, moved
    forward at the host's speed while it runs (a wall clock for real agents)."""

    def __init__(self, link: AttachedLink) -> None:
        self.link = link
        self._shown = 0.0

    @property
    def virtual(self) -> bool:
        return self.link.simulated

    def now(self) -> float:
        link = self.link
        t = link.state.clock
        if link.host_pid is None or link.gone is not None:
            return t  # no host: the time of the last committed event
        if not self.virtual:
            return time.time()
        if link.reported_clock is not None:
            t = max(t, link.reported_clock)
            if link.clock_running:
                ahead = min(time.monotonic() - link.reported_at, 2 * POLL_S)  # never far past the host's last word
                t = max(t, link.reported_clock + ahead * link.speed)
        self._shown = max(self._shown, t)
        return self._shown


class AttachedLink(Link):
    """Another process hosts the database: read a replica, act through its socket."""

    kind = "attached"

    def __init__(
        self, db: str | Path, config: Config | None = None, readonly: bool = False, replica: Replica | None = None
    ) -> None:
        super().__init__()
        self.db = Path(db)
        self.config_in = config
        self.readonly = readonly
        self.replica = replica
        self.client: HostClient | None = None
        self.simulated = True
        self.reported_clock: float | None = None
        self.reported_at = 0.0
        self.clock_running = False
        self.speed = 0.0
        self.last_pid: int | None = None
        self._clock = HostClock(self)
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def open(self) -> AttachedLink:
        """Fold the replica (unless given one) and find the host."""
        if self.replica is None:
            self.replica = await Replica.open(self.db, self.config_in)
        await self.connect()
        return self

    async def connect(self) -> bool:
        """Find the database's live host (if any) and read its health."""
        return await self._find_host()

    @property
    def source(self) -> Any:
        assert self.replica is not None
        return self.replica.engine

    @property
    def clock(self) -> Any:
        return self._clock

    def describe(self) -> str:
        ro = "read-only, " if self.readonly else ""
        stopped = f", {self.trouble}" if self.trouble else ""
        if self.gone:
            return f"{ro}{self.gone}{stopped}"
        if self.host_pid is None:
            return f"{ro}replica of {self.db.name}, no host{stopped}"
        return f"{ro}attached to host pid {self.host_pid}{stopped}"

    # -- the host -------------------------------------------------------------------
    async def _find_host(self) -> bool:
        client = HostClient.for_db(self.db)
        if client is None:
            return False
        try:
            health = await client.health()
        except HostGone:
            await client.close()
            return False
        self.client = client
        self.host_pid = int(health.get("pid") or client.pid or 0) or None
        self.last_pid = self.host_pid
        self._take_health(health)
        self._set_gone(None)
        return True

    def _take_health(self, health: dict[str, Any]) -> None:
        """``GET /v1/health``: pid, runtime, seq, clock, simulated, speed, clock_running."""
        self.simulated = bool(health.get("simulated", True))
        self.clock_running = bool(health.get("clock_running", False))
        self.speed = float(health.get("speed") or 0.0)
        now = health.get("clock")
        if isinstance(now, (int, float)):
            self.reported_clock = float(now)
            self.reported_at = time.monotonic()

    async def _host_gone(self, pid: int | None) -> None:
        pid = pid or self.host_pid or self.last_pid
        client, self.client = self.client, None
        self.host_pid = None
        self.clock_running = False
        self._set_gone(f"{the_host(pid)} is gone")
        if client is not None:
            await client.close()

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._follow()), asyncio.create_task(self._poll())]

    async def _follow(self) -> None:
        """Stream the host's committed events into the replica; find the next host when
        this one goes; with no host, tail the store."""
        assert self.replica is not None
        rep = self.replica
        while not self._closed:
            client = self.client
            if client is None:
                if not await self._find_host():
                    try:
                        self._publish_all(await rep.catch_up())
                    except Exception as exc:  # noqa: BLE001 - the console's own fold failed
                        self._fold_failed(exc)
                        return
                    await asyncio.sleep(POLL_S)
                    continue
                client = self.client
                assert client is not None
            try:
                self._publish_all(await rep.catch_up())
                async for ev in client.events(since=rep.seq):
                    if self._closed:
                        break
                    try:
                        if rep.apply(ev):
                            self._publish(ev)
                    except ReplicaGap:
                        self._publish_all(await rep.catch_up())
            except UndecodableEvent as exc:
                # Not the host gone: reading on (or from the same seq again) meets the same event.
                what = f"it sent an event the console could not decode ({exc.where}: {exc.why})"
                self._stop_following(f"an undecodable event, {exc.where}", what)
                return
            except HostGone as exc:
                if client is self.client:
                    await self._host_gone(exc.pid)
            except Exception as exc:  # noqa: BLE001 - the console's own fold failed, not the host
                self._fold_failed(exc)
                return
            if client is self.client and not self._closed:
                # The stream ended without a word: ask whether the host is still there.
                await asyncio.sleep(POLL_S)

    def _fold_failed(self, exc: Exception) -> None:
        """Folding the host's events failed here: the replica may be half way through an
        event, so the panes stay at what was folded before it and nothing more is folded."""
        why = f"{type(exc).__name__}: {exc}"
        self._stop_following(why, f"folding its events failed here ({why})")

    def _stop_following(self, short: str, what: str) -> None:
        """Nothing more is folded, for the reason ``what``. The host is not known to be
        gone: commands still reach it while it answers."""
        assert self.replica is not None
        if self.client is None:  # tailing the store: no host to send commands to
            whom, still = self.db.name, f"no host runs {self.db.name}"
        else:
            whom, still = the_host(self.host_pid), "the host may still be running"
            if not self.readonly:
                still += " and commands still go to it"
        self._set_trouble(
            f"not following ({short})",
            f"the console stopped following {whom}: {what}; {still}; "
            f"the panes stay at seq {self.replica.seq:,}; reopen the console to follow again",
        )

    def _publish_all(self, evs: list[Event]) -> None:
        for ev in evs:
            self._publish(ev)

    async def _poll(self) -> None:
        """Health (clock, speed, liveness) and gauges, twice a second."""
        assert self.replica is not None
        while not self._closed:
            await asyncio.sleep(POLL_S)
            client = self.client
            if client is not None:
                try:
                    self._take_health(await client.health())
                except HostGone as exc:
                    if client is self.client:
                        await self._host_gone(exc.pid)
            try:
                await self.replica.refresh_telemetry()
            except Exception:  # noqa: BLE001 - a busy or vanished store: try again next time
                pass

    # -- acting ---------------------------------------------------------------------
    async def send(self, text: str) -> dict[str, Any]:
        spec = resolve_spec(text, LANGUAGE)
        mutates = spec is None or spec.mutates
        if self.readonly and spec is not None and mutates:
            return refusal("READ_ONLY", f"read-only console: {spec.name} would change state and was refused")
        if self.readonly or (spec is not None and not mutates and self.client is None):
            # A query answered from the replica: nothing is recorded in the host's log.
            return await run_command(services(self.source), text, ACTOR)
        client = self.client
        if client is None:
            why = self.gone or f"no host runs {self.db}"
            name = spec.name if spec is not None else text.strip()[:40]
            return refusal("HOST_GONE", f"{why}: {name} was refused; nothing was sent")
        try:
            res = await client.send(text, ACTOR)
        except HostGone as exc:
            await self._host_gone(exc.pid)
            return refusal("HOST_GONE", f"{self.gone}: the command may not have run; see the event log")
        seq = (res.get("metrics") or {}).get("seq")
        if isinstance(seq, int) and self.replica is not None and seq > self.replica.seq and self.trouble is None:
            # Show the outcome in the next frame, not when the stream gets there.
            self._publish_all(await self.replica.catch_up(upto=seq))
        return res

    async def close(self) -> None:
        self._closed = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            # Python 3.11's asyncio.wait_for loses a cancel that arrives as the read it
            # waits on completes (the stream reads with it): cancel again until it ends.
            while not (await asyncio.wait({t}, timeout=CANCEL_AGAIN_S))[0]:
                t.cancel()
            if not t.cancelled():
                t.exception()  # retrieved: whatever ended the follower, the close goes on
        self._tasks = []
        client, self.client = self.client, None
        if client is not None:
            await client.close()
        if self.replica is not None:
            await self.replica.close()
