"""Verification of a store: the hash chain, sequence numbers, checkpoints, the anchor
and SQLite's own integrity check.

Used by ``opsdeck verify`` and by the data-integrity detector. It reports the first
bad sequence number, every checkpoint that fails, and each problem SQLite finds in
its b-trees by table (``integrity``), so that a recovery knows which segment to
distrust; damage confined to the metrics table is told apart (``metrics_only``):
it costs samples, not the log.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from .event_types import EVENTS
from .events import GENESIS_HASH, Event, canonical_envelope, canonical_json, chain_hash
from .projection import State, hash_snapshot
from .store import Store


@dataclass
class Fault:
    seq: int
    problem: str


@dataclass
class VerifyReport:
    events: int = 0
    last_seq: int = 0
    first_bad_seq: int | None = None
    faults: list[Fault] = field(default_factory=list)
    checkpoints_ok: list[int] = field(default_factory=list)
    checkpoints_bad: dict[int, str] = field(default_factory=dict)
    integrity: list[tuple[str, str]] = field(default_factory=list)
    """(table, problem) from SQLite's ``integrity_check``."""

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None and not self.checkpoints_bad and not self.integrity

    @property
    def metrics_only(self) -> bool:
        """Everything wrong is in the metrics table (outside the chain): samples, not the log."""
        return (
            not self.ok
            and self.first_bad_seq is None
            and not self.checkpoints_bad
            and all(t == "metrics" for t, _ in self.integrity)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "last_seq": self.last_seq,
            "first_bad_seq": self.first_bad_seq,
            "faults": [{"seq": f.seq, "problem": f.problem} for f in self.faults[:20]],
            "checkpoints_ok": self.checkpoints_ok,
            "checkpoints_bad": {str(k): v for k, v in self.checkpoints_bad.items()},
            "integrity": [{"table": t, "problem": p} for t, p in self.integrity[:20]],
            "metrics_only": self.metrics_only,
        }


async def verify_store(store: Store, replay_checkpoints: bool = True) -> VerifyReport:
    """Walk the whole chain; check each checkpoint's hash and, by replay, its content.

    Damage is reported, never raised: text that is not UTF-8 is read with
    replacement characters (so the row's hash fails), a payload that is not JSON or
    a row that cannot be folded is a fault at its seq."""
    with store.tolerating_bad_text():
        return await _verify(store, replay_checkpoints)


async def _verify(store: Store, replay_checkpoints: bool) -> VerifyReport:
    rep = VerifyReport()
    rep.integrity = await store.integrity()
    prev_hash = GENESIS_HASH
    expected_seq = 1
    cps = await store.list_checkpoints()
    cp_by_seq: dict[int, list[dict[str, Any]]] = {}
    for cp in cps:
        cp_by_seq.setdefault(cp["seq"], []).append(cp)
    state = State(EVENTS.folds) if replay_checkpoints else None
    replay_ok = True
    cursor = 0
    while True:
        rows = await store.raw_rows(cursor, 5000)
        if not rows:
            break
        for seq, ts, type_, comp, scope, actor, data_json, prev, h in rows:
            rep.events += 1
            rep.last_seq = seq
            problem = None
            data: Any = None
            if seq != expected_seq:
                problem = f"sequence gap: expected {expected_seq}, found {seq}"
            elif prev != prev_hash:
                problem = "previous-hash link broken"
            else:
                try:
                    data = json.loads(data_json)
                except (TypeError, ValueError):
                    problem = "payload is not JSON"
                try:
                    if problem is None and (
                        chain_hash(prev, canonical_envelope(seq, ts, type_, comp, scope, actor, data_json)) != h
                        or canonical_json(data) != data_json
                    ):
                        problem = "hash does not match the row's content"
                except (TypeError, ValueError):
                    problem = "a column holds a value of the wrong type"
            if problem is not None:
                rep.faults.append(Fault(seq, problem))
                if rep.first_bad_seq is None:
                    rep.first_bad_seq = seq
                replay_ok = False
            elif state is not None and replay_ok:
                try:
                    state.apply(Event(seq, ts, type_, comp, scope, data, actor))
                except Exception as exc:  # noqa: BLE001 - a row that cannot be folded (whatever it raises) is a fault
                    rep.faults.append(Fault(seq, f"cannot be applied: {exc!r}"))
                    if rep.first_bad_seq is None:
                        rep.first_bad_seq = seq
                    replay_ok = False
            prev_hash = h
            expected_seq = seq + 1
            if state is not None and replay_ok and seq in cp_by_seq:
                # Snapshots written before labels left them hold the labels: both forms count.
                replay_hashes = {state.state_hash(), hash_snapshot(state.snapshot(checkpoint_labels=True))}
                for cp in cp_by_seq[seq]:
                    cp["_replay_hashes"] = replay_hashes
        cursor = rows[-1][0]
    lost = await store.anchor_problem()
    if lost is not None:
        rep.faults.append(Fault(*lost))
        if rep.first_bad_seq is None or lost[0] < rep.first_bad_seq:
            rep.first_bad_seq = lost[0]
    for cp in cps:
        try:
            loaded = await store.load_checkpoint(cp["id"])
        except (sqlite3.Error, ValueError) as exc:
            rep.checkpoints_bad[cp["id"]] = f"unreadable: {type(exc).__name__}"
            continue
        if loaded is None:
            rep.checkpoints_bad[cp["id"]] = "vanished while being read"
            continue
        row, snap = loaded
        if not isinstance(snap, dict):
            rep.checkpoints_bad[cp["id"]] = "stored state is not a JSON object"
        elif hash_snapshot(snap) != row["state_hash"]:
            rep.checkpoints_bad[cp["id"]] = "stored state does not match its state hash"
        elif cp["seq"] > rep.last_seq:
            rep.checkpoints_bad[cp["id"]] = f"refers to sequence {cp['seq']}, past the end of the log"
        elif "_replay_hashes" in cp and row["state_hash"] not in cp["_replay_hashes"]:
            rep.checkpoints_bad[cp["id"]] = "differs from a replay of the log to its sequence number"
        else:
            rep.checkpoints_ok.append(cp["id"])
    return rep
