"""An attached console's link: another process hosts the database; the console folds a
:class:`~core.host.replica.Replica` from the host's event stream (or tails the store when
no host runs it) and sends commands to the host's socket. See :mod:`core.host.link`.

Nothing here imports textual.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..commands.executor import resolve_spec, run_command
from ..config import Config
from ..events import Event
from ..store_errors import StoreError, passing
from .client import BUSY_MAX_S, HostClient, HostGone
from .errors import HostBadAnswer, HostBusy, HostFailed, HostRefused, TokenRefused, UndecodableEvent, the_host
from .language import LANGUAGE, services
from .link import ACTOR, Link, refusal
from .replica import Replica, ReplicaGap

POLL_S = 0.5
"""How often an attached link reads health and gauges, and looks for a new host."""
CANCEL_AGAIN_S = 0.1
"""How long closing waits on a follower task before cancelling it again."""
READ_AGAIN_FIRST_S = 0.1
READ_AGAIN_MAX_S = 5.0
"""A store read failed by a passing condition is tried again after the first wait, each
wait twice the last, at most this long."""


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
        self._read_wait_s = 0.0
        """The last wait before reading the store again (0: its last read succeeded)."""
        self._unreadable: str | None = None
        """What was said of a host whose health answer could not be read, while that lasts."""

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
        stopped = "".join(f", {w}" for w in (self.trouble, self.stale) if w)
        if self.gone:
            return f"{ro}{self.gone}{stopped}"
        if self.host_pid is None:
            host = "not attached" if self._unreadable else "no host"  # a host it cannot read is not "no host"
            return f"{ro}replica of {self.db.name}, {host}{stopped}"
        return f"{ro}attached to host pid {self.host_pid}{stopped}"

    # -- the host -------------------------------------------------------------------
    async def _find_host(self) -> bool:
        client = HostClient.for_db(self.db)
        if client is None:
            self._readable_host(None)
            return False
        try:
            health = await client.health()
        except (HostBadAnswer, HostRefused) as exc:  # HostBadAnswer is a HostGone: named first
            await client.close()
            self._unreachable_host(exc)
            return False
        except HostGone:
            await client.close()
            self._readable_host(None)
            return False
        self._readable_host(client.pid)
        self.client = client
        client.on_busy = self._busy
        client.on_broken = self._broken
        self.host_pid = int(health.get("pid") or client.pid or 0) or None
        self.last_pid = self.host_pid
        self._take_health(health)
        self._set_gone(None)
        return True

    def _unreachable_host(self, exc: HostBadAnswer | HostRefused) -> None:
        """A host holds the database but its health answer cannot be read, or refuses
        (busy): said (which host, what it answered) once for that host and answer, and
        shown while it lasts."""
        if isinstance(exc, HostBadAnswer):
            what = f"answered {exc.request} with something the console could not read ({exc.reason})"
            short = "unreadable"
        else:
            what = f"refused {exc.request} ({exc.said})"
            short = exc.short if isinstance(exc, HostBusy) else f"refused {exc.status}"
        message = (
            f"{the_host(exc.pid)} holds {self.db.name} but {what}; the console is not attached to it: it shows "
            f"{self.db.name} as stored, sends no commands, and asks the host again every {POLL_S:g}s"
        )
        if self._unreadable != message:
            self._unreadable = message
            self._set_stale("host", f"host pid {exc.pid}: {short}" if exc.pid else f"host: {short}", message)

    def _readable_host(self, pid: int | None) -> None:
        """After an unreadable health answer: the host (``pid``) answers, or (None) none holds the database."""
        if self._unreadable is None:
            return
        self._unreadable = None
        now = f"{the_host(pid)} answers its health check: attached" if pid else f"no host answers for {self.db.name}"
        self._set_stale("host", None, now)

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
        self._behind.pop("stream", None)  # a busy host's refusals: that host is gone
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
                    except Exception as exc:  # noqa: BLE001 - a store read or the console's own fold failed
                        if await self._read_again(exc):
                            continue
                        return
                    self._read_ok()
                    await asyncio.sleep(POLL_S)
                    continue
                client = self.client
                assert client is not None
            try:
                self._publish_all(await rep.catch_up())
                self._read_ok()
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
            except HostBadAnswer as exc:
                # Not the host gone either: reopening the stream would most likely be answered the same.
                if client is self.client:
                    what = f"it answered {exc.request or 'a request'} with something the console could not read ({exc.reason})"
                    self._stop_following(f"an unreadable answer to {exc.request or 'a request'}", what)
                return
            except HostRefused as exc:
                # The host is there and said no: asking again would be answered the same.
                if client is self.client:
                    self._stop_following(*self._refusal_words(exc))
                return
            except HostGone as exc:
                if client is self.client:
                    await self._host_gone(exc.pid)
            except Exception as exc:  # noqa: BLE001 - a store read or the console's own fold failed, not the host
                if await self._read_again(exc):
                    continue
                return
            if client is self.client and not self._closed:
                # The stream ended without a word: ask whether the host is still there.
                await asyncio.sleep(POLL_S)

    def _busy(self, refusal: HostBusy | None, wait: float) -> None:
        """The host refused the event stream as busy (it is asked again after ``wait``),
        or (None) took it again: said when it starts and when it ends, shown meanwhile."""
        assert self.replica is not None
        if refusal is None:
            self._set_stale(
                "stream",
                None,
                f"{the_host(self.host_pid)} took the console's event stream: following on from "
                f"seq {self.replica.seq:,}",
            )
        elif "stream" not in self._behind:
            self._set_stale(
                "stream",
                refusal.short,
                f"{refusal}; the console asks again, waiting up to {BUSY_MAX_S:g}s between tries; the panes "
                f"stay at seq {self.replica.seq:,} meanwhile and commands still go to the host",
            )
        else:
            self._behind["stream"] = refusal.short  # the count of the last refusal, not said again

    def _broken(self, sentence: str | None, wait: float) -> None:
        """The event stream broke while the host is still there (``sentence``; it is followed
        again after ``wait``), or (None) the host took it again: said each time, shown meanwhile."""
        assert self.replica is not None
        if sentence is None:
            self._set_stale(
                "stream",
                None,
                f"{the_host(self.host_pid)} took the console's event stream again: following on from "
                f"seq {self.replica.seq:,}",
            )
        else:
            self._set_stale("stream", "stream broke, following again", sentence)

    def _refusal_words(self, exc: HostRefused) -> tuple[str, str]:
        """A refused event stream in a few words and in a sentence (:meth:`_stop_following`)."""
        if isinstance(exc, TokenRefused):
            return "token refused", f"it refused the console's token for the event stream ({exc.said})"
        if isinstance(exc, HostFailed):
            return f"the host's error {exc.status}", f"it failed to serve the event stream: its error {exc.said}"
        return f"stream refused, {exc.status}", f"it refused the event stream ({exc.said})"

    async def _read_again(self, exc: Exception) -> bool:
        """After a failed store read or fold: True once a passing condition (a lock, an
        interrupted read) was waited out, said when the first read fails; False once
        following stopped for anything else (reading again would meet it again)."""
        why = passing(exc)
        if why is None:
            self._behind.pop("events", None)
            self._fold_failed(exc)
            return False
        assert self.replica is not None
        if not self._read_wait_s:
            self._set_stale(
                "events",
                f"store busy, reading again ({why})",
                f"the console could not read {self.db.name}: {why} ({type(exc).__name__}); a passing condition: "
                f"it reads again, waiting up to {READ_AGAIN_MAX_S:g}s between tries, and follows on once a read "
                f"succeeds; the panes stay at seq {self.replica.seq:,} meanwhile",
            )
        self._read_wait_s = min(READ_AGAIN_MAX_S, max(READ_AGAIN_FIRST_S, 2 * self._read_wait_s))
        await asyncio.sleep(self._read_wait_s)
        return True

    def _read_ok(self) -> None:
        """A store read succeeded: after failed ones, say that following goes on."""
        if self._read_wait_s:
            assert self.replica is not None
            self._read_wait_s = 0.0
            self._set_stale(
                "events", None, f"the console reads {self.db.name} again and follows on from seq {self.replica.seq:,}"
            )

    def _fold_failed(self, exc: Exception) -> None:
        """Reading or folding the host's events failed here for good: the replica may be
        half way through an event, so the panes stay at what was folded before it and
        nothing more is folded."""
        why = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (StoreError, sqlite3.Error, OSError)):
            what = f"reading {self.db.name} failed ({why}), not a passing condition (a lock, an interruption)"
        else:
            what = f"folding its events failed here ({why})"
        self._stop_following(why, what)

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
                except HostBadAnswer as exc:
                    if client is self.client and "health" not in self._behind:
                        self._set_stale(
                            "health",
                            "health unreadable",
                            f"{the_host(exc.pid)} answered {exc.request} with something the console could not read "
                            f"({exc.reason}); the clock and speed shown are from the last health read, asked again "
                            f"every {POLL_S:g}s",
                        )
                except HostRefused as exc:
                    if client is self.client and "health" not in self._behind:
                        self._set_stale(
                            "health",
                            exc.short if isinstance(exc, HostBusy) else f"health refused {exc.status}",
                            f"{exc}; the clock and speed shown are from the last health read, asked again "
                            f"every {POLL_S:g}s",
                        )
                except HostGone as exc:
                    if client is self.client:
                        await self._host_gone(exc.pid)
                else:
                    if "health" in self._behind:
                        self._set_stale("health", None, f"{the_host(client.pid)} answers its health check again")
            try:
                await self.replica.refresh_telemetry()
            except Exception as exc:  # noqa: BLE001 - the gauges' read failed: said once, read again next time
                if "gauges" not in self._behind:
                    kind = "a passing condition" if passing(exc) else "not a passing condition"
                    self._set_stale(
                        "gauges",
                        f"gauges behind ({type(exc).__name__})",
                        f"the console could not refresh its gauges from {self.db.name}: {type(exc).__name__}: {exc} "
                        f"({kind}); they show the samples read before, and it reads again every {POLL_S:g}s",
                    )
            else:
                if "gauges" in self._behind:
                    self._set_stale("gauges", None, "the console's gauges refresh again")

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
        except HostBadAnswer as exc:
            return refusal(
                "HOST_BAD_ANSWER",
                f"{the_host(exc.pid)} answered the command with something the console could not read ({exc.reason}): "
                "it may have run; see the event log",
            )
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
