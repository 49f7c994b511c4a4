"""The host: the one process that writes a database.

A :class:`Host` owns the engine, its runtime, the incident manager and a running
drill, holds the database's lease, and paces the clock: on the simulated runtime
``speed`` simulated seconds per wall second (pausable), on a real runtime a tick
that flushes, runs housekeeping and pumps the incident pipeline. Every command,
from whichever client, goes through :meth:`Host.execute` (the one command path,
then a flush), one at a time with the clock, so a response is only returned once
its events are committed (a query's own audit record follows within one tick). The control endpoint (:mod:`core.host.server`) and the
console's embedded mode are two front doors to the same object.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import VirtualClock
from ..config import Config
from ..engine import Engine, Subscriber
from ..incidents.approval import holding_plans
from ..store_errors import StorageError
from ..timefmt import clock
from .door import Endpoint
from .errors import HostError
from .health import note_drill, status
from .lease import Lease, acquire, host_info
from .parts import HostParts, import_host_parts
from .paths import check_database, host_socket_path
from .storage import StorageWatch, held_words

if TYPE_CHECKING:
    from ..incidents.drills import Drill
    from ..incidents.manager import ApproveMode, IncidentManager
    from ..runtimes import Runtime
    from .control import Advance, HostServices
    from .server import HostServer

__all__ = ["Host", "HostError", "check_database"]

TICK_S = 0.1
"""Wall seconds between steps of the pacing loop."""
MAX_STEP_S = 1.0
"""A stalled loop (a slow command, a loaded machine) catches up at most this much wall time at once."""
ADVANCE_CHUNK_S = 30.0
"""Simulated seconds per step when the clock is run forward as fast as possible."""


_AFTER_COMMAND: ContextVar[list[Advance] | None] = ContextVar("opsdeck_after_command", default=None)
"""Work in steps a command started, which :meth:`Host.execute` waits for after the lock."""


class Host:
    """One live engine, its runtime and pacing, and everything that acts on them."""

    def __init__(
        self,
        engine: Engine,
        runtime: Runtime | None,
        *,
        db: str | Path,
        kind: str,
        lease: Lease | None = None,
        speed: float | None = None,
        approve_mode: ApproveMode = "manual",
        on_close: Callable[[], Awaitable[None]] | None = None,
        incidents: bool = True,
    ) -> None:
        self.engine = engine
        self.runtime = runtime
        self.db = Path(db)
        self.kind = kind
        self.lease = lease
        self.speed = float(engine.config.console.speed if speed is None else speed)
        self.clock_running = self.virtual and self.speed > 0
        self.drill: Drill | None = None
        self.advancing: Advance | None = None
        """The latest ``/host advance`` (running or finished)."""
        self.lock = asyncio.Lock()
        """Commands and clock steps run one at a time: a command sees one instant."""
        self.started_at = time.time()
        self._t0 = time.monotonic()
        self.endpoint = Endpoint(self, host_socket_path(self.db), lease)
        self.closing = False
        self._closed = False
        self._on_close = on_close
        self._changed = asyncio.Event()
        self._soon: asyncio.TimerHandle | None = None
        """The commit :meth:`_commit_soon` scheduled, until it takes the lock."""
        self._soon_task: asyncio.Task[None] | None = None
        held = engine.log.held
        self.storage = StorageWatch(held, lambda: (held.held_events(), engine.telemetry.pending_count()))
        """A full disk, a read-only file system, another process's lock: what and since when."""
        if engine.store is not None:
            engine.store.on_wait = self.storage.waiting
        self.parts = HostParts(self, approve_mode, detecting=incidents)
        rec = engine.state.settings.get("drill")
        if isinstance(rec, dict) and rec.get("status") in ("armed", "injected") and not engine.readonly:
            # The host that ran this drill stopped; its scheduled fault steps went with it.
            engine.set_setting(
                "drill", {**rec, "status": "stopped", "since": round(engine.clock.now(), 3)}, actor="host"
            )

    @property
    def manager(self) -> IncidentManager:
        """The incident pipeline (made now if it was not: :class:`.parts.HostParts`)."""
        return self.parts.make()[0]

    @property
    def services(self) -> HostServices:
        """What the commands this host runs can use (made now if they were not)."""
        return self.parts.make()[1]

    # -- opening ----------------------------------------------------------------
    @classmethod
    async def open_with(
        cls,
        db: str | Path,
        opener: Callable[[], Awaitable[tuple[Engine, Runtime | None]]],
        *,
        kind: str,
        create: bool = False,
        speed: float | None = None,
        approve_mode: ApproveMode = "manual",
        on_close: Callable[[Runtime | None], Awaitable[None]] | None = None,
        incidents: bool = True,
    ) -> Host:
        """The generic factory: take the lease of ``db``, then ``opener()`` the engine
        and runtime (any runtime: sim, local, ray). The lease is released if opening
        fails; :class:`~core.host.lease.LeaseHeld` says who holds it otherwise."""
        path = check_database(db, create)
        lease = acquire(path, host_info(path, kind))  # the socket is recorded once it listens
        try:
            engine, runtime = await opener()
            await engine.flush()
            if incidents:
                import_host_parts()  # while the agents start (.parts)
        except BaseException:
            lease.release()
            raise

        async def close_runtime() -> None:
            if on_close is not None:
                await on_close(runtime)

        return cls(
            engine,
            runtime,
            db=path,
            kind=kind,
            lease=lease,
            speed=speed,
            approve_mode=approve_mode,
            on_close=close_runtime,
            incidents=incidents,
        )

    @classmethod
    async def open_sim(
        cls,
        db: str | Path,
        config: Config | None = None,
        *,
        demo: bool = False,
        seed: int = 0,
        speed: float | None = None,
        recurring: bool = False,
        create: bool = False,
        approve_mode: ApproveMode = "manual",
    ) -> Host:
        """A host on the simulated runtime (``create``: a missing database is made;
        ``demo``: an empty one gets the demo fleet; ``recurring``: it keeps resubmitting)."""
        from ..session import open_sim

        async def opener() -> tuple[Engine, Runtime | None]:
            eng = await open_sim(db, config, seed=seed, demo=demo, recurring=recurring)
            return eng, eng.runtime

        return await cls.open_with(
            db, opener, kind="sim", create=create or demo, speed=speed, approve_mode=approve_mode
        )

    @classmethod
    async def open_local(
        cls,
        db: str | Path,
        wfile: Any,
        specs: list[Any],
        config: Config | None = None,
        *,
        subscriber: Subscriber | None = None,
        approve_mode: ApproveMode = "manual",
        runtime: str = "local",
        address: str | None = None,
        incidents: bool = True,
    ) -> Host:
        """A host on real agents (``opsdeck run`` / ``serve``): agent processes on this
        machine (``runtime="local"``) or Ray actors (``"ray"``: a local Ray instance, or
        the cluster at ``address``). A missing database is made (the workflow file is
        what to run); live agents of a killed host are adopted. Without ``incidents`` no
        incident is detected (:class:`.parts.HostParts`)."""
        from ..runtimes.real import real_runtime

        kind = real_runtime(runtime)

        async def opener() -> tuple[Engine, Runtime | None]:
            return await kind.open(db, wfile, specs, config, address=address, subscriber=subscriber)

        async def shutdown(rt: Runtime | None) -> None:
            if rt is not None:
                await rt.shutdown()

        return await cls.open_with(
            db,
            opener,
            kind=runtime,
            create=True,
            speed=1.0,
            approve_mode=approve_mode,
            on_close=shutdown,
            incidents=incidents,
        )

    # -- what it is -------------------------------------------------------------
    @property
    def virtual(self) -> bool:
        return isinstance(self.engine.clock, VirtualClock)

    @property
    def socket_path(self) -> Path:
        return host_socket_path(self.db)

    def status(self) -> dict[str, Any]:
        """What ``GET /v1/health`` and ``/host status`` report (:func:`.health.status`)."""
        return status(self, time.monotonic() - self._t0)

    # -- the one command path -----------------------------------------------------
    async def execute(self, text: str, actor: str = "operator") -> dict[str, Any]:
        """Run one command and commit its events before answering. A command that
        changed nothing (a query) acknowledges nothing new: it is answered before its
        COMMAND_EXECUTED record is committed, which the next commit (within
        :data:`TICK_S`) takes with any others; a crash in between loses the record of
        a query, never a change that was answered. A command that started work in steps (``/host advance``) is answered when that work ends; the
        lock is free meanwhile, so other commands run between its steps."""
        after: list[Advance] = []
        token = _AFTER_COMMAND.set(after)
        try:
            async with self.lock:
                from ..commands import run_command  # imported with the language (.parts)

                resp = await run_command(self.services, text, actor=actor, commit=True)
                details = resp.get("error", {}).get("details", {}) if resp.get("status") == "error" else {}
                if str(resp.get("error", {}).get("code", "")).startswith("STORAGE_"):
                    err = StorageError(details["kind"], details["path"], resp["error"]["message"])
                    self.storage.refused(err)
                elif self.engine.unflushed:
                    self._commit_soon()  # a command that changed nothing: its record, answered uncommitted
                else:
                    self.storage.accepted()
        finally:
            _AFTER_COMMAND.reset(token)
        self._wake()
        for job in after:
            if job.task is not None:
                await job.task
            if resp.get("status") == "success" and isinstance(resp.get("result"), dict):
                resp["result"]["advance"] = job.report(self.engine.clock.now())
                resp["result"]["clock"] = round(self.engine.clock.now(), 3)
                resp["result"]["summary"] = job.outcome()
        return resp

    def _commit_soon(self) -> None:
        """Commit what is held within :data:`TICK_S` (the records of commands that changed
        nothing), whether or not a pacing loop runs: one commit for all that arrive meanwhile."""
        if self._soon is None and not self.closing:
            self._soon = asyncio.get_running_loop().call_later(TICK_S, self._commit_held)

    def _commit_held(self) -> None:
        async def commit() -> None:
            async with self.lock:
                self._soon = None
                if not self.closing:
                    await self.commit()
            self._wake()

        self._soon_task = asyncio.create_task(commit(), name="opsdeck-host-commit")

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Events as the engine publishes them (see :meth:`Engine.subscribe`)."""
        return self.engine.subscribe(fn)

    # -- committed-change notification (the event stream waits on it) --------------
    def change_event(self) -> asyncio.Event:
        """An event set at the next commit after this call: take it *before* reading
        the store, then wait on it when nothing new was there (no lost wake-ups)."""
        return self._changed

    def _wake(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    # -- the clock ----------------------------------------------------------------
    def pause_clock(self) -> None:
        self.clock_running = False

    def run_clock(self, speed: float | None = None) -> None:
        if speed is not None:
            self.speed = float(speed)
        if self.speed <= 0:
            self.speed = float(self.engine.config.console.speed)
        self.clock_running = True

    async def step(self, seconds: float) -> None:
        """One step of simulated time (call with :attr:`lock` held): a running drill
        injects its fault on time; the incident pipeline detects, plans and executes."""
        drill = self.drill
        if drill is not None and not drill.done:
            await drill.step(seconds)
            note_drill(self.engine, self.drill)
        else:
            await self.engine.advance(seconds)
            await self.parts.pump()
        await self.engine.flush()

    async def advance(self, seconds: float, job: Advance | None = None) -> None:
        """Run the simulated clock ``seconds`` forward as fast as it goes, one step
        (:data:`ADVANCE_CHUNK_S`) per turn of the lock, so commands from clients run
        between steps. Stops early when the host closes or :meth:`cancel_advance`."""
        if not self.virtual:
            raise HostError("this host runs in real time: its clock cannot be advanced")
        end = self.engine.clock.now() + seconds
        while self.engine.clock.now() < end and not self.closing and not (job is not None and job.cancelled):
            async with self.lock:
                await self.step(min(ADVANCE_CHUNK_S, end - self.engine.clock.now()))
            self._wake()
            await asyncio.sleep(0)

    def start_advance(self, seconds: float) -> Advance:
        """Begin :meth:`advance` in the background (``/host advance``): the command
        answers at once, commands and a cancel interleave with the steps."""
        if not self.virtual:
            raise HostError("this host runs in real time: its clock cannot be advanced")
        if self.advancing is not None and not self.advancing.done:
            raise HostError(
                f"the clock is already advancing to {clock(self.advancing.target)}; /host advance cancel stops it"
            )
        now = self.engine.clock.now()
        from .control import Advance

        job = Advance(start=now, target=now + seconds)
        self.advancing = job

        async def run() -> None:
            try:
                await self.advance(seconds, job)
            except Exception as exc:  # noqa: BLE001 - recorded on the job, shown by /host status
                job.error = f"{type(exc).__name__}: {exc}"
            finally:
                job.done = True
                job.reached = self.engine.clock.now()
                self._wake()

        job.task = asyncio.create_task(run(), name="opsdeck-host-advance")
        waiting = _AFTER_COMMAND.get()
        if waiting is not None:
            waiting.append(job)  # Host.execute answers once it is done
        return job

    def cancel_advance(self) -> Advance | None:
        """Stop a running advance after its current step; the job, or None if none ran."""
        job = self.advancing
        if job is None or job.done:
            return None
        job.cancelled = True
        return job

    async def tick(self, wall_seconds: float) -> None:
        """One beat of the pacing loop (lock held)."""
        eng = self.engine
        if self.virtual:
            if self.clock_running and not self.held_by():
                await self.step(min(wall_seconds, MAX_STEP_S) * self.speed)
            else:
                await eng.flush()
        else:
            await eng.flush()
            await eng.maintain()
            if self.drill is not None:  # a drill on real agents: its fault comes on the wall clock
                await self.drill.inject_when_due()
            await self.parts.pump()
            note_drill(self.engine, self.drill)
            await eng.flush()

    async def commit(self) -> bool:
        """Flush everything held, events and waiting metric samples too (lock held); a refusal
        by the storage is noted, not raised: it stays held for the next try. Whether all is committed."""
        try:
            await self.engine.flush(all_samples=True)
        except StorageError as exc:
            self.storage.refused(exc)
            return False
        self.storage.accepted()
        return True

    async def beat(self, wall_seconds: float) -> None:
        """One beat of :meth:`run` (lock held): while the storage refuses writes, only
        the commit of what is held is retried (a simulated clock waits); otherwise a
        tick. A refusal keeps the host up."""
        if self.storage.failing and not await self.commit():
            return
        try:
            await self.tick(wall_seconds)
        except StorageError as exc:
            self.storage.refused(exc)
        else:
            self.storage.accepted()

    async def run(self, stop: asyncio.Event, until: Callable[[], bool] | None = None) -> None:
        """Pace the clock until ``stop`` is set (or ``until()`` becomes true)."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not stop.is_set() and not self.closing and not (until is not None and until()):
            try:
                await asyncio.wait_for(stop.wait(), TICK_S)
            except TimeoutError:
                pass
            now = loop.time()
            dt, last = now - last, now
            async with self.lock:
                await self.beat(dt)
            self._wake()

    def held_by(self) -> list[str]:
        """The plans holding the running simulated clock (``[approval] hold_clock``)."""
        return holding_plans(self.engine.state.plans, self.engine.config.approval) if self.virtual else []

    # -- drills -------------------------------------------------------------------
    def start_drill(self, name: str) -> Drill:
        """Arm a drill on this host's fleet (manual approval); the pacing loop steps it."""
        if self.drill is not None and not self.drill.done:
            raise HostError(f"drill {self.drill.name!r} is still running")
        from ..incidents.drills import start_drill

        self.drill = start_drill(self.engine, name, approve="manual", manager=self.manager)
        note_drill(self.engine, self.drill)
        return self.drill

    def cancel_drill(self, actor: str) -> Drill:
        """Cancel the running drill (see :meth:`Drill.cancel`): the slot is free again."""
        d = self.drill
        if d is None or d.done:
            last = f"; the last one, {d.name!r}, has ended" if d is not None else ""
            raise HostError(f"no drill is running{last}")
        d.cancel()
        note_drill(self.engine, self.drill, actor)
        return d

    # -- the endpoint, closing ----------------------------------------------------
    async def serve(self, listen: str | None = None) -> None:
        """Open the control endpoint (:class:`.door.Endpoint`): the unix socket, and TCP with ``listen``."""
        await self.endpoint.open(listen)

    @property
    def server(self) -> HostServer | None:
        """The endpoint's server once loaded."""
        return self.endpoint.server

    async def close(self) -> None:
        """Stop serving, stop the runtime, close the engine, release the lease."""
        if self._closed:
            return
        self._closed = True
        self.closing = True
        if self._soon is not None:
            self._soon.cancel()  # what it would commit, the engine's close commits
        self._wake()
        if self.advancing is not None and self.advancing.task is not None:
            await asyncio.gather(self.advancing.task, return_exceptions=True)  # it stops at its next step
        try:
            await self.endpoint.close()
            async with self.lock:
                if self._on_close is not None:
                    await self._on_close()
                try:
                    await self.engine.close()
                except StorageError as exc:  # never acknowledged: said, not raised
                    self.storage.refused(exc)
                    held = held_words(*self.storage.holding())
                    self.storage.say(
                        f"closing: {held} held in memory were not committed (never acknowledged to a client): {exc}"
                    )
        finally:
            if self.lease is not None:
                self.lease.release()
