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
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from .anchor import AnchorWriter, read_anchor
from .anchor import forget as forget_anchor
from .events import Event, canonical_envelope, chain_hash

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


def file_bytes(path: Path) -> int:
    """The size of a file, 0 when there is none (a WAL comes and goes)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class StoreError(Exception):
    """A database opsdeck cannot use; the message says why, in words."""


SQLITE_MAGIC = b"SQLite format 3\x00"


def check_file(fp: Path) -> None:
    """Refuse what cannot be a whole opsdeck database: empty, not SQLite, or truncated."""
    try:
        size = fp.stat().st_size
        with open(fp, "rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise StoreError(f"{fp}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise StoreError(f"{fp}: not an opsdeck database (an empty file); nothing was written to it")
    if head[:16] != SQLITE_MAGIC:
        raise StoreError(f"{fp}: not an opsdeck database (not an SQLite file)")
    if len(head) < 100:
        raise StoreError(f"{fp}: the database is damaged: truncated to {size} bytes")
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    valid_for, changes = head[92:96], head[24:28]
    if page < 512 or page & (page - 1) or size % page:
        raise StoreError(f"{fp}: the database is damaged: {size} bytes is not a whole number of {page}-byte pages")
    wal = Path(f"{fp}-wal")
    wal_pending = wal.exists() and wal.stat().st_size > 0  # a checkpoint cut short: the WAL completes the file
    if valid_for == changes and pages and size < pages * page and not wal_pending:
        raise StoreError(f"{fp}: the database is damaged: truncated to {size // page} of its {pages} pages")


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

    def __init__(self, db: aiosqlite.Connection, path: str, readonly: bool) -> None:
        self._db = db
        self.path = path
        self.readonly = readonly
        self._anchor = AnchorWriter(path) if path != ":memory:" and not readonly else None

    @classmethod
    async def open(cls, path: str | Path, *, readonly: bool = False, create: bool = True) -> Store:
        """Open (or atomically create) a database; StoreError says why one cannot be used.

        A new database is built under a temporary name and linked into place
        complete, so a file at ``path`` is always a whole opsdeck database: an empty
        or truncated file is refused, never filled with a new fleet."""
        p = str(path)
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
            check_file(fp)
        return await cls._connect(p, readonly)

    @classmethod
    async def _create(cls, fp: Path) -> None:
        tmp = fp.parent / f".{fp.name}.creating-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            store = await cls._connect(str(tmp), False)
            await store.close()  # the last connection checkpoints the WAL into the file
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, fp)
                forget_anchor(fp)  # ours is new: a head anchor left by a deleted database means nothing
            except FileExistsError:
                pass  # another opsdeck process created it first: use theirs
        except OSError as exc:
            raise StoreError(f"{fp}: cannot create: {exc}") from None
        finally:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{tmp}{suffix}")

    @classmethod
    async def _connect(cls, p: str, readonly: bool) -> Store:
        try:
            uri = f"file:{p}?mode=ro" if readonly and p != ":memory:" else p
            db = await aiosqlite.connect(uri, uri=readonly and p != ":memory:", isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{p}: cannot open: {exc}") from None
        store = cls(db, p, readonly)
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
            if isinstance(exc, (sqlite3.Error, ValueError)):
                raise StoreError(f"{p}: the database is damaged: {exc}") from None
            raise
        return store

    async def _prepare(self) -> None:
        db = self._db
        # Wait for other opsdeck processes' locks (first of all while switching to WAL).
        await db.execute("PRAGMA busy_timeout=5000")
        if not self.readonly and self.path != ":memory:":
            await db.execute("PRAGMA journal_mode=WAL")
        # FULL: in WAL mode each commit syncs the WAL, so a commit that returned
        # survives a power loss (NORMAL may lose the last commits, keeping integrity).
        await db.execute("PRAGMA synchronous=FULL")
        # One read transaction: the header and the schema seen at the same instant,
        # even while another opsdeck process is creating the file.
        await db.execute("BEGIN")
        try:
            app_id = (await (await db.execute("PRAGMA application_id")).fetchone())[0]
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
        # No whole-file check here (``PRAGMA quick_check`` read every page on every
        # open): the engine checks what it reads, the chain since its checkpoint,
        # and ``opsdeck verify`` checks the whole file.

    async def _schema_version(self) -> int:
        db = self._db
        has_meta = await (await db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'")).fetchone()
        if not has_meta:
            return 0
        row = await (await db.execute("SELECT value FROM meta WHERE key='schema_version'")).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: the database is damaged: no schema version")
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
        await self._db.execute("BEGIN")
        try:
            if rows:
                await self._db.executemany(f"INSERT INTO events({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            if archive:
                await self._db.executemany(
                    "INSERT OR IGNORE INTO archive(workflow, finished_seq, status, record) VALUES (?,?,?,?)", archive
                )
            await self._db.execute("COMMIT")
        except Exception:
            await self._db.execute("ROLLBACK")
            raise
        if self._anchor is not None and rows:
            last = rows[-1]
            try:
                self._anchor.write(last[0], last[8])
            except OSError:
                pass  # the anchor only strengthens a check; the commit stands

    async def row_hash(self, seq: int) -> str | None:
        row = await (await self._db.execute("SELECT hash FROM events WHERE seq = ?", (seq,))).fetchone()
        return row[0] if row else None

    async def count_events(self) -> int:
        row = await (await self._db.execute("SELECT max(seq) FROM events")).fetchone()
        return row[0] or 0

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
        anchor = read_anchor(self.path)
        if anchor is None:
            return None
        seq, h = anchor
        head = await self.count_events()
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
            f"{self.path}: {where}{problem}. Nothing was changed; `opsdeck verify --db {self.path}` reports the damage"
        )

    async def raw_rows(self, since: int = 0, limit: int = 5000) -> list[tuple[Any, ...]]:
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
        return list(await (await self._db.execute(sql, (since, limit))).fetchall())

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

        cur = await self._db.execute(
            "INSERT INTO checkpoints(seq, ts, kind, label, workflow, state, state_hash) VALUES (?,?,?,?,?,?,?)",
            (seq, ts, kind, label, workflow, canonical_json(state), state_hash),
        )
        return int(cur.lastrowid or 0)

    async def next_checkpoint_id(self) -> int:
        row = await (await self._db.execute("SELECT max(id) FROM checkpoints")).fetchone()
        return (row[0] or 0) + 1

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
    async def add_metrics(self, rows: Sequence[tuple[float, str, str, float]]) -> None:
        if not rows or self.readonly:
            return
        # One transaction for the batch: the connection autocommits, so without it each
        # row was its own commit (0.3 ms apiece, most of a run's time with a store).
        await self._db.execute("BEGIN")
        try:
            await self._db.executemany("INSERT INTO metrics(ts, name, subject, value) VALUES (?,?,?,?)", rows)
            await self._db.execute("COMMIT")
        except Exception:
            await self._db.execute("ROLLBACK")
            raise

    async def metrics(
        self, name: str, subject: str = "system", since: float = float("-inf")
    ) -> list[tuple[float, float]]:
        rows = await (
            await self._db.execute(
                "SELECT ts, value FROM metrics WHERE name=? AND subject=? AND ts>=? ORDER BY ts", (name, subject, since)
            )
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    async def metrics_after(self, rowid: int, limit: int = 20000) -> tuple[list[tuple[float, str, str, float]], int]:
        """Samples added after ``rowid`` (in insertion order) and the last rowid read:
        how a read-only replica follows the writer's gauges without rescanning."""
        rows = await (
            await self._db.execute(
                "SELECT rowid, ts, name, subject, value FROM metrics WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (rowid, limit),
            )
        ).fetchall()
        return [(r[1], r[2], r[3], r[4]) for r in rows], (rows[-1][0] if rows else rowid)

    async def last_metric_rowid(self) -> int:
        row = await (await self._db.execute("SELECT max(rowid) FROM metrics")).fetchone()
        return int(row[0] or 0)

    async def prune_metrics(self, before: float) -> int:
        cur = await self._db.execute("DELETE FROM metrics WHERE ts < ?", (before,))
        await self._db.commit()
        return cur.rowcount

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
        await self._db.execute(
            "INSERT INTO processes(agent, pid, create_time, info) VALUES (?,?,?,?) "
            "ON CONFLICT(agent) DO UPDATE SET pid=excluded.pid, create_time=excluded.create_time, info=excluded.info",
            (agent, pid, create_time, json.dumps(info)),
        )
        await self._db.commit()

    async def forget_process(self, agent: str) -> None:
        await self._db.execute("DELETE FROM processes WHERE agent=?", (agent,))
        await self._db.commit()

    async def processes(self) -> list[tuple[str, int, float, dict[str, Any]]]:
        rows = await (await self._db.execute("SELECT agent, pid, create_time, info FROM processes")).fetchall()
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    @property
    def connection(self) -> aiosqlite.Connection:
        return self._db
