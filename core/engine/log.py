"""The engine's log: every change is an event, numbered, folded, chained, committed.

:class:`EventLog` numbers and encodes each event, folds it into the projection,
queues it for the store (group commit: the batch is chained as it is handed over)
and tells subscribers once the commit that wrote it returned. Units of work keep one command's events together or
take them all back; finished workflows' records go to the archive in the same
commit.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine_errors import EngineError as EngineError  # declared there, re-exported
from ..event_data import EventDataError
from ..event_types import COMMAND_EXECUTED, check_event
from ..events import (
    _DASH,
    _EXP,
    _NULL,
    _ORJSON_COMPACT,
    _ORJSON_OPTIONS,
    _SMALL,
    Event,
    EventHeader,
    EventRow,
    UnchainedRow,
    _dumps,
    _finite,
    chain_head,
    chain_rows,
    reference_canonical_json,
)
from ..journal import Journal
from ..models import Task
from ..store_metrics import SeriesSamples
from .contract import HeldCheckpoint
from .held import HeldLimits

if TYPE_CHECKING:
    from .contract import EngineCore

Subscriber = Callable[[Event], None]
_new = object.__new__


Header = tuple[str, str, str, str, str, str]
"""A header validated once: (component, scope, actor, the type's plain name, the header's
piece of the chained envelope, its event line's head)."""

_KNOWN: dict[tuple[str, str, str, str], Header] = {}
"""(type, component, scope, actor) of headers already validated -> their :data:`Header`."""
_LAST: dict[str, Header] = {}
"""Each type's header at its last emit: most types are emitted with one component, scope
and actor, so the emit compares those three by identity instead of hashing the four
into a key (about 300 instructions an event less)."""


def _known(type_: str, component: str, scope: str, actor: str) -> Header:
    """The header's :data:`Header`, validated once: its plain type name (a declaration is a
    ``str`` subclass, stored and sent as its name), its envelope piece and its line's head
    (:attr:`Event.line_head`). Kept under the key as given (the declaration itself, not
    its plain name): the next lookup finds its own objects and compares them by
    identity, not by their text; and as the type's last header (:data:`_LAST`)."""
    known = _KNOWN.get((type_, component, scope, actor))
    if known is None:
        name = str(type_)
        EventHeader(type=name, component=component, scope=scope, data={})
        known = (
            component,
            scope,
            actor,
            name,
            chain_head(name, component, scope, actor),
            f"{name}:{component}:{scope}:",
        )
        if len(_KNOWN) < 10_000:
            _KNOWN[(type_, component, scope, actor)] = known
    if len(_LAST) < 10_000:
        _LAST[type_] = known
    return known


@dataclass
class Unit:
    """A unit of work (one command): its events are kept together or not at all."""

    seq: int
    journal: Journal
    """What the unit's folds overwrote: taking the unit back costs what it changed."""
    committed: bool = False
    """A flush inside the unit committed some of its events: they can no longer be undone."""


class EventLog:
    """Emit, units of work, group commit and subscribers of one engine."""

    def __init__(self, engine: EngineCore) -> None:
        self.engine = engine
        self.buffer: list[UnchainedRow] = []
        """Rows emitted and not yet committed (the group commit's next batch), numbered and
        encoded; chained when the batch is handed to the store (:func:`core.events.chain_rows`:
        ``engine.head_hash`` is the hash of the last row handed over)."""
        self.subscribers: list[Subscriber] = []
        self.observers: list[Subscriber] = []
        self.uncommitted: list[Event] = []
        """Events in ``buffer``: subscribers see them once the store has them."""
        self.unit: Unit | None = None
        self.last_change = 0
        """Seq of the newest event emitted that is not a command's record (an upper
        bound after a unit is taken back: :meth:`holds_changes` may say yes for nothing)."""
        self.memory_archive: dict[tuple[str, int], str] = {}
        """Archive records where there is no store to hold them (or it is read-only)."""
        self.held = HeldLimits(emitted=lambda: len(self.buffer))
        """What refused commits may leave in memory (:mod:`.held`)."""
        self.checkpoint_rows: list[HeldCheckpoint] = []
        """Checkpoints' rows whose CHECKPOINT_CREATED is in ``buffer``: committed with it."""

    # -- subscribers --------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(event)`` for each event once it is committed (after the group
        commit that wrote it returns), in sequence order: what a subscriber prints,
        shows or sends is in the log. Returns an unsubscribe function."""
        self.subscribers = [*self.subscribers, fn]
        return lambda: self._unsubscribe(fn)

    def _unsubscribe(self, fn: Subscriber) -> None:
        # A new list, never changed in place: a delivery under way goes on over the list it
        # began with, without copying it per event.
        if fn in self.subscribers:
            subs = list(self.subscribers)
            subs.remove(fn)
            self.subscribers = subs

    def observe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(event)`` as each event is folded, before it is committed: for the
        engine's own bookkeeping that tracks the projection (detectors, a runtime
        learning task commands), never for output. Returns an unobserve function."""
        self.observers.append(fn)
        return lambda: self.observers.remove(fn) if fn in self.observers else None

    # -- emit ---------------------------------------------------------------------
    def emit(
        self,
        type_: str,
        component: str,
        scope: str,
        data: dict[str, Any] | None = None,
        actor: str | None = None,
        at: float | None = None,
        sorted_keys: bool = False,
    ) -> Event:
        """Record one state change: number, encode, fold, queue for the store (chained
        with the batch; subscribers hear of it after the commit, :meth:`flush`). Its time
        is now, or ``at`` (a fact that happened earlier and is recorded late, or the
        caller's reading of now). ``sorted_keys``: ``data`` was built with its keys in
        sorted order at every depth, so orjson writes its canonical text without sorting
        (the same bytes, about a third less of its cost) and that text is its line's JSON
        too (:attr:`Event.text`: the line is not encoded again)."""
        e = self.engine
        if e.readonly:
            raise EngineError("READ_ONLY", "this console is read-only: state changes are refused")
        who = actor or e.actor
        known = _LAST.get(type_)
        if known is None or known[0] is not component or known[1] is not scope or known[2] is not who:
            known = _known(type_, component, scope, who)
        type_, head, line_head = known[3], known[4], known[5]
        if data is None:
            data = {}
        state = e.state
        seq = state.seq + 1
        ts = e.clock.now() if at is None else at
        # encode_data(data) written out (a call and its tuple less an event; a test holds the two
        # together): now, as a fold may change the data's objects later. Data in sorted order
        # is written as it is (the compact options are the canonical ones less the sorting).
        try:
            data_json = _dumps(data, option=_ORJSON_COMPACT if sorted_keys else _ORJSON_OPTIONS).decode()
        except TypeError:
            data_json, plain = reference_canonical_json(data), False
        else:
            plain = not (
                _SMALL in data_json
                or (_DASH in data_json and _EXP in data_json)
                or (_NULL in data_json and not _finite(data))
            )
            if not plain:
                data_json = reference_canonical_json(data)
        # Event(seq, ts, type_, component, scope, data, who, plain, line_head, text), its slots set here: the
        # dataclass's __init__, called through the type, cost about 2,400 instructions an
        # event, these stores about 1,700 (callgrind). The instance is immutable once returned.
        ev: Any = _new(Event)
        ev.seq = seq
        ev.ts = ts
        ev.type = type_
        ev.component = component
        ev.scope = scope
        ev.data = data
        ev.actor = who
        ev.plain = plain
        ev.line_head = line_head
        ev.text = data_json if sorted_keys else ""
        # Fold first: a reducer that rejects the event leaves the log untouched.
        try:
            fold = state.folds.get(type_)
            if fold is None:
                state.apply(ev)
            else:  # State.apply with the fold it would look up, written out (a call less an event)
                fold(state, ev)
                state.seq = seq
                if ts > state.clock:
                    state.clock = ts
        except Exception as exc:
            raise EngineError(
                "EVENT_REJECTED", f"{type_} could not be applied: {type(exc).__name__}: {exc}", {"type": type_}
            ) from exc
        self.buffer.append((seq, ts, type_, component, scope, who, data_json, head))
        if type_ != COMMAND_EXECUTED:
            self.last_change = seq
        if self.observers:
            for fn in self.observers:
                fn(ev)
        if e.store is None and self.unit is None:  # nothing to commit to: subscribers hear of it now
            for fn in self.subscribers:
                fn(ev)
        else:
            self.uncommitted.append(ev)
        return ev

    def inject(self, header: EventHeader, actor: str = "operator") -> Event:
        """An observed event line (script or operator): recorded as it is, once its
        data is what its reducer needs; otherwise EngineError and nothing changes."""
        state = self.engine.state
        try:
            check_event(state, header.type, header.data)
        except EventDataError as exc:
            raise EngineError("INVALID_EVENT", str(exc), {"type": header.type, "field": exc.field}) from None
        journal = state.begin_journal()
        try:
            ev = self.engine.emit(header.type, header.component, header.scope, header.data, actor=actor)
        except BaseException:
            state.undo_journal(journal)
            raise
        state.keep_journal(journal)
        return ev

    # -- units of work --------------------------------------------------------------
    def begin_unit(self) -> Unit | None:
        """Start a unit of work; None when one is already open (the outer one owns it)."""
        if self.unit is not None:
            return None
        state = self.engine.state
        self.unit = Unit(state.seq, state.begin_journal())
        return self.unit

    def end_unit(self, unit: Unit | None, keep: bool) -> bool:
        """Close ``unit``: keep its events, or take them back (state and buffer as before it
        began; the chain's head moves only when rows are handed to the store, and a failed
        commit hands them back unchained). False when they could not be taken back because a flush
        inside the unit already committed some of them."""
        if unit is None or unit is not self.unit:
            return keep
        self.unit = None
        state = self.engine.state
        if keep or unit.committed:
            state.keep_journal(unit.journal)
            if not keep:
                return False
        else:
            self.buffer = [r for r in self.buffer if r[0] <= unit.seq]
            self.uncommitted = [e for e in self.uncommitted if e.seq <= unit.seq]
            self.checkpoint_rows = [c for c in self.checkpoint_rows if c.seq <= unit.seq]
            state.undo_journal(unit.journal)
        if self.engine.store is None:  # the memory engine's subscribers waited for the unit
            evs, self.uncommitted = self.uncommitted, []
            for ev in evs:
                for fn in self.subscribers:
                    fn(ev)
        return True

    def holds_changes(self) -> bool:
        """Whether rows other than commands' records are held uncommitted (a command
        that changed state is committed with its record, so a record held alone is a
        query's, which acknowledged nothing)."""
        return bool(self.buffer) and self.buffer[0][0] <= self.last_change

    def hold_checkpoint(self, held: HeldCheckpoint) -> None:
        """Commit a checkpoint's row with its CHECKPOINT_CREATED (just emitted, in ``buffer``)."""
        self.checkpoint_rows.append(held)

    # -- group commit ---------------------------------------------------------------
    async def flush(self, all_samples: bool = False) -> None:
        """Group commit everything emitted since the last flush, then tell subscribers.

        Subscribers hear of a batch only after ``store.append`` returned (the
        transaction committed); a failed commit keeps the rows for the next flush and
        tells nobody. Without a store there is nothing to wait for: subscribers hear
        of each event as it is emitted. The archive records of workflows that
        finished meanwhile are committed in the same transaction. ``all_samples`` (the
        engine closes, or the store's samples are about to be downsampled): metric
        samples waiting for their batch are committed too."""
        e = self.engine
        if e.store is None:
            # Nothing to write, so nothing is chained: ``head_hash`` is the hash of the last
            # row handed to a store, and an engine without one never reads it.
            self.buffer = []
            e.telemetry.pending.clear()
            await self.store_archive(e.state.take_archive())
            return
        async with e.store_lock:
            archive = e.state.take_archive()
            # Samples alone wait for their batch (Telemetry.take_rows) unless all are asked for.
            samples = e.telemetry.take_rows(force=bool(self.buffer or archive) or all_samples)
            if self.buffer or archive:
                held, self.buffer = self.buffer, []
                checkpoints, self.checkpoint_rows = self.checkpoint_rows, []
                rows = chain_rows(e.head_hash, held)
                n = len(rows)
                if rows:
                    e.head_hash = rows[-1][8]
                t0 = time.perf_counter()
                cancelled = await self._commit(rows, held, archive, samples, checkpoints)
                for cp in checkpoints:
                    cp.committed()
                if rows:
                    e.telemetry.committed(rows, time.perf_counter() - t0)
                if rows and self.unit is not None and rows[-1][0] > self.unit.seq:
                    self.unit.committed = True
                self._publish(n)
                if cancelled:
                    raise asyncio.CancelledError
            elif samples:  # alone, in the same uncancellable commit: a refused write keeps them too
                cancelled = await self._commit([], [], [], samples, [])
                if cancelled:
                    raise asyncio.CancelledError

    async def _commit(
        self,
        rows: list[EventRow],
        held: list[UnchainedRow],
        archive: Any,
        samples: SeriesSamples,
        checkpoints: list[HeldCheckpoint],
    ) -> bool:
        """Append ``rows`` in one transaction that a cancellation cannot cut in two.

        aiosqlite runs the statements in its own thread: abandoning the await between
        BEGIN and COMMIT would leave the connection inside a transaction, and a commit
        that did happen would be retried (a duplicate seq). So the append is a Commit,
        which a cancellation of this caller does not cancel: the store lock is held until
        it settles; a cancellation is re-raised after.
        A failed commit keeps the rows (``held``, as they were before they were chained,
        the head back where it was; a caller cancelled meanwhile gets the cancellation,
        not the failure) and the metric samples of the same transaction for
        the next flush, and the checkpoints' rows with their events. Returns whether the
        caller was cancelled meanwhile."""
        store = self.engine.store
        assert store is not None
        self.held.in_store = len(rows)
        # The store's Commit: no task, and a cancellation of this caller waits for its outcome.
        append = store.append(rows, archive, samples, checkpoints=[c.row for c in checkpoints])

        def keep() -> None:
            self.buffer = held + self.buffer
            self.checkpoint_rows = checkpoints + self.checkpoint_rows
            if rows:
                self.engine.head_hash = rows[0][7]
            telemetry = self.engine.telemetry
            telemetry.put_back(samples)
            if self.engine.state.archive_out is not None:
                self.engine.state.archive_out[:0] = archive
            over = self.held.after_refusal(len(self.buffer), telemetry.pending_count())
            if over:
                telemetry.drop_newest(over)

        append.add_done_callback(self._went_through)
        try:
            await append
            return False
        except asyncio.CancelledError:
            # The Commit refuses cancellation: a cancelled caller gets here once it settled.
            if append.done() and not append.cancelled() and append.exception() is None:
                return True
            keep()
            raise
        except BaseException:
            keep()
            raise

    def _went_through(self, append: asyncio.Future[None]) -> None:
        """A commit settled: once one goes through after refusals or a lock wait that
        paused new work, it starts again. (Runs before a refused commit's rows are kept
        again: they are not counted twice.)"""
        if self.held.settled(not append.cancelled() and append.exception() is None):
            self.engine.request_dispatch()

    def _publish(self, n: int) -> None:
        """Notify subscribers of the first ``n`` uncommitted events (those just committed)."""
        if n == len(self.uncommitted):
            evs, self.uncommitted = self.uncommitted, []
        else:
            evs, self.uncommitted = self.uncommitted[:n], self.uncommitted[n:]
        self._deliver(evs)

    def _deliver(self, evs: list[Event]) -> None:
        """Each event to every subscriber, in order, to those subscribed as its delivery
        begins (the list is replaced, never changed in place: see :meth:`_unsubscribe`).
        One or two subscribers are called without a loop over them per event: that inner
        loop cost about as much as two calls that do nothing."""
        subs = self.subscribers
        # The list is looked at after each event: the rest goes to whoever is subscribed then
        # (an index per event cost about 150 instructions more).
        rest = iter(evs)
        if len(subs) == 1:
            (f,) = subs
            for ev in rest:
                f(ev)
                if self.subscribers is not subs:  # (un)subscribed by a subscriber meanwhile
                    self._deliver(list(rest))
                    return
        elif len(subs) == 2:
            f, g = subs
            for ev in rest:
                f(ev)
                g(ev)
                if self.subscribers is not subs:
                    self._deliver(list(rest))
                    return
        else:
            for ev in evs:
                for fn in self.subscribers:
                    fn(ev)

    # -- archive --------------------------------------------------------------------
    async def store_archive(self, archive: list[tuple[str, int, str, str]]) -> None:
        """Records of finished workflows: into the store's archive table (kept in memory
        without a writable store)."""
        if not archive:
            return
        e = self.engine
        if e.store is None or e.readonly:
            for wid, fseq, _status, record in archive:
                self.memory_archive[(wid, fseq)] = record
            return
        async with e.store_lock:
            await e.store.append([], archive)

    async def archived(self, wf_id: str) -> dict[str, Any] | None:
        """The full record (``workflow``, ``tasks``) of a finished workflow, from the archive."""
        state = self.engine.state
        done = state.finished.get(wf_id)
        if done is None:
            return None
        key = (wf_id, done.finished_seq)
        record = self.memory_archive.get(key)
        if record is None:
            record = next((r[3] for r in state.archive_out or () if (r[0], r[1]) == key), None)
        if record is not None:
            loaded: dict[str, Any] = json.loads(record)
            return loaded
        store = self.engine.store
        return await store.archived(*key) if store is not None else None

    async def tasks_with_archive(self, finished_since: float = float("-inf")) -> list[Task]:
        """Live tasks and the archived tasks of workflows that finished at or after
        ``finished_since`` (analyses over what happened, not only what is running)."""
        state = self.engine.state
        out = list(state.tasks.values())
        for wid, done in sorted(state.finished.items()):
            if done.finished_at is not None and done.finished_at < finished_since:
                continue
            record = await self.archived(wid)
            if record is not None:
                out.extend(Task.model_validate(t) for t in record["tasks"])
        return out
