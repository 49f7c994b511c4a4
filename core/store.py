"""The SQLite store: hash-chained event log, checkpoints, metric samples.

The event log is the source of truth. It is append-only (triggers refuse UPDATE and
DELETE) and hash-chained (each row holds the previous row's hash and a SHA-256 over
its canonical encoding). Writes arrive in batches (group commit): one executemany
per batch, never one thread round trip per event. Metric samples live outside the
chain in their own table, with retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from .anchor import AnchorWriter, anchor_path, read_anchor
from .events import GENESIS_HASH, Event, canonical_envelope, chain_hash
from .private import PrivateError, check_owner, trust_requested
from .sqlite_check import sqlite_integrity
from .store_errors import StorageError, StoreError, classify

APPLICATION_ID = 0x0D5DEC  # "opsdeck": marks the file as ours in the SQLite header
SCHEMA_VERSION = 3

EventRow = tuple[int, float, str, str, str, str, str, str, str]
"""(seq, ts, type, component, scope, actor, data_json, prev_hash, hash)"""

MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            type TEXT NOT NULL,
            component TEXT NOT NULL,
            scope TEXT NOT NULL,
            actor TEXT NOT NULL,
            data TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX events_type ON events(type, seq)",
        """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
           BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END""",
        """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
           BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END""",
        """CREATE TABLE checkpoints (
            id INTEGER PRIMARY KEY,
            seq INTEGER NOT NULL,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            workflow TEXT,
            state TEXT NOT NULL,
            state_hash TEXT NOT NULL
        )""",
        """CREATE TABLE metrics (
            ts REAL NOT NULL,
            name TEXT NOT NULL,
            subject TEXT NOT NULL,
            value REAL NOT NULL
        )""",
        "CREATE INDEX metrics_lookup ON metrics(name, subject, ts)",
    ],
    2: [
        # Which agent processes a run owns, so a restarted console can adopt them.
        """CREATE TABLE IF NOT EXISTS processes (
            agent TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            create_time REAL NOT NULL,
            info TEXT NOT NULL DEFAULT '{}'
        )""",
    ],
    3: [
        # Finished workflows with their tasks, once they leave the engine's hot state.
        # Outside the chain: derived from it (a replay writes the same rows again).
        """CREATE TABLE IF NOT EXISTS archive (
            workflow TEXT NOT NULL,
            finished_seq INTEGER NOT NULL,
            status TEXT NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (workflow, finished_seq)
        )""",
    ],
}


async def scalar(db: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()) -> Any:
    """The first column of the one row an aggregate or PRAGMA query returns."""
    row = await (await db.execute(sql, args)).fetchone()
    if row is None:  # an aggregate always answers one row: none means the query is not one
        raise StoreError(f"no row for {sql!r}")
    return row[0]


def file_bytes(path: Path) -> int:
    """The size of a file, 0 when there is none (a WAL comes and goes)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


__all__ = [
    "EVENT_COLUMNS",
    "StorageError",
    "Store",
    "StoreError",
    "check_file",
    "repair_hint",
    "row_hash_ok",
    "row_to_event",
]

BUSY_TIMEOUT_MS = 5000
"""How long one SQLite call waits for another process's lock before it reports "locked"."""
LOCK_WAIT_S = 60.0
"""How long a write keeps retrying against another process's lock before it gives up (for now)."""
QUICK_CHECK_MAX_BYTES = 16 * 1024 * 1024
"""Opening runs ``PRAGMA quick_check`` on a database up to this size (cheap there: tens of ms)."""

SQLITE_MAGIC = b"SQLite format 3\x00"


def repair_hint(path: str | Path) -> str:
    """What every damage message ends with: how to get back to a log that verifies."""
    return f"`opsdeck repair --db {path}` rebuilds it from what still verifies (the damaged file is kept aside)"


def check_file(fp: Path) -> None:
    """Refuse what cannot be a whole opsdeck database: empty, not SQLite, or truncated."""
    try:
        size = fp.stat().st_size
        with open(fp, "rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise StoreError(f"{fp}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise StoreError(
            f"{fp}: not an opsdeck database (an empty file); nothing was written to it. "
            f"If it was one: {repair_hint(fp)}"
        )
    if head[:16] != SQLITE_MAGIC:
        raise StoreError(f"{fp}: not an opsdeck database (not an SQLite file)")
    if len(head) < 100:
        raise StoreError(f"{fp}: the database is damaged: truncated to {size} bytes. {repair_hint(fp)}")
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    valid_for, changes = head[92:96], head[24:28]
    if page < 512 or page & (page - 1) or size % page:
        raise StoreError(
            f"{fp}: the database is damaged: {size} bytes is not a whole number of {page}-byte pages. {repair_hint(fp)}"
        )
    wal = Path(f"{fp}-wal")
    wal_pending = wal.exists() and wal.stat().st_size > 0  # a checkpoint cut short: the WAL completes the file
    if valid_for == changes and pages and size < pages * page and not wal_pending:
        raise StoreError(
            f"{fp}: the database is damaged: truncated to {size // page} of its {pages} pages. {repair_hint(fp)}"
        )


def check_files(fp: Path, trust: bool) -> list[str]:
    """The database and the files SQLite and opsdeck keep beside it, checked before
    anything opens them: another owner or write access for others is refused (or,
    with ``trust``, returned as audit notes); a symlink beside it is refused always."""
    notes = [
        check_owner(path, what, trust=trust, follow=follow)
        for path, what, follow in (
            (fp, "database", True),
            (Path(f"{fp}-wal"), "write-ahead log", False),
            (Path(f"{fp}-shm"), "shared-memory index", False),
            (anchor_path(fp), "anchor", False),
        )
    ]
    return [n for n in notes if n is not None]


def row_hash_ok(
    seq: int, ts: Any, type_: Any, comp: Any, scope: Any, actor: Any, data_json: Any, prev: Any, h: Any
) -> bool:
    """A stored row's hash recomputed from its content (a column of the wrong type fails)."""
    try:
        return chain_hash(prev, canonical_envelope(seq, ts, type_, comp, scope, actor, data_json)) == h
    except (TypeError, ValueError):
        return False


def row_to_event(row: Sequence[Any]) -> Event:
    return Event(
        seq=row[0], ts=row[1], type=row[2], component=row[3], scope=row[4], actor=row[5], data=json.loads(row[6])
    )


EVENT_COLUMNS = "seq, ts, type, component, scope, actor, data, prev_hash, hash"


class Store:
    """Async access to one opsdeck database file (or ``:memory:``)."""

    def __init__(self, db: aiosqlite.Connection, path: str, readonly: bool, trust: bool = False) -> None:
        self._db = db
        self.path = path
        self.readonly = readonly
        self.trust = trust
        self._anchor = AnchorWriter(path, trust=trust) if path != ":memory:" and not readonly else None
        self.anchored = False
        """The database records that it keeps a head anchor (a missing one is then a loss)."""
        self.trusted: list[str] = []
        """Files of another owner that ``trust`` let through: for the audit record."""
        self.anchor_error: str | None = None
        """Why the last anchor write failed (the commit stood), if it did."""
        self.metrics_problem: str | None = None
        """Why metric samples could not be read or written (a damaged page, a full disk)."""
        self.on_wait: Callable[[StorageError, float], None] | None = None
        """Told while a write waits for another process's lock (the error, seconds so far)."""

    @classmethod
    async def open(
        cls, path: str | Path, *, readonly: bool = False, create: bool = True, trust_owner: bool = False
    ) -> Store:
        """Open (or atomically create) a database; StoreError says why one cannot be used.

        A new database is built under a temporary name and linked into place
        complete, so a file at ``path`` is always a whole opsdeck database: an empty
        or truncated file is refused, never filled with a new fleet. A database, WAL,
        shared-memory file or anchor that another user owns (or others may write) is
        refused unless ``trust_owner`` (or ``OPSDECK_TRUST_OWNER=1``); a symlink at one
        of the files beside it is refused always."""
        p = str(path)
        trust = trust_owner or trust_requested()
        notes: list[str] = []
        if p != ":memory:":
            fp = Path(p)
            exists, is_dir = await asyncio.to_thread(lambda: (fp.exists(), fp.is_dir()))
            if is_dir:
                raise StoreError(f"{p}: is a directory, not a database file")
            if not exists:
                if readonly or not create:
                    raise StoreError(f"{p}: no such database")
                fp.parent.mkdir(parents=True, exist_ok=True)
                await cls._create(fp)
            notes = check_files(fp, trust)
            check_file(fp)
        store = await cls._connect(p, readonly, trust)
        store.trusted = notes
        return store

    @classmethod
    async def _create(cls, fp: Path) -> None:
        tmp = fp.parent / f".{fp.name}.creating-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            store = await cls._connect(str(tmp), False)
            # Anchored from birth: its anchor missing later is a loss, never "an older file".
            await store._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('anchored', '1')")
            await store.close()  # the last connection checkpoints the WAL into the file
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, fp)
            except FileExistsError:
                return  # another opsdeck process created it first: use theirs
            # Ours is new: an anchor left by a deleted database means nothing; the new one says seq 0.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(anchor_path(fp))
            writer = AnchorWriter(fp)
            try:
                writer.write(0, GENESIS_HASH)
            finally:
                writer.close()
        except (OSError, PrivateError) as exc:
            err = classify(exc, str(fp)) if isinstance(exc, OSError) else None
            raise StoreError(err.args[0] if err else f"{fp}: cannot create: {exc}") from None
        finally:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{tmp}{suffix}")

    @classmethod
    async def _connect(cls, p: str, readonly: bool, trust: bool = False) -> Store:
        try:
            uri = f"file:{p}?mode=ro" if readonly and p != ":memory:" else p
            db = await aiosqlite.connect(uri, uri=readonly and p != ":memory:", isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{p}: cannot open: {exc}") from None
        store = cls(db, p, readonly, trust)
        try:
            for attempt in range(40):
                try:
                    await store._prepare()
                    break
                except sqlite3.OperationalError as exc:
                    # Another opsdeck process is migrating the file.
                    if "locked" not in str(exc) or attempt == 39:
                        raise
                    if db.in_transaction:
                        await db.execute("ROLLBACK")
                    await asyncio.sleep(0.05 + 0.01 * attempt)
        except BaseException as exc:
            await db.close()  # never leave the connection's thread behind: the process would not exit
            if isinstance(exc, StoreError):
                raise
            storage = classify(exc, p)
            if storage is not None:
                raise storage from None
            if isinstance(exc, (sqlite3.Error, ValueError)):
                raise StoreError(f"{p}: the database is damaged: {exc}. {repair_hint(p)}") from None
            raise
        return store

    async def _prepare(self) -> None:
        db = self._db
        # Wait for other opsdeck processes' locks (first of all while switching to WAL).
        await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if not self.readonly and self.path != ":memory:":
            await db.execute("PRAGMA journal_mode=WAL")
        # FULL: in WAL mode each commit syncs the WAL, so a commit that returned
        # survives a power loss (NORMAL may lose the last commits, keeping integrity).
        await db.execute("PRAGMA synchronous=FULL")
        # One read transaction: the header and the schema seen at the same instant,
        # even while another opsdeck process is creating the file.
        await db.execute("BEGIN")
        try:
            app_id = await scalar(db, "PRAGMA application_id")
            tables = {
                r[0] for r in await (await db.execute("SELECT name FROM sqlite_master WHERE type='table'")).fetchall()
            }
        finally:
            await db.execute("COMMIT")
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise StoreError(f"{self.path}: not an opsdeck database (it holds other data)")
        # Ours, or empty (perhaps being created right now by another opsdeck process).
        version = await self._schema_version()
        if version == 0 and self.readonly:
            raise StoreError(f"{self.path}: empty database, nothing to read")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer opsdeck (schema {version}, this one reads up to {SCHEMA_VERSION}); upgrade opsdeck"
            )
        if version < SCHEMA_VERSION:
            if self.readonly:
                raise StoreError(f"{self.path}: schema {version} needs migrating; open it once without --readonly")
            await self._migrate(version)
        self.anchored = await self._meta("anchored") == "1"
        # A writer checks the whole file only where it is cheap (``PRAGMA quick_check``
        # reads every page): the engine checks what it reads, the chain since its
        # checkpoint; readers report damage at the row they cannot read; ``opsdeck
        # verify`` runs ``integrity_check`` over the whole file. Damage in the metrics
        # table costs samples only: said, not refused.
        if not self.readonly and self.path != ":memory:" and file_bytes(Path(self.path)) <= QUICK_CHECK_MAX_BYTES:
            found = await self.integrity(quick=True)
            bad = [(t, m) for t, m in found if t != "metrics"]
            if len(bad) < len(found):
                self.metrics_problem = (
                    "the metrics table is damaged (SQLite's quick_check); gauges show no samples from the store "
                    f"where it is unreadable: `opsdeck verify --db {self.path}` names the problem"
                )
            if bad:
                raise StoreError(
                    f"{self.path}: the database is damaged: table {bad[0][0]}: {bad[0][1]}. Nothing was changed; "
                    f"`opsdeck verify --db {self.path}` reports the damage; {repair_hint(self.path)}"
                )

    async def _meta(self, key: str) -> str | None:
        try:
            row = await (await self._db.execute("SELECT value FROM meta WHERE key=?", (key,))).fetchone()
        except sqlite3.OperationalError:  # no meta table yet (an empty file being created)
            return None
        return None if row is None else str(row[0])

    async def integrity(self, quick: bool = False) -> list[tuple[str, str]]:
        """SQLite's own check: (table, problem) for each problem (``core.sqlite_check``)."""
        return await sqlite_integrity(self._db, quick)

    async def _schema_version(self) -> int:
        db = self._db
        has_meta = await (await db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'")).fetchone()
        if not has_meta:
            return 0
        row = await (await db.execute("SELECT value FROM meta WHERE key='schema_version'")).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: the database is damaged: no schema version. {repair_hint(self.path)}")
        return int(row[0])

    async def _migrate(self, current: int) -> None:
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have created or migrated the file while we waited
            # for the write lock: read the version again under the lock.
            current = await self._schema_version()
            if current == 0:
                await db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            for v in range(current + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v]:
                    await db.execute(stmt)
                await db.execute(
                    "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (str(v),),
                )
            await db.execute("COMMIT")
        except Exception:
            await db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._anchor is not None:
            self._anchor.close()
        await self._db.close()

    # -- writes that the storage may refuse -------------------------------------------
    async def _rollback(self) -> None:
        """Take back an open transaction (SQLite already rolled back after a full disk)."""
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                await self._db.execute("ROLLBACK")

    async def _write(self, statements: Callable[[], Awaitable[None]]) -> None:
        """Run ``statements`` in one transaction. A full disk, a read-only file system
        or an I/O error raise StorageError (nothing of it committed); another process's
        lock is waited for (``on_wait`` is told) up to LOCK_WAIT_S, then StorageError."""
        start = time.monotonic()
        while True:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                await statements()
                await self._db.execute("COMMIT")
                return
            except Exception as exc:
                await self._rollback()
                err = classify(exc, self.path)
                if err is None:
                    raise
                waited = time.monotonic() - start
                if err.kind != "locked" or waited >= LOCK_WAIT_S:
                    raise err from None
                if self.on_wait is not None:
                    self.on_wait(err, waited)
                await asyncio.sleep(0.2)

    # -- events ---------------------------------------------------------------
    async def head(self) -> tuple[int, str]:
        """The last sequence number and its hash (0 and the genesis hash when empty)."""
        from .events import GENESIS_HASH

        row = await (await self._db.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")).fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    async def append(self, rows: Sequence[EventRow], archive: Sequence[tuple[str, int, str, str]] = ()) -> None:
        """Group commit: one transaction and one executemany for the whole batch, with
        the archive records of workflows that finished in it (committed together)."""
        if not rows and not archive:
            return
        if self.readonly:
            raise StoreError("the database is open read-only")
        mark = self._anchor is not None and not self.anchored and bool(rows)

        async def statements() -> None:
            if rows:
                await self._db.executemany(f"INSERT INTO events({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            if archive:
                await self._db.executemany(
                    "INSERT OR IGNORE INTO archive(workflow, finished_seq, status, record) VALUES (?,?,?,?)", archive
                )
            if mark:  # an older database: from this commit on, a missing anchor is a loss
                await self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('anchored', '1')")

        await self._write(statements)
        if mark:
            self.anchored = True
        if self._anchor is not None and rows:
            last = rows[-1]
            try:
                self._anchor.write(last[0], last[8])
                self.anchor_error = None
            except (OSError, PrivateError) as exc:
                # The commit stands; a verify after this names the anchor as behind.
                self.anchor_error = f"{self._anchor.path}: the anchor could not be written: {exc}"

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

    async def anchor_problem(self) -> tuple[int, str] | None:
        """(seq, problem) when the log lost events committed before (see core/anchor.py).

        The anchor is read first, then the head in a fresh read: a writer appending
        meanwhile (a live host under a reader) can only move the head further on."""
        if self.path == ":memory:":
            return None
        where = anchor_path(self.path)
        anchor = read_anchor(self.path, trust=self.trust)
        head = await self.count_events()
        if anchor is None:
            if not (self.anchored or await self._meta("anchored") == "1"):
                return None  # an older database that never kept one
            state = "is damaged" if where.exists() else "is missing"
            return head + 1, (
                f"the anchor {where} {state}, and the database records that it keeps one: committed events after "
                f"seq {head} may be missing (was {self.path}-wal deleted with it?); if the database was copied "
                f"without it, copy {where.name} too"
            )
        seq, h = anchor
        if seq > head:
            return head + 1, (
                f"the log ends at seq {head} but seq {seq} was committed: committed events are missing "
                f"(was {self.path}-wal deleted, truncated or damaged?)"
            )
        if seq > 0 and await self.row_hash(seq) != h:
            return seq, "the row is not the one that was committed there"
        return None

    def damaged(self, problem: str, seq: int | None = None) -> StoreError:
        """The error for damage found while reading: where, what, and what to run."""
        where = f"the event log is damaged at seq {seq}: " if seq is not None else "the database is damaged: "
        return StoreError(
            f"{self.path}: {where}{problem}. Nothing was changed; `opsdeck verify --db {self.path}` reports the "
            f"damage; {repair_hint(self.path)}"
        )

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
        """The archived record (workflow and tasks) of a finished workflow, or None."""
        row = await (
            await self._db.execute(
                "SELECT record FROM archive WHERE workflow=? AND finished_seq=?", (workflow, finished_seq)
            )
        ).fetchone()
        return json.loads(row[0]) if row else None

    # -- checkpoints ----------------------------------------------------------
    async def save_checkpoint(
        self, seq: int, ts: float, kind: str, label: str, workflow: str | None, state: dict[str, Any], state_hash: str
    ) -> int:
        from .events import canonical_json

        text = canonical_json(state)
        cp_id = 0

        async def statements() -> None:
            nonlocal cp_id
            cur = await self._db.execute(
                "INSERT INTO checkpoints(seq, ts, kind, label, workflow, state, state_hash) VALUES (?,?,?,?,?,?,?)",
                (seq, ts, kind, label, workflow, text, state_hash),
            )
            cp_id = int(cur.lastrowid or 0)

        await self._write(statements)
        return cp_id

    async def next_checkpoint_id(self) -> int:
        return (await scalar(self._db, "SELECT max(id) FROM checkpoints") or 0) + 1

    async def list_checkpoints(self) -> list[dict[str, Any]]:
        rows = await (
            await self._db.execute("SELECT id, seq, ts, kind, label, workflow, state_hash FROM checkpoints ORDER BY id")
        ).fetchall()
        keys = ("id", "seq", "ts", "kind", "label", "workflow", "state_hash")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def load_checkpoint(self, checkpoint_id: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(row, state) for a checkpoint, or None. The state is the stored JSON, unverified."""
        row = await (
            await self._db.execute(
                "SELECT id, seq, ts, kind, label, workflow, state_hash, state FROM checkpoints WHERE id=?",
                (checkpoint_id,),
            )
        ).fetchone()
        if row is None:
            return None
        keys = ("id", "seq", "ts", "kind", "label", "workflow", "state_hash")
        return dict(zip(keys, row[:7], strict=True)), json.loads(row[7])

    async def checkpoint_text_hash(self, checkpoint_id: int) -> tuple[str, str] | None:
        """(state_hash, SHA-256 of the stored state text) without decoding it: the store
        writes the canonical encoding, so for an intact checkpoint they are equal."""
        row = await (
            await self._db.execute("SELECT state_hash, state FROM checkpoints WHERE id=?", (checkpoint_id,))
        ).fetchone()
        if row is None:
            return None
        text = row[1] if isinstance(row[1], str) else str(row[1])
        return row[0], hashlib.sha256(text.encode("utf-8")).hexdigest()

    # -- metrics --------------------------------------------------------------
    def _metrics_failed(self, exc: BaseException, doing: str) -> None:
        """Samples live outside the chain: a damaged metrics page or a refused write costs
        samples (said once in ``metrics_problem``), never the host."""
        err = classify(exc, self.path)
        why = err.args[0] if err is not None else f"the metrics table is damaged ({exc})"
        self.metrics_problem = f"metric samples could not be {doing}: {why}; gauges show no samples from the store"

    async def add_metrics(self, rows: Sequence[tuple[float, str, str, float]]) -> None:
        """Store samples, one transaction per batch (the connection autocommits: without
        it each row was its own commit, 0.3 ms apiece). A batch the storage refuses or a
        damaged metrics table cannot take is dropped and said in ``metrics_problem``."""
        if not rows or self.readonly:
            return

        async def statements() -> None:
            await self._db.executemany("INSERT INTO metrics(ts, name, subject, value) VALUES (?,?,?,?)", rows)

        try:
            await self._write(statements)
        except (sqlite3.DatabaseError, StorageError) as exc:
            self._metrics_failed(exc, "written")

    async def metrics(
        self, name: str, subject: str = "system", since: float = float("-inf")
    ) -> list[tuple[float, float]]:
        """Samples of one gauge; none (and ``metrics_problem`` set) when the table is damaged."""
        try:
            rows = await (
                await self._db.execute(
                    "SELECT ts, value FROM metrics WHERE name=? AND subject=? AND ts>=? ORDER BY ts",
                    (name, subject, since),
                )
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            self._metrics_failed(exc, "read")
            return []
        return [(r[0], r[1]) for r in rows]

    async def metrics_after(self, rowid: int, limit: int = 20000) -> tuple[list[tuple[float, str, str, float]], int]:
        """Samples added after ``rowid`` (in insertion order) and the last rowid read:
        how a read-only replica follows the writer's gauges without rescanning."""
        try:
            rows = list(
                await (
                    await self._db.execute(
                        "SELECT rowid, ts, name, subject, value FROM metrics WHERE rowid > ? ORDER BY rowid LIMIT ?",
                        (rowid, limit),
                    )
                ).fetchall()
            )
        except sqlite3.DatabaseError as exc:
            self._metrics_failed(exc, "read")
            return [], rowid
        return [(r[1], r[2], r[3], r[4]) for r in rows], (rows[-1][0] if rows else rowid)

    async def last_metric_rowid(self) -> int:
        try:
            return int(await scalar(self._db, "SELECT max(rowid) FROM metrics") or 0)
        except sqlite3.DatabaseError as exc:
            self._metrics_failed(exc, "read")
            return 0

    async def prune_metrics(self, before: float) -> int:
        """Delete samples older than ``before``; 0 (and ``metrics_problem``) when the
        table is damaged or the storage refuses the write."""
        deleted = 0

        async def statements() -> None:
            nonlocal deleted
            cur = await self._db.execute("DELETE FROM metrics WHERE ts < ?", (before,))
            deleted = cur.rowcount

        try:
            await self._write(statements)
        except (sqlite3.DatabaseError, StorageError) as exc:
            self._metrics_failed(exc, "pruned")
            return 0
        return deleted

    async def reclaim(self, metrics_before: float) -> dict[str, int]:
        """Give back disk: delete metric samples older than ``metrics_before``, then
        checkpoint the write-ahead log into the database and truncate it. Returns
        what was measured: rows deleted and bytes the WAL file shrank by."""
        if self.readonly:
            return {"metric_rows_deleted": 0, "wal_bytes_freed": 0}
        wal = Path(f"{self.path}-wal")
        before = await asyncio.to_thread(file_bytes, wal)
        rows = await self.prune_metrics(metrics_before)
        await (await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")).fetchall()
        after = await asyncio.to_thread(file_bytes, wal)
        return {"metric_rows_deleted": rows, "wal_bytes_freed": max(before - after, 0)}

    # -- processes (local runtime) ----------------------------------------------
    async def save_process(self, agent: str, pid: int, create_time: float, info: dict[str, Any]) -> None:
        async def statements() -> None:
            await self._db.execute(
                "INSERT INTO processes(agent, pid, create_time, info) VALUES (?,?,?,?) "
                "ON CONFLICT(agent) DO UPDATE SET pid=excluded.pid, create_time=excluded.create_time, info=excluded.info",
                (agent, pid, create_time, json.dumps(info)),
            )

        await self._write(statements)

    async def forget_process(self, agent: str) -> None:
        async def statements() -> None:
            await self._db.execute("DELETE FROM processes WHERE agent=?", (agent,))

        await self._write(statements)

    async def processes(self) -> list[tuple[str, int, float, dict[str, Any]]]:
        rows = await (await self._db.execute("SELECT agent, pid, create_time, info FROM processes")).fetchall()
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    @property
    def connection(self) -> aiosqlite.Connection:
        return self._db
