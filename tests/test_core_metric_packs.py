"""A batch's samples of one series are one metrics row (core/store_metrics.py): every
reader gets each sample back, the detectors' reload after an open included; retention
and downsampling count every sample; older databases migrate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.clock import VirtualClock
from core.engine import Engine
from core.incidents.kinds.performance_degradation import PerformanceDegradationDetector
from core.store import Store
from core.store_metrics import PACK_MAX, pack, pack_rows, samples_of
from core.store_schema import SCHEMA_VERSION
from core.telemetry import HISTORY

from .store_support import agents_only_config, migrated_on_open, rows_of, start_pool_workflow, stored_schema_version


def _rows(db: Path) -> list[tuple[float, float, bytes | None]]:
    return rows_of(db, "SELECT ts, value, earlier FROM metrics ORDER BY id")


async def test_a_reopened_engine_gives_the_detectors_the_samples_it_had(tmp_path: Path) -> None:
    """The degradation detector reads the response-time and efficiency series; after an
    open they hold what the engine that wrote them held (each task's sample, in order)
    and its analysis is the same, though the store kept each flush's in one row."""
    db = tmp_path / "d.db"
    clock = VirtualClock()
    eng = await Engine.open(db, config=agents_only_config(10), clock=clock)
    try:
        tasks = [
            {"id": f"t{i}", "specialization": "x", "duration_s": 1 + i % 7, "cpu": 0, "memory_gb": 0}
            for i in range(400)
        ]
        start_pool_workflow(eng, clock, 10, tasks, seed=3)
        for _ in range(30):
            await eng.advance(10.0)
        await eng.flush(all_samples=True)
        before = {m: list(eng.telemetry.get(m).points) for m in ("response_time", "efficiency")}
        now = clock.now()
        analysis = PerformanceDegradationDetector(eng).analyse(now)
    finally:
        await eng.close()
    assert len(before["response_time"]) >= 300 and len(before["efficiency"]) >= 300
    rows = _rows(db)
    assert len(rows) < 100, "each flush's samples of a series in one row"
    again = await Engine.open(db, config=agents_only_config(10), clock=VirtualClock())
    try:
        for metric, points in before.items():
            assert list(again.telemetry.get(metric).points) == points[-HISTORY:], metric
        assert "efficiency" in analysis and "response_time" in analysis
        assert PerformanceDegradationDetector(again).analyse(now) == analysis
    finally:
        await again.close()


async def test_samples_come_back_one_by_one_in_order_from_every_reader(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "m.db")
    try:
        # Two series interleaved, a clock that goes back once, a bucket boundary at 60 s.
        samples = [(50.0 + i, "rt", "system", float(i)) for i in range(20)]
        samples += [(55.0 + i, "eff", "system", i / 10) for i in range(3)]
        samples += [(40.0, "rt", "system", -1.0)]
        await store.add_metrics(samples)
        rt = [(t, v) for t, n, _, v in samples if n == "rt"]
        assert await store.metrics("rt") == sorted(rt, key=lambda p: p[0])
        assert await store.metrics("rt", since=60.0) == [p for p in rt if p[0] >= 60.0]
        got = await store.recent_metrics(62.0, ("rt", "eff"), ("system",), last=5)
        assert got == {("rt", "system"): [(t, float(t - 50)) for t in (65.0, 66.0, 67.0, 68.0, 69.0)]}
        after, last = await store.metrics_after(0)
        assert sorted(after) == sorted(samples) and last == await store.last_metric_rowid()
        # One row for the first 10 rt samples (50..59), one from 60 on, one after the clock went back.
        assert len(_rows(tmp_path / "m.db")) == 4
    finally:
        await store.close()


def test_rows_split_where_time_goes_back_a_bucket_begins_or_a_row_is_full() -> None:
    flat: list[float] = []
    for i in range(PACK_MAX + 5):
        flat += (1.0 + i / (2 * PACK_MAX), float(i))
    rows = pack_rows(7, flat, 60.0)
    assert [len(samples_of(*r[1:])) for r in rows] == [PACK_MAX, 5]
    assert [p for r in rows for p in samples_of(*r[1:])] == list(zip(flat[0::2], flat[1::2], strict=True))
    assert len(pack_rows(7, [59.0, 1.0, 60.0, 2.0], 60.0)) == 2
    assert len(pack_rows(7, [5.0, 1.0, 4.0, 2.0], 60.0)) == 2
    assert pack_rows(7, [5.0, 1.0], 60.0) == [(7, 5.0, 1.0, None)], "a row of one sample is as before"
    with pytest.raises(sqlite3.ProgrammingError):
        pack_rows(7, [5.0, 1.0, 6.0], 60.0)


async def test_downsampling_rows_of_several_gives_each_sample_its_weight(tmp_path: Path) -> None:
    """The means equal those of the same samples stored one row each (as before the
    change): a row of 12 samples counts 12 times, not once."""
    samples = [(float(t), "cpu", "system", float(t % 7)) for t in range(0, 7200, 5)]
    one_each = await Store.open(tmp_path / "a.db")
    packed = await Store.open(tmp_path / "b.db")
    try:
        for s in samples:
            await one_each.add_metrics([s])
        await packed.add_metrics(samples)
        await packed.add_metrics([(3000.0, "cpu", "system", 100.0)])  # a bucket with a row of each kind
        await one_each.add_metrics([(3000.0, "cpu", "system", 100.0)])
        assert len(_rows(tmp_path / "b.db")) < len(samples) / 10
        assert await one_each.downsample_metrics(3600.0, 60.0) == await packed.downsample_metrics(3600.0, 60.0)
        a, b = await one_each.metrics("cpu"), await packed.metrics("cpu")
        assert [t for t, _ in a] == [t for t, _ in b]
        assert [v for _, v in a] == pytest.approx([v for _, v in b])
        assert len([t for t, _ in b if t < 3600.0]) == 60
    finally:
        await one_each.close()
        await packed.close()


async def test_retention_deletes_a_row_only_when_all_its_samples_are_old(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "m.db")
    try:
        await store.add_metrics([(float(t), "x", "system", 1.0) for t in range(10, 20)])
        assert await store.prune_metrics(15.0) == 0  # the row ends at 19: kept whole
        assert len(await store.metrics("x")) == 10
        assert await store.prune_metrics(20.0) == 1
        assert await store.metrics("x") == []
    finally:
        await store.close()


async def test_a_damaged_packed_row_costs_its_packed_samples_only_and_is_said(tmp_path: Path) -> None:
    """Its own sample (in its columns) and every other row are still read: the reader
    of a series, the reload on open, a replica following ids (it goes past the row) and
    the downsampling (it does not stop at the row for good)."""
    db = tmp_path / "m.db"
    store = await Store.open(db)
    try:
        await store.add_metrics([(1.0, "x", "system", 1.0), (2.0, "x", "system", 2.0)])
        await store.add_metrics([(3.0, "x", "system", 3.0), (4.0, "x", "system", 4.0)])
    finally:
        await store.close()
    con = sqlite3.connect(db)
    con.execute("UPDATE metrics SET earlier = x'0102' WHERE ts = 2.0")
    con.commit()
    con.close()
    store = await Store.open(db)
    try:
        assert await store.metrics("x") == [(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]
        assert store.metrics_problem is not None and "not whole" in store.metrics_problem
        assert await store.recent_metrics(0.0, ["x"], ["system"]) == {
            ("x", "system"): [(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]
        }
        samples, last = await store.metrics_after(0)
        assert [t for t, *_ in samples] == [2.0, 3.0, 4.0] and last == await store.last_metric_rowid()
        assert await store.downsample_metrics(100.0, 60.0) == 2
        assert await store.metrics("x") == [(2.0, 3.0)]
    finally:
        await store.close()


async def test_a_schema_5_database_opens_migrated_with_its_samples(tmp_path: Path) -> None:
    db = tmp_path / "v5.db"
    store = await Store.open(db)
    await store.close()
    con = sqlite3.connect(db)
    con.executescript(
        """
        ALTER TABLE metrics DROP COLUMN earlier;
        INSERT INTO metric_series(id, name, subject) VALUES (1, 'rt', 'system');
        INSERT INTO metrics(series, ts, value) VALUES (1, 1.0, 0.5), (1, 2.0, 0.25);
        UPDATE meta SET value = '5' WHERE key = 'schema_version';
        """
    )
    con.commit()
    con.close()
    store = await migrated_on_open(db)
    try:
        assert await store.metrics("rt") == [(1.0, 0.5), (2.0, 0.25)]
        await store.add_metrics([(3.0, "rt", "system", 1.0), (4.0, "rt", "system", 2.0)])
        assert [t for t, _ in await store.metrics("rt")] == [1.0, 2.0, 3.0, 4.0]
    finally:
        await store.close()
    assert stored_schema_version(db) == str(SCHEMA_VERSION)
    assert rows_of(db, "SELECT earlier FROM metrics ORDER BY id") == [(None,), (None,), (pack([3.0, 1.0]),)]


async def test_a_replica_following_rows_of_many_samples_reads_a_bounded_page(tmp_path: Path) -> None:
    """``metrics_after`` stops at the row that brings ``limit`` samples: a follower's page
    is bounded by samples, not rows (a row holds up to PACK_MAX), and the next page starts
    after the last row read."""
    store = await Store.open(tmp_path / "m.db")
    try:
        for k in range(3):
            await store.add_metrics([(k * 100.0 + i / 100, "rt", "system", float(i)) for i in range(50)])
        page, last = await store.metrics_after(0, limit=60)
        assert len(page) == 100 and last == 2  # two rows of 50: the second brought it past 60
        rest, last2 = await store.metrics_after(last, limit=60)
        assert len(rest) == 50 and last2 == 3
        assert [t for t, *_ in page + rest] == [k * 100.0 + i / 100 for k in range(3) for i in range(50)]
        assert await store.metrics_after(last2) == ([], last2)
    finally:
        await store.close()
