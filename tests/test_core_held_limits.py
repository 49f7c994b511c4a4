"""A long storage refusal holds a bounded amount in memory (core.engine.held).

At the events' limit the engine starts no new work and records no progress reports
until a commit goes through; beyond the samples' limit newer samples are not stored,
counted. Nothing held is dropped: every event emitted is committed once writes are
accepted. The host says so in its status (``/host status``, ``/v1/health``) and notices.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import core.store as store_module
from core.config import Config
from core.engine import Engine
from core.host.host import Host
from core.models import Task
from core.session import open_sim
from core.store_errors import StorageError
from core.store_metrics import samples_of

from .conftest import until
from .store_support import commit_waiting_for_lock, refuse_commits, series_rows, stored_head


def _workflow(wid: str, tasks: int) -> dict[str, Any]:
    spec = [{"id": f"t{i}", "specialization": "x", "duration_s": 600, "cpu": 0, "memory_gb": 0} for i in range(tasks)]
    return {
        "id": wid,
        "allocation": {"cpu_cores": 1, "memory_gb": 1, "agents": 4},
        "phases": [{"name": "a", "tasks": spec}],
    }


def _one_task_running(eng: Engine) -> Task:
    """Two agents, and a workflow of one task started on one of them (the other idle)."""
    eng.create_pool("p", ["x"], 0, 4)
    for _ in range(2):
        eng.add_agent("p", ["x"])
    eng.create_workflow(_workflow("w1", 1))
    eng.start_workflow("w1")
    _settle(eng)
    running = eng.state.tasks["w1/t0"]
    assert running.agent is not None, "assigned"
    return running


def _settle(eng: Engine) -> None:
    """Run what is due now on the virtual clock (a requested dispatch)."""
    eng.clock.run_until(eng.clock.now())  # type: ignore[attr-defined]


@pytest.mark.parametrize("limit", [5, 10_000])
async def test_at_the_held_events_limit_new_work_and_progress_pause_until_a_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """limit 5: the refused commit leaves more held, so a new workflow is not started,
    a running task's progress is not recorded (counted); the first commit that goes
    through commits every held event and starts the work. limit 10,000: not reached,
    the same refusal pauses nothing."""
    db = tmp_path / "h.db"
    eng = await open_sim(db)
    try:
        running = _one_task_running(eng)
        await eng.flush()
        held = eng.log.held
        held.events_max = limit
        full = refuse_commits(eng, monkeypatch)
        for i in range(6):
            eng.set_setting("probe", i)
        with pytest.raises(StorageError):
            await eng.flush()
        assert held.paused == (limit == 5)
        eng.create_workflow(_workflow("w2", 1))
        eng.start_workflow("w2")
        _settle(eng)
        seq = eng.state.seq
        eng.bridge.task_progress(running.agent, running.id, 0.5)
        if limit == 5:
            assert eng.state.tasks["w2/t0"].agent is None, "no new work while paused"
            assert eng.state.seq == seq and held.progress_not_recorded == 1
            # New partial results are recorded all the same (a run's last report has no successor).
            eng.bridge.task_progress(running.agent, running.id, 0.55, None, {"step": 1})
            assert eng.state.seq == seq + 1 and running.context.partial_results == {"step": 1}
            eng.bridge.task_progress(running.agent, running.id, 0.56, None, {"step": 1})
            assert eng.state.seq == seq + 1 and held.progress_not_recorded == 2
        else:
            assert eng.state.tasks["w2/t0"].agent is not None
            assert eng.state.seq == seq + 1 and held.progress_not_recorded == 0
        emitted = eng.state.seq
        full[0] = False
        await eng.flush()
        assert not held.paused and stored_head(db) == emitted, "every held event committed"
        _settle(eng)
        assert eng.state.tasks["w2/t0"].agent is not None, "the work starts once writes go through"
        eng.bridge.task_progress(running.agent, running.id, 0.6)
        assert held.progress_not_recorded == (2 if limit == 5 else 0)
    finally:
        await eng.close()


async def test_samples_beyond_the_limit_are_not_stored_counted_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight samples held through a refusal with a limit of five: the five oldest stay held
    and are stored when writes are accepted, three are counted as not stored; the host's
    status and notices say so, and that new work paused at the events' limit starts again."""
    db = tmp_path / "s.db"
    host = await Host.open_sim(db, Config(), create=True, speed=0)
    said: list[str] = []
    host.storage.notify = said.append
    eng = host.engine
    held = eng.log.held
    held.samples_max, held.events_max = 5, 1
    try:
        async with host.lock:
            assert await host.commit()
        full = refuse_commits(eng, monkeypatch)
        for i in range(8):
            eng.telemetry.record(float(i), "r", "system", float(i))
        eng.set_setting("probe", 1)  # one event held: the events' limit (1) is reached
        async with host.lock:
            assert not await host.commit()
        assert eng.telemetry.pending_rows == [(float(i), "r", "system", float(i)) for i in range(5)]
        status = host.status()["storage"]
        assert status["paused"] is True and status["held_samples"] == 5 and status["samples_not_stored"] == 3
        assert any("no new work is started" in x for x in said), said
        assert any("metric samples beyond 5 held are not stored (3 so far)" in x for x in said), said
        full[0] = False
        async with host.lock:
            assert await host.commit()
        status = host.status()["storage"]
        assert status["paused"] is False and status["held_samples"] == 0 and status["state"] == "ok"
        assert "3 metric sample(s) beyond the limit were not stored" in said[-1], said
        assert "new work is started again" in said[-1], said
    finally:
        await host.close()
    rows = series_rows(db, "r")
    stored = [t for r in rows for t, _ in samples_of(*r)]  # a batch's samples of a series are one row
    assert stored == [float(i) for i in range(5)], "the five held stored once, the three beyond not"


async def test_an_embedded_console_shows_storage_refused_and_paused_until_writes_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console of an embedded host: the storage notices are said (toasts) and, while
    writes are refused, the link is behind with what and whether new work is paused;
    once a commit goes through it is not."""
    from core.host.link import EmbeddedLink

    db = tmp_path / "e.db"
    host = await Host.open_sim(db, Config(), create=True, speed=0)
    link = EmbeddedLink(host)
    said: list[str] = []
    link.on_trouble(said.append)
    eng = host.engine
    eng.log.held.events_max = 1
    try:
        full = refuse_commits(eng, monkeypatch)
        eng.set_setting("probe", 1)
        async with host.lock:
            assert not await host.commit()
        assert link.stale == "storage full, new work paused" and link.trouble is None and link.gone is None
        assert any("the disk is full" in x for x in said) and any("no new work is started" in x for x in said)
        full[0] = False
        async with host.lock:
            assert await host.commit()
        assert link.stale is None
        assert "writes are accepted again" in said[-1] and "new work is started again" in said[-1], said
    finally:
        await link.close()


@pytest.mark.parametrize("limit", [5, 10_000])
async def test_a_wait_for_another_programs_lock_holds_events_to_the_same_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """A commit waits (up to LOCK_WAIT_S) for a lock another program holds while the
    runtime goes on emitting. limit 5: the batch waiting and what is emitted meanwhile
    reach it, so a new workflow is not started and progress is not recorded, the status
    says paused and counts the events held, and a notice says so; once the lock is
    released every event is committed and the work starts. limit 10,000: the same wait
    pauses nothing."""
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 20)  # each try gives up after 20 ms, not 5 s
    db = tmp_path / "l.db"
    host = await Host.open_sim(db, Config(), create=True, speed=0)
    said: list[str] = []
    host.storage.notify = said.append
    eng = host.engine
    held = eng.log.held
    held.events_max = limit
    other = sqlite3.connect(db, isolation_level=None)
    try:
        running = _one_task_running(eng)
        async with host.lock:
            assert await host.commit()
        other.execute("BEGIN EXCLUSIVE")
        for i in range(6):
            eng.set_setting("probe", i)
        waiting = await commit_waiting_for_lock(host)
        eng.create_workflow(_workflow("w2", 1))
        eng.start_workflow("w2")
        _settle(eng)
        seq = eng.state.seq
        eng.bridge.task_progress(running.agent, running.id, 0.5)
        status = host.status()["storage"]
        if limit == 5:
            assert eng.state.tasks["w2/t0"].agent is None, "no new work while the lock is waited for"
            assert eng.state.seq == seq and held.progress_not_recorded == 1
            assert status["paused"] is True and status["limits"]["events"] == 5
            await until(lambda: any("no new work is started" in x for x in said), lambda: said, 30)
            assert host.status()["storage"]["held_events"] >= 6, host.status()["storage"]
        else:
            assert eng.state.tasks["w2/t0"].agent is not None
            assert eng.state.seq == seq + 1 and held.progress_not_recorded == 0
            assert status["paused"] is False
        assert not waiting.done(), "the commit still waits for the lock"
        other.execute("ROLLBACK")
        assert await asyncio.wait_for(waiting, 60), "committed once the lock is released"
        emitted = eng.state.seq
        assert not held.paused and host.status()["storage"]["state"] == "ok"
        _settle(eng)
        assert eng.state.tasks["w2/t0"].agent is not None, "the work starts once the lock is released"
        if limit == 5:
            assert "new work is started again" in said[-1], said
        async with host.lock:
            assert await host.commit()
    finally:
        other.close()
        await host.close()
    assert stored_head(db) >= emitted, "every event held during the wait committed"
