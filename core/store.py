"""The SQLite store: hash-chained event log, checkpoints, metric samples.

The event log is the source of truth. It is append-only (triggers refuse UPDATE and
DELETE) and hash-chained (each row holds the previous row's hash and a SHA-256 over
its canonical encoding). Writes arrive in batches (group commit): rows several per
statement, the whole transaction one round trip to aiosqlite's thread
(``store_commit``). Metric samples live outside the chain in their own table, with
retention.

:class:`Store` holds the connection, the one write path and the chain's head anchor;
it is composed of parts, each a module: the file checks, schema and migrations
(``store_schema``), reading the log (``store_reads``: its reads are the Store's through
``LogReads``) and the tables beside the chain (``store_tables``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from .anchor import AnchorWriter, anchor_path, read_anchor
from .events import GENESIS_HASH, EventRow
from .private import PrivateError, trust_requested
from .projection_history import HistoryChange, HistoryRows, KeptRow
from .sqlite_check import sqlite_integrity
from .store_clean import CleanRecord, check_at_open, leave_record, take_record
from .store_commit import LOCK_WAIT_S, Commit, RowInsert, Statements, commit_soon, retrying
from .store_errors import StorageError, StoreError, classify
from .store_metrics import MetricSamples, Sample, SamplesRefused, SeriesSamples, by_series
from .store_reads import EVENT_COLUMNS, EventReader, LogReads, archive_blob, row_hash_ok, row_to_event
from .store_schema import (
    BUSY_TIMEOUT_MS,
    SCHEMA_VERSION,
    build_new,
    check_file,
    check_files,
    check_schema,
    damaged,
    file_bytes,
    repair_hint,
    scalar,
)
from .store_tables import CheckpointRow, CheckpointTable, ProcessRow, ProcessTable

__all__ = [
    "EVENT_COLUMNS",
    "LOCK_WAIT_S",
    "SCHEMA_VERSION",
    "EventRow",
    "StorageError",
    "Store",
    "StoreError",
    "check_file",
    "file_bytes",
    "repair_hint",
    "row_hash_ok",
    "row_to_event",
    "scalar",
]


_INSERT_EVENTS = RowInsert(f"INSERT INTO events({EVENT_COLUMNS})", 9)


def _link_new(tmp: Path, fp: Path) -> CleanRecord | None:
    """The built file ``tmp`` linked to ``fp`` with its anchor: the file as it was then,
    or None when another opsdeck process created ``fp`` first."""
    made = time.time()
    fd = -1
    try:
        os.chmod(tmp, 0o600)
        # Its mtime set back a nanosecond: any write from now on, even within the
        # same clock tick, changes it (as a clean close does: ``store_clean``).
        st = os.stat(tmp)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns - 1))
        fd = os.open(tmp, os.O_RDONLY)
        if fp.exists():
            return None  # another opsdeck process created it first: use theirs
        # The anchor first, then the name: a crash between them leaves no database (the
        # anchor left says seq 0), never one anchored from birth without its anchor. An
        # anchor left by a deleted database means nothing: overwritten in place, not
        # unlinked. Another process linking its file in the microseconds before our link
        # may hold that anchor open: it gets seq 0 here (no false alarm) and its next
        # commit writes its own into the same file.
        writer = AnchorWriter(fp)
        try:
            try:
                writer.write(0, GENESIS_HASH)
            except PrivateError:  # a symlink or another user's file at its name: replaced
                os.unlink(anchor_path(fp))
                writer.write(0, GENESIS_HASH)
        finally:
            writer.close()
        try:
            os.link(tmp, fp)
        except FileExistsError:
            return None  # created first by another opsdeck process after all: use theirs
        os.unlink(tmp)  # before the stat: the link count is in the ctime
        return CleanRecord.of(os.fstat(fd), made)
    finally:
        if fd >= 0:
            os.close(fd)


class Store(LogReads):
    """Async access to one opsdeck database file (or ``:memory:``); its log's reads are
    :class:`~core.store_reads.LogReads`'."""

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
        self.on_wait: Callable[[StorageError, float], None] | None = None
        """Told while a write waits for another process's lock (the error, seconds so far)."""
        self.clean: CleanRecord | None = None
        """What the last clean close recorded (read and deleted at open: ``store_clean``)."""
        self.checked_at: float | None = None
        """When this file was last known sound, if known: a ``quick_check`` passed, or this process built it."""
        self.reader = EventReader(db, path)
        self.checkpoint_table = CheckpointTable(db, self._write)
        self.metric_table = MetricSamples(db, path, readonly, self._write)
        self.process_table = ProcessTable(db, self._write)

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
        made: CleanRecord | None = None
        if p != ":memory:":
            fp = Path(p)
            exists, is_dir = await asyncio.to_thread(lambda: (fp.exists(), fp.is_dir()))
            if is_dir:
                raise StoreError(f"{p}: is a directory, not a database file")
            if not exists:
                if readonly or not create:
                    raise StoreError(f"{p}: no such database")
                fp.parent.mkdir(parents=True, exist_ok=True)
                made = await cls._create(fp)
            notes = check_files(fp, trust)
            check_file(fp)
        clean = None if readonly or p == ":memory:" else take_record(p, trust)
        clean = made or clean  # a file this call built is checked only if it changed since
        store = await cls._connect(p, readonly, trust, clean)
        store.trusted = notes
        return store

    @classmethod
    async def _create(cls, fp: Path) -> CleanRecord | None:
        """Build a new database aside (``build_new``) and link it into place. Returns the
        file as it was then (``store_clean``: opening it checks it only if it changed
        since), or None when another opsdeck process created it first (theirs is checked)."""
        tmp = fp.parent / f".{fp.name}.creating-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            await asyncio.to_thread(build_new, tmp)
            return _link_new(tmp, fp)
        except (OSError, PrivateError, sqlite3.Error) as exc:
            err = None if isinstance(exc, PrivateError) else classify(exc, str(fp))  # full, read-only, I/O
            raise StoreError(err.args[0] if err else f"{fp}: cannot create: {exc}") from None
        finally:
            for suffix in ("", "-journal", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{tmp}{suffix}")

    @classmethod
    async def _connect(cls, p: str, readonly: bool, trust: bool = False, clean: CleanRecord | None = None) -> Store:
        try:
            uri = f"file:{p}?mode=ro" if readonly and p != ":memory:" else p
            db = await aiosqlite.connect(uri, uri=readonly and p != ":memory:", isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{p}: cannot open: {exc}") from None
        store = cls(db, p, readonly, trust)
        store.clean = clean
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
        await check_schema(db, self.path, self.readonly)
        self.anchored = await self._meta("anchored") == "1"
        # A writer checks the whole file where it is cheap and it may have changed since a
        # clean close (``store_clean``); the engine checks what it reads, the chain since its
        # checkpoint; ``opsdeck verify`` runs ``integrity_check``. Metrics damage is said, not refused.
        if not self.readonly and self.path != ":memory:":
            self.checked_at, self.metric_table.problem = await check_at_open(self.path, self.clean, self.integrity)

    async def _meta(self, key: str) -> str | None:
        try:
            row = await (await self._db.execute("SELECT value FROM meta WHERE key=?", (key,))).fetchone()
        except sqlite3.OperationalError:  # no meta table yet (an empty file being created)
            return None
        return None if row is None else str(row[0])

    async def meta(self, key: str) -> str | None:
        """A value kept in the database's meta table (None when unset)."""
        return await self._meta(key)

    async def set_meta(self, key: str, value: str) -> None:
        def statements(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

        await self._write(statements)

    async def integrity(self, quick: bool = False) -> list[tuple[str, str]]:
        """SQLite's own check: (table, problem) for each problem (``core.sqlite_check``)."""
        return await sqlite_integrity(self._db, quick)

    async def close(self) -> None:
        if self._anchor is not None:
            self._anchor.close()
        await self._db.close()  # the last connection folds the WAL into the file and removes it
        if not self.readonly and self.path != ":memory:":
            leave_record(self.path, self.checked_at)

    # -- writes that the storage may refuse -------------------------------------------
    async def _rollback(self) -> None:
        """After a write that failed: take back an open transaction (SQLite already rolled
        back after a full disk) and forget the metric series ids it may have made (gone
        with it: a retry would store samples under ids no series has)."""
        self.metric_table.forget_series()
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                await self._db.execute("ROLLBACK")

    async def _write(self, statements: Statements, failed: Exception | None = None) -> None:
        """Run ``statements`` in one transaction, as ``store_commit.retrying`` says (``failed``:
        a first attempt was made, by :meth:`append`, and failed so)."""

        await retrying(self._db, statements, self.path, self._rollback, lambda: self.on_wait, failed)

    # -- the chain ------------------------------------------------------------------
    def append(
        self,
        rows: Sequence[EventRow],
        archive: Sequence[tuple[str, int, str, str]] = (),
        metrics: SeriesSamples | None = None,
        checkpoints: Sequence[CheckpointRow] = (),
    ) -> Commit:
        """Group commit: one transaction for the whole batch (rows several per statement), with
        the archive records of workflows that finished in it and the checkpoints its
        CHECKPOINT_CREATED events name (committed together), and the metric samples taken
        meanwhile (no transaction of their own; a damaged metrics table costs the samples,
        not the batch: written again without them). Handed to the connection's thread at
        once; its thread settles the Commit (a refused attempt goes on in a task: retries)."""
        if not rows and not archive and not checkpoints:
            return Commit().follow(self.metric_table.add(metrics or {}))
        if self.readonly:
            return Commit.failed(StoreError("the database is open read-only"))
        mark = self._anchor is not None and not self.anchored and bool(rows)
        samples = None if self.metric_table.readonly else metrics

        def statements(conn: sqlite3.Connection) -> None:
            if rows:
                _INSERT_EVENTS.run(conn, rows)
            if archive:
                conn.executemany(
                    "INSERT OR IGNORE INTO archive(workflow, finished_seq, status, record) VALUES (?,?,?,?)",
                    [(w, fseq, status, archive_blob(record)) for w, fseq, status, record in archive],
                )
            for cp in checkpoints:
                self.checkpoint_table.write(conn, cp)
            if mark:  # an older database: from this commit on, a missing anchor is a loss
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('anchored', '1')")
            if samples:
                self.metric_table.insert(conn, samples)

        async def refused(first: Exception) -> None:
            nonlocal samples
            try:
                try:
                    await self._write(statements, first)
                except SamplesRefused:
                    samples = None  # the batch again without them: refused samples cost only themselves
                    await self._write(statements)
            except BaseException:
                if metrics:
                    self.metric_table.forget_series()
                raise
            self._committed(rows, mark)

        return commit_soon(self._db, statements, refused, lambda: self._committed(rows, mark))

    def _committed(self, rows: Sequence[EventRow], mark: bool) -> None:
        if mark:
            self.anchored = True
        if self._anchor is not None and rows:
            try:
                self._anchor.write(rows[-1][0], rows[-1][8])
                self.anchor_error = None
            except (OSError, PrivateError) as exc:
                # The commit stands; a verify after this names the anchor as behind.
                self.anchor_error = f"{self._anchor.path}: the anchor could not be written: {exc}"

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
        return damaged(self.path, problem, seq)

    @property
    def metrics_problem(self) -> str | None:
        """Why metric samples could not be read or written (a damaged page, a full disk)."""
        return self.metric_table.problem

    @property
    def connection(self) -> aiosqlite.Connection:
        return self._db

    # -- checkpoints (``store_tables.CheckpointTable``) ------------------------------
    async def save_checkpoint(
        self,
        seq: int,
        ts: float,
        kind: str,
        label: str,
        workflow: str | None,
        text: str,
        state_hash: str,
        history: Sequence[HistoryChange] = (),
    ) -> int:
        """Store a snapshot as its canonical text (``text``, whose SHA-256 is ``state_hash``)
        with the history entries that changed since the last one, in a transaction of its
        own: a row no event records (the engine commits its checkpoints' rows with their
        CHECKPOINT_CREATED, through :meth:`append`)."""
        return await self.checkpoint_table.save(seq, ts, kind, label, workflow, text, state_hash, history)

    async def history_all(self) -> list[KeptRow]:
        return await self.checkpoint_table.history_all()

    async def checkpoint_digests(self) -> list[tuple[int, int, dict[str, Any]]]:
        return await self.checkpoint_table.digests()

    async def history_kept(self) -> dict[str, dict[str, str]]:
        return await self.checkpoint_table.history_kept()

    async def load_checkpoint_with_history(
        self, checkpoint_id: int, check_history: bool = True
    ) -> tuple[dict[str, Any], Any, HistoryRows | None, str | None] | None:
        return await self.checkpoint_table.load_with_history(checkpoint_id, check_history)

    async def load_expanded_checkpoint(self, checkpoint_id: int) -> tuple[dict[str, Any], Any, str | None] | None:
        return await self.checkpoint_table.load_expanded(checkpoint_id)

    async def next_checkpoint_id(self) -> int:
        return await self.checkpoint_table.next_id()

    async def list_checkpoints(self, after: int = 0) -> list[dict[str, Any]]:
        """The checkpoints' rows (not their states), those with an id above ``after``."""
        return await self.checkpoint_table.rows(after)

    async def load_checkpoint(self, checkpoint_id: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return await self.checkpoint_table.load(checkpoint_id)

    async def load_checked_checkpoint(self, checkpoint_id: int) -> tuple[dict[str, Any], Any, bool] | None:
        return await self.checkpoint_table.load_checked(checkpoint_id)

    async def checkpoint_text_hash(self, checkpoint_id: int) -> tuple[str, str] | None:
        return await self.checkpoint_table.text_hash(checkpoint_id)

    # -- metric samples (``store_metrics.MetricSamples``) -----------------------------
    async def add_metrics(self, rows: Iterable[Sample]) -> None:
        await self.metric_table.add(by_series(rows))

    async def metrics(
        self, name: str, subject: str = "system", since: float = float("-inf")
    ) -> list[tuple[float, float]]:
        return await self.metric_table.read(name, subject, since)

    async def metrics_after(self, rowid: int, limit: int = 20000) -> tuple[list[Sample], int]:
        return await self.metric_table.after(rowid, limit)

    async def last_metric_rowid(self) -> int:
        return await self.metric_table.last_rowid()

    async def recent_metrics(
        self, since: float, names: Sequence[str], subjects: Sequence[str], last: int | None = None
    ) -> dict[tuple[str, str], list[tuple[float, float]]]:
        return await self.metric_table.recent(since, names, subjects, last)

    async def downsample_metrics(self, before: float, bucket_s: float) -> int:
        return await self.metric_table.downsample(before, bucket_s)

    async def prune_metrics(self, before: float) -> int:
        return await self.metric_table.prune(before)

    async def reclaim(self, metrics_before: float) -> dict[str, int]:
        return await self.metric_table.reclaim(metrics_before)

    # -- agent processes (``store_tables.ProcessTable``, local runtime) ----------------
    async def save_process(self, agent: str, pid: int, create_time: float, info: dict[str, Any]) -> None:
        await self.process_table.save(agent, pid, create_time, info)

    async def forget_process(self, agent: str) -> None:
        await self.process_table.forget(agent)

    async def apply_processes(self, saves: list[ProcessRow], forgets: list[str]) -> None:
        """Processes rows saved and forgotten in one transaction."""
        await self.process_table.apply(saves, forgets)

    async def processes(self) -> list[tuple[str, int, float, dict[str, Any]]]:
        return await self.process_table.all()
