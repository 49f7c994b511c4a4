"""The engine: applies operations as events, drives the runtime, persists the log.

Every change goes through :meth:`Engine.emit`, which numbers the event, chains its
hash, folds it into the projection, queues it for the store (group commit) and tells
subscribers. The engine implements :class:`~core.runtimes.RuntimeSink`: runtimes
report facts here and the engine turns them into events and dispatches more work.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .clock import Clock, VirtualClock
from .config import Config
from .event_data import SCHEMAS, EventDataError, check_event
from .events import GENESIS_HASH, Event, EventHeader, canonical_envelope, canonical_json, chain_hash
from .merge import TaskView, merge
from .models import (
    LIVE_AGENT,
    TERMINAL_WORKFLOW,
    AgentStatus,
    PhaseSpec,
    Resources,
    Task,
    TaskSpec,
    TaskStatus,
    WorkflowSpec,
    WorkflowStatus,
)
from .projection import State, hash_snapshot
from .runtimes import Runtime
from .runtimes.limits import cpu_limits
from .scheduler import dispatch
from .store import Store, StoreError, row_hash_ok
from .telemetry import Telemetry

Subscriber = Callable[[Event], None]
FLUSH_EVERY = 2000
FULL_CHECK_ROWS = 100_000
"""Opening checks the whole chain of a log up to this long; a longer one from its checkpoint on."""
SUBMIT_CHUNK = 2000
_TASK_LIST = TypeAdapter(list[TaskSpec])


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic GC while building many objects that are not garbage."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class EngineError(Exception):
    """An operation that cannot be applied; nothing was changed."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


_VALID_HEADERS: set[tuple[str, str, str]] = set()


def _check_header(type_: str, component: str, scope: str) -> None:
    key = (type_, component, scope)
    if key in _VALID_HEADERS:
        return
    EventHeader(type=type_, component=component, scope=scope, data={})
    _VALID_HEADERS.add(key)


@dataclass
class Unit:
    """A unit of work (one command): its events are kept together or not at all."""

    seq: int
    head: str
    point: dict[str, Any] | None = None
    """The state before the unit's first event (taken then, so read-only work costs nothing)."""
    committed: bool = False
    """A flush inside the unit committed some of its events: they can no longer be undone."""


class Engine:
    """One orchestration core over one store, clock and runtime."""

    def __init__(
        self,
        config: Config | None = None,
        clock: Clock | None = None,
        runtime: Runtime | None = None,
        store: Store | None = None,
        actor: str = "engine",
    ) -> None:
        self.config = config or Config()
        self.clock: Clock = clock or VirtualClock()
        self.store = store
        self.state = State(collect_archive=True)
        self.telemetry = Telemetry()
        self.actor = actor
        self.head_hash = GENESIS_HASH
        self._buffer: list[tuple[Any, ...]] = []
        self._subscribers: list[Subscriber] = []
        self._observers: list[Subscriber] = []
        self._uncommitted: list[Event] = []
        self._unit: Unit | None = None
        """Events in ``_buffer``: subscribers see them once the store has them."""
        self._sample_hooks: list[Callable[[float], None]] = []
        self._memory_checkpoints: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._memory_archive: dict[tuple[str, int], str] = {}
        """Archive records where there is no store to hold them (or it is read-only)."""
        self._dispatch_pending = False
        self.store_lock = asyncio.Lock()
        """Serialises store writes: with a wall clock several tasks flush (runtime, console)."""
        self.runtime: Runtime | None = None
        self._restoring = False
        """While attach_runtime brings running tasks back: their start is not news."""
        self.readonly = False
        self._checkpoint_due: str | None = None
        self._last_checkpoint_at: float | None = None
        self._last_prune_at = 0.0
        self._last_health_check = float("-inf")
        self.auto_checkpoints = True
        if runtime is not None:
            self.attach_runtime(runtime)

    # -- opening ----------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        path: str | Path,
        config: Config | None = None,
        clock: Clock | None = None,
        runtime: Runtime | None = None,
        readonly: bool = False,
    ) -> Engine:
        """Open a database and rebuild the projection: latest good checkpoint + replay."""
        store = await Store.open(path, readonly=readonly)
        try:
            eng = cls(config=config, clock=clock, store=store)
            eng.readonly = readonly
            await eng.load()
            if isinstance(eng.clock, VirtualClock) and eng.state.clock > eng.clock.now():
                eng.clock.run_until(eng.state.clock)
            if runtime is not None:
                eng.attach_runtime(runtime)
        except BaseException as exc:
            await store.close()  # never leave the connection's thread behind: the process would hang
            if isinstance(exc, sqlite3.Error):
                raise store.damaged(str(exc)) from None
            raise
        return eng

    async def load(self) -> None:
        """Latest good checkpoint, then the rows after it, each checked as it is replayed.

        The quick integrity check of every open: the rows from the checkpoint's own
        row to the head must chain (sequence, previous hash, recomputed hash) and
        fold (and, for a log of at most FULL_CHECK_ROWS rows, the rows before it must
        chain too). Damage there, or any checkpoint that fails its hash, raises
        StoreError naming it, so nothing is appended to a damaged log (a read-only
        open falls back to the newest good checkpoint). ``opsdeck verify`` walks the
        whole chain and replays every checkpoint."""
        store = self.store
        assert store is not None
        state, since, bad = State(collect_archive=True), 0, []
        try:
            cps = await store.list_checkpoints()
        except sqlite3.Error as exc:
            raise self._damaged(f"the checkpoint table is unreadable ({exc})") from None
        found = False
        for cp in reversed(cps):
            try:
                if found:
                    # Older ones: the stored text against its hash, without decoding it
                    # (the whole snapshot only if the text is not the canonical one).
                    quick = await store.checkpoint_text_hash(cp["id"])
                    if quick is not None and quick[0] == quick[1]:
                        continue
                loaded = await store.load_checkpoint(cp["id"])
                if loaded is None:
                    continue
                row, snap = loaded
                if not (
                    isinstance(snap, dict)
                    and hash_snapshot(snap) == row["state_hash"]
                    and snap.get("seq") == row["seq"]
                ):
                    bad.append(f"checkpoint {cp['id']} does not match its state hash")
                elif not found:
                    state, since, found = State.from_snapshot(snap, collect_archive=True), row["seq"], True
                    if self.readonly:
                        break  # a reader uses the newest good one; a writer checks them all
            except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
                bad.append(f"checkpoint {cp['id']} is unreadable ({type(exc).__name__})")
        if bad and not self.readonly:
            raise self._damaged("; ".join(bad[:3]))
        prev, cursor = await self._anchor(since)
        try:
            while True:
                rows = await store.raw_rows(cursor, 1000)  # small batches: replay memory stays low
                if not rows:
                    break
                for seq, ts, type_, comp, scope, actor, data_json, p, h in rows:
                    if seq != cursor + 1:
                        raise self._damaged(f"sequence gap: expected {cursor + 1}, found {seq}", cursor + 1)
                    if p != prev:
                        raise self._damaged("previous-hash link broken", seq)
                    if not row_hash_ok(seq, ts, type_, comp, scope, actor, data_json, p, h):
                        raise self._damaged("the row does not match its hash", seq)
                    try:
                        state.apply(Event(seq, ts, type_, comp, scope, json.loads(data_json), actor))
                    except Exception as exc:  # noqa: BLE001 - whatever a fold raises, the stored row is damaged
                        raise self._damaged(f"cannot be applied ({type(exc).__name__}: {exc})", seq) from None
                    prev, cursor = h, seq
        except sqlite3.Error as exc:
            at = await store.first_unreadable(cursor)
            raise self._damaged(f"unreadable row ({exc})", at if at is not None else cursor + 1) from None
        lost = await store.anchor_problem()
        if lost is not None:
            raise self._damaged(lost[1], lost[0])
        self.state = state
        self.head_hash = prev
        self.state.seq = cursor
        await self._store_archive(state.take_archive())  # workflows that finished after the checkpoint
        await self._load_telemetry()

    async def _anchor(self, since: int) -> tuple[str, int]:
        """The hash the rows after ``since`` chain to, checked.

        A log of at most FULL_CHECK_ROWS rows is checked from its first row (hashes
        and links; the rows before the checkpoint are not folded); a longer one from
        the checkpoint's own row."""
        store = self.store
        assert store is not None
        if since == 0:
            return GENESIS_HASH, 0
        try:
            full = await store.count_events() <= FULL_CHECK_ROWS
        except sqlite3.Error as exc:
            raise self._damaged(f"unreadable log ({exc})") from None
        if full:
            prev, cursor = GENESIS_HASH, 0
            try:
                while cursor < since:
                    rows = await store.raw_rows(cursor, min(5000, since - cursor))
                    if not rows:
                        break
                    for row in rows:
                        seq = row[0]
                        if seq != cursor + 1:
                            raise self._damaged(f"sequence gap: expected {cursor + 1}, found {seq}", cursor + 1)
                        if row[7] != prev:
                            raise self._damaged("previous-hash link broken", seq)
                        if not row_hash_ok(*row):
                            raise self._damaged("the row does not match its hash", seq)
                        prev, cursor = row[8], seq
            except sqlite3.Error as exc:
                at = await store.first_unreadable(cursor)
                raise self._damaged(f"unreadable row ({exc})", at if at is not None else cursor + 1) from None
            if cursor != since:
                raise self._damaged(
                    f"a checkpoint is at seq {since} but the log ends at {cursor}: committed events are missing",
                    cursor + 1,
                )
            return prev, since
        try:
            rows = await self.store.raw_rows(since - 1, 1)
        except sqlite3.Error as exc:
            raise self._damaged(f"unreadable row ({exc})", since) from None
        if not rows or rows[0][0] != since:
            raise self._damaged(
                f"a checkpoint is at seq {since} but the log has no such row: committed events are missing", since
            )
        if not row_hash_ok(*rows[0]):
            raise self._damaged("the row does not match its hash", since)
        return rows[0][8], since

    def _damaged(self, problem: str, seq: int | None = None) -> StoreError:
        assert self.store is not None
        return self.store.damaged(problem, seq)

    async def _load_telemetry(self) -> None:
        """Bring back recent system samples so gauges and detectors have history."""
        assert self.store is not None
        from .telemetry import HISTORY

        horizon = self.state.clock - HISTORY * self.config.intervals.sample_s
        for name in ("cpu_pct", "memory_pct", "agents_pct", "throughput_per_min", "response_time", "efficiency"):
            for t, v in await self.store.metrics(name, "system", since=horizon):
                self.telemetry.record(t, name, "system", v, persist=False)

    async def close(self) -> None:
        await self.flush()
        if self.store is not None:
            await self.store.close()

    # -- events -----------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(event)`` for each event once it is committed (after the group
        commit that wrote it returns), in sequence order: what a subscriber prints,
        shows or sends is in the log. Returns an unsubscribe function."""
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    def observe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(event)`` as each event is folded, before it is committed: for the
        engine's own bookkeeping that tracks the projection (detectors, a runtime
        learning task commands), never for output. Returns an unobserve function."""
        self._observers.append(fn)
        return lambda: self._observers.remove(fn) if fn in self._observers else None

    def on_sample(self, fn: Callable[[float], None]) -> None:
        """Run ``fn(now)`` after each system usage sample: where detectors hook in."""
        self._sample_hooks.append(fn)

    def emit(
        self, type_: str, component: str, scope: str, data: dict[str, Any] | None = None, actor: str | None = None
    ) -> Event:
        """Record one state change: number, hash, fold, queue for the store (subscribers
        hear of it after the commit, :meth:`flush`)."""
        if self.readonly:
            raise EngineError("READ_ONLY", "this console is read-only: state changes are refused")
        _check_header(type_, component, scope)
        data = data if data is not None else {}
        seq = self.state.seq + 1
        ts = self.clock.now()
        who = actor or self.actor
        ev = Event(seq, ts, type_, component, scope, data, who)
        data_json = canonical_json(data)
        prev = self.head_hash
        h = chain_hash(prev, canonical_envelope(seq, ts, type_, component, scope, who, data_json))
        unit = self._unit
        if unit is not None and unit.point is None:
            unit.point = self.state.undo_point()
        # Fold first: a reducer that rejects the event leaves the chain untouched.
        try:
            self.state.apply(ev)
        except Exception as exc:
            raise EngineError(
                "EVENT_REJECTED", f"{type_} could not be applied: {type(exc).__name__}: {exc}", {"type": type_}
            ) from exc
        self.head_hash = h
        self._buffer.append((seq, ts, type_, component, scope, who, data_json, prev, h))
        for fn in self._observers:
            fn(ev)
        if self.store is None and unit is None:  # nothing to commit to: subscribers hear of it now
            for fn in list(self._subscribers):
                fn(ev)
        else:
            self._uncommitted.append(ev)
        return ev

    # -- units of work ------------------------------------------------------------
    def begin_unit(self) -> Unit | None:
        """Start a unit of work; None when one is already open (the outer one owns it)."""
        if self._unit is not None:
            return None
        self._unit = Unit(self.state.seq, self.head_hash)
        return self._unit

    def end_unit(self, unit: Unit | None, keep: bool) -> bool:
        """Close ``unit``: keep its events, or take them back (state, chain, buffer as
        before it began). False when they could not be taken back because a flush
        inside the unit already committed some of them."""
        if unit is None or unit is not self._unit:
            return keep
        self._unit = None
        if not keep and unit.point is not None:
            if unit.committed:
                return False
            self._buffer = [r for r in self._buffer if r[0] <= unit.seq]
            self._uncommitted = [e for e in self._uncommitted if e.seq <= unit.seq]
            self.state.restore(unit.point)
            self.head_hash = unit.head
        if self.store is None:  # the memory engine's subscribers waited for the unit
            evs, self._uncommitted = self._uncommitted, []
            for ev in evs:
                for fn in list(self._subscribers):
                    fn(ev)
        return True

    def inject(self, header: EventHeader, actor: str = "operator") -> Event:
        """An observed event line (script or operator): recorded as it is, once its
        data is what its reducer needs; otherwise EngineError and nothing changes."""
        try:
            check_event(self.state, header.type, header.data)
        except EventDataError as exc:
            raise EngineError("INVALID_EVENT", str(exc), {"type": header.type, "field": exc.field}) from None
        point = self.state.undo_point() if header.type in SCHEMAS else None
        try:
            return self.emit(header.type, header.component, header.scope, header.data, actor=actor)
        except EngineError:
            if point is not None:
                self.state.restore(point)
            raise

    async def _store_archive(self, archive: list[tuple[str, int, str, str]]) -> None:
        """Records of finished workflows: into the store's archive table (kept in memory
        without a writable store)."""
        if not archive:
            return
        if self.store is None or self.readonly:
            for wid, fseq, _status, record in archive:
                self._memory_archive[(wid, fseq)] = record
            return
        async with self.store_lock:
            await self.store.append([], archive)

    async def archived(self, wf_id: str) -> dict[str, Any] | None:
        """The full record (``workflow``, ``tasks``) of a finished workflow, from the archive."""
        done = self.state.finished.get(wf_id)
        if done is None:
            return None
        key = (wf_id, done.finished_seq)
        record = self._memory_archive.get(key)
        if record is None:
            record = next((r[3] for r in self.state.archive_out or () if (r[0], r[1]) == key), None)
        if record is not None:
            return json.loads(record)
        return await self.store.archived(*key) if self.store is not None else None

    async def tasks_with_archive(self, finished_since: float = float("-inf")) -> list[Task]:
        """Live tasks and the archived tasks of workflows that finished at or after
        ``finished_since`` (analyses over what happened, not only what is running)."""
        out = list(self.state.tasks.values())
        for wid, done in sorted(self.state.finished.items()):
            if done.finished_at is not None and done.finished_at < finished_since:
                continue
            record = await self.archived(wid)
            if record is not None:
                out.extend(Task.model_validate(t) for t in record["tasks"])
        return out

    async def flush(self) -> None:
        """Group commit everything emitted since the last flush, then tell subscribers.

        Subscribers hear of a batch only after ``store.append`` returned (the
        transaction committed); a failed commit keeps the rows for the next flush and
        tells nobody. Without a store there is nothing to wait for: subscribers hear
        of each event as it is emitted. The archive records of workflows that
        finished meanwhile are committed in the same transaction."""
        if self.store is None:
            self._buffer.clear()
            self.telemetry.pending_rows.clear()
            await self._store_archive(self.state.take_archive())
            return
        async with self.store_lock:
            archive = self.state.take_archive()
            if self._buffer or archive:
                rows, self._buffer = self._buffer, []
                n = len(rows)
                t0 = time.perf_counter()
                cancelled = await self._commit(rows, archive)
                if rows:
                    self.telemetry.committed(rows, time.perf_counter() - t0)
                if rows and self._unit is not None and rows[-1][0] > self._unit.seq:
                    self._unit.committed = True
                self._publish(n)
                if cancelled:
                    raise asyncio.CancelledError
            rows_m = self.telemetry.take_rows()
            if rows_m:
                await self.store.add_metrics(rows_m)

    async def _commit(self, rows: list[tuple[Any, ...]], archive: Any) -> bool:
        """Append ``rows`` in one transaction that a cancellation cannot cut in two.

        aiosqlite runs the statements in its own thread: abandoning the await between
        BEGIN and COMMIT would leave the connection inside a transaction, and a commit
        that did happen would be retried (a duplicate seq). So the append runs shielded
        and the store lock is held until it settles; a cancellation is re-raised after.
        A failed commit keeps the rows for the next flush. Returns whether the caller
        was cancelled meanwhile."""
        assert self.store is not None
        append = asyncio.ensure_future(self.store.append(rows, archive))
        cancelled = False

        def keep() -> None:
            self._buffer = rows + self._buffer
            if self.state.archive_out is not None:
                self.state.archive_out[:0] = archive

        while True:
            try:
                await asyncio.shield(append)
                return cancelled
            except asyncio.CancelledError:
                if append.done() and not append.cancelled():
                    if append.exception() is None:
                        return True
                    keep()
                    raise append.exception() from None  # type: ignore[misc]
                cancelled = True
            except BaseException:
                keep()
                raise

    def _publish(self, n: int) -> None:
        """Notify subscribers of the first ``n`` uncommitted events (those just committed)."""
        evs, self._uncommitted = self._uncommitted[:n], self._uncommitted[n:]
        for ev in evs:
            for fn in list(self._subscribers):
                fn(ev)

    @property
    def unflushed(self) -> int:
        return len(self._buffer)

    # -- runtime wiring ---------------------------------------------------------
    def attach_runtime(self, runtime: Runtime) -> None:
        """Connect a runtime and bring it up to the projection: agents, running tasks."""
        self.runtime = runtime
        runtime.attach(self)  # type: ignore[arg-type]
        now = self.clock.now()
        for a in sorted(self.state.agents.values(), key=lambda a: a.id):
            if a.status in LIVE_AGENT:
                runtime.spawn_agent(a)
                self.telemetry.liveness[a.id] = now
        # Tasks the projection has running are restored, not restarted: a start the
        # runtime reports for them now is the same start the log already holds.
        self._restoring = True
        try:
            for a in sorted(self.state.agents.values(), key=lambda a: a.id):
                if a.status in LIVE_AGENT and a.current_task:
                    t = self.state.tasks[a.current_task]
                    runtime.start_task(a.id, t)
                    if t.status is TaskStatus.PAUSED:
                        runtime.pause_task(a.id, t.id)
        finally:
            self._restoring = False
        self.request_dispatch()

    def request_dispatch(self) -> None:
        """Dispatch after the facts of this instant have been applied."""
        if self._dispatch_pending or self.runtime is None:
            return
        self._dispatch_pending = True
        if isinstance(self.clock, VirtualClock):
            self.clock.call_later(0.0, self._dispatch_now)
        else:
            try:
                asyncio.get_running_loop().call_soon(self._dispatch_now)
            except RuntimeError:
                self._dispatch_now()

    def _dispatch_now(self) -> None:
        self._dispatch_pending = False
        if self.runtime is None or self.readonly:
            return
        self._admit()
        for key, agent in dispatch(self.state, self.config.capacity, self.clock.now()):
            t = self.state.tasks[key]
            wf = self.state.workflows[t.workflow]
            phase_new = (t.workflow, t.phase) not in self.state.phase_started
            if phase_new:
                self.emit("PHASE_STARTED", "coordination", "workflow", {"workflow_id": wf.id, "phase": t.phase})
            self.emit(
                "TASK_ASSIGNED", "coordination", "scheduler", {"task": key, "agent": agent, "workflow_id": t.workflow}
            )
            self.runtime.start_task(agent, self.state.tasks[key])

    def _admit(self) -> None:
        """Start queued workflows whose dependencies are met, within the concurrency cap."""
        s = self.state
        if not s.queued:
            return
        running = len(s.active)
        queued = sorted(
            (w for w in (s.workflows[wid] for wid in s.queued) if w.status is WorkflowStatus.PENDING),
            key=lambda w: (-s.band_rank(w.id), w.created_at, w.created_seq),
        )
        for w in queued:
            if running >= self.config.capacity.concurrent_workflows:
                break
            if s.dependency_met(w):
                self.emit(
                    "WORKFLOW_STARTED",
                    "coordination",
                    "workflow",
                    {"workflow_id": w.id, "priority": w.priority, "band": w.band.value},
                )
                running += 1

    # -- RuntimeSink ------------------------------------------------------------
    def _owns(self, agent_id: str, task_id: str) -> bool:
        a = self.state.agents.get(agent_id)
        t = self.state.tasks.get(task_id)
        return a is not None and t is not None and a.current_task == task_id and t.agent == agent_id

    def task_started(self, agent_id: str, task_id: str) -> None:
        self.telemetry.liveness[agent_id] = self.clock.now()
        if self._owns(agent_id, task_id) and not self._restoring:
            self.emit("TASK_STARTED", "agent", "execution", {"task": task_id, "agent": agent_id})

    def task_progress(
        self,
        agent_id: str,
        task_id: str,
        progress: float,
        output: list[str] | None = None,
        partial: dict[str, Any] | None = None,
    ) -> None:
        self.telemetry.liveness[agent_id] = self.clock.now()
        if not self._owns(agent_id, task_id):
            return
        data: dict[str, Any] = {"task": task_id, "agent": agent_id, "progress": round(float(progress), 4)}
        if output:
            data["output"] = list(output)[-5:]
        if partial:
            data["partial"] = partial
        self.emit("TASK_PROGRESS", "agent", "execution", data)

    def task_finished(self, agent_id: str, task_id: str, output: list[str] | None = None, result: Any = None) -> None:
        now = self.clock.now()
        self.telemetry.liveness[agent_id] = now
        if not self._owns(agent_id, task_id):
            return
        t = self.state.tasks[task_id]
        data: dict[str, Any] = {"task": task_id, "agent": agent_id, "workflow_id": t.workflow}
        if output:
            data["output"] = list(output)[-5:]
        if result is not None:
            data["result"] = result
        started = t.started_at
        self.emit("TASK_COMPLETED", "agent", "execution", data)
        if started is not None:
            took = now - started
            self.telemetry.record(now, "response_time", "system", took)
            expected = t.duration_s
            if took > 0 and expected > 0:
                self.telemetry.record(now, "efficiency", "system", min(expected / took, 1.5))
        self.telemetry.record(now, "completed", "system", 1.0, persist=False)
        self._after_task(t.workflow, t.phase)
        self.request_dispatch()

    def _after_task(self, wf_id: str, phase: str) -> None:
        s = self.state
        wf = s.workflows.get(wf_id)
        if wf is None or wf.status in TERMINAL_WORKFLOW:
            return
        if s.phase_left.get((wf_id, phase)) == 0:
            self.emit("PHASE_COMPLETED", "coordination", "workflow", {"workflow_id": wf_id, "phase": phase})
            self._checkpoint_due = "phase_complete"
        if s.wf_left.get(wf_id) == 0:
            took = self.clock.now() - (wf.started_at or wf.created_at)
            self.emit(
                "WORKFLOW_COMPLETED", "coordination", "workflow", {"workflow_id": wf_id, "duration_s": round(took, 3)}
            )
            if wf.guarantee is not None:
                self.emit("RESOURCE_RESERVED", "resource", "allocation", {"workflow_id": wf_id, "guarantee": None})

    def task_failed(self, agent_id: str, task_id: str, error: str, output: list[str] | None = None) -> None:
        self.telemetry.liveness[agent_id] = self.clock.now()
        if not self._owns(agent_id, task_id):
            return
        t = self.state.tasks[task_id]
        per_task = getattr(self.runtime, "attempts_allowed", None)  # a workflow file's per-task retries
        allowed = per_task(task_id) if per_task is not None else None
        retry = t.attempts < (allowed if allowed is not None else self.config.retries.attempts)
        data: dict[str, Any] = {
            "task": task_id,
            "agent": agent_id,
            "workflow_id": t.workflow,
            "error": error,
            "attempt": t.attempts,
            "retry": retry,
        }
        if output:
            data["output"] = list(output)[-5:]
        self.emit("TASK_FAILED", "agent", "execution", data)
        if not retry:
            self.emit(
                "WORKFLOW_FAILED",
                "coordination",
                "workflow",
                {"workflow_id": t.workflow, "task": task_id, "error": error},
            )
        self.request_dispatch()

    def agent_failed(self, agent_id: str, error: str) -> None:
        a = self.state.agents.get(agent_id)
        if a is None or a.status in (AgentStatus.FAILED, AgentStatus.RETIRED):
            return
        task = a.current_task
        self.emit("AGENT_ERROR", "agent", "health", {"agent": agent_id, "pool": a.pool, "error": error, "task": task})
        if task:
            t = self.state.tasks[task]
            self.emit(
                "TASK_REASSIGNED",
                "coordination",
                "scheduler",
                {"task": task, "from": agent_id, "reason": "agent_failed", "progress": t.context.progress},
            )
        self.telemetry.liveness.pop(agent_id, None)
        self.request_dispatch()

    def agent_heartbeat(self, agent_id: str) -> None:
        self.telemetry.liveness[agent_id] = self.clock.now()

    def agent_unreachable(self, agent_id: str) -> None:
        a = self.state.agents.get(agent_id)
        if a is not None and a.status in (AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED):
            silent = self.clock.now() - self.telemetry.liveness.get(agent_id, self.clock.now())
            self.emit(
                "AGENT_TIMEOUT", "network", "agent_coordination", {"agent": agent_id, "silent_s": round(silent, 3)}
            )

    def agent_reconnected(self, agent_id: str, buffered: list[dict[str, Any]]) -> None:
        """Apply an agent's buffered reports exactly once, in its own sequence order,
        merged with what the engine did while the agent was cut off (``core.merge``):
        a report about a task the agent still owns applies as it is; a task that was
        moved to another agent meanwhile takes the merged result (completed once,
        whichever side finished first; progress by maximum)."""
        a = self.state.agents.get(agent_id)
        if a is None:
            return
        self.telemetry.liveness[agent_id] = self.clock.now()
        fresh = sorted((b for b in buffered if b["seq"] > a.applied_seq), key=lambda b: b["seq"])
        dropped = len(buffered) - len({b["seq"] for b in fresh})
        if a.status is AgentStatus.UNREACHABLE:
            self.emit(
                "AGENT_RECONNECTED",
                "network",
                "agent_coordination",
                {"agent": agent_id, "buffered": len(buffered), "duplicates_dropped": dropped},
            )
        seen: set[int] = set()
        foreign: list[dict[str, Any]] = []
        for b in fresh:
            if b["seq"] in seen:
                continue
            seen.add(b["seq"])
            self.emit("AGENT_SEQ_APPLIED", "network", "agent_coordination", {"agent": agent_id, "seq": b["seq"]})
            kind = b["kind"]
            task = b.get("task_id")
            if task is not None and kind != "heartbeat" and not self._owns(agent_id, task):
                foreign.append(b)  # the task moved while the agent was cut off: merged below
            elif kind == "started":
                self.task_started(agent_id, b["task_id"])
            elif kind == "progress":
                self.task_progress(agent_id, b["task_id"], b["progress"], b.get("output"))
            elif kind == "finished":
                self.task_finished(agent_id, b["task_id"], b.get("output"))
            elif kind == "failed":
                self.task_failed(agent_id, b["task_id"], b.get("error", "failed"), b.get("output"))
        if foreign:
            self.merge_partition(agent_id, foreign)
        self.request_dispatch()

    def merge_partition(self, agent_id: str, reports: list[dict[str, Any]]) -> None:
        """Merge an isolated agent's reports about tasks moved away from it with the
        engine's side of those tasks, and bring the state to the merged result."""
        s = self.state
        base = {
            b["task_id"]: TaskView(s.tasks[b["task_id"]].context.progress, s.tasks[b["task_id"]].status.value)
            for b in reports
            if b["task_id"] in s.tasks
        }
        views = merge(((agent_id, b) for b in reports if b["task_id"] in s.tasks), base)
        out: dict[str, dict[str, Any]] = {}
        for key, v in sorted(views.items()):
            t = s.tasks[key]
            if t.status is TaskStatus.COMPLETED:
                res = "already_completed"  # the other side finished first: the isolated copy's result is dropped
            elif v.status == "completed":
                if t.agent:
                    self.release_task(key, reason="completed_on_isolated_agent", actor="merge")
                self.emit(
                    "TASK_COMPLETED",
                    "agent",
                    "execution",
                    {"task": key, "agent": agent_id, "workflow_id": t.workflow, "merged": True},
                    actor="merge",
                )
                self.telemetry.record(self.clock.now(), "completed", "system", 1.0, persist=False)
                self._after_task(t.workflow, t.phase)
                res = "completed_by_isolated_agent"
            elif v.progress > t.context.progress + 1e-9:
                if t.agent:  # restart the moved copy from the further point
                    self.release_task(key, reason="resume_from_merged_progress", actor="merge")
                self.emit(
                    "TASK_PROGRESS",
                    "agent",
                    "execution",
                    {"task": key, "agent": agent_id, "progress": round(v.progress, 4), "merged": True},
                    actor="merge",
                )
                res = "progress_merged"
            else:
                res = "current_copy_ahead"
            out[key] = {
                "resolution": res,
                "merged_progress": round(v.progress, 4),
                "merged_status": v.status,
                "reports": len(v.applied),
            }
        self.emit("PARTITION_MERGED", "network", "agent_coordination", {"agent": agent_id, "tasks": out}, actor="merge")

    def usage(self, agent_id: str, cpu_pct: float, memory_mb: float) -> None:
        now = self.clock.now()
        self.telemetry.liveness[agent_id] = now
        self.telemetry.agent_usage[agent_id] = (cpu_pct, memory_mb)
        self.telemetry.record(now, "cpu_pct", agent_id, cpu_pct)
        self.telemetry.record(now, "memory_mb", agent_id, memory_mb)

    def system_usage(self, cpu_pct: float, memory_pct: float) -> None:
        now = self.clock.now()
        tel = self.telemetry
        tel.record(now, "cpu_pct", "system", cpu_pct)
        tel.record(now, "memory_pct", "system", memory_pct)
        tel.record(now, "agents_pct", "system", self.agent_utilisation())
        window = 300.0
        done = tel.get("completed", "system").since(now - window)
        tel.record(now, "throughput_per_min", "system", len(done) * 60.0 / window)
        self._check_liveness(now)
        self._reassign_unreachable(now)
        for hook in list(self._sample_hooks):
            hook(now)

    def health_check_interval(self) -> float | None:
        """The active health-check interval ``/resource-manager update-agent-management``
        set (shorter than the heartbeat), or None: then only heartbeats count."""
        cfg = self.state.settings.get("agent_management")
        if isinstance(cfg, dict) and cfg.get("health_check_interval_s"):
            iv = float(cfg["health_check_interval_s"])
            if iv < self.config.intervals.heartbeat_s:
                return iv
        return None

    def _check_liveness(self, now: float) -> None:
        """Mark agents silent for more than the missed-heartbeat limit unreachable. With
        active health checks the runtime pings every live agent at their interval (an
        answer counts as a heartbeat), so the limit is that many intervals instead."""
        every = self.health_check_interval()
        ping = getattr(self.runtime, "ping_agent", None)  # runtimes that can be asked
        if every is not None and ping is not None and now - self._last_health_check >= every - 1e-9:
            self._last_health_check = now
            for a in sorted(self.state.agents.values(), key=lambda x: x.id):
                if a.status in (AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED):
                    ping(a.id)
        beat = every if every is not None and ping is not None else self.config.intervals.heartbeat_s
        limit = beat * (self.config.intervals.missed_heartbeats + 0.5)
        for a in list(self.state.agents.values()):
            if a.status in (AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED):
                last = self.telemetry.liveness.get(a.id)
                if last is None:
                    self.telemetry.liveness[a.id] = now
                elif now - last > limit:
                    self.agent_unreachable(a.id)

    def _reassign_unreachable(self, now: float) -> None:
        """The standing reassignment that ``/coordination-hub communication-redundancy-
        activation`` turns on: a task on an agent silent for ``reassign_after_s`` moves
        (with its context) to a reachable agent, unless the distributed protocol in
        force keeps tasks running on isolated agents."""
        cfg = self.state.settings.get("monitoring.communication")
        if self.readonly or not isinstance(cfg, dict) or cfg.get("closed") or cfg.get("reassign_after_s") is None:
            return
        proto = self.state.settings.get("monitoring.distributed_protocols")
        if isinstance(proto, dict) and not proto.get("closed") and proto.get("keep_tasks_on_unreachable"):
            return
        after = float(cfg["reassign_after_s"])
        for a in sorted(self.state.agents.values(), key=lambda x: x.id):
            if a.status is AgentStatus.UNREACHABLE and a.current_task:
                silent = now - self.telemetry.liveness.get(
                    a.id, a.last_heartbeat if a.last_heartbeat is not None else now
                )
                if silent >= after:
                    self.release_task(a.current_task, reason="agent_unreachable", actor="standing-reassignment")

    # -- measures ---------------------------------------------------------------
    def agent_utilisation(self) -> float:
        """Busy agent slots as a percent of the capacity's agent slots."""
        busy = sum(
            1
            for a in self.state.agents.values()
            if a.status in (AgentStatus.BUSY, AgentStatus.PAUSED, AgentStatus.UNREACHABLE) and a.current_task
        )
        return round(busy / self.config.capacity.agents * 100.0, 2)

    def utilisation(self) -> dict[str, float]:
        tel = self.telemetry
        return {
            "cpu": tel.get("cpu_pct").last(),
            "memory": tel.get("memory_pct").last(),
            "agents": self.agent_utilisation(),
        }

    # -- operations (each is a set of events; checks first, then changes) ---------
    def _wf(self, wf_id: str) -> Any:
        """A live workflow; a finished one is refused (it has left the hot state)."""
        wf = self.state.workflows.get(wf_id)
        if wf is None:
            done = self.state.finished.get(wf_id)
            if done is not None:
                raise EngineError(
                    "INVALID_STATE",
                    f"workflow {wf_id!r} is already {done.status.value}",
                    {"workflow_id": wf_id, "status": done.status.value},
                )
            raise EngineError("WORKFLOW_NOT_FOUND", f"no workflow {wf_id!r}", {"known": self.state.all_workflow_ids()})
        return wf

    def _not_frozen(self, wf_id: str) -> None:
        if self._wf(wf_id).frozen:
            raise EngineError(
                "WORKFLOW_FROZEN",
                f"workflow {wf_id!r} is frozen for data protection: state changes are refused until it is unfrozen",
                {"workflow_id": wf_id},
            )

    def create_pool(self, name: str, specializations: list[str], min_size: int = 0, max_size: int = 20) -> None:
        if name in self.state.pools:
            raise EngineError("POOL_EXISTS", f"pool {name!r} exists")
        self.emit(
            "POOL_CREATED",
            "resource",
            "agents",
            {"pool": {"name": name, "specializations": specializations, "min_size": min_size, "max_size": max_size}},
        )

    def next_agent_id(self) -> str:
        n = len(self.state.agents) + 1
        while f"agent_{n:03d}" in self.state.agents:
            n += 1
        return f"agent_{n:03d}"

    def add_agent(
        self, pool: str, specializations: list[str] | None = None, agent_id: str | None = None, actor: str | None = None
    ) -> str:
        p = self.state.pools.get(pool)
        if p is None:
            raise EngineError("POOL_NOT_FOUND", f"no pool {pool!r}", {"known": sorted(self.state.pools)})
        live = list(self.state.live_agents())
        if len(live) >= self.config.capacity.agents:
            raise EngineError("RESOURCE_EXHAUSTED", f"agent capacity {self.config.capacity.agents} reached")
        in_pool = sum(1 for a in live if a.pool == pool)
        if in_pool >= p.max_size:
            raise EngineError("RESOURCE_EXHAUSTED", f"pool {pool!r} is at its maximum size {p.max_size}")
        aid = agent_id or self.next_agent_id()
        if aid in self.state.agents:
            raise EngineError("AGENT_EXISTS", f"agent {aid!r} exists")
        self.emit(
            "AGENT_ALLOCATED",
            "resource",
            "agents",
            {"agent": aid, "pool": pool, "specializations": specializations or list(p.specializations)},
            actor=actor,
        )
        self.telemetry.liveness[aid] = self.clock.now()
        if self.runtime is not None:
            self.runtime.spawn_agent(self.state.agents[aid])
        self.request_dispatch()
        return aid

    def retire_agent(self, agent_id: str, actor: str | None = None) -> None:
        a = self.state.agents.get(agent_id)
        if a is None:
            raise EngineError("AGENT_NOT_FOUND", f"no agent {agent_id!r}")
        if a.current_task:
            self.release_task(a.current_task, reason="agent_retired", actor=actor)
        self.emit("AGENT_DEALLOCATED", "resource", "agents", {"agent": agent_id, "pool": a.pool}, actor=actor)
        if self.runtime is not None:
            self.runtime.retire_agent(agent_id)

    def create_workflow(self, spec: WorkflowSpec | dict[str, Any], actor: str | None = None) -> str:
        """Validate a workflow once and record it. The cyclic GC is held off meanwhile: a
        big workflow allocates many objects, none of them garbage, and each collection
        would walk them all again (superlinear)."""
        with gc_paused():
            if isinstance(spec, dict):
                spec = WorkflowSpec.model_validate(spec)
            return self._create_workflow(spec, spec.model_dump(mode="json", exclude_defaults=True), actor)

    async def submit_workflow(self, raw: dict[str, Any], actor: str | None = None) -> str:
        """:meth:`create_workflow` for a running console: tasks are validated and
        encoded in chunks, yielding to the event loop between them, so a submission
        of 100k tasks does not freeze the screen. Validation errors are those of
        ``WorkflowSpec`` (whole-spec field paths)."""
        phases = raw.get("phases")
        if not isinstance(phases, list) or not all(
            isinstance(p, dict) and isinstance(p.get("tasks", []), list) for p in phases
        ):
            return self.create_workflow(raw, actor)
        head = WorkflowSpec.model_validate({**raw, "phases": []})
        built: list[PhaseSpec] = []
        dumped: list[dict[str, Any]] = []
        for ph in phases:
            shell = PhaseSpec.model_validate({**ph, "tasks": []})
            tasks: list[TaskSpec] = []
            encoded: list[dict[str, Any]] = []
            rows = ph.get("tasks", [])
            for i in range(0, len(rows), SUBMIT_CHUNK):
                try:
                    with gc_paused():
                        part = _TASK_LIST.validate_python(rows[i : i + SUBMIT_CHUNK])
                        encoded += _TASK_LIST.dump_python(part, mode="json", exclude_defaults=True)
                except ValidationError:
                    WorkflowSpec.model_validate(raw)  # the same error, with its path in the whole spec
                    raise
                tasks += part
                await asyncio.sleep(0)
            shell.tasks = tasks
            built.append(shell)
            dumped.append({**shell.model_dump(mode="json", exclude_defaults=True, exclude={"tasks"}), "tasks": encoded})
        head.phases = built
        data = head.model_dump(mode="json", exclude_defaults=True)
        data["phases"] = dumped
        with gc_paused():
            return self._create_workflow(head, data, actor)

    def _create_workflow(self, spec: WorkflowSpec, data: dict[str, Any], actor: str | None) -> str:
        if self.state.knows(spec.id):
            raise EngineError("WORKFLOW_EXISTS", f"workflow {spec.id!r} exists")
        names: set[str] = set()
        for phase in spec.phases:
            for t in phase.tasks:
                if t.id in names:
                    raise EngineError("INVALID_WORKFLOW", f"task id {t.id!r} appears twice in {spec.id!r}")
                for d in t.depends_on:
                    if d not in names:
                        raise EngineError(
                            "INVALID_WORKFLOW",
                            f"task {t.id!r} depends on {d!r}, which is not an earlier task of {spec.id!r}",
                        )
                names.add(t.id)
        for d in spec.depends_on:
            if not self.state.knows(d):
                raise EngineError("WORKFLOW_NOT_FOUND", f"{spec.id!r} depends on unknown workflow {d!r}")
        lim = self.config.workflow_limits
        a = spec.allocation
        if a.cpu_cores > lim.cpu_cores or a.memory_gb > lim.memory_gb or a.agents > lim.agents:
            raise EngineError(
                "RESOURCE_LIMIT",
                f"allocation {a.model_dump()} exceeds the per-workflow limit {lim.model_dump(exclude={'max_duration_s'})}",
            )
        self.emit("WORKFLOW_CREATED", "coordination", "workflow", {"workflow_id": spec.id, "spec": data}, actor=actor)
        return spec.id

    def start_workflow(self, wf_id: str, actor: str | None = None) -> None:
        wf = self._wf(wf_id)
        self._not_frozen(wf_id)
        if wf.status is not WorkflowStatus.PENDING:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is {wf.status.value}, not pending")
        if not wf.queued:
            self.emit("WORKFLOW_QUEUED", "coordination", "workflow", {"workflow_id": wf_id}, actor=actor)
        self._admit()
        self.request_dispatch()

    def pause_workflow(self, wf_id: str, actor: str | None = None, reason: str = "operator") -> list[str]:
        """Stop dispatch to the workflow and pause its running tasks through the runtime."""
        wf = self._wf(wf_id)
        self._not_frozen(wf_id)
        if wf.status is not WorkflowStatus.RUNNING:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is {wf.status.value}, not running")
        self.emit("WORKFLOW_PAUSED", "coordination", "workflow", {"workflow_id": wf_id, "reason": reason}, actor=actor)
        paused = []
        for key in sorted(self.state.running_by_wf.get(wf_id, ())):
            t = self.state.tasks[key]
            if t.status is TaskStatus.RUNNING and t.agent:
                self.emit("TASK_PAUSED", "coordination", "execution", {"task": key, "agent": t.agent}, actor=actor)
                if self.runtime is not None:
                    self.runtime.pause_task(t.agent, key)
                paused.append(key)
        return paused

    def resume_workflow(self, wf_id: str, actor: str | None = None) -> list[str]:
        wf = self._wf(wf_id)
        self._not_frozen(wf_id)
        if wf.status is not WorkflowStatus.PAUSED:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is {wf.status.value}, not paused")
        self.emit("WORKFLOW_RESUMED", "coordination", "workflow", {"workflow_id": wf_id}, actor=actor)
        resumed = []
        for key in sorted(self.state.running_by_wf.get(wf_id, ())):
            t = self.state.tasks[key]
            if t.status is TaskStatus.PAUSED and t.agent:
                self.emit("TASK_RESUMED", "coordination", "execution", {"task": key, "agent": t.agent}, actor=actor)
                if self.runtime is not None:
                    self.runtime.resume_task(t.agent, key)
                resumed.append(key)
        self.request_dispatch()
        return resumed

    def release_task(self, key: str, reason: str = "released", actor: str | None = None) -> str | None:
        """Take a task off its agent (stopping it) and put it back in the queue."""
        t = self.state.tasks.get(key)
        if t is None:
            raise EngineError("TASK_NOT_FOUND", f"no task {key!r}")
        if t.status not in (TaskStatus.RUNNING, TaskStatus.PAUSED) or not t.agent:
            return None
        agent = t.agent
        if self.runtime is not None:
            self.runtime.stop_task(agent, key)
        self.emit(
            "TASK_REASSIGNED",
            "coordination",
            "scheduler",
            {"task": key, "from": agent, "reason": reason, "progress": t.context.progress},
            actor=actor,
        )
        self.request_dispatch()
        return agent

    def cancel_workflow(self, wf_id: str, actor: str | None = None) -> None:
        wf = self._wf(wf_id)
        self._not_frozen(wf_id)
        if wf.status in TERMINAL_WORKFLOW:
            raise EngineError("INVALID_STATE", f"workflow {wf_id!r} is already {wf.status.value}")
        for key in sorted(self.state.running_by_wf.get(wf_id, ())):
            self.release_task(key, reason="workflow_cancelled", actor=actor)
        self.emit("WORKFLOW_CANCELLED", "coordination", "workflow", {"workflow_id": wf_id}, actor=actor)
        self.request_dispatch()

    def set_allocation(self, wf_id: str, alloc: Resources, actor: str | None = None, base: bool = False) -> Resources:
        self._wf(wf_id)
        self._not_frozen(wf_id)
        before = self.state.workflows[wf_id].allocation.model_copy()
        self.emit(
            "RESOURCE_ALLOCATED",
            "resource",
            "allocation",
            {"workflow_id": wf_id, "allocation": alloc.model_dump(), "previous": before.model_dump(), "base": base},
            actor=actor,
        )
        self.request_dispatch()
        return before

    def reserve(self, wf_id: str, guarantee: Resources | None, actor: str | None = None) -> None:
        self._wf(wf_id)
        cap = self.config.capacity
        if guarantee is not None:
            others = [
                w.guarantee
                for w in self.state.workflows.values()
                if w.id != wf_id and w.guarantee is not None and w.status not in TERMINAL_WORKFLOW
            ]
            cpu = guarantee.cpu_cores + sum(g.cpu_cores for g in others)
            mem = guarantee.memory_gb + sum(g.memory_gb for g in others)
            if cpu > cap.cpu_cores or mem > cap.memory_gb:
                raise EngineError(
                    "RESOURCE_EXHAUSTED",
                    f"guarantees would total {cpu:g} cores / {mem:g} GB, over the capacity {cap.cpu_cores:g} / {cap.memory_gb:g}",
                )
        self.emit(
            "RESOURCE_RESERVED",
            "resource",
            "allocation",
            {"workflow_id": wf_id, "guarantee": guarantee.model_dump() if guarantee else None},
            actor=actor,
        )
        self.request_dispatch()

    def set_stage_limit(self, wf_id: str, limit: Resources | None, actor: str | None = None) -> None:
        self._wf(wf_id)
        self.emit(
            "RESOURCE_LIMITED",
            "resource",
            "allocation",
            {"workflow_id": wf_id, "limit": limit.model_dump() if limit else None},
            actor=actor,
        )
        self.request_dispatch()

    def cpu_limits(self, wf_id: str, task_id: str) -> dict[str, float | int]:
        """The CPU limits a running task of ``wf_id`` should have under its allocation
        now (``runtimes.limits.cpu_limits``)."""
        wf = self.state.workflows[wf_id]
        t = self.state.tasks[task_id]
        running = max(len(self.state.running_by_wf.get(wf_id, ())), 1)
        return cpu_limits(
            wf.band.value,
            wf.allocation.cpu_cores,
            wf.base_allocation.cpu_cores,
            wf.guarantee is not None,
            running,
            t.cpu,
        )

    async def relimit_workflow(self, wf_id: str) -> dict[str, Any]:
        """Bring the OS limits of ``wf_id``'s running tasks in line with its allocation
        and guarantee now, on runtimes whose tasks are processes; elsewhere say so."""
        self._wf(wf_id)
        rt = self.runtime
        relimit = getattr(rt, "relimit", None)  # only runtimes with OS processes have it
        if rt is None or relimit is None:
            return {
                "applies": False,
                "runtime": rt.name if rt is not None else None,
                "reason": "the tasks of this runtime are not OS processes: only the allocation changed",
            }
        targets = [
            (t.agent, t.id, self.cpu_limits(wf_id, t.id))
            for key in sorted(self.state.running_by_wf.get(wf_id, ()))
            if (t := self.state.tasks[key]).agent and t.status is TaskStatus.RUNNING
        ]
        results = await relimit(targets)
        for r in results:
            if r.get("applied"):
                self.emit(
                    "TASK_LIMITED",
                    "resource",
                    "allocation",
                    {
                        "task": r["task"],
                        "agent": r["agent"],
                        "workflow_id": wf_id,
                        "applied": r["applied"],
                        "mechanism": r.get("mechanism"),
                    },
                )
        return {
            "applies": True,
            "runtime": rt.name,
            "tasks": results,
            "relimited": sum(1 for r in results if r.get("applied")),
            "failed": sum(1 for r in results if r.get("errors")),
        }

    def freeze(self, wf_id: str, frozen: bool = True, actor: str | None = None) -> None:
        self._wf(wf_id)
        self.emit(
            "WORKFLOW_FROZEN", "coordination", "state_protection", {"workflow_id": wf_id, "frozen": frozen}, actor=actor
        )

    def set_setting(self, key: str, value: Any, actor: str | None = None) -> None:
        self.emit("SETTING_CHANGED", "system", "settings", {"key": key, "value": value}, actor=actor)

    # -- checkpoints ------------------------------------------------------------
    async def checkpoint(
        self, kind: str = "manual", label: str = "", workflow: str | None = None, actor: str | None = None
    ) -> int:
        """Snapshot the projection at the current sequence number and record it."""
        if self.readonly:
            raise EngineError("READ_ONLY", "this console is read-only: state changes are refused")
        await self.flush()
        snap = self.state.snapshot()
        h = hash_snapshot(snap)
        seq = self.state.seq
        if self.store is not None:
            async with self.store_lock:
                cp_id = await self.store.save_checkpoint(seq, self.clock.now(), kind, label, workflow, snap, h)
        else:
            cp_id = max(self._memory_checkpoints, default=0) + 1
            self._memory_checkpoints[cp_id] = ({"id": cp_id, "seq": seq, "state_hash": h}, json.loads(json.dumps(snap)))
        self.emit(
            "CHECKPOINT_CREATED",
            "coordination",
            "checkpoint",
            {"id": cp_id, "seq": seq, "kind": kind, "label": label, "state_hash": h, "workflow": workflow},
            actor=actor,
        )
        return cp_id

    async def load_checkpoint(self, cp_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.store is not None:
            loaded = await self.store.load_checkpoint(cp_id)
        else:
            mem = self._memory_checkpoints.get(cp_id)
            # A copy: whoever loads it takes the snapshot over (no deepcopy on load).
            loaded = (dict(mem[0]), json.loads(json.dumps(mem[1]))) if mem is not None else None
        if loaded is None:
            raise EngineError(
                "CHECKPOINT_NOT_FOUND", f"no checkpoint {cp_id}", {"known": sorted(self.state.checkpoints)}
            )
        return loaded

    async def verified_checkpoint(self, cp_id: int) -> dict[str, Any]:
        """The snapshot of a checkpoint whose stored state matches its hash."""
        row, snap = await self.load_checkpoint(cp_id)
        if hash_snapshot(snap) != row["state_hash"]:
            raise EngineError("CHECKPOINT_CORRUPT", f"checkpoint {cp_id} fails its state hash", {"checkpoint": cp_id})
        return snap

    async def rollback(
        self, cp_id: int, workflow: str | None = None, actor: str | None = None, reason: str = "rollback"
    ) -> dict[str, Any]:
        """Append events that bring workflows (all, or one) back to a checkpoint."""
        snap = await self.verified_checkpoint(cp_id)
        if workflow is not None and not self.state.knows(workflow):
            self._wf(workflow)  # unknown: WORKFLOW_NOT_FOUND (a finished one may be rolled back)
        affected = (
            [workflow]
            if workflow
            else sorted(
                set(snap["workflows"])
                | set(snap.get("finished", {}))
                | set(self.state.workflows)
                | set(self.state.finished)
            )
        )
        for wf_id in affected:
            wf = self.state.workflows.get(wf_id)
            if wf is None:
                continue
            for key in sorted(self.state.running_by_wf.get(wf_id, ())):
                t = self.state.tasks[key]
                if t.agent and self.runtime is not None:
                    self.runtime.stop_task(t.agent, key)
        before = self.state.state_hash()
        self.emit(
            "STATE_RESTORED",
            "coordination",
            "rollback",
            {"checkpoint": cp_id, "workflow": workflow, "reason": reason, "snapshot": snap},
            actor=actor,
        )
        self.request_dispatch()
        return {
            "checkpoint": cp_id,
            "workflows": affected,
            "state_hash_before": before,
            "state_hash_after": self.state.state_hash(),
        }

    # -- housekeeping -----------------------------------------------------------
    def checkpoint_interval(self) -> float:
        """Seconds between automatic incremental checkpoints: the interval the
        integrity monitoring in force sets (``/coordination-hub enable-enhanced-
        integrity-monitoring``), else ``intervals.checkpoint_s``."""
        cfg = self.state.settings.get("monitoring.integrity")
        if isinstance(cfg, dict) and not cfg.get("closed") and cfg.get("checkpoint_interval_s"):
            return float(cfg["checkpoint_interval_s"])
        return self.config.intervals.checkpoint_s

    async def maintain(self) -> None:
        """Periodic work: phase-complete and interval checkpoints, metric retention."""
        if self.readonly:
            return
        now = self.clock.now()
        if self._last_checkpoint_at is None:
            last = max((c.ts for c in self.state.checkpoints.values()), default=None)
            self._last_checkpoint_at = last if last is not None else now
        if self.auto_checkpoints and (self.state.workflows or self.state.finished):
            kind = self._checkpoint_due
            if kind is None and now - self._last_checkpoint_at >= self.checkpoint_interval():
                kind = "incremental"
            if kind is None and self._events_since_checkpoint() >= self.config.intervals.checkpoint_events:
                kind = "incremental"
            if kind is not None:
                self._checkpoint_due = None
                self._last_checkpoint_at = now
                await self.checkpoint(kind, label=f"automatic {kind}")
        retention = self.config.intervals.metric_retention_s
        if self.store is not None and now - self._last_prune_at >= min(retention / 10, 3600.0):
            self._last_prune_at = now
            await self.flush()
            async with self.store_lock:
                await self.store.prune_metrics(now - retention)

    def _events_since_checkpoint(self) -> int:
        return self.state.seq - max((c.seq for c in self.state.checkpoints.values()), default=0)

    # -- running the simulated clock ----------------------------------------------
    async def advance(self, seconds: float) -> None:
        """Run the virtual clock forward, flushing in batches (group commit)."""
        clock = self.clock
        assert isinstance(clock, VirtualClock), "advance() needs the virtual clock"
        until = clock.now() + seconds
        while True:
            clock.run_until(until, budget=FLUSH_EVERY)
            if (
                self._checkpoint_due is not None
                or clock.now() >= until
                or self._events_since_checkpoint() >= self.config.intervals.checkpoint_events
            ):
                await self.maintain()
            if len(self._buffer) >= FLUSH_EVERY or clock.now() >= until:
                await self.flush()
            if clock.now() >= until:
                nxt = clock.next_time()
                if nxt is None or nxt > until:
                    break

    async def run_realtime(self, speed: float, tick: float = 0.1, stop: asyncio.Event | None = None) -> None:
        """Advance the virtual clock at ``speed`` simulated seconds per wall second."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while stop is None or not stop.is_set():
            await asyncio.sleep(tick)
            now = loop.time()
            dt, last = now - last, now
            if isinstance(self.clock, VirtualClock):
                await self.advance(dt * speed)
            else:
                await self.maintain()
                await self.flush()

    def summary(self) -> dict[str, Any]:
        s = self.state
        counts: dict[str, int] = {}
        for w in s.all_workflows():
            counts[w.status.value] = counts.get(w.status.value, 0) + 1
        return {
            "seq": s.seq,
            "clock": s.clock,
            "workflows": counts,
            "agents": len(s.live_agents()),
            "utilisation": self.utilisation(),
        }
