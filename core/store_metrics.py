"""Metric samples: gauge and per-task samples beside the hash chain, with retention.

Telemetry, not history: damage in these tables or a refused write costs samples
(said in ``MetricSamples.problem``), never the log. Each writes through the store's one
write path (a transaction, waiting out another process's lock).

A batch's samples of one series are one row (``pack_rows``): the row's ``ts`` and
``value`` are its newest sample, ``earlier`` the ones before it (NULL for a row of one
sample, as a gauge's usually is). Per-task samples (a response time and an efficiency
per completed task) cost a row per flush instead of a row each; every reader gets the
samples back one by one (``samples_of``), none of them merged.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from .store_commit import RowInsert, series_ids
from .store_errors import StorageError, classify
from .store_schema import file_bytes, scalar
from .store_tables import Write

Sample = tuple[float, str, str, float]
"""One sample: (ts, name, subject, value)."""
SeriesSamples = dict[tuple[str, str], list[float]]
"""Samples as telemetry holds them for the store: (name, subject) -> ts and value
alternating, in the order recorded (no tuple per sample)."""
SampleRow = tuple[int, float, float, bytes | None]
"""A metrics row: series id, ts and value of its newest sample, the earlier ones packed."""

PACK_MAX = 1024
"""Samples of one row at most (its ``earlier`` up to 16 KiB)."""
BUCKET_S = 60.0
"""Rows never span two buckets of this many seconds (``intervals.metric_bucket_s``'s default;
the downsampling sets the configured one): a bucket's mean takes whole rows."""
_BIG_ENDIAN = sys.byteorder == "big"
_INSERT_SAMPLES = RowInsert("INSERT INTO metrics(series, ts, value, earlier)", 4)
_EVERY_SERIES = "(SELECT id FROM metric_series)"
"""``series IN`` this: a time range is read along the (series, ts) index, one range per
series, not a scan of the table (there is no index on ``ts`` alone)."""


def by_series(samples: Iterable[Sample]) -> SeriesSamples:
    """Samples as :data:`SeriesSamples`, each series' in the order given."""
    out: SeriesSamples = {}
    for t, name, subject, value in samples:
        out.setdefault((name, subject), []).extend((t, value))
    return out


def pairs(flat: Sequence[float]) -> list[tuple[float, float]]:
    """(ts, value) pairs of a series' samples held ts and value alternating."""
    it = iter(flat)
    return list(zip(it, it, strict=True))


def pack(flat: Sequence[float]) -> bytes:
    """Samples held ts and value alternating, as little-endian float64s."""
    a = array("d", flat)
    if _BIG_ENDIAN:
        a.byteswap()
    return a.tobytes()


def unpack(blob: object) -> list[tuple[float, float]]:
    """The pairs :func:`pack` wrote; sqlite3.DatabaseError for anything else (damage)."""
    if not isinstance(blob, bytes) or len(blob) % 16:
        raise sqlite3.DatabaseError("a metrics row's earlier samples are not whole (ts, value) pairs")
    a = array("d")
    a.frombytes(blob)
    if _BIG_ENDIAN:
        a.byteswap()
    return pairs(a)


def samples_of(ts: float, value: float, earlier: object) -> list[tuple[float, float]]:
    """A row's samples in the order recorded: the packed ones, then its own."""
    if earlier is None:
        return [(ts, value)]
    points = unpack(earlier)
    points.append((ts, value))
    return points


def _row(sid: int, flat: list[float]) -> SampleRow:
    return (sid, flat[-2], flat[-1], pack(flat[:-2]) if len(flat) > 2 else None)


def pack_rows(sid: int, flat: list[float], bucket_s: float) -> list[SampleRow]:
    """One series' samples of a batch (ts and value alternating) as rows: a new row where
    time goes back, a bucket of ``bucket_s`` begins or a row holds :data:`PACK_MAX` (so
    a row's ``ts``, its newest sample's, bounds every sample of it for ranges, retention
    and downsampling)."""
    if len(flat) % 2:
        raise sqlite3.ProgrammingError(f"{len(flat)} values: samples are (ts, value) pairs")
    ts = flat[0::2]
    if len(ts) <= PACK_MAX and int(ts[0] / bucket_s) == int(ts[-1] / bucket_s) and ts == sorted(ts):
        return [_row(sid, flat)]
    out: list[SampleRow] = []
    start = 0
    for i in range(1, len(ts)):
        if i - start == PACK_MAX or ts[i] < ts[i - 1] or int(ts[i] / bucket_s) != int(ts[i - 1] / bucket_s):
            out.append(_row(sid, flat[2 * start : 2 * i]))
            start = i
    out.append(_row(sid, flat[2 * start :]))
    return out


def _in_time_order(parts: list[list[tuple[float, float]]], since: float) -> list[tuple[float, float]]:
    """Rows' samples (``parts``, rows in time order) as one list of those at or after ``since``:
    a row of several may begin before it, and its samples interleave with no other row's
    unless the clock went back (then sorted, ties in the order recorded)."""
    if all(len(p) == 1 for p in parts):
        return [p[0] for p in parts]
    points = [pt for p in parts for pt in p if pt[0] >= since]
    points.sort(key=lambda pt: pt[0])
    return points


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
        self.bucket_s = BUCKET_S
        """The downsampling's bucket: no row spans two (set by :meth:`downsample`, and by an engine at open)."""

    def _failed(self, exc: BaseException, doing: str) -> None:
        """Samples live outside the chain: a damaged metrics page or a refused write costs
        samples (said once in ``problem``), never the host."""
        err = classify(exc, self.path)
        why = err.args[0] if err is not None else f"the metrics table is damaged ({exc})"
        self.problem = f"metric samples could not be {doing}: {why}; gauges show no samples from the store"

    def _samples(self, ts: float, value: float, earlier: object) -> list[tuple[float, float]]:
        """A row's samples (:func:`samples_of`). A damaged ``earlier`` costs only the
        samples packed in it (said in ``problem``): the row's newest sample, in its own
        columns, is read, and so are the other rows (a replica following ids goes past it)."""
        try:
            return samples_of(ts, value, earlier)
        except sqlite3.DatabaseError as exc:
            self.problem = f"metric samples could not be read: {exc}; the samples packed in that row are not shown"
            return [(ts, value)]

    def _rows(self, conn: sqlite3.Connection, samples: SeriesSamples) -> list[SampleRow]:
        """Samples as rows (``pack_rows``), the series in the order given; ids made first
        for new series (on the connection's thread)."""
        known = self._series
        if samples.keys() - known.keys():  # a series new to this process, or its ids not read yet
            self._series = known = series_ids(conn, known, set(samples))
        out: list[SampleRow] = []
        for key, flat in samples.items():
            if flat:
                out += pack_rows(known[key], flat, self.bucket_s)
        return out

    async def add(self, rows: SeriesSamples) -> None:
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

    def insert(self, conn: sqlite3.Connection, rows: SeriesSamples) -> None:
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
                    "SELECT m.ts, m.value, m.earlier FROM metric_series s JOIN metrics m ON m.series = s.id "
                    "WHERE s.name=? AND s.subject=? AND m.ts>=? ORDER BY m.ts",
                    (name, subject, since),
                )
            ).fetchall()
            return _in_time_order([self._samples(*r) for r in rows], since)
        except sqlite3.DatabaseError as exc:
            self._failed(exc, "read")
            return []

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
                "SELECT * FROM (SELECT series, ts, value, earlier FROM metrics WHERE series = ? AND ts >= ? "
                "ORDER BY ts DESC, id DESC LIMIT ?)"
                for _ in series
            )
            args: list[Any] = []
            for sid, _, _ in series:
                args += [sid, since, limit]
            rows = await (await self._db.execute(sql, args)).fetchall()
            keys = {sid: (name, subject) for sid, name, subject in series}
            newest_first: dict[tuple[str, str], list[list[tuple[float, float]]]] = {}
            for sid, t, v, earlier in rows:
                newest_first.setdefault(keys[sid], []).append(self._samples(t, v, earlier))
            out = {key: _in_time_order(parts[::-1], since) for key, parts in newest_first.items()}
        except sqlite3.DatabaseError as exc:
            self._failed(exc, "read")
            return {}
        if last is not None:  # rows of several samples may bring more
            out = {key: points[-last:] if last else [] for key, points in out.items()}
        return out

    async def after(self, rowid: int, limit: int = 20000) -> tuple[list[Sample], int]:
        """Samples of the rows added after ``rowid``, in insertion order, and the last
        rowid read: how a read-only replica follows the writer's gauges without
        rescanning. Rows are read until they held ``limit`` samples (so at most ``limit``
        plus a row's :data:`PACK_MAX` - 1)."""
        out: list[Sample] = []
        last = rowid
        try:
            cursor = await self._db.execute(
                "SELECT m.id, m.ts, s.name, s.subject, m.value, m.earlier FROM metrics m "
                "JOIN metric_series s ON s.id = m.series WHERE m.id > ? ORDER BY m.id LIMIT ?",
                (rowid, limit),
            )
            try:
                async for rid, ts, name, subject, value, earlier in cursor:
                    out += [(t, name, subject, v) for t, v in self._samples(ts, value, earlier)]
                    last = rid
                    if len(out) >= limit:
                        break
            finally:
                await cursor.close()
        except sqlite3.DatabaseError as exc:
            self._failed(exc, "read")
            return [], rowid
        return out, last

    async def last_rowid(self) -> int:
        try:
            return int(await scalar(self._db, "SELECT max(id) FROM metrics") or 0)
        except sqlite3.DatabaseError as exc:
            self._failed(exc, "read")
            return 0

    async def prune(self, before: float) -> int:
        """Delete the rows whose samples are all older than ``before`` (a row of several
        ending later stays whole); the rows deleted, 0 (and ``problem``) when the table is
        damaged or the storage refuses the write."""
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
        """Replace the samples older than ``before`` by one row per series and ``bucket_s``
        (the mean, at the bucket's first sample's time and first row's id, so a reader
        following ids sees nothing new); a row of several samples counts in the bucket of
        its ``ts`` (its newest sample's; written never spanning two of :attr:`bucket_s`).
        Only what was added since the last call is grouped. Returns the samples folded
        away (held before minus the means written; 0, and ``problem``, when the write is
        refused). Each statement reads ranges of (series, ts): a group's delete its
        bucket's only."""
        self.bucket_s = bucket_s
        lo = self._downsampled_to
        if before <= lo or self.readonly:
            return 0
        removed = 0

        def statements(conn: sqlite3.Connection) -> None:
            nonlocal removed
            where = f"WHERE series IN {_EVERY_SERIES} AND ts >= ? AND ts < ?"
            # (series, bucket) -> [first id, first ts, sum, count, rows of several]
            groups: dict[tuple[int, int], list[Any]] = {
                (g[1], g[5]): [g[0], g[2], g[3], g[4], False]
                for g in conn.execute(
                    "SELECT min(id), series, min(ts), sum(value), count(*), CAST(ts / ? AS INTEGER) AS b FROM metrics "
                    f"{where} AND earlier IS NULL GROUP BY series, b",
                    (bucket_s, lo, before),
                )
            }
            for rid, sid, t, v, earlier in conn.execute(
                f"SELECT id, series, ts, value, earlier FROM metrics {where} AND earlier IS NOT NULL", (lo, before)
            ):
                points = self._samples(t, v, earlier)
                key = (sid, int(t / bucket_s))
                g = groups.get(key)
                total = sum(p[1] for p in points)
                if g is None:
                    groups[key] = [rid, points[0][0], total, len(points), True]
                else:
                    g[0], g[1], g[2], g[3], g[4] = (
                        min(g[0], rid),
                        min(g[1], points[0][0]),
                        g[2] + total,
                        g[3] + len(points),
                        True,
                    )
            merged = [(key, g) for key, g in groups.items() if g[3] > 1 or g[4]]
            conn.executemany(
                "DELETE FROM metrics WHERE series = ? AND ts >= ? AND ts < ? AND CAST(ts / ? AS INTEGER) = ?",
                [
                    (sid, max(lo, b * bucket_s - 1.0), min(before, (b + 1) * bucket_s + 1.0), bucket_s, b)
                    for (sid, b), _ in merged
                ],
            )
            conn.executemany(
                "INSERT INTO metrics(id, series, ts, value) VALUES (?,?,?,?)",
                [(g[0], sid, g[1], g[2] / g[3]) for (sid, _), g in merged],
            )
            removed = sum(g[3] - 1 for _, g in merged)

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
