"""The data-integrity detector's periodic check reads what was added since the last
verified point; the whole verify (rare, in a worker thread) reads everything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.engine import Engine
from core.incidents.kinds.data_integrity_detector import DataIntegrityDetector
from core.session import open_sim
from core.verify import VerifiedPoint, verify_store

from .store_support import tamper


async def _engine(tmp_path: Path) -> tuple[Engine, Path]:
    db = tmp_path / "d.db"
    eng = await open_sim(db, seed=0, demo=True)
    await eng.advance(1200.0)
    await eng.flush()
    return eng, db


async def test_a_row_tampered_after_the_verified_point_is_found_by_the_next_check(tmp_path: Path) -> None:
    eng, db = await _engine(tmp_path)
    det = DataIntegrityDetector(eng)
    try:
        assert await det.incremental() is None
        first = det.point
        assert first is not None and first.seq > 0 and first.base > 0
        await eng.advance(600.0)
        await eng.flush()
        assert await det.incremental() is None  # untampered: nothing to find
        point = det.point
        assert point is not None and point.seq > first.seq
        await eng.advance(600.0)
        await eng.flush()
        target = point.seq + 3
        assert eng.state.seq > target
        tamper(db, target)
        found = await det.incremental()
        assert found is not None
        assert found.evidence["bad_seqs"] == [target]
        assert found.data["alert_type"] == "hash_chain_broken"
        assert det.point == point, "the verified point does not move past damage"
    finally:
        await eng.close()


async def test_a_row_tampered_before_the_point_is_the_whole_verifys_to_find(tmp_path: Path) -> None:
    eng, db = await _engine(tmp_path)
    det = DataIntegrityDetector(eng)
    try:
        assert await det.incremental() is None
        point = det.point
        assert point is not None and point.base_seq > 10
        tamper(db, 5)
        await eng.advance(300.0)
        await eng.flush()
        assert await det.incremental() is None
        rep = det.last_report
        assert rep is not None
        cov = rep.coverage
        assert not cov.whole and cov.from_seq == point.base_seq + 1 and cov.to_seq == eng.state.seq
        assert f"rows before {cov.from_seq}" in cov.claim() and "not read again" in cov.claim()
        assert rep.events == cov.to_seq - point.base_seq, "it read the rows since its base, no more"
        whole = await verify_store(eng.store)  # type: ignore[arg-type]
        assert whole.first_bad_seq == 5 and whole.coverage.whole
        # The detector's own whole verify (in a worker thread), judged at the check after it ends.
        eng.config.intervals.verify_whole_s = 1.0
        now = eng.clock.now()
        det.last_whole = now - 2.0
        assert det.due(now)
        assert await det.check_async(now) is None
        assert det.whole is not None
        await det.whole
        assert det.due(now)
        found = await det.check_async(now)
        assert found is not None and found.evidence["bad_seqs"] == [5]
        assert found.evidence["coverage"]["whole"] is True
    finally:
        await eng.close()


async def test_the_verified_point_is_kept_in_the_store(tmp_path: Path) -> None:
    eng, db = await _engine(tmp_path)
    try:
        det = DataIntegrityDetector(eng)
        assert await det.incremental() is None
        assert det.point is not None
        stored = await eng.store.meta(DataIntegrityDetector.POINT_KEY)  # type: ignore[union-attr]
        assert VerifiedPoint.parse(stored) == det.point
    finally:
        await eng.close()
    again = await open_sim(db, seed=0)
    try:
        det = DataIntegrityDetector(again)
        assert await det.incremental() is None
        rep = det.last_report
        assert rep is not None and rep.coverage.from_seq > 1 and rep.coverage.replayed_from
    finally:
        await again.close()


def test_an_unreadable_stored_point_starts_from_the_first_row() -> None:
    assert VerifiedPoint.parse("not json") == VerifiedPoint()
    assert VerifiedPoint.parse(None) == VerifiedPoint()
    assert VerifiedPoint.parse('{"seq": "x"}') == VerifiedPoint()


async def test_no_interval_checkpoint_when_nothing_changed(tmp_path: Path) -> None:
    eng, _ = await _engine(tmp_path)
    cps = eng.checkpoints
    try:
        before = len(eng.state.checkpoints)
        cps.last_at = eng.clock.now() - cps.interval() - 1.0
        await cps.maintain()
        assert len(eng.state.checkpoints) == before + 1
        cps.last_at = eng.clock.now() - cps.interval() - 1.0
        await cps.maintain()
        assert len(eng.state.checkpoints) == before + 1, "only its own record changed: no second checkpoint"
        await eng.advance(60.0)
        cps.last_at = eng.clock.now() - cps.interval() - 1.0
        await cps.maintain()
        assert len(eng.state.checkpoints) == before + 2
    finally:
        await eng.close()


def _damage_checkpoint(db: Path, cp_id: int) -> None:
    con = sqlite3.connect(db)
    try:
        con.execute("UPDATE checkpoints SET state = replace(state, '\"seq\":', '\"seq\":1') WHERE id = ?", (cp_id,))
        con.commit()
    finally:
        con.close()


async def test_open_does_not_hash_again_the_checkpoints_the_check_verified(tmp_path: Path) -> None:
    eng, db = await _engine(tmp_path)
    det = DataIntegrityDetector(eng)
    try:
        assert await det.incremental() is None
        point = det.point
        assert point is not None and point.checkpoint >= 2
        await eng.checkpoint(kind="manual", label="newest")
    finally:
        await eng.close()
    old = point.checkpoint - 1
    _damage_checkpoint(db, old)
    again = await open_sim(db, seed=0)  # verified before: not hashed again (the whole verify finds it)
    try:
        rep = await verify_store(again.store)  # type: ignore[arg-type]
        assert old in rep.checkpoints_bad
        newer = await again.checkpoint(kind="manual", label="after the point")
        await again.checkpoint(kind="manual", label="newest")
    finally:
        await again.close()
    _damage_checkpoint(db, newer)
    try:
        await open_sim(db, seed=0)
    except Exception as exc:  # a checkpoint after the verified point is checked, and refused
        assert f"checkpoint {newer}" in str(exc)
    else:
        raise AssertionError("a damaged checkpoint after the verified point was not refused")


def test_event_count_checkpoints_scale_with_live_state() -> None:
    from core.engine.checkpoints import EVENTS_PER_LIVE_RECORD
    from core.session import memory_sim

    eng = memory_sim(seed=0)
    base = eng.config.intervals.checkpoint_events
    assert eng.checkpoints.event_cadence() == base
    task = next(iter(eng.state.tasks.values()))
    eng.state.tasks.update({f"big/{i}": task for i in range(10_000)})
    live = len(eng.state.tasks) + len(eng.state.workflows) + len(eng.state.agents)
    assert eng.checkpoints.event_cadence() == EVENTS_PER_LIVE_RECORD * live > base


async def test_open_checks_the_chain_from_the_verified_point(tmp_path: Path) -> None:
    eng, db = await _engine(tmp_path)
    det = DataIntegrityDetector(eng)
    try:
        assert await det.incremental() is None
        point = det.point
        assert point is not None and point.seq > 10
        await eng.advance(300.0)
        await eng.checkpoint(kind="manual", label="newest")
    finally:
        await eng.close()
    tamper(db, 3)  # before the point: the integrity check verified it; the whole verify finds it
    again = await open_sim(db, seed=0)
    try:
        assert (await verify_store(again.store)).first_bad_seq == 3  # type: ignore[arg-type]
    finally:
        await again.close()
    tamper(db, point.seq + 1)  # after the point and before the newest checkpoint: an open refuses it
    try:
        await open_sim(db, seed=0)
    except Exception as exc:
        assert f"seq {point.seq + 1}" in str(exc)
    else:
        raise AssertionError("a tampered row after the verified point was not refused")
