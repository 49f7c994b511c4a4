"""Metric samples: compact rows (a series id, not its names, per sample), downsampled
past the gauges' history, read back in one query; older databases migrate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.clock import VirtualClock
from core.engine import Engine
from core.session import open_sim
from core.store import Store
from core.store_metrics import samples_of
from core.store_schema import SCHEMA_VERSION
from core.telemetry import HISTORY
from core.verify import verify_store

from .store_support import rows_of, series_rows


async def test_downsample_keeps_one_mean_per_bucket_and_what_is_newer(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "m.db")
    try:
        rows = [(float(t), name, "system", float(t % 60)) for t in range(0, 7200, 5) for name in ("cpu_pct", "x")]
        await store.add_metrics(rows)
        last = await store.last_metric_rowid()
        removed = await store.downsample_metrics(3600.0, 60.0)
        assert removed == 2 * (720 - 60)
        cpu = await store.metrics("cpu_pct", "system")
        old = [p for p in cpu if p[0] < 3600.0]
        assert len(old) == 60 and old[0] == (0.0, 27.5)  # the mean of 0, 5, ..., 55 at the bucket's first time
        assert [p for p in cpu if p[0] >= 3600.0] == [(float(t), float(t % 60)) for t in range(3600, 7200, 5)]
        # A reader following ids sees nothing new: the means took their buckets' first ids.
        assert (await store.metrics_after(last))[0] == []
        assert await store.downsample_metrics(3600.0, 60.0) == 0, "nothing new to group"
    finally:
        await store.close()


async def test_recent_reads_every_series_in_one_query(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "m.db")
    try:
        await store.add_metrics([(float(t), n, s, 1.0) for t in range(10) for n in ("a", "b") for s in ("system", "z")])
        got = await store.recent_metrics(5.0, ("a", "b"), ("system",))
        assert sorted(got) == [("a", "system"), ("b", "system")]
        assert [t for t, _ in got[("a", "system")]] == [5.0, 6.0, 7.0, 8.0, 9.0]
        assert await store.recent_metrics(5.0, ("a",), ()) == {}
    finally:
        await store.close()


async def test_a_batch_with_a_new_series_stores_every_sample_under_its_own_series(tmp_path: Path) -> None:
    """Known series are written in one pass; a batch holding one new series (or written after
    the ids were forgotten, or by a store opened again) makes that id first, never a second
    id for a series already stored."""
    store = await Store.open(tmp_path / "m.db")
    try:
        await store.add_metrics([(1.0, "a", "system", 1.0)])
        await store.add_metrics([(2.0, "a", "system", 2.0), (2.0, "b", "z", 20.0), (3.0, "a", "system", 3.0)])
        store.metric_table.forget_series()  # as after a rolled-back transaction
        await store.add_metrics([(4.0, "b", "z", 40.0), (4.0, "a", "system", 4.0)])
    finally:
        await store.close()
    store = await Store.open(tmp_path / "m.db")
    try:
        await store.add_metrics([(5.0, "a", "system", 5.0), (5.0, "c", "system", 0.5)])
        assert await store.metrics("a", "system") == [(float(t), float(t)) for t in range(1, 6)]
        assert await store.metrics("b", "z") == [(2.0, 20.0), (4.0, 40.0)]
        assert await store.metrics("c", "system") == [(5.0, 0.5)]
    finally:
        await store.close()
    con = sqlite3.connect(tmp_path / "m.db")
    try:
        assert sorted(r[0] for r in con.execute("SELECT name FROM metric_series")) == ["a", "b", "c"]
    finally:
        con.close()


def _event_rows(db: Path) -> list[tuple[object, ...]]:
    return rows_of(db, "SELECT * FROM events ORDER BY seq")


def _to_v3(db: Path) -> int:
    """Rewrite a database's samples into the schema-3 layout (names on every row, one sample each)."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT m.ts, s.name, s.subject, m.value, m.earlier FROM metrics m "
            "JOIN metric_series s ON s.id = m.series ORDER BY m.id"
        ).fetchall()
        con.executescript(
            """
            CREATE TABLE old_metrics (ts REAL NOT NULL, name TEXT NOT NULL, subject TEXT NOT NULL, value REAL NOT NULL);
            DROP TABLE metrics;
            DROP TABLE metric_series;
            ALTER TABLE old_metrics RENAME TO metrics;
            CREATE INDEX metrics_lookup ON metrics(name, subject, ts);
            UPDATE meta SET value = '3' WHERE key = 'schema_version';
            """
        )
        con.executemany(
            "INSERT INTO metrics(ts, name, subject, value) VALUES (?,?,?,?)",
            [
                (t, name, subject, v)
                for ts, name, subject, value, earlier in rows
                for t, v in samples_of(ts, value, earlier)
            ],
        )
        con.commit()
        return int(con.execute("SELECT count(*) FROM metrics").fetchone()[0])
    finally:
        con.close()


async def test_a_schema_3_database_opens_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    eng = await open_sim(db, seed=0, demo=True)
    await eng.advance(600.0)
    await eng.flush()
    before = await eng.store.metrics("cpu_pct", "system")  # type: ignore[union-attr]
    seq = eng.state.seq
    await eng.close()
    events = _event_rows(db)
    assert events[-1][0] == seq
    n = _to_v3(db)
    assert n > 100
    readonly = None
    try:
        readonly = await Store.open(db, readonly=True)
    except Exception as exc:  # a reader cannot migrate: it says so, and changes nothing
        assert "needs migrating" in str(exc)
    assert readonly is None
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
    con.close()
    again = await open_sim(db, seed=0)
    try:
        store = again.store
        assert store is not None
        assert again.state.seq == seq, "opened at the head it was closed at (the migration adds no event)"
        assert await store.metrics("cpu_pct", "system") == before
        assert again.telemetry.get("cpu_pct").points, "the gauges' history came back"
        rep = await verify_store(store)
        assert rep.ok, rep.as_dict()
    finally:
        await again.close()
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert con.execute("SELECT count(*) FROM metrics").fetchone()[0] >= n
    finally:
        con.close()
    assert _event_rows(db) == events, "the migration left every event row as it was"


async def test_a_running_fleet_keeps_full_resolution_only_for_the_gauges_history(tmp_path: Path) -> None:
    eng = await open_sim(tmp_path / "d.db", seed=0, demo=True)
    try:
        await eng.advance(3 * 3600.0)
        await eng.flush()
        cpu = await eng.store.metrics("cpu_pct", "system")  # type: ignore[union-attr]
        # Maintenance runs at least hourly; it downsamples what is past the gauges' history.
        cutoff = eng.clock.now() - 3600.0 - HISTORY * eng.config.intervals.sample_s
        old = [t for t, _ in cpu if t < cutoff]
        buckets = cutoff / eng.config.intervals.metric_bucket_s
        assert cutoff > 0 and buckets - 1 <= len(old) <= buckets + 3  # a bucket split by a run counts twice
        recent = [t for t, _ in cpu if t >= eng.clock.now() - 600.0]
        assert len(recent) >= 600.0 / eng.config.intervals.sample_s - 2, "recent samples keep full resolution"
    finally:
        await eng.close()


async def test_samples_share_the_events_commit_and_a_refused_sample_costs_only_samples(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    eng = await Engine.open(db, clock=VirtualClock())
    try:
        store = eng.store
        assert store is not None
        eng.create_pool("p", ["x"], 0, 2)
        eng.telemetry.record(1.0, "response_time", "system", 2.0)
        await eng.flush()
        assert await store.metrics("response_time") == [(1.0, 2.0)]
        # A metrics table that refuses the insert (inside the events' transaction): the
        # events commit, the samples are dropped and the store says so.
        con = sqlite3.connect(db)
        con.execute("CREATE TRIGGER refuse BEFORE INSERT ON metrics BEGIN SELECT RAISE(ABORT, 'refused'); END")
        con.commit()
        con.close()
        eng.add_agent("p")
        eng.telemetry.record(2.0, "response_time", "system", 3.0)
        await eng.flush()
        assert (await store.head())[0] == eng.state.seq
        assert eng.log.buffer == [] and eng.telemetry.pending_rows == []
        assert store.metrics_problem is not None and "refused" in store.metrics_problem
        assert await store.metrics("response_time") == [(1.0, 2.0)]
        rep = await verify_store(store)
        assert rep.ok, rep.as_dict()
    finally:
        await eng.close()


async def test_samples_alone_wait_for_their_batch_and_none_is_lost(tmp_path: Path) -> None:
    """Samples with no event to commit with wait until SAMPLE_WRITE_S of wall time passed
    since the store last took them (a run faster than the wall clock committed each
    flush's samples alone); an events' commit takes them at once, so does the close, and
    SAMPLE_BATCH_MAX held are committed whatever the time. Each row as recorded."""
    import math

    from core.telemetry import SAMPLE_BATCH_MAX

    db = tmp_path / "b.db"
    eng = await Engine.open(db, clock=VirtualClock())
    store = eng.store
    assert store is not None
    tel = eng.telemetry
    tel.record(1.0, "response_time", "system", 1.0)
    await eng.flush()
    assert await store.metrics("response_time") == [(1.0, 1.0)]  # none taken before: due
    tel.samples_taken = math.inf  # as if taken an instant ago, however slow the machine
    tel.record(2.0, "response_time", "system", 2.0)
    await eng.flush()
    assert await store.metrics("response_time") == [(1.0, 1.0)]  # held
    assert tel.pending_rows == [(2.0, "response_time", "system", 2.0)]
    eng.create_pool("p", ["x"], 0, 2)  # an event: its commit takes the samples
    await eng.flush()
    assert await store.metrics("response_time") == [(1.0, 1.0), (2.0, 2.0)]
    tel.samples_taken = math.inf
    tel.record(3.0, "response_time", "system", 3.0)
    await eng.flush()
    tel.samples_taken = -math.inf  # the wall time passed
    tel.record(4.0, "response_time", "system", 4.0)
    await eng.flush()
    assert [t for t, _ in await store.metrics("response_time")] == [1.0, 2.0, 3.0, 4.0]
    tel.samples_taken = math.inf
    for i in range(SAMPLE_BATCH_MAX):
        tel.record(10.0 + i, "x", "system", float(i))
    await eng.flush()
    assert len(await store.metrics("x")) == SAMPLE_BATCH_MAX and tel.pending_rows == []
    tel.record(5.0, "response_time", "system", 5.0)
    await eng.flush()
    assert tel.pending_rows  # held at the close...
    await eng.close()
    rows = series_rows(db, "response_time")
    got = [p for r in rows for p in samples_of(*r)]
    assert got == [(float(i), float(i)) for i in range(1, 6)]  # ...and committed by it
    assert len(rows) == 4, "3 and 4 were taken together: one row"


async def test_samples_held_for_their_batch_are_stored_before_the_store_downsamples(tmp_path: Path) -> None:
    """Maintenance downsamples the store's samples past the gauges' history, each range
    once: samples still held in memory for their batch (no event to commit with) are
    committed first, else they were written after their range was grouped and stayed
    one row each for good."""
    import math

    eng = await Engine.open(tmp_path / "h.db", clock=VirtualClock())
    store = eng.store
    assert store is not None
    try:
        tel = eng.telemetry
        bucket = eng.config.intervals.metric_bucket_s
        tel.record(0.0, "response_time", "system", 1.0)
        await eng.flush()  # the first is committed at once (none taken before)
        tel.samples_taken = math.inf  # the rest held, as within SAMPLE_WRITE_S of wall time
        for i in range(1, 6):
            tel.record(float(i), "response_time", "system", 1.0)
        await eng.flush()
        assert len(tel.pending_rows) == 5
        eng.clock.run_until(HISTORY * eng.config.intervals.sample_s + 2 * bucket)
        await eng.checkpoints.maintain()  # prunes and downsamples: the six are one bucket's
        assert tel.pending_rows == []
        assert await store.metrics("response_time") == [(0.0, 1.0)]
    finally:
        await eng.close()


async def test_a_host_commit_takes_the_samples_waiting_for_their_batch(tmp_path: Path) -> None:
    """``Host.commit`` answers whether everything is committed: the samples held for their
    batch (no event to commit with, within SAMPLE_WRITE_S of wall time) are in the file
    after it, while a plain flush still holds them."""
    import math

    from core.config import Config
    from core.host.host import Host

    db = tmp_path / "c.db"
    host = await Host.open_sim(db, Config(), create=True, speed=0)
    try:
        tel = host.engine.telemetry
        await host.engine.flush()
        tel.samples_taken = math.inf  # as if taken an instant ago, however slow the machine
        tel.record(1.0, "response_time", "system", 7.0)
        await host.engine.flush()
        assert tel.pending_rows, "a plain flush holds them for their batch"
        async with host.lock:
            assert await host.commit()
        assert tel.pending_rows == []
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            got = con.execute(
                "SELECT m.ts, m.value FROM metrics m JOIN metric_series s ON s.id = m.series "
                "WHERE s.name = 'response_time'"
            ).fetchall()
        finally:
            con.close()
        assert got == [(1.0, 7.0)]
    finally:
        await host.close()


def _stored_samples(db: Path, name: str) -> list[tuple[float, float]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT m.ts, m.value, m.earlier FROM metrics m JOIN metric_series s ON s.id = m.series "
            "WHERE s.name = ? ORDER BY m.id",
            (name,),
        ).fetchall()
        return [p for r in rows for p in samples_of(*r)]
    finally:
        con.close()


async def test_samples_alone_refused_by_the_storage_are_kept_reported_and_stored_once(tmp_path: Path) -> None:
    """Samples committed alone (no event in the batch) that the storage refuses (a full
    disk: nothing written) stay held, in order, and the refusal is raised as an events'
    commit raises it, so a host says "full"; the next flush stores each of them once.
    A damaged metrics table instead costs the samples (said in ``metrics_problem``)."""
    from core.config import Config
    from core.host.host import Host
    from core.store_errors import StorageError

    db = tmp_path / "r.db"
    host = await Host.open_sim(db, Config(), create=True, speed=0)
    eng = host.engine
    store = eng.store
    assert store is not None
    try:
        tel = eng.telemetry
        async with host.lock:
            assert await host.commit()
        table = store.metric_table
        real = table._write
        refusals = [StorageError("full", str(db), f"{db}: the disk is full")]

        async def refusing(statements):  # type: ignore[no-untyped-def]
            if refusals:
                raise refusals.pop()
            await real(statements)

        table._write = refusing
        for i in range(3):
            tel.record(float(i), "r", "system", float(i))
        async with host.lock:
            assert not await host.commit()  # samples alone, refused
        assert eng.unflushed == 0  # no event was held: the samples were written alone
        assert host.storage.problem is not None and host.storage.problem.kind == "full"
        assert tel.pending_rows == [(float(i), "r", "system", float(i)) for i in range(3)]
        assert store.metrics_problem is None  # the table is not damaged
        assert _stored_samples(db, "r") == []
        tel.record(3.0, "r", "system", 3.0)
        async with host.lock:
            assert await host.commit()
        assert host.storage.problem is None and tel.pending_rows == []
        assert _stored_samples(db, "r") == [(float(i), float(i)) for i in range(4)]
        # Not kept: a metrics table that refuses the rows itself (damage, not the storage).
        con = sqlite3.connect(db)
        con.execute("CREATE TRIGGER refuse BEFORE INSERT ON metrics BEGIN SELECT RAISE(ABORT, 'refused'); END")
        con.commit()
        con.close()
        tel.record(4.0, "r", "system", 4.0)
        async with host.lock:
            assert await host.commit()
        assert tel.pending_rows == [] and host.storage.problem is None
        assert store.metrics_problem is not None and "refused" in store.metrics_problem
    finally:
        await host.close()
    assert _stored_samples(db, "r") == [(float(i), float(i)) for i in range(4)]


async def test_samples_held_after_a_refusal_are_counted_in_what_the_host_says(tmp_path: Path) -> None:
    """A refused commit of samples alone holds no event but holds the samples: the host's
    notice counts them, when refused and when closing loses them (it said '0 event(s)
    held in memory' and nothing of the samples)."""
    from core.config import Config
    from core.host.host import Host
    from core.store_errors import StorageError

    db = tmp_path / "r.db"
    host = await Host.open_sim(db, Config(), create=True, speed=0)
    said: list[str] = []
    host.storage.notify = said.append
    store = host.engine.store
    assert store is not None
    tel = host.engine.telemetry
    try:
        async with host.lock:
            assert await host.commit()

        async def refusing(statements):  # type: ignore[no-untyped-def]
            raise StorageError("full", str(db), f"{db}: the disk is full")

        store.metric_table._write = refusing
        for i in range(3):
            tel.record(float(i), "r", "system", float(i))
        async with host.lock:
            assert not await host.commit()
        assert host.engine.unflushed == 0 and len(tel.pending_rows) == 3
        assert len(said) == 1 and "0 event(s) and 3 metric sample(s) held in memory" in said[0]
    finally:
        await host.close()
    assert "closing: 0 event(s) and 3 metric sample(s) held in memory were not committed" in said[-1]
    assert _stored_samples(db, "r") == []
