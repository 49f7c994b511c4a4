"""The tables beside the hash chain: checkpoints, metric samples, agent processes.

None of them is part of the chain: a checkpoint carries its own state hash (checked
against the chain when it is loaded), samples are telemetry with retention, and the
processes table is what a restarted console needs to adopt its agents. Each writes
through the store's one write path (a transaction, waiting out another process's lock).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from .events import canonical_json
from .projection_history import DIGEST_KEYS, HistoryChange, HistoryRows, KeptRow, expand, is_compact, rows_problem
from .store_commit import RowInsert, Statements, series_ids
from .store_errors import StorageError, classify
from .store_schema import file_bytes, scalar

Write = Callable[[Statements], Awaitable[None]]
"""The store's write path: runs the statements in one transaction, one round trip to
the connection's thread (``Store._write``)."""
ProcessRow = tuple[str, int, float, dict[str, Any]]
"""A processes row: agent, pid, create time, info (address, task group, MAC)."""

CHECKPOINT_ID_HIGH = "checkpoint_id_high"
"""The meta key holding the highest checkpoint id ever given."""
_INSERT_SAMPLES = RowInsert("INSERT INTO metrics(series, ts, value)", 3)


class CheckpointTable:
    """Checkpoint rows: the projection at one seq, its state hash, kind and label."""

    def __init__(self, db: aiosqlite.Connection, write: Write) -> None:
        self._db = db
        self._write = write

    async def save(
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
        """A checkpoint row and, in the same transaction, the history entries that
        changed since the last one (``core.projection_history``): an entry replaced or
        gone stops holding at ``seq``, a new or replaced one holds from ``seq``."""
        cp_id = 0

        def statements(conn: sqlite3.Connection) -> None:
            nonlocal cp_id
            # Past every id ever given, not only past the rows left: a recovery removes the
            # newest (damaged) checkpoints, and an id given again would name two checkpoints
            # in the log and in the incidents that quarantined the first.
            cur = conn.execute(
                "INSERT INTO checkpoints(id, seq, ts, kind, label, workflow, state, state_hash) VALUES ("
                "max(coalesce((SELECT max(id) FROM checkpoints), 0), "
                "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 0)) + 1, ?,?,?,?,?,?,?)",
                (CHECKPOINT_ID_HIGH, seq, ts, kind, label, workflow, text, state_hash),
            )
            cp_id = int(cur.lastrowid or 0)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (CHECKPOINT_ID_HIGH, str(cp_id)),
            )
            if history:
                conn.executemany(
                    "UPDATE snapshot_history SET to_seq = ? WHERE part = ? AND key = ? AND to_seq IS NULL "
                    "AND from_seq < ?",
                    [(seq, part, key, seq) for part, key, _, _ in history],
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO snapshot_history(part, key, from_seq, to_seq, entry, entry_hash) "
                    "VALUES (?,?,?,NULL,?,?)",
                    [(part, key, seq, t, h) for part, key, t, h in history if t is not None],
                )

        await self._write(statements)
        return cp_id

    async def history_at(self, seq: int) -> HistoryRows:
        """The history entries that hold for a checkpoint at ``seq``: part -> key -> text."""
        rows = await (
            await self._db.execute(
                "SELECT part, key, entry FROM snapshot_history WHERE from_seq <= ? AND (to_seq IS NULL OR to_seq > ?)",
                (seq, seq),
            )
        ).fetchall()
        out: HistoryRows = {}
        for part, key, entry in rows:
            out.setdefault(part, {})[key] = entry if isinstance(entry, str) else str(entry)
        return out

    async def history_all(self) -> list[KeptRow]:
        """Every row of ``snapshot_history`` (the whole verify's sweep)."""
        rows = await (
            await self._db.execute("SELECT part, key, from_seq, to_seq, entry FROM snapshot_history")
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4] if isinstance(r[4], str) else str(r[4])) for r in rows]

    async def digests(self) -> list[tuple[int, int, dict[str, Any]]]:
        """(id, seq, digests by part) of every compact checkpoint (decoded from its stored
        text; a checkpoint whose text is not JSON is left to the hash check)."""
        out: list[tuple[int, int, dict[str, Any]]] = []
        for cp_id, seq, text in await (await self._db.execute("SELECT id, seq, state FROM checkpoints")).fetchall():
            try:
                snap = json.loads(text)
            except (TypeError, ValueError):
                continue
            if isinstance(snap, dict) and is_compact(snap):
                out.append((cp_id, seq, {p: snap.get(k) for p, k in DIGEST_KEYS.items()}))
        return out

    async def history_kept(self) -> dict[str, dict[str, str]]:
        """The entries the newest checkpoints hold: part -> key -> entry hash (what the
        next checkpoint's changes are computed against)."""
        rows = await (
            await self._db.execute("SELECT part, key, entry_hash FROM snapshot_history WHERE to_seq IS NULL")
        ).fetchall()
        out: dict[str, dict[str, str]] = {}
        for part, key, h in rows:
            out.setdefault(part, {})[key] = h
        return out

    async def next_id(self) -> int:
        """The id the next checkpoint gets (ids of removed checkpoints are never given again)."""
        high = await scalar(
            self._db, "SELECT max(CAST(value AS INTEGER)) FROM meta WHERE key = ?", (CHECKPOINT_ID_HIGH,)
        )
        return max(await scalar(self._db, "SELECT max(id) FROM checkpoints") or 0, high or 0) + 1

    async def rows(self, after: int = 0) -> list[dict[str, Any]]:
        rows = await (
            await self._db.execute(
                "SELECT id, seq, ts, kind, label, workflow, state_hash FROM checkpoints WHERE id > ? ORDER BY id",
                (after,),
            )
        ).fetchall()
        keys = ("id", "seq", "ts", "kind", "label", "workflow", "state_hash")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def load(self, checkpoint_id: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
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

    async def load_checked(self, checkpoint_id: int) -> tuple[dict[str, Any], Any, bool] | None:
        """(row, decoded state, whether the state matches its hash) for a checkpoint, or
        None. The stored text is what is hashed: it is decoded once and encoded again
        only when it is not the canonical text (a store that wrote another encoding).
        A text that is not JSON raises ValueError."""
        row = await (
            await self._db.execute(
                "SELECT id, seq, ts, kind, label, workflow, state_hash, state FROM checkpoints WHERE id=?",
                (checkpoint_id,),
            )
        ).fetchone()
        if row is None:
            return None
        keys = ("id", "seq", "ts", "kind", "label", "workflow", "state_hash")
        text = row[7] if isinstance(row[7], str) else str(row[7])
        snap = json.loads(text)
        ok = hashlib.sha256(text.encode("utf-8")).hexdigest() == row[6]
        if not ok and isinstance(snap, dict):
            ok = hashlib.sha256(canonical_json(snap).encode("utf-8")).hexdigest() == row[6]
        return dict(zip(keys, row[:7], strict=True)), snap, ok

    async def load_with_history(
        self, checkpoint_id: int, check_history: bool = True
    ) -> tuple[dict[str, Any], Any, HistoryRows | None, str | None] | None:
        """(row, state, history entries, problem) for a checkpoint, or None: the state
        decoded once from its stored text; for a compact snapshot the history entries
        kept beside it (None for one that holds them whole); ``problem`` says why it
        cannot be used (its text does not match its hash, or its kept entries do not
        match its digests: unless ``check_history`` is false, for a caller that checks
        them as it loads them, ``HistoryCache.loaded_problem``). A text that is not JSON
        raises ValueError."""
        loaded = await self.load_checked(checkpoint_id)
        if loaded is None:
            return None
        row, snap, ok = loaded
        if not ok or not isinstance(snap, dict):
            return row, snap, None, "its stored state does not match its state hash"
        if not is_compact(snap):
            return row, snap, None, None
        rows = await self.history_at(row["seq"])
        return row, snap, rows, rows_problem(snap, rows) if check_history else None

    async def load_expanded(self, checkpoint_id: int) -> tuple[dict[str, Any], Any, str | None] | None:
        """(row, state, problem) as :meth:`load_with_history`, the history parts of a
        compact snapshot put back whole (the form a rollback carries)."""
        loaded = await self.load_with_history(checkpoint_id)
        if loaded is None:
            return None
        row, snap, rows, problem = loaded
        if rows is None or problem is not None:
            return row, snap, problem
        return row, expand(snap, rows), None

    async def text_hashes(self, below: int, above: int, limit: int) -> dict[int, tuple[str, str]]:
        """:meth:`text_hash` of the checkpoints with ids between ``above`` and ``below``
        (both excluded), the newest ``limit`` of them, in one read."""
        rows = await (
            await self._db.execute(
                "SELECT id, state_hash, state FROM checkpoints WHERE id < ? AND id > ? ORDER BY id DESC LIMIT ?",
                (below, above, limit),
            )
        ).fetchall()
        out: dict[int, tuple[str, str]] = {}
        for cp_id, state_hash, state in rows:
            text = state if isinstance(state, str) else str(state)
            out[cp_id] = (state_hash, hashlib.sha256(text.encode("utf-8")).hexdigest())
        return out

    async def text_hash(self, checkpoint_id: int) -> tuple[str, str] | None:
        """(state_hash, SHA-256 of the stored state text) without decoding it: the store
        writes the canonical encoding, so for an intact checkpoint they are equal."""
        return (await self.text_hashes(checkpoint_id + 1, checkpoint_id - 1, 1)).get(checkpoint_id)


_EVERY_SERIES = "(SELECT id FROM metric_series)"
"""``series IN`` this: a time range is read along the (series, ts) index, one range per
series, not a scan of the table (there is no index on ``ts`` alone)."""


class SamplesRefused(Exception):
    """The metrics table refused samples written with other rows (see ``MetricSamples.insert``)."""


class MetricSamples:
    """Gauge samples outside the chain; damage or a refused write costs samples, said in ``problem``."""

    def __init__(self, db: aiosqlite.Connection, path: str, readonly: bool, write: Write) -> None:
        self._db = db
        self.path = path
        self.readonly = readonly
        self._write = write
        self.problem: str | None = None
        """Why metric samples could not be read or written (a damaged page, a full disk)."""
        self._series: dict[tuple[str, str], int] = {}
        """(name, subject) -> series id, as stored."""
        self._downsampled_to = float("-inf")
        """Samples before this were downsampled by this process."""

    def _failed(self, exc: BaseException, doing: str) -> None:
        """Samples live outside the chain: a damaged metrics page or a refused write costs
        samples (said once in ``problem``), never the host."""
        err = classify(exc, self.path)
        why = err.args[0] if err is not None else f"the metrics table is damaged ({exc})"
        self.problem = f"metric samples could not be {doing}: {why}; gauges show no samples from the store"

    def _rows(
        self, conn: sqlite3.Connection, rows: Sequence[tuple[float, str, str, float]]
    ) -> list[tuple[int, float, float]]:
        """Samples as rows (series id, ts, value), series ids made first for new ones (on the connection's thread)."""
        known = self._series
        try:
            return [(known[(r[1], r[2])], r[0], r[3]) for r in rows]
        except KeyError:  # a series new to this process, or its ids not read yet
            self._series = known = series_ids(conn, known, {(r[1], r[2]) for r in rows})
        return [(known[(r[1], r[2])], r[0], r[3]) for r in rows]

    async def add(self, rows: Sequence[tuple[float, str, str, float]]) -> None:
        """Store samples, one transaction per batch (the connection autocommits: without
        it each row was its own commit, 0.3 ms apiece). A batch a damaged metrics table
        cannot take is dropped and said in ``problem``; a full disk, a read-only file or
        a lock is raised as is (StorageError: nothing written), as by :meth:`insert`,
        for the caller to keep the samples and report it."""
        if not rows or self.readonly:
            return

        def statements(conn: sqlite3.Connection) -> None:
            _INSERT_SAMPLES.run(conn, self._rows(conn, rows))

        try:
            await self._write(statements)
        except (sqlite3.DatabaseError, StorageError) as exc:
            self._series = {}  # ids made in the transaction that was rolled back are gone
            if isinstance(exc, StorageError):
                raise
            self._failed(exc, "written")

    def insert(self, conn: sqlite3.Connection, rows: Sequence[tuple[float, str, str, float]]) -> None:
        """Store samples inside the caller's open write transaction (the events' group
        commit, on the connection's thread: no transaction and sync of their own). A
        damaged or refusing metrics table raises :class:`SamplesRefused` (said in
        ``problem``): the caller writes its rows again without the samples. A full disk
        or read-only file is raised as is."""
        if not rows:
            return
        try:
            _INSERT_SAMPLES.run(conn, self._rows(conn, rows))
        except sqlite3.DatabaseError as exc:
            if classify(exc, self.path) is not None:
                raise
            self._series = {}
            self._failed(exc, "written")
            raise SamplesRefused(str(exc)) from exc

    def forget_series(self) -> None:
        """The transaction that may have made series ids was rolled back: ask again."""
        self._series = {}

    async def read(self, name: str, subject: str = "system", since: float = float("-inf")) -> list[tuple[float, float]]:
        """Samples of one gauge; none (and ``problem`` set) when the table is damaged."""
        try:
            rows = await (
                await self._db.execute(
                    "SELECT m.ts, m.value FROM metric_series s JOIN metrics m ON m.series = s.id "
                    "WHERE s.name=? AND s.subject=? AND m.ts>=? ORDER BY m.ts",
                    (name, subject, since),
                )
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            self._failed(exc, "read")
            return []
        return [(r[0], r[1]) for r in rows]

    async def recent(
        self, since: float, names: Sequence[str], subjects: Sequence[str], last: int | None = None
    ) -> dict[tuple[str, str], list[tuple[float, float]]]:
        """Samples since ``since`` of every series of ``names`` x ``subjects``: (name,
        subject) -> [(ts, value)] in time order (what an open reloads); with ``last``,
        only each series' newest ``last`` (read newest first along its index, so the
        cost follows ``last``, not how many samples the table holds)."""
        if not names or not subjects:
            return {}
        try:
            series = await (
                await self._db.execute(
                    f"SELECT id, name, subject FROM metric_series WHERE name IN ({','.join('?' * len(names))}) "
                    f"AND subject IN ({','.join('?' * len(subjects))}) ORDER BY id",
                    [*names, *subjects],
                )
            ).fetchall()
            if not series:
                return {}
            limit = -1 if last is None else last
            sql = " UNION ALL ".join(
                "SELECT * FROM (SELECT series, ts, value FROM metrics WHERE series = ? AND ts >= ? "
                "ORDER BY ts DESC, id DESC LIMIT ?)"
                for _ in series
            )
            args: list[Any] = []
            for sid, _, _ in series:
                args += [sid, since, limit]
            rows = await (await self._db.execute(sql, args)).fetchall()
        except sqlite3.DatabaseError as exc:
            self._failed(exc, "read")
            return {}
        keys = {sid: (name, subject) for sid, name, subject in series}
        out: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for sid, t, v in rows:
            out.setdefault(keys[sid], []).append((t, v))
        for points in out.values():
            points.reverse()
        return out

    async def after(self, rowid: int, limit: int = 20000) -> tuple[list[tuple[float, str, str, float]], int]:
        """Samples added after ``rowid`` (in insertion order) and the last rowid read:
        how a read-only replica follows the writer's gauges without rescanning."""
        try:
            rows = list(
                await (
                    await self._db.execute(
                        "SELECT m.id, m.ts, s.name, s.subject, m.value FROM metrics m "
                        "JOIN metric_series s ON s.id = m.series WHERE m.id > ? ORDER BY m.id LIMIT ?",
                        (rowid, limit),
                    )
                ).fetchall()
            )
        except sqlite3.DatabaseError as exc:
            self._failed(exc, "read")
            return [], rowid
        return [(r[1], r[2], r[3], r[4]) for r in rows], (rows[-1][0] if rows else rowid)

    async def last_rowid(self) -> int:
        try:
            return int(await scalar(self._db, "SELECT max(id) FROM metrics") or 0)
        except sqlite3.DatabaseError as exc:
            self._failed(exc, "read")
            return 0

    async def prune(self, before: float) -> int:
        """Delete samples older than ``before``; 0 (and ``problem``) when the
        table is damaged or the storage refuses the write."""
        deleted = 0

        def statements(conn: sqlite3.Connection) -> None:
            nonlocal deleted
            cur = conn.execute(f"DELETE FROM metrics WHERE series IN {_EVERY_SERIES} AND ts < ?", (before,))
            deleted = cur.rowcount

        try:
            await self._write(statements)
        except (sqlite3.DatabaseError, StorageError) as exc:
            self._failed(exc, "pruned")
            return 0
        return deleted

    async def downsample(self, before: float, bucket_s: float) -> int:
        """Replace the samples older than ``before`` by one per series and ``bucket_s``
        (the mean, at the bucket's first sample's time and id, so a reader following
        ids sees nothing new). Only what was added since the last call is grouped.
        Returns the rows removed (0, and ``problem``, when the write is refused). Each
        statement reads ranges of (series, ts): a group's delete its bucket's only."""
        lo = self._downsampled_to
        if before <= lo or self.readonly:
            return 0
        removed = 0

        def statements(conn: sqlite3.Connection) -> None:
            nonlocal removed
            groups = conn.execute(
                "SELECT min(id), series, min(ts), avg(value), count(*), CAST(ts / ? AS INTEGER) AS b FROM metrics "
                f"WHERE series IN {_EVERY_SERIES} AND ts >= ? AND ts < ? "
                "GROUP BY series, b HAVING count(*) > 1",
                (bucket_s, lo, before),
            ).fetchall()
            conn.executemany(
                "DELETE FROM metrics WHERE series = ? AND ts >= ? AND ts < ? AND CAST(ts / ? AS INTEGER) = ?",
                [
                    (g[1], max(lo, g[5] * bucket_s - 1.0), min(before, (g[5] + 1) * bucket_s + 1.0), bucket_s, g[5])
                    for g in groups
                ],
            )
            conn.executemany("INSERT INTO metrics(id, series, ts, value) VALUES (?,?,?,?)", [g[:4] for g in groups])
            removed = sum(g[4] - 1 for g in groups)

        try:
            await self._write(statements)
        except (sqlite3.DatabaseError, StorageError) as exc:
            self._failed(exc, "downsampled")
            return 0
        self._downsampled_to = before
        return removed

    async def reclaim(self, metrics_before: float) -> dict[str, int]:
        """Give back disk: delete metric samples older than ``metrics_before``, then
        checkpoint the write-ahead log into the database and truncate it. Returns
        what was measured: rows deleted and bytes the WAL file shrank by."""
        if self.readonly:
            return {"metric_rows_deleted": 0, "wal_bytes_freed": 0}
        wal = Path(f"{self.path}-wal")
        before = await asyncio.to_thread(file_bytes, wal)
        rows = await self.prune(metrics_before)
        await (await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")).fetchall()
        after = await asyncio.to_thread(file_bytes, wal)
        return {"metric_rows_deleted": rows, "wal_bytes_freed": max(before - after, 0)}


class ProcessTable:
    """Which agent processes a run owns (local runtime), so a restarted console can adopt them."""

    def __init__(self, db: aiosqlite.Connection, write: Write) -> None:
        self._db = db
        self._write = write

    async def save(self, agent: str, pid: int, create_time: float, info: dict[str, Any]) -> None:
        await self.apply([(agent, pid, create_time, info)], [])

    async def forget(self, agent: str) -> None:
        await self.apply([], [agent])

    async def apply(self, saves: list[ProcessRow], forgets: list[str]) -> None:
        """Rows saved and rows deleted in one transaction: one sync for a pool's hosts."""
        rows = [(agent, pid, create_time, json.dumps(info)) for agent, pid, create_time, info in saves]

        def statements(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO processes(agent, pid, create_time, info) VALUES (?,?,?,?) "
                "ON CONFLICT(agent) DO UPDATE SET pid=excluded.pid, create_time=excluded.create_time, info=excluded.info",
                rows,
            )
            conn.executemany("DELETE FROM processes WHERE agent=?", [(agent,) for agent in forgets])

        await self._write(statements)

    async def all(self) -> list[tuple[str, int, float, dict[str, Any]]]:
        rows = await (await self._db.execute("SELECT agent, pid, create_time, info FROM processes")).fetchall()
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]
