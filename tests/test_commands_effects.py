"""Settings that something reads: each operation's effect checked by the state it
changes (checkpoint counts, detection, flushes, files, alerts, subscriptions), not
by its response text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.commands import run_command
from core.config import Config
from core.engine import Engine
from core.incidents.manager import IncidentManager
from core.session import open_sim


async def _sim(tmp_path: Path, name: str = "e.db") -> Engine:
    return await open_sim(tmp_path / name, Config(), seed=0, demo=True)


def _count(eng: Engine, into: list[Any], type_: str) -> None:
    eng.subscribe(lambda ev: into.append(ev) if ev.type == type_ else None)


async def _checkpoint_gaps_in_an_hour(tmp_path: Path, name: str, command: str | None) -> list[float]:
    """Seconds between the engine's automatic checkpoints over a simulated hour."""
    eng = await _sim(tmp_path, name)
    try:
        await eng.advance(60)
        if command:
            res = await run_command(eng, command)
            assert res["status"] == "success", res
        seen: list[Any] = []
        _count(eng, seen, "CHECKPOINT_CREATED")
        for _ in range(120):  # an hour, in the 30 s steps of a running console
            await eng.advance(30)
        at = [60.0] + [e.ts for e in seen if e.data["kind"] in ("incremental", "phase_complete")]
        return [b - a for a, b in zip(at, at[1:])]
    finally:
        await eng.close()


async def test_integrity_monitoring_sets_the_checkpoint_interval_in_force(tmp_path: Path) -> None:
    plain = await _checkpoint_gaps_in_an_hour(tmp_path, "a.db", None)
    aggressive = await _checkpoint_gaps_in_an_hour(
        tmp_path, "b.db", "/coordination-hub enable-enhanced-integrity-monitoring '{\"checkpoint_frequency\": \"aggressive\"}'")
    assert max(plain) > 330.0 and max(plain) <= 930.0  # phase completions, else every 900 s
    assert max(aggressive) <= 330.0  # every 300 s (to the 30 s step)
    assert len(aggressive) > len(plain)


async def _detected_after_damage(tmp_path: Path, name: str, command: str | None) -> float | None:
    """Damage a checkpoint through SQLite; how long until the detector opens an incident."""
    eng = await _sim(tmp_path, name)
    mgr = IncidentManager(eng, approve_mode="manual", scenarios=["data-integrity"])
    try:
        await eng.advance(400)
        if command:
            assert (await run_command(eng, command))["status"] == "success"
        await mgr.pump()  # a clean check
        await eng.advance(40)
        await mgr.pump()
        cp = await eng.checkpoint("incremental", "to be damaged")
        await eng.flush()
        db = eng.store.connection  # type: ignore[union-attr]
        row = await (await db.execute("SELECT state FROM checkpoints WHERE id=?", (cp,))).fetchone()
        snap = json.loads(row[0])
        snap["clock"] = -1.0
        await db.execute("UPDATE checkpoints SET state=? WHERE id=?", (json.dumps(snap), cp))
        await db.commit()
        damaged_at = eng.clock.now()
        for _ in range(200):
            await eng.advance(eng.config.intervals.sample_s)
            await mgr.pump()
            if eng.state.incidents:
                return eng.clock.now() - damaged_at
        return None
    finally:
        await eng.close()


async def test_every_operation_validation_finds_a_damaged_checkpoint_at_the_next_commit(tmp_path: Path) -> None:
    periodic = await _detected_after_damage(tmp_path, "p.db", None)
    each = await _detected_after_damage(
        tmp_path, "q.db", "/coordination-hub enable-enhanced-integrity-monitoring '{\"validation_frequency\": \"every_operation\"}'")
    assert each is not None and each <= 5.0, each  # one sample: the next pump after the commit
    assert periodic is not None and periodic > 200.0, periodic  # the default 300 s full check


async def test_transaction_logging_commits_each_command_before_its_reply(tmp_path: Path) -> None:
    eng = await _sim(tmp_path)
    try:
        await eng.advance(120)
        res = await run_command(eng, "/resource-manager allocate workflow_003 '{\"agents\": 3}'")
        assert res["status"] == "success" and eng.unflushed > 0, "without it, commands wait for the group commit"
        await eng.flush()
        res = await run_command(eng, "/coordination-hub emergency-data-protection '{\"affected_workflow\": \"workflow_002\", "
                                     "\"immediate_actions\": [\"enable_transaction_logging\"]}'")
        assert res["status"] == "success", res
        res = await run_command(eng, "/resource-manager allocate workflow_003 '{\"agents\": 4}'")
        assert res["status"] == "success" and eng.unflushed == 0
        head, _ = await eng.store.head()  # type: ignore[union-attr]
        assert head == eng.state.seq, "what the reply acknowledges is in the database"
    finally:
        await eng.close()
