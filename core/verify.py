"""Verification of a store: the hash chain, sequence numbers, checkpoints, the anchor
and SQLite's own integrity check.

Two forms. The whole verify (:func:`verify_store`, ``opsdeck verify``) reads every row
and every checkpoint; on a database file it runs in a worker thread over its own
read-only connection, off the caller's event loop. The incremental check
(:func:`verify_since`, the data-integrity detector's periodic one) reads the rows and
checkpoints added since a :class:`VerifiedPoint` and replays from the newest
checkpoint a replay confirmed, so its cost follows what was added, not the history;
its report's :class:`Coverage` says what it read and what it did not.

Both report the first
bad sequence number, every checkpoint that fails, and each problem SQLite finds in
its b-trees by table (``integrity``), so that a recovery knows which segment to
distrust; damage confined to the metrics table is told apart (``metrics_only``):
it costs samples, not the log.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from .event_types import EVENTS
from .events import GENESIS_HASH, Event, canonical_json, chain_next
from .projection import State, hash_snapshot
from .projection_history import kept_problems
from .store import Store, row_hash_ok
from .store_reads import EVENT_COLUMNS
from .store_schema import BUSY_TIMEOUT_MS, METRIC_TABLES


@dataclass
class Fault:
    seq: int
    problem: str


@dataclass
class Coverage:
    """What a verification read: the claim its result stands for."""

    whole: bool = True
    from_seq: int = 1
    to_seq: int = 0
    checkpoints_after: int = 0
    """Checkpoints with a greater id were checked (0: every one)."""
    replayed_from: int | None = 0
    """The checkpoint the replay started from (0: the first row; None: no replay)."""

    def claim(self) -> str:
        replay = (
            "not replayed"
            if self.replayed_from is None
            else "replayed from the first row"
            if self.replayed_from == 0
            else f"replayed from checkpoint {self.replayed_from}"
        )
        if self.whole:
            return f"the whole log (rows 1..{self.to_seq}) and every checkpoint ({replay})"
        rows = (
            f"rows {self.from_seq}..{self.to_seq}" if self.to_seq >= self.from_seq else f"no rows after {self.to_seq}"
        )
        return (
            f"{rows} (sequence, links, hashes) and the checkpoints after {self.checkpoints_after} ({replay}); "
            f"rows before {self.from_seq} and older checkpoints were not read again: the whole verify covers them"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "whole": self.whole,
            "from_seq": self.from_seq,
            "to_seq": self.to_seq,
            "checkpoints_after": self.checkpoints_after,
            "replayed_from": self.replayed_from,
            "claim": self.claim(),
        }


@dataclass
class VerifyReport:
    events: int = 0
    last_seq: int = 0
    first_bad_seq: int | None = None
    faults: list[Fault] = field(default_factory=list)
    checkpoints_ok: list[int] = field(default_factory=list)
    checkpoints_bad: dict[int, str] = field(default_factory=dict)
    checkpoints_unrecorded: list[int] = field(default_factory=list)
    """Rows no CHECKPOINT_CREATED of the log records (a process ended between the two):
    never listed nor restored to, not damage; ``cleanup-checkpoints`` removes them."""
    integrity: list[tuple[str, str]] = field(default_factory=list)
    """(table, problem) from SQLite's ``integrity_check`` (the whole verify only)."""
    coverage: Coverage = field(default_factory=Coverage)

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None and not self.checkpoints_bad and not self.integrity

    @property
    def metrics_only(self) -> bool:
        """Everything wrong is in the metrics table (outside the chain): samples, not the log."""
        return (
            not self.ok
            and self.first_bad_seq is None
            and not self.checkpoints_bad
            and all(t in METRIC_TABLES for t, _ in self.integrity)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "last_seq": self.last_seq,
            "first_bad_seq": self.first_bad_seq,
            "faults": [{"seq": f.seq, "problem": f.problem} for f in self.faults[:20]],
            "checkpoints_ok": self.checkpoints_ok,
            "checkpoints_bad": {str(k): v for k, v in self.checkpoints_bad.items()},
            "checkpoints_unrecorded": self.checkpoints_unrecorded,
            "integrity": [{"table": t, "problem": p} for t, p in self.integrity[:20]],
            "metrics_only": self.metrics_only,
            "coverage": self.coverage.as_dict(),
        }

    def fault(self, seq: int, problem: str) -> None:
        self.faults.append(Fault(seq, problem))
        if self.first_bad_seq is None or seq < self.first_bad_seq:
            self.first_bad_seq = seq


VERIFIED_POINT_KEY = "verified_point"
"""The meta-table key the data-integrity check keeps its :class:`VerifiedPoint` under."""


class VerifiedPoint(BaseModel):
    """How far a log is known good, kept in the store between checks: rows 1..``seq``
    chain to ``hash``; checkpoints up to id ``checkpoint`` were checked; ``base`` (at
    ``base_seq``) is the newest one a replay confirmed, where the next replay starts."""

    seq: int = 0
    hash: str = GENESIS_HASH
    checkpoint: int = 0
    base: int = 0
    base_seq: int = 0

    @classmethod
    def parse(cls, text: str | None) -> VerifiedPoint:
        """The stored point; the start (everything to check) when none or unreadable."""
        if not text:
            return cls()
        try:
            return cls.model_validate_json(text)
        except ValidationError:
            return cls()


@dataclass
class Incremental:
    """An incremental check: its report, the point the next one starts from if this one
    is accepted, and the replayed state at ``report.last_seq`` (None without a replay)."""

    report: VerifyReport
    point: VerifiedPoint
    state: State | None


def row_problem(row: Sequence[Any], expected_seq: int, prev_hash: str) -> tuple[str | None, Any]:
    """(what is wrong with a stored row, None) or (None, its decoded payload).

    The payload is decoded by orjson (a third of the standard library's cost); where
    orjson refuses the text or its values do not encode back to exactly the stored
    text (integers beyond 64 bits, NaN, lone surrogates: what orjson reads otherwise
    or not at all), the standard library's decoder decides, so a row is judged as the
    reference decoder judges it: at most once a row, and only for such a row."""
    seq, ts, type_, comp, scope, actor, data_json, prev, h = row
    if seq != expected_seq:
        return f"sequence gap: expected {expected_seq}, found {seq}", None
    if prev != prev_hash:
        return "previous-hash link broken", None
    by_reference = False
    try:
        data = orjson.loads(data_json)
    except (TypeError, ValueError):
        try:
            data = json.loads(data_json)
        except (TypeError, ValueError):
            return "payload is not JSON", None
        by_reference = True
    try:
        if chain_next(prev, seq, ts, type_, comp, scope, actor, data_json) != h:
            return "hash does not match the row's content", None
        if canonical_json(data) != data_json:
            if by_reference:
                return "hash does not match the row's content", None
            data = json.loads(data_json)
            if canonical_json(data) != data_json:
                return "hash does not match the row's content", None
    except (TypeError, ValueError):
        return "a column holds a value of the wrong type", None
    return None, data


class _Walk:
    """One pass over consecutive rows: chain checks, the fold, and the replay's hashes
    at each checkpoint's sequence number (``replayed``: checkpoint id -> hashes)."""

    def __init__(
        self, rep: VerifyReport, state: State | None, prev: str, after: int, cps: list[dict[str, Any]]
    ) -> None:
        self.rep = rep
        self.state = state
        self.prev = prev
        self.expected = after + 1
        self.replay_ok = state is not None
        self.by_seq: dict[int, list[tuple[int, str]]] = {}
        for cp in cps:
            self.by_seq.setdefault(cp["seq"], []).append((cp["id"], cp["state_hash"]))
        self.replayed: dict[int, set[str]] = {}
        self.known: dict[int, str] = {}
        """Hashes rows must still have (a row verified before)."""
        if after in self.by_seq:
            self._at_checkpoint(after)

    def _at_checkpoint(self, seq: int) -> None:
        if self.state is None or not self.replay_ok:
            return
        hashes = {self.state.state_hash()}
        if any(h not in hashes for _, h in self.by_seq[seq]):
            # Snapshots written before history parts became digests hold them whole, the
            # oldest with checkpoint labels: each form counts.
            hashes.add(hash_snapshot(self.state.snapshot(full=True)))
            hashes.add(hash_snapshot(self.state.snapshot(full=True, checkpoint_labels=True)))
        for cp_id, _ in self.by_seq[seq]:
            self.replayed[cp_id] = hashes

    def feed(self, rows: Sequence[Sequence[Any]]) -> None:
        rep = self.rep
        for row in rows:
            seq = row[0]
            rep.events += 1
            rep.last_seq = seq
            problem, data = row_problem(row, self.expected, self.prev)
            if problem is None and self.known.get(seq, row[8]) != row[8]:
                problem = "the row is not the one an earlier check verified"
            if problem is not None:
                rep.fault(seq, problem)
                self.replay_ok = False
            elif self.state is not None and self.replay_ok:
                try:
                    self.state.apply(Event(seq, row[1], row[2], row[3], row[4], data, row[5]))
                except Exception as exc:  # noqa: BLE001 - a row that cannot be folded (whatever it raises) is a fault
                    rep.fault(seq, f"cannot be applied: {exc!r}")
                    self.replay_ok = False
            self.prev = row[8]
            self.expected = seq + 1
            if seq in self.by_seq:
                self._at_checkpoint(seq)


Rows = Callable[[int, int], Awaitable[list[tuple[Any, ...]]]]
"""Reads up to ``limit`` event rows after ``since`` (in seq order)."""

BATCH = 5000


async def _walk_rows(rows: Rows, walk: _Walk, after: int, until: int | None = None) -> None:
    cursor = after
    while until is None or cursor < until:
        batch = await rows(cursor, BATCH if until is None else min(BATCH, until - cursor))
        if not batch:
            return
        walk.feed(batch)
        cursor = batch[-1][0]


def _tolerant(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class FileRows:
    """The event rows of a database file over a read-only connection of the verifying
    thread: no hop to another thread per batch, text decoded by SQLite's own UTF-8
    path. A batch holding text that is not UTF-8 is read again with replacement
    characters (that row's hash then fails, naming its seq, instead of the read).
    Each batch is its own read (a live writer's WAL is never held back for the
    whole walk)."""

    SQL = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?"

    def __init__(self, path: str) -> None:
        self.con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        self.con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    async def __call__(self, since: int, limit: int) -> list[tuple[Any, ...]]:
        await asyncio.sleep(0)  # the loop's other work (SQLite's integrity check) moves on between batches
        try:
            return self.con.execute(self.SQL, (since, limit)).fetchall()
        except sqlite3.OperationalError:  # text that is not UTF-8 (anything else fails again below)
            self.con.text_factory = _tolerant
            try:
                return self.con.execute(self.SQL, (since, limit)).fetchall()
            finally:
                self.con.text_factory = str

    def close(self) -> None:
        self.con.close()


async def _check_checkpoint(store: Store, cp: dict[str, Any], rep: VerifyReport, replayed: set[str] | None) -> None:
    """A checkpoint's stored text against its hash (decoded only when the text is not
    the canonical one the store writes), its seq within the log, and the replay's hash."""
    cp_id = cp["id"]
    try:
        quick = await store.checkpoint_text_hash(cp_id)
        if quick is None:
            rep.checkpoints_bad[cp_id] = "vanished while being read"
            return
        if quick[0] != quick[1]:
            loaded = await store.load_checkpoint(cp_id)
            if loaded is None:
                rep.checkpoints_bad[cp_id] = "vanished while being read"
                return
            if not isinstance(loaded[1], dict):
                rep.checkpoints_bad[cp_id] = "stored state is not a JSON object"
                return
            if hash_snapshot(loaded[1]) != quick[0]:
                rep.checkpoints_bad[cp_id] = "stored state does not match its state hash"
                return
    except (sqlite3.Error, ValueError) as exc:
        rep.checkpoints_bad[cp_id] = f"unreadable: {type(exc).__name__}"
        return
    if cp["seq"] > rep.last_seq:
        rep.checkpoints_bad[cp_id] = f"refers to sequence {cp['seq']}, past the end of the log"
    elif replayed is not None and cp["state_hash"] not in replayed:
        rep.checkpoints_bad[cp_id] = "differs from a replay of the log to its sequence number"
    else:
        rep.checkpoints_ok.append(cp_id)


async def _check_kept(store: Store, rep: VerifyReport) -> None:
    """The history entries kept beside compact checkpoints against each one's digests
    (what a rollback to it or an open from it would load)."""
    try:
        found = kept_problems(await store.history_all(), await store.checkpoint_digests())
    except (sqlite3.Error, ValueError) as exc:
        rep.integrity.append(("snapshot_history", f"unreadable: {type(exc).__name__}"))
        return
    for cp_id, problem in found.items():
        if cp_id not in rep.checkpoints_bad:
            rep.checkpoints_bad[cp_id] = problem
            if cp_id in rep.checkpoints_ok:
                rep.checkpoints_ok.remove(cp_id)


async def _anchor(store: Store, rep: VerifyReport) -> None:
    lost = await store.anchor_problem()
    if lost is not None:
        rep.fault(*lost)


async def verify_store(store: Store, replay_checkpoints: bool = True) -> VerifyReport:
    """Walk the whole chain; check each checkpoint's hash and, by replay, its content.

    On a database file the walk runs in a worker thread over its own read-only
    connection (the caller's event loop keeps running); ``:memory:`` is walked here.
    Damage is reported, never raised: text that is not UTF-8 is read with
    replacement characters (so the row's hash fails), a payload that is not JSON or
    a row that cannot be folded is a fault at its seq."""
    if store.path == ":memory:":
        with store.tolerating_bad_text():
            return await _verify(store, replay_checkpoints)
    return await asyncio.to_thread(_verify_in_worker, store.path, store.trust, replay_checkpoints)


def _verify_in_worker(path: str, trust: bool, replay_checkpoints: bool) -> VerifyReport:
    async def run() -> VerifyReport:
        reader = await Store.open(path, readonly=True, create=False, trust_owner=trust)
        rows = FileRows(path)
        try:
            with reader.tolerating_bad_text():
                return await _verify(reader, replay_checkpoints, rows)
        finally:
            rows.close()
            await reader.close()

    return asyncio.run(run())


async def _verify(store: Store, replay_checkpoints: bool, rows: Rows | None = None) -> VerifyReport:
    """The whole verify. SQLite's ``integrity_check`` runs on the store's connection
    (its own thread, in SQLite's code) while this thread walks the rows from ``rows``
    (default: the store's own reads): on a file the two use both cores."""
    rep = VerifyReport()
    cps = await store.list_checkpoints()
    integrity = asyncio.ensure_future(store.integrity())
    walk = _Walk(rep, State(EVENTS.folds) if replay_checkpoints else None, GENESIS_HASH, 0, cps)
    try:
        await _walk_rows(store.raw_rows if rows is None else rows, walk, 0)
    finally:
        rep.integrity = await integrity
    await _anchor(store, rep)
    for cp in cps:
        await _check_checkpoint(store, cp, rep, walk.replayed.get(cp["id"]))
    await _check_kept(store, rep)
    if walk.replay_ok and walk.state is not None:
        rep.checkpoints_unrecorded = [cp["id"] for cp in cps if cp["id"] not in walk.state.checkpoints]
    rep.coverage = Coverage(
        whole=True, from_seq=1, to_seq=rep.last_seq, replayed_from=0 if replay_checkpoints else None
    )
    return rep


async def verify_since(store: Store, point: VerifiedPoint, until: int | None = None) -> Incremental:
    """Check what was added after ``point`` (up to ``until``): the rows from the point's
    base checkpoint on (sequence, links, hashes; the row at the point must still be the
    one verified), each newer checkpoint by its hash and by a replay from the base, and
    the anchor. Its cost follows the rows and checkpoints since the base, not the
    history: SQLite's file check and the older rows are the whole verify's."""
    with store.tolerating_bad_text():
        return await _verify_since(store, point, until)


async def _base(store: Store, point: VerifiedPoint, rep: VerifyReport) -> tuple[State, int, str] | None:
    """The replay's start: the point's base checkpoint, checked again, and its row's
    hash (the first row without one). None when the base no longer checks out."""
    if not point.base:
        return State(EVENTS.folds), 0, GENESIS_HASH
    base = point.base
    try:
        loaded = await store.load_checkpoint_with_history(base)
        rows = await store.raw_rows(point.base_seq - 1, 1)
    except (sqlite3.Error, ValueError) as exc:
        rep.checkpoints_bad[base] = f"unreadable: {type(exc).__name__}"
        return None
    if loaded is None:
        return (
            State(EVENTS.folds),
            0,
            GENESIS_HASH,
        )  # dropped (a recovery removes checkpoints): replay from the first row
    row, snap, history, problem = loaded
    if problem is not None or not isinstance(snap, dict) or row["seq"] != point.base_seq:
        rep.checkpoints_bad[base] = f"changed since a replay confirmed it: {problem or 'its seq changed'}"
        return None
    if not rows or rows[0][0] != point.base_seq or not row_hash_ok(*rows[0]):
        rep.fault(point.base_seq, "the row of a verified checkpoint is missing or does not match its hash")
        return None
    return State.from_snapshot(EVENTS.folds, snap, history=history), point.base_seq, rows[0][8]


async def _verify_since(store: Store, point: VerifiedPoint, until: int | None) -> Incremental:
    rep = VerifyReport()
    cps = [c for c in await store.list_checkpoints(after=point.checkpoint) if until is None or c["seq"] <= until]
    start = await _base(store, point, rep)
    if start is None:
        state, after, prev = None, point.seq, point.hash
    else:
        state, after, prev = start
    walk = _Walk(rep, state, prev, after, cps)
    if after < point.seq:
        walk.known[point.seq] = point.hash
    rep.last_seq = after
    await _walk_rows(store.raw_rows, walk, after, until)
    await _anchor(store, rep)
    for cp in cps:
        await _check_checkpoint(store, cp, rep, walk.replayed.get(cp["id"]))
    rep.coverage = Coverage(
        whole=False,
        from_seq=after + 1,
        to_seq=rep.last_seq,
        checkpoints_after=point.checkpoint,
        replayed_from=None if start is None else point.base if start[1] else 0,
    )
    base, base_seq = (point.base, point.base_seq) if start is not None and start[1] else (0, 0)
    for cp in cps:
        if cp["id"] in rep.checkpoints_ok and cp["id"] in walk.replayed:
            base, base_seq = cp["id"], cp["seq"]
    nxt = VerifiedPoint(
        seq=max(rep.last_seq, point.seq),
        hash=walk.prev if rep.last_seq >= point.seq else point.hash,
        checkpoint=max([point.checkpoint, *(c["id"] for c in cps)]),
        base=base,
        base_seq=base_seq,
    )
    return Incremental(rep, nxt, walk.state if walk.replay_ok else None)
