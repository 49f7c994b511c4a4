"""An opsdeck database file before the store uses it: the checks made before SQLite
reads it (whole, SQLite, owned by us), the schema and its migrations.

A new database is created complete under a temporary name and linked into place
(``Store.open``); an older schema is migrated under the write lock, a newer one refused.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from .anchor import anchor_path
from .private import check_owner
from .store_errors import StoreError

APPLICATION_ID = 0x0D5DEC  # "opsdeck": marks the file as ours in the SQLite header
SCHEMA_VERSION = 7

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
    4: [
        # Compact samples: each (name, subject) once in metric_series, a sample is
        # (series id, ts, value); the id keeps insertion order for readers that follow.
        """CREATE TABLE metric_series (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            subject TEXT NOT NULL,
            UNIQUE (name, subject)
        )""",
        "ALTER TABLE metrics RENAME TO metrics_v3",
        """CREATE TABLE metrics (
            id INTEGER PRIMARY KEY,
            series INTEGER NOT NULL,
            ts REAL NOT NULL,
            value REAL NOT NULL
        )""",
        "INSERT INTO metric_series(name, subject) SELECT DISTINCT name, subject FROM metrics_v3 ORDER BY name, subject",
        """INSERT INTO metrics(series, ts, value)
           SELECT s.id, m.ts, m.value FROM metrics_v3 m
           JOIN metric_series s ON s.name = m.name AND s.subject = m.subject ORDER BY m.rowid""",
        "DROP TABLE metrics_v3",
        "CREATE INDEX metrics_series ON metrics(series, ts)",
    ],
    5: [
        # The history parts of snapshots (finished workflows' summaries, checkpoint
        # records), kept once per change beside the checkpoints: an entry holds for
        # the checkpoints at seqs from_seq <= seq < to_seq (to_seq NULL: still).
        # Outside the chain: each compact snapshot's digests name its entries.
        """CREATE TABLE IF NOT EXISTS snapshot_history (
            part TEXT NOT NULL,
            key TEXT NOT NULL,
            from_seq INTEGER NOT NULL,
            to_seq INTEGER,
            entry TEXT NOT NULL,
            entry_hash TEXT NOT NULL,
            PRIMARY KEY (part, key, from_seq)
        )""",
    ],
    6: [
        # A batch's samples of one series in one row (core/store_metrics.py): its ts and
        # value are the newest, the earlier ones packed here; NULL for a row of one.
        "ALTER TABLE metrics ADD COLUMN earlier BLOB",
    ],
    # Archive records are stored zlib-compressed (core/store_reads.archive_blob), older
    # ones stay text and are read as before; an older opsdeck could not read the new ones.
    7: [],
}
METRIC_TABLES = ("metrics", "metric_series")
"""Tables of samples (outside the chain): damage there costs samples, not the log."""


def build_new(path: Path) -> None:
    """A complete new database at ``path``, a name no one else opens (``Store.open``
    links it into place): the schema in one transaction, WAL mode in its header, then
    one fsync of the file. Built without journal syncs: a crash before the fsync leaves
    a file no one uses; after it, the file is whole on disk before it gets its name."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=MEMORY")  # no journal file, no syncs
        con.execute("PRAGMA synchronous=OFF")  # the one fsync below makes the whole file durable
        con.execute("BEGIN")
        con.execute(f"PRAGMA application_id={APPLICATION_ID}")
        for v in range(1, SCHEMA_VERSION + 1):
            for stmt in MIGRATIONS[v]:
                con.execute(stmt)
        # Anchored from birth: its anchor missing later is a loss, never "an older file".
        con.executemany(
            "INSERT INTO meta(key, value) VALUES(?, ?)", [("schema_version", str(SCHEMA_VERSION)), ("anchored", "1")]
        )
        con.execute("COMMIT")
        # Set now, on a file no one else has open: opening it later needs no journal switch.
        if con.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            raise StoreError(f"{path}: cannot set WAL mode")
    finally:
        con.close()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


BUSY_TIMEOUT_MS = 5000
"""How long one SQLite call waits for another process's lock before it reports "locked"."""
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


def clean_path(db: str | Path) -> Path:
    """``<db>.clean``: the record a clean close leaves (``core.store_clean``)."""
    return Path(f"{db}.clean")


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
            (clean_path(fp), "clean-close record", False),
        )
    ]
    return [n for n in notes if n is not None]


def damaged(path: str, problem: str, seq: int | None = None) -> StoreError:
    """The error for damage found while reading: where, what, and what to run."""
    where = f"the event log is damaged at seq {seq}: " if seq is not None else "the database is damaged: "
    return StoreError(
        f"{path}: {where}{problem}. Nothing was changed; `opsdeck verify --db {path}` reports the "
        f"damage; {repair_hint(path)}"
    )


async def check_schema(db: aiosqlite.Connection, path: str, readonly: bool) -> None:
    """The file is ours (or empty) at the current schema: an older schema is migrated;
    a newer one, another program's data or an empty file opened read-only is refused."""
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
        raise StoreError(f"{path}: not an opsdeck database (it holds other data)")
    # Ours, or empty (perhaps being created right now by another opsdeck process).
    version = await schema_version(db, path)
    if version == 0 and readonly:
        raise StoreError(f"{path}: empty database, nothing to read")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: written by a newer opsdeck (schema {version}, this one reads up to {SCHEMA_VERSION}); upgrade opsdeck"
        )
    if version < SCHEMA_VERSION:
        if readonly:
            raise StoreError(f"{path}: schema {version} needs migrating; open it once without --readonly")
        await migrate(db, path)


async def schema_version(db: aiosqlite.Connection, path: str) -> int:
    has_meta = await (await db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'")).fetchone()
    if not has_meta:
        return 0
    row = await (await db.execute("SELECT value FROM meta WHERE key='schema_version'")).fetchone()
    if row is None:
        raise StoreError(f"{path}: the database is damaged: no schema version. {repair_hint(path)}")
    return int(row[0])


async def migrate(db: aiosqlite.Connection, path: str) -> None:
    """From the file's schema to SCHEMA_VERSION, in one write transaction."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have created or migrated the file while we waited
        # for the write lock: read the version again under the lock.
        current = await schema_version(db, path)
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
