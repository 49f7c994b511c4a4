"""Checkpoint labels stay out of snapshots; stores written with labelled snapshots still open and verify."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from core.engine import Engine
from core.events import canonical_json
from core.projection import State, hash_snapshot
from core.session import open_sim
from core.store import Store
from core.verify import verify_store

from .conftest import opsdeck_cmd

N = 25


def _label(i: int) -> str:
    return f"cp{i:03d}-" + "x" * 194  # 200 characters, the cap


async def _checkpoints(db: Path, labelled: bool) -> None:
    eng = await open_sim(db, demo=True, seed=3)
    eng.auto_checkpoints = False
    await eng.advance(30)
    for i in range(N):
        await eng.checkpoint("manual", _label(i) if labelled else "")
    await eng.close()


def _stored_states(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("SELECT state FROM checkpoints ORDER BY id")]
    finally:
        con.close()


async def test_snapshots_do_not_grow_with_labels(tmp_path: Path, cli_env: dict[str, str]) -> None:
    plain, labelled = tmp_path / "plain.db", tmp_path / "labelled.db"
    await _checkpoints(plain, labelled=False)
    await _checkpoints(labelled, labelled=True)
    with_labels, without = _stored_states(labelled), _stored_states(plain)
    assert len(with_labels) == len(without) == N
    # The same fleet with 200-character labels stores snapshots of exactly the same size.
    assert [len(s) for s in with_labels] == [len(s) for s in without]
    assert not any("cp0" in s for s in with_labels)
    # The labels are kept once, in the checkpoints table, and shown by list-checkpoints after a reopen.
    out = subprocess.run(
        opsdeck_cmd("exec", "--json", "--db", str(labelled), "/workflow-recovery list-checkpoints"),
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    shown = {c["id"]: c["label"] for c in json.loads(out.stdout)["result"]["checkpoints"]}
    assert [shown[i + 1] for i in range(N)] == [_label(i) for i in range(N)]


async def _labelled_store(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose snapshots carry labels, as the engine wrote them before labels left."""
    old = State.snapshot
    with monkeypatch.context() as m:
        m.setattr(State, "snapshot", lambda self, **_: old(self, full=True, checkpoint_labels=True))
        await _checkpoints(db, labelled=True)
    assert sum("cp0" in s for s in _stored_states(db)) == N - 1  # each but the first holds earlier labels


async def test_labelled_snapshots_of_an_older_store_open_and_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "old.db"
    await _labelled_store(db, monkeypatch)
    before = _stored_states(db)
    eng = await Engine.open(db)  # a writer checks every checkpoint against its hash
    assert [eng.state.checkpoints[i + 1].label for i in range(N)] == [_label(i) for i in range(N)]
    new_id = await eng.checkpoint("manual", "after the upgrade")
    await eng.close()
    after = _stored_states(db)
    assert after[:N] == before, "old snapshots keep their stored text"
    assert "cp0" not in after[new_id - 1] and "after the upgrade" not in after[new_id - 1]
    store = await Store.open(db)
    try:
        rep = await verify_store(store)
    finally:
        await store.close()
    assert rep.faults == [] and rep.checkpoints_bad == {}
    assert sorted(rep.checkpoints_ok) == list(range(1, N + 2))
    again = await Engine.open(db)
    assert again.state.checkpoints[new_id].label == "after the upgrade"
    assert again.state.checkpoints[1].label == _label(0)
    await again.close()


async def test_a_changed_label_in_an_old_snapshot_fails_the_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rehashed to match its own text, an old snapshot whose label differs from the log is still caught."""
    db = tmp_path / "old.db"
    await _labelled_store(db, monkeypatch)
    con = sqlite3.connect(db)
    try:
        snap = json.loads(con.execute("SELECT state FROM checkpoints WHERE id=5").fetchone()[0])
        snap["checkpoints"]["1"]["label"] = "rewritten"
        con.execute(
            "UPDATE checkpoints SET state=?, state_hash=? WHERE id=5", (canonical_json(snap), hash_snapshot(snap))
        )
        con.commit()
    finally:
        con.close()
    store = await Store.open(db)
    try:
        rep = await verify_store(store)
    finally:
        await store.close()
    assert rep.checkpoints_bad == {5: "differs from a replay of the log to its sequence number"}
