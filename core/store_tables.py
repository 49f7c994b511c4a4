"""The tables beside the hash chain: checkpoints and agent processes (metric samples: ``store_metrics``).

None of them is part of the chain: a checkpoint carries its own state hash (checked
against the chain when it is loaded), samples are telemetry with retention, and the
processes table is what a restarted console needs to adopt its agents. Each writes
through the store's one write path (a transaction, waiting out another process's lock).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from .events import canonical_json
from .projection_history import DIGEST_KEYS, HistoryChange, HistoryRows, KeptRow, expand, is_compact, rows_problem
from .store_commit import Statements
from .store_errors import StoreError
from .store_schema import scalar

Write = Callable[[Statements], Awaitable[None]]
"""The store's write path: runs the statements in one transaction, one round trip to
the connection's thread (``Store._write``)."""
ProcessRow = tuple[str, int, float, dict[str, Any]]
"""A processes row: agent, pid, create time, info (address, task group, MAC)."""

CHECKPOINT_ID_HIGH = "checkpoint_id_high"
"""The meta key holding the highest checkpoint id ever given."""
_NEXT_ID = (
    "SELECT max(coalesce((SELECT max(id) FROM checkpoints), 0), "
    "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 0)) + 1"
)


@dataclass(frozen=True)
class CheckpointRow:
    """A checkpoint as stored: the projection's canonical text at ``seq`` and its SHA-256,
    with the history entries that changed since the last one."""

    id: int | None
    """None: the next id (:meth:`CheckpointTable.save`); given: the id its CHECKPOINT_CREATED
    names, committed with it (``core.engine.checkpoints``)."""
    seq: int
    ts: float
    kind: str
    label: str
    workflow: str | None
    text: str
    state_hash: str
    history: Sequence[HistoryChange] = ()


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
        changed since the last one (:meth:`write`), given the next id; the id."""
        cp_id = 0

        def statements(conn: sqlite3.Connection) -> None:
            nonlocal cp_id
            cp_id = self.write(conn, CheckpointRow(None, seq, ts, kind, label, workflow, text, state_hash, history))

        await self._write(statements)
        return cp_id

    def write(self, conn: sqlite3.Connection, row: CheckpointRow) -> int:
        """Insert ``row`` in the caller's transaction (on the connection's thread), with its
        history entries: an entry replaced or gone stops holding at its seq, a new or
        replaced one holds from it. Its id: past every id ever given, not only past the rows
        left (a recovery removes the newest, damaged, checkpoints, and an id given again
        would name two checkpoints in the log and in the incidents that quarantined the
        first); a row that names its id may skip ids (a checkpoint taken back with its
        command) but never name one given before (StoreError: the engine counts ids on from
        what it read, as the one writer of its database)."""
        (next_id,) = conn.execute(_NEXT_ID, (CHECKPOINT_ID_HIGH,)).fetchone()
        if row.id is not None and row.id < next_id:
            raise StoreError(f"checkpoint {row.id} cannot be stored: ids up to {next_id - 1} were given before")
        cp_id = next_id if row.id is None else row.id
        conn.execute(
            "INSERT INTO checkpoints(id, seq, ts, kind, label, workflow, state, state_hash) VALUES (?,?,?,?,?,?,?,?)",
            (cp_id, row.seq, row.ts, row.kind, row.label, row.workflow, row.text, row.state_hash),
        )
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (CHECKPOINT_ID_HIGH, str(cp_id)),
        )
        if row.history:
            seq = row.seq
            conn.executemany(
                "UPDATE snapshot_history SET to_seq = ? WHERE part = ? AND key = ? AND to_seq IS NULL AND from_seq < ?",
                [(seq, part, key, seq) for part, key, _, _ in row.history],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO snapshot_history(part, key, from_seq, to_seq, entry, entry_hash) "
                "VALUES (?,?,?,NULL,?,?)",
                [(part, key, seq, t, h) for part, key, t, h in row.history if t is not None],
            )
        return int(cp_id)

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
        return int(await scalar(self._db, _NEXT_ID, (CHECKPOINT_ID_HIGH,)))

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
