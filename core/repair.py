"""Repair of a damaged database: back to a log that verifies, saying what was lost.

The damaged file is moved aside whole (``<db>.damaged-<time>``, with its WAL and
anchor), never edited. A new database is built from what can still be read: the
longest prefix of the log that verifies (sequence, previous-hash link, recomputed
hash) is kept as it was; after it, each later row whose own hash still verifies and
that still applies to the state is re-chained behind a ``STATE_REPAIRED`` event that
lists what was dropped. Checkpoints are not carried over (their snapshots describe
sequence numbers the new log no longer has): ``CHECKPOINTS_PRUNED`` says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .anchor import anchor_path
from .event_types import CHECKPOINTS_PRUNED, EVENTS, STATE_REPAIRED
from .events import GENESIS_HASH, Event, canonical_json, chain_next
from .projection import State
from .store import EVENT_COLUMNS, EventRow, Store, row_hash_ok

PAGE = 500
"""Rows read per query while salvaging; a page SQLite cannot read is retried row by row."""
MISSES = 200
"""Row-by-row salvage gives up after this many sequence numbers in a row it cannot read."""
LISTED = 200
"""Dropped sequence numbers listed in STATE_REPAIRED (the count is always whole)."""


class RepairError(Exception):
    """Why a repair could not be made; nothing was moved or written."""


@dataclass
class RepairReport:
    db: str
    moved_to: str
    rows_read: int = 0
    prefix_through: int = 0
    later_kept: dict[int, int] = field(default_factory=dict)
    """Old seq -> new seq of the rows kept after the break."""
    dropped: list[int] = field(default_factory=list)
    why_dropped: dict[int, str] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    checkpoints_dropped: list[int] = field(default_factory=list)
    events_after: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "moved_to": self.moved_to,
            "rows_read": self.rows_read,
            "prefix_through_seq": self.prefix_through,
            "later_rows_kept": len(self.later_kept),
            "rows_dropped": len(self.dropped),
            "dropped_seqs": self.dropped[:LISTED],
            "why_dropped": {str(k): v for k, v in list(self.why_dropped.items())[:LISTED]},
            "unreadable": self.unreadable[:20],
            "checkpoints_not_carried_over": self.checkpoints_dropped,
            "events_after": self.events_after,
        }


def salvage(db: Path) -> tuple[list[tuple[Any, ...]], list[int], list[str]]:
    """Every event row SQLite can still read (by seq), the checkpoint ids it lists, and
    what could not be read."""
    rows: dict[int, tuple[Any, ...]] = {}
    problems: list[str] = []
    cps: list[int] = []
    con = None
    for uri in (f"file:{db}?mode=ro", f"file:{db}?mode=ro&immutable=1"):
        try:
            con = sqlite3.connect(uri, uri=True)
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            break
        except sqlite3.Error as exc:
            problems.append(f"{exc}")
            if con is not None:
                con.close()
            con = None
    if con is None:
        return [], [], problems
    try:
        try:
            top = int(con.execute("SELECT max(seq) FROM events").fetchone()[0] or 0)
        except sqlite3.Error as exc:
            problems.append(f"the events index: {exc}")
            top = -1
        last = 0
        misses = 0
        while top < 0 or last < top:
            try:
                page = con.execute(
                    f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (last, PAGE)
                ).fetchall()
            except sqlite3.Error:
                page = None
            if page:
                for r in page:
                    rows[int(r[0])] = r
                last = int(page[-1][0])
                misses = 0
                continue
            if page == [] and top >= 0:
                break
            # a page SQLite cannot read (or no index to tell where the log ends): row by row
            last += 1
            try:
                r = con.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?", (last,)).fetchone()
            except sqlite3.Error as exc:
                r = None
                problems.append(f"seq {last}: {exc}")
            if r is not None:
                rows[last] = r
                misses = 0
            else:
                misses += 1
                if misses >= MISSES:
                    break
        with contextlib.suppress(sqlite3.Error):
            cps = [int(x[0]) for x in con.execute("SELECT id FROM checkpoints ORDER BY id")]
    finally:
        con.close()
    return [rows[k] for k in sorted(rows)], cps, problems


def _event(row: Sequence[Any]) -> Event:
    return Event(
        seq=int(row[0]),
        ts=float(row[1]),
        type=str(row[2]),
        component=str(row[3]),
        scope=str(row[4]),
        actor=str(row[5]),
        data=json.loads(row[6]),
    )


def _ev(seq: int, ts: float, type_: str, component: str, scope: str, data: dict[str, Any]) -> Event:
    """An event the repair itself records."""
    return Event(seq=seq, ts=ts, type=type_, component=component, scope=scope, data=data, actor="opsdeck repair")


def _applies(state: State, ev: Event) -> str | None:
    """Fold ``ev`` into ``state``; the reason it cannot be (the state left as it was)."""
    decl = EVENTS.get(ev.type)
    journal = state.begin_journal()
    try:
        if decl is not None and decl.payload is not None:
            from .event_data import check_data

            check_data(state, ev.type, decl.payload, ev.data)
        state.apply(ev)
    except Exception as exc:  # noqa: BLE001 - any fold failure means the row cannot be kept
        state.undo_journal(journal)
        return f"does not apply to the state: {exc}"
    state.keep_journal(journal)
    return None


def rebuild(rows: list[tuple[Any, ...]], report: RepairReport) -> tuple[list[EventRow], list[Any]]:
    """The new log (rows with their hashes) and the archive records it implies."""
    state = State(EVENTS.folds, collect_archive=True)
    out: list[EventRow] = []
    prev = GENESIS_HASH
    brk = len(rows)
    for i, r in enumerate(rows):
        seq = int(r[0])
        if seq != len(out) + 1 or r[7] != prev or not row_hash_ok(*r):
            brk = i
            break
        try:
            ev = _event(r)
            state.apply(ev)  # written by the engine after it folded: it folds again
        except (TypeError, ValueError, KeyError) as exc:
            raise RepairError(f"seq {seq} verifies but does not fold ({exc}): this opsdeck cannot rebuild it") from None
        out.append((seq, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]))
        prev = r[8]
    report.prefix_through = len(out)
    later: list[tuple[Any, ...]] = []
    for r in rows[brk:]:
        if row_hash_ok(*r):
            later.append(r)
        else:
            report.dropped.append(int(r[0]))
            report.why_dropped[int(r[0])] = "its own hash does not verify"
    present = {int(r[0]) for r in rows}
    for gap in range(report.prefix_through + 1, max(present, default=0) + 1):
        if gap not in present:
            report.dropped.append(gap)
            report.why_dropped[gap] = "unreadable"

    # STATE_REPAIRED comes first after the prefix; it folds nothing, so the later rows
    # are tried (at their new sequence numbers) before its data is written.
    at = state.clock
    state.apply(_ev(len(out) + 1, at, STATE_REPAIRED, "system", "integrity", {}))
    kept: list[tuple[tuple[Any, ...], Event]] = []
    for r in later:
        ev = _event(r)
        ev = Event(
            seq=len(out) + 2 + len(kept),
            ts=ev.ts,
            type=ev.type,
            component=ev.component,
            scope=ev.scope,
            data=ev.data,
            actor=ev.actor,
        )
        why = _applies(state, ev)
        if why is None:
            kept.append((r, ev))
        else:
            report.dropped.append(int(r[0]))
            report.why_dropped[int(r[0])] = why
    report.dropped.sort()

    def append(ev: Event) -> None:
        nonlocal prev
        data_json = canonical_json(ev.data)
        h = chain_next(prev, ev.seq, ev.ts, ev.type, ev.component, ev.scope, ev.actor, data_json)
        out.append((ev.seq, ev.ts, ev.type, ev.component, ev.scope, ev.actor, data_json, prev, h))
        prev = h

    repaired = {
        "moved_to": report.moved_to,
        "prefix_through_seq": report.prefix_through,
        "rows_dropped": len(report.dropped),
        "dropped_seqs": report.dropped[:LISTED],
        "later_rows_kept": len(kept),
        "unreadable": report.unreadable[:5],
    }
    append(_ev(len(out) + 1, at, STATE_REPAIRED, "system", "integrity", repaired))
    for r, ev in kept:
        report.later_kept[int(r[0])] = ev.seq
        append(ev)
    if state.checkpoints:
        ids = sorted(state.checkpoints)
        report.checkpoints_dropped = ids
        data = {"ids": ids, "reason": "opsdeck repair: checkpoints are not carried over"}
        ev = _ev(len(out) + 1, state.clock, CHECKPOINTS_PRUNED, "coordination", "checkpoint", data)
        state.apply(ev)
        append(ev)
    report.events_after = len(out)
    return out, list(state.archive_out or [])


def _aside(db: Path, stamp: str) -> Path:
    """Move the damaged file and what SQLite and opsdeck keep beside it to ``<db>.damaged-<stamp>``."""
    dest = db.with_name(f"{db.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{db}{suffix}")
        if src.exists():
            os.replace(src, f"{dest}{suffix}")
    head = anchor_path(db)
    if head.exists():
        os.replace(head, anchor_path(dest))
    return dest


def _prepare(db: Path) -> tuple[RepairReport, list[EventRow], list[Any], list[int], Path]:
    """Read what can be read and build the new log (no file is changed yet)."""
    if not db.exists():
        raise RepairError(f"{db}: no such database")
    if db.is_dir():
        raise RepairError(f"{db}: is a directory, not a database file")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    rows, cps, problems = salvage(db)
    report = RepairReport(str(db), f"{db.name}.damaged-{stamp}", rows_read=len(rows), unreadable=problems)
    new_rows, archive = rebuild(rows, report)
    tmp = db.with_name(f".{db.name}.repairing-{os.getpid()}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    anchor_path(tmp).unlink(missing_ok=True)
    return report, new_rows, archive, cps, tmp


def _swap(db: Path, tmp: Path, report: RepairReport) -> None:
    """The damaged file aside, the rebuilt one (with its anchor) in its place."""
    stamp = report.moved_to.rsplit(".damaged-", 1)[1]
    report.moved_to = str(_aside(db, stamp))
    os.replace(tmp, db)
    os.replace(anchor_path(tmp), anchor_path(db))


async def repair(db: Path) -> RepairReport:
    """Move ``db`` aside and build a verifying log from what it still holds."""
    report, new_rows, archive, cps, tmp = await asyncio.to_thread(_prepare, db)
    store = await Store.open(tmp)
    try:
        for k in range(0, len(new_rows), 5000):
            await store.append(new_rows[k : k + 5000], archive if k + 5000 >= len(new_rows) else ())
    finally:
        await store.close()
    await asyncio.to_thread(_swap, db, tmp, report)
    report.checkpoints_dropped = sorted(set(report.checkpoints_dropped) | set(cps))
    return report
