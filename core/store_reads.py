"""Reading the event log: rows as stored (for checks), events (decoded), pages, counts.

Every read that meets damage (a row that is not UTF-8, fails its hash or is not JSON)
raises :class:`~core.store_errors.StoreError` naming the row and what to run; nothing
is skipped silently.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import aiosqlite

from .events import GENESIS_HASH, Event, chain_next
from .store_errors import PassingReadError, StoreError, passing
from .store_schema import damaged, scalar

EVENT_COLUMNS = "seq, ts, type, component, scope, actor, data, prev_hash, hash"


def row_hash_ok(
    seq: int, ts: Any, type_: Any, comp: Any, scope: Any, actor: Any, data_json: Any, prev: Any, h: Any
) -> bool:
    """A stored row's hash recomputed from its content (a column of the wrong type fails)."""
    if type(seq) is not int or type(prev) is not str:
        return False
    try:
        return chain_next(prev, seq, ts, type_, comp, scope, actor, data_json) == h
    except (TypeError, ValueError):
        return False


def row_to_event(row: Sequence[Any]) -> Event:
    return Event(
        seq=row[0], ts=row[1], type=row[2], component=row[3], scope=row[4], actor=row[5], data=json.loads(row[6])
    )


class EventReader:
    """The reads of one connection's event log."""

    def __init__(self, db: aiosqlite.Connection, path: str) -> None:
        self._db = db
        self.path = path

    def damaged(self, problem: str, seq: int | None = None) -> StoreError:
        return damaged(self.path, problem, seq)

    async def head(self) -> tuple[int, str]:
        """The last sequence number and its hash (0 and the genesis hash when empty)."""
        row = await (await self._db.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")).fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    async def row_hash(self, seq: int) -> str | None:
        row = await (await self._db.execute("SELECT hash FROM events WHERE seq = ?", (seq,))).fetchone()
        return row[0] if row else None

    async def count_events(self) -> int:
        return await scalar(self._db, "SELECT max(seq) FROM events") or 0

    async def count_types(self, types: Iterable[str], upto: int) -> dict[str, int]:
        """How many events of each of ``types`` the log holds up to ``upto`` (by index)."""
        tlist = list(types)
        if not tlist:
            return {}
        sql = (
            f"SELECT type, count(*) FROM events WHERE type IN ({','.join('?' * len(tlist))}) AND seq <= ? GROUP BY type"
        )
        rows = await (await self._db.execute(sql, [*tlist, upto])).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    async def type_field(self, types: Iterable[str], key: str, upto: int) -> list[tuple[str, Any]]:
        """(type, data[key]) of every event of ``types`` up to ``upto``."""
        tlist = list(types)
        sql = f"SELECT type, json_extract(data, ?) FROM events WHERE type IN ({','.join('?' * len(tlist))}) AND seq <= ? ORDER BY seq"
        rows = await (await self._db.execute(sql, [f"$.{key}", *tlist, upto])).fetchall()
        return [(r[0], r[1]) for r in rows]

    async def started_runs(self, tasks: Iterable[str]) -> set[str]:
        """Which of ``tasks`` have a TASK_STARTED after their latest TASK_ASSIGNED (the
        current attempt's start is in the log). Both reads walk the (type, seq) index:
        the assignments back from the end until each task's latest one is found, then the
        starts since the oldest of those."""
        left = set(tasks)
        assigned: dict[str, int] = {}
        if not left:
            return set()
        cur = await self._db.execute(
            "SELECT seq, json_extract(data, '$.task') FROM events WHERE type = 'TASK_ASSIGNED' ORDER BY seq DESC"
        )
        try:
            while left and (rows := await cur.fetchmany(256)):
                for seq, task in rows:
                    if task in left:
                        left.discard(task)
                        assigned[task] = seq
        finally:
            await cur.close()
        if not assigned:
            return set()
        sql = (
            "SELECT seq, json_extract(data, '$.task') AS task FROM events WHERE type = 'TASK_STARTED' AND seq > ?"
            f" AND task IN ({','.join('?' * len(assigned))})"
        )
        rows = await (await self._db.execute(sql, (min(assigned.values()), *assigned))).fetchall()
        return {task for seq, task in rows if seq > assigned[task]}

    async def read_events(
        self,
        since: int = 0,
        limit: int | None = None,
        types: Iterable[str] | None = None,
        until: int | None = None,
        check: bool = False,
    ) -> list[Event]:
        """Events after ``since``; with ``check`` each row's own hash is recomputed and a
        row that fails it is reported as damage instead of being returned."""
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?"
        args: list[Any] = [since]
        if until is not None:
            sql += " AND seq <= ?"
            args.append(until)
        tlist = list(types) if types else []
        if tlist:
            sql += f" AND type IN ({','.join('?' * len(tlist))})"
            args += tlist
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        try:
            rows = await (await self._db.execute(sql, args)).fetchall()
        except sqlite3.Error as exc:
            if (why := passing(exc)) is not None:  # a lock or an interrupt, not damage
                raise PassingReadError(why, self.path, exc) from None
            at = await self.first_unreadable(since) if isinstance(exc, sqlite3.OperationalError) else None
            raise self.damaged(f"unreadable row ({exc})", at) from None
        out = []
        for r in rows:
            if check and not row_hash_ok(*r):
                raise self.damaged("the row does not match its hash", r[0])
            try:
                out.append(row_to_event(r))
            except (TypeError, ValueError):
                raise self.damaged("the payload is not JSON", r[0]) from None
        return out

    async def raw_rows(self, since: int = 0, limit: int = 5000) -> list[tuple[Any, ...]]:
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
        return [tuple(r) for r in await (await self._db.execute(sql, (since, limit))).fetchall()]

    async def raw_page(self, since: int, max_rows: int, max_chars: int) -> list[tuple[Any, ...]]:
        """Rows after ``since``: at most ``max_rows``, and no more after the one that
        brings their data past ``max_chars`` (the first row always), so a reader of a
        log of large events holds a bounded page. SQLite sums the sizes; only the
        rows returned are read into Python."""
        sql = (
            "WITH page AS (SELECT seq, SUM(length(data)) OVER (ORDER BY seq) - length(data) AS before "
            "FROM events WHERE seq > ? ORDER BY seq LIMIT ?) "
            f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? "
            "AND seq <= (SELECT max(seq) FROM page WHERE before < ?) ORDER BY seq"
        )
        return [tuple(r) for r in await (await self._db.execute(sql, (since, max_rows, since, max_chars))).fetchall()]

    async def first_unreadable(self, since: int, limit: int = 1000) -> int | None:
        """After a batch read failed (text that is not UTF-8): which row it was."""
        for seq in range(since + 1, since + limit + 1):
            try:
                await (await self._db.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,))).fetchall()
            except sqlite3.Error:
                return seq
        return None

    @contextlib.contextmanager
    def tolerating_bad_text(self) -> Iterator[None]:
        """Read text that is not UTF-8 with replacement characters (for verify: the
        row's hash then fails, naming its seq, instead of the read failing)."""
        old = self._db.text_factory
        self._db.text_factory = lambda b: b.decode("utf-8", "replace")
        try:
            yield
        finally:
            self._db.text_factory = old

    async def iter_events(self, since: int = 0, until: int | None = None, batch: int = 5000) -> AsyncIterator[Event]:
        cursor = since
        while True:
            chunk = await self.read_events(cursor, batch, until=until)
            if not chunk:
                return
            for ev in chunk:
                yield ev
            cursor = chunk[-1].seq

    async def archived(self, workflow: str, finished_seq: int) -> dict[str, Any] | None:
        """The archived record (workflow and tasks) of a finished workflow, or None;
        ValueError when the stored record is not one (as for text that is not JSON)."""
        row = await (
            await self._db.execute(
                "SELECT record FROM archive WHERE workflow=? AND finished_seq=?", (workflow, finished_seq)
            )
        ).fetchone()
        return json.loads(archive_text(row[0])) if row else None


class LogReads:
    """The Store's reads of its log: each is its :class:`EventReader`'s (``reader``), so
    callers read through the Store and the reads are written once, here."""

    reader: EventReader

    async def head(self) -> tuple[int, str]:
        return await self.reader.head()

    async def row_hash(self, seq: int) -> str | None:
        return await self.reader.row_hash(seq)

    async def count_events(self) -> int:
        return await self.reader.count_events()

    async def count_types(self, types: Iterable[str], upto: int) -> dict[str, int]:
        return await self.reader.count_types(types, upto)

    async def type_field(self, types: Iterable[str], key: str, upto: int) -> list[tuple[str, Any]]:
        return await self.reader.type_field(types, key, upto)

    async def started_runs(self, tasks: Iterable[str]) -> set[str]:
        return await self.reader.started_runs(tasks)

    async def read_events(
        self,
        since: int = 0,
        limit: int | None = None,
        types: Iterable[str] | None = None,
        until: int | None = None,
        check: bool = False,
    ) -> list[Event]:
        return await self.reader.read_events(since, limit, types, until, check)

    async def raw_rows(self, since: int = 0, limit: int = 5000) -> list[tuple[Any, ...]]:
        return await self.reader.raw_rows(since, limit)

    async def raw_page(self, since: int, max_rows: int, max_chars: int) -> list[tuple[Any, ...]]:
        return await self.reader.raw_page(since, max_rows, max_chars)

    async def first_unreadable(self, since: int, limit: int = 1000) -> int | None:
        return await self.reader.first_unreadable(since, limit)

    def tolerating_bad_text(self) -> AbstractContextManager[None]:
        return self.reader.tolerating_bad_text()

    def iter_events(self, since: int = 0, until: int | None = None, batch: int = 5000) -> AsyncIterator[Event]:
        return self.reader.iter_events(since, until, batch)

    async def archived(self, workflow: str, finished_seq: int) -> dict[str, Any] | None:
        return await self.reader.archived(workflow, finished_seq)


ARCHIVE_LEVEL = 1
"""zlib level of stored archive records: a 1,000-task record (~450 KB of JSON, most of
it repeated keys) becomes ~13 KB in ~0.6 ms, less CPU than writing its pages (110 of
4 KiB, into the WAL and then the file)."""
ARCHIVE_MEM_LEVEL = 6
"""zlib's memLevel for them (its default is 8): the smaller match index costs less on
such a record (bench/event_pipeline.py's 1,000-task ones: 0.69 -> 0.59 ms, 13.8 -> 13.0 KB;
the demo's 4 KB ones the same). The stream is zlib's as before: any reader inflates it."""


def archive_blob(record: str) -> bytes:
    """A finished workflow's record (its JSON text) as the archive table stores it."""
    z = zlib.compressobj(ARCHIVE_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS, ARCHIVE_MEM_LEVEL)
    return z.compress(record.encode("utf-8")) + z.flush()


def archive_text(stored: object) -> str:
    """The JSON text of a stored archive record: compressed (:func:`archive_blob`) or,
    as databases before schema 7 hold it, the text itself. ValueError for anything else."""
    if isinstance(stored, str):
        return stored
    if not isinstance(stored, bytes):
        raise ValueError(f"an archive record is {type(stored).__name__}, not text or a compressed record")
    try:
        return zlib.decompress(stored).decode("utf-8")
    except (zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"an archive record does not decompress to text: {exc}") from None
