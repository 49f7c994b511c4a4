"""Metric samples: gauge and per-task samples beside the hash chain, with retention.

Telemetry, not history: damage in these tables or a refused write costs samples
(said in ``MetricSamples.problem``), never the log. Each writes through the store's one
write path (a transaction, waiting out another process's lock).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from .store_commit import RowInsert, series_ids
from .store_errors import StorageError, classify
from .store_schema import file_bytes, scalar
from .store_tables import Write

_INSERT_SAMPLES = RowInsert("INSERT INTO metrics(series, ts, value)", 3)
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
