"""Opening a log: the latest good checkpoint, then the rows after it, each checked.

Nothing is appended to a damaged log: every problem found while opening raises
:class:`~core.store.StoreError` naming the row or checkpoint, and the engine is left
as it was.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..collector import gc_paused
from ..event_types import EVENTS, OWNERSHIP_TRUSTED
from ..events import GENESIS_HASH, Event, chain_head, envelope_hash
from ..projection import State
from ..projection_history import DIGEST_KEYS, HistoryRows, rows_problem
from ..store import Store, StoreError, row_hash_ok
from ..telemetry import HISTORY
from ..verify import VERIFIED_POINT_KEY, VerifiedPoint
from .checkpoints import unrecorded_words

if TYPE_CHECKING:
    from .contract import EngineCore

log = logging.getLogger("opsdeck.store")

FULL_CHECK_ROWS = 100_000
"""Opening checks the whole chain of a log up to this long; a longer one from its checkpoint on."""
_HEADS_KEPT = 100_000
"""Header pieces one open remembers (type, component, scope, actor repeat endlessly)."""
_PAGE = 64
"""Older checkpoints whose stored texts one read hashes at open."""
_SYSTEM_SERIES = ("cpu_pct", "memory_pct", "agents_pct", "throughput_per_min", "response_time", "efficiency")


class _Chain:
    """Consecutive rows checked as an open reads them: sequence, previous-hash link and
    the hash recomputed from the row by :func:`~core.events.envelope_hash` (the chain's one
    formula) from the memoised header (:func:`~core.events.chain_head`); a
    row whose columns are not the types the store writes takes ``row_hash_ok``'s path."""

    def __init__(self, opening: Opening, cursor: int, prev: str) -> None:
        self.opening = opening
        self.cursor = cursor
        self.prev = prev
        self.heads: dict[tuple[Any, Any, Any, Any], str] = {}

    def check(self, row: Sequence[Any]) -> None:
        """Raise StoreError naming the row unless it follows the last one checked."""
        seq, ts, type_, comp, scope, actor, data_json, p, h = row
        if seq != self.cursor + 1:
            raise self.opening._damaged(f"sequence gap: expected {self.cursor + 1}, found {seq}", self.cursor + 1)
        if p != self.prev:
            raise self.opening._damaged("previous-hash link broken", seq)
        if (
            type(seq) is int
            and type(ts) is float
            and math.isfinite(ts)
            and type(data_json) is str
            and type(p) is str
            and type(type_) is str
            and type(comp) is str
            and type(scope) is str
            and type(actor) is str
        ):
            key = (type_, comp, scope, actor)
            head = self.heads.get(key)
            if head is None:
                head = chain_head(type_, comp, scope, actor)
                if len(self.heads) < _HEADS_KEPT:
                    self.heads[key] = head
            try:
                ok = envelope_hash(p, seq, repr(ts), head, data_json) == h
            except UnicodeEncodeError:  # a lone surrogate: not text the store wrote
                ok = False
        else:
            ok = row_hash_ok(seq, ts, type_, comp, scope, actor, data_json, p, h)
        if not ok:
            raise self.opening._damaged("the row does not match its hash", seq)
        self.prev, self.cursor = h, seq


class Opening:
    """Load, replay and anchor checks for one engine over its store."""

    def __init__(self, engine: EngineCore) -> None:
        self.engine = engine
        self.point = VerifiedPoint()
        """The data-integrity check's verified point, as the store keeps it."""
        self.rows: list[int] = []
        """The ids of the checkpoint rows the store held at open."""
        self.unrecorded: list[int] = []
        """Checkpoint rows no CHECKPOINT_CREATED records (a writer's open): said, not removed.
        The finding ``/host status`` shows: kept, not looked for again per call; a host's
        verify and ``cleanup-checkpoints`` set it from their own look."""

    @property
    def store(self) -> Store:
        store = self.engine.store
        assert store is not None, "opening needs a store"
        return store

    async def load(self) -> None:
        """Latest good checkpoint, then the rows after it, each checked as it is replayed.

        The quick integrity check of every open: the rows from the checkpoint's own
        row to the head must chain (sequence, previous hash, recomputed hash) and
        fold (and, for a log of at most FULL_CHECK_ROWS rows, the rows before it must
        chain too). Damage there, or any checkpoint that fails its hash, raises
        StoreError naming it, so nothing is appended to a damaged log (a read-only
        open falls back to the newest good checkpoint). ``opsdeck verify`` walks the
        whole chain and replays every checkpoint."""
        engine, store = self.engine, self.store
        state, since = await self._latest_checkpoint()
        prev, cursor = await self._anchor(since)
        chain = _Chain(self, cursor, prev)
        try:
            while True:
                rows = await store.raw_rows(chain.cursor, 1000)  # small batches: replay memory stays low
                if not rows:
                    break
                for row in rows:
                    chain.check(row)
                    seq, ts, type_, comp, scope, actor, data_json = row[:7]
                    try:
                        state.apply(Event(seq, ts, type_, comp, scope, json.loads(data_json), actor))
                    except Exception as exc:  # noqa: BLE001 - whatever a reducer raises, the row is damage
                        raise self._damaged(f"cannot be applied ({type(exc).__name__}: {exc})", seq) from None
        except sqlite3.Error as exc:
            at = await store.first_unreadable(chain.cursor)
            raise self._damaged(f"unreadable row ({exc})", at if at is not None else chain.cursor + 1) from None
        prev, cursor = chain.prev, chain.cursor
        lost = await store.anchor_problem()
        if lost is not None:
            raise self._damaged(lost[1], lost[0])
        engine.state = state
        engine.head_hash = prev
        engine.state.seq = cursor
        await engine.log.store_archive(state.take_archive())  # workflows that finished after the checkpoint
        await self._load_telemetry()
        self._audit_trust()
        self._unrecorded()

    def _unrecorded(self) -> None:
        """Checkpoint rows no event records (a process ended between a row's commit and its
        event's): said once, on stderr, and kept for the console; nothing is removed. A
        reader sees none: its host may be between a row and its event right now."""
        if self.engine.readonly:
            return
        listed = self.engine.state.checkpoints
        self.unrecorded = [i for i in self.rows if i not in listed]
        if self.unrecorded:
            log.warning("opsdeck: %s: %s; nothing was removed", self.store.path, unrecorded_words(self.unrecorded))

    def _audit_trust(self) -> None:
        """Files of another owner let through by ``--trust-owner``: recorded in the log
        (a reader cannot write; its verb says so on stderr)."""
        engine, store = self.engine, self.store
        if store.trusted and not engine.readonly:
            engine.emit(
                OWNERSHIP_TRUSTED,
                "system",
                "security",
                {"files": list(store.trusted), "uid": os.getuid(), "pid": os.getpid()},
                actor="opsdeck",
            )

    async def _latest_checkpoint(self) -> tuple[State, int]:
        """The state of the newest checkpoint that matches its hash and its seq (an
        empty state and 0 without one). A writer checks every checkpoint and refuses
        a log with a bad one; a reader uses the newest good one."""
        store, readonly = self.store, self.engine.readonly
        state, since, bad = State(EVENTS.folds, collect_archive=True), 0, []
        try:
            cps = await store.list_checkpoints()
        except sqlite3.Error as exc:
            raise self._damaged(f"the checkpoint table is unreadable ({exc})") from None
        # Older checkpoints the integrity check verified (hash and replay) are not hashed
        # again: the whole verify (``opsdeck verify``) covers them.
        point = self.point = VerifiedPoint.parse(await store.meta(VERIFIED_POINT_KEY))
        found = False
        pages: dict[int, tuple[str, str]] = {}
        alone = 0  # checkpoints left of a page that could not be read: each read on its own
        for cp in reversed(cps):
            try:
                if found and cp["id"] <= point.checkpoint:
                    break
                if found:
                    # Older ones: the stored text against its hash, without decoding it
                    # (the whole snapshot only if the text is not the canonical one), read
                    # a page of them at a time. A page that cannot be read is tried once:
                    # the checkpoints it held are then read one at a time (the damaged
                    # one named), and the next page is read whole again.
                    if alone:
                        alone -= 1
                    elif cp["id"] not in pages:
                        page = await self._text_hashes(cp["id"] + 1, point.checkpoint)
                        pages, alone = (page, 0) if page is not None else ({}, _PAGE - 1)
                    quick = pages.get(cp["id"]) or await store.checkpoint_text_hash(cp["id"])
                    if quick is not None and quick[0] == quick[1]:
                        continue
                # The one loaded has its kept history entries checked as they are loaded.
                loaded = await store.load_checkpoint_with_history(cp["id"], check_history=found)
                if loaded is None:
                    continue
                row, snap, history, problem = loaded
                if problem is None and isinstance(snap, dict) and snap.get("seq") == row["seq"] and not found:
                    loaded_state, problem = self._state_of(snap, history)
                    if loaded_state is not None:
                        state, since, found = loaded_state, row["seq"], True
                        if readonly:
                            break  # a reader uses the newest good one; a writer checks them all
                        continue
                if problem is not None or not isinstance(snap, dict) or snap.get("seq") != row["seq"]:
                    bad.append(f"checkpoint {cp['id']}: {problem or 'its seq does not match its row'}")
            except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
                bad.append(f"checkpoint {cp['id']} is unreadable ({type(exc).__name__})")
        if bad and not readonly:
            raise self._damaged("; ".join(bad[:3]))
        self.rows = [cp["id"] for cp in cps]
        for cp in cps:  # labels are not in snapshots: the checkpoints table keeps them
            known = state.checkpoints.get(cp["id"])
            if known is not None and cp["label"]:
                known.label = cp["label"]
        return state, since

    async def _text_hashes(self, below: int, above: int) -> dict[int, tuple[str, str]] | None:
        """A page of older checkpoints' (state hash, text hash), the newest ``_PAGE``
        with ids between ``above`` and ``below``; None when the page cannot be read
        (its checkpoints are then read on their own, so the damage is named)."""
        try:
            return await self.store.checkpoint_table.text_hashes(below, above, _PAGE)
        except sqlite3.Error:
            return None

    @staticmethod
    def _state_of(snap: dict[str, Any], history: HistoryRows | None) -> tuple[State | None, str | None]:
        """(the state of a checkpoint's snapshot, None), or (None, what is wrong with the
        history entries kept beside it): each entry is hashed once, as it is loaded, and
        the parts' digests compared with the snapshot's before the state is used."""
        digests = {key: snap.get(key) for key in DIGEST_KEYS.values()}
        try:
            # Many long-lived records at once, none of them garbage: a young-generation
            # pass every 700 of them would walk them again and again (once loaded, a
            # big projection is frozen: ``Collector.loaded``).
            with gc_paused():
                state = State.from_snapshot(EVENTS.folds, snap, collect_archive=True, history=history)
        except (ValueError, KeyError, TypeError):
            # Kept entries that do not load (a changed checkpoint record) are named as
            # the digest check names them; anything else is an unreadable checkpoint.
            why = rows_problem(digests, history) if history is not None else None
            if why is None:
                raise
            return None, why
        if history is None:
            return state, None
        why = state.history.loaded_problem(digests)
        return (None, why) if why is not None else (state, None)

    async def _anchor(self, since: int) -> tuple[str, int]:
        """The hash the rows after ``since`` chain to, checked.

        A log of at most FULL_CHECK_ROWS rows is checked from its first row, or from
        the data-integrity check's verified point (hashes and links; the rows before
        the checkpoint are not folded); a longer one from the checkpoint's own row."""
        store = self.store
        if since == 0:
            return GENESIS_HASH, 0
        try:
            full = await store.count_events() <= FULL_CHECK_ROWS
        except sqlite3.Error as exc:
            raise self._damaged(f"unreadable log ({exc})") from None
        # From the integrity check's verified point when it has one (the rows before it
        # were verified there; the whole verify reads them again): past the checkpoint,
        # only the checkpoint's own row is checked, as for a long log.
        point = self.point
        if full and point.seq < since:
            start = point if point.seq > 0 else VerifiedPoint()
            return await self._chain_to(since, start.seq, start.hash)
        try:
            rows = await store.raw_rows(since - 1, 1)
        except sqlite3.Error as exc:
            raise self._damaged(f"unreadable row ({exc})", since) from None
        if not rows or rows[0][0] != since:
            raise self._damaged(
                f"a checkpoint is at seq {since} but the log has no such row: committed events are missing", since
            )
        if not row_hash_ok(*rows[0]):
            raise self._damaged("the row does not match its hash", since)
        return rows[0][8], since

    async def _chain_to(self, since: int, after: int = 0, prev: str = GENESIS_HASH) -> tuple[str, int]:
        """Check the chain from the row after ``after`` (whose hash is ``prev``) up to
        ``since`` (hashes and links)."""
        store = self.store
        chain = _Chain(self, after, prev)
        try:
            while chain.cursor < since:
                rows = await store.raw_rows(chain.cursor, min(5000, since - chain.cursor))
                if not rows:
                    break
                for row in rows:
                    chain.check(row)
        except sqlite3.Error as exc:
            at = await store.first_unreadable(chain.cursor)
            raise self._damaged(f"unreadable row ({exc})", at if at is not None else chain.cursor + 1) from None
        if chain.cursor != since:
            raise self._damaged(
                f"a checkpoint is at seq {since} but the log ends at {chain.cursor}: committed events are missing",
                chain.cursor + 1,
            )
        return chain.prev, since

    def _damaged(self, problem: str, seq: int | None = None) -> StoreError:
        return self.store.damaged(problem, seq)

    async def _load_telemetry(self) -> None:
        """Bring back recent system samples so gauges and detectors have history (one
        query for every series, each series' points taken in at once). The samples it
        writes from now on are packed within the configured downsampling buckets."""
        engine = self.engine
        self.store.metric_table.bucket_s = engine.config.intervals.metric_bucket_s
        horizon = engine.state.clock - HISTORY * engine.config.intervals.sample_s
        found = await self.store.recent_metrics(horizon, _SYSTEM_SERIES, ("system",), last=HISTORY)
        for (name, subject), points in found.items():
            engine.telemetry.load(name, subject, points)
