"""Checkpoints: snapshots of the projection, rollback to one, and when to take them.

A checkpoint is the projection at one sequence number with its state hash, kept in
the store (in memory for an engine without one). Rolling back appends an event
that brings workflows to a checkpoint's state; nothing in the log is rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from ..event_types import CHECKPOINT_CREATED, STATE_RESTORED
from ..events import canonical_json
from ..projection import State, hash_snapshot
from ..projection_history import DIGEST_KEYS, HistoryChange
from ..store_tables import CheckpointRow
from ..telemetry import HISTORY
from .contract import HeldCheckpoint
from .log import EngineError

if TYPE_CHECKING:
    from .contract import EngineCore


EVENTS_PER_LIVE_RECORD = 10
"""Event-count checkpoints come at most this many events per live task, workflow or agent apart."""


class Checkpoints:
    """Taking, loading and rolling back to checkpoints; automatic ones and retention."""

    def __init__(self, engine: EngineCore) -> None:
        self.engine = engine
        self.memory: dict[int, tuple[dict[str, Any], dict[str, Any], tuple[dict[str, Any], dict[int, Any]]]] = {}
        """Checkpoints of an engine without a store: id -> (row, snapshot, its history parts)."""
        self.kept: dict[str, dict[str, str]] | None = None
        """The history entries the store's newest checkpoints hold (part -> key -> hash),
        read at the first checkpoint: what the next one writes is the difference."""
        self.due: str | None = None
        """The kind of automatic checkpoint owed at the next :meth:`maintain` (a phase completed)."""
        self.last_at: float | None = None
        self.last_prune_at = 0.0
        self.next_id: int | None = None
        """The id the next checkpoint gets: read from the store at the first, then counted on."""
        self._newest: tuple[Any, int] = (None, 0)
        """(which checkpoints, the newest one's seq): :meth:`owed` runs after every simulated callback."""

    async def checkpoint(
        self, kind: str = "manual", label: str = "", workflow: str | None = None, actor: str | None = None
    ) -> int:
        """Snapshot the projection at the current sequence number and record it, with the
        history entries (finished workflows, checkpoint records) that changed since the
        last one kept beside it."""
        e = self.engine
        if e.readonly:
            raise EngineError("READ_ONLY", "this console is read-only: state changes are refused")
        await e.flush()
        if e.store is not None and (self.kept is None or self.next_id is None):
            async with e.store_lock:
                if self.kept is None:
                    self.kept = await e.store.history_kept()
                if self.next_id is None:
                    self.next_id = await e.store.next_checkpoint_id()
        state = e.state
        # Encoded once: the stored text is what is hashed.
        text = canonical_json(state.snapshot())
        h = hashlib.sha256(text.encode("utf-8")).hexdigest()
        seq = state.seq
        row: CheckpointRow | None = None
        if e.store is not None and self.next_id is not None:
            kept = self.kept if self.kept is not None else {}
            changes = state.history.changes(kept)
            cp_id = self.next_id
            row = CheckpointRow(cp_id, seq, e.clock.now(), kind, label, workflow, text, h, changes)
        else:
            cp_id = max(self.memory, default=0) + 1
            # The history parts as they are now (records are replaced, never changed in place).
            self.memory[cp_id] = (
                {"id": cp_id, "seq": seq, "state_hash": h},
                json.loads(text),
                (dict(state.finished), dict(state.checkpoints)),
            )
        ev = e.emit(
            CHECKPOINT_CREATED,
            "coordination",
            "checkpoint",
            {"id": cp_id, "seq": seq, "kind": kind, "label": label, "state_hash": h, "workflow": workflow},
            actor=actor,
        )
        if row is not None:
            # The row goes in the transaction that commits its event: both or neither, one
            # commit (and fsync) rather than two. Ids count on from the one read: this engine
            # is its database's one writer.
            self.next_id = cp_id + 1
            e.log.hold_checkpoint(HeldCheckpoint(ev.seq, row, partial(self._kept, state, row.history)))
            await e.flush()
        return cp_id

    def _kept(self, state: State, changes: Sequence[HistoryChange]) -> None:
        """A checkpoint's row is committed: the history entries it wrote are the store's."""
        state.history.written(changes)
        kept = self.kept if self.kept is not None else {}
        for part, key, _, eh in changes:
            if eh is None:
                kept.get(part, {}).pop(key, None)
            else:
                kept.setdefault(part, {})[key] = eh

    async def load(self, cp_id: int) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        """The stored row and snapshot of a checkpoint, its history parts whole, and why it
        cannot be used (None when it matches its hash and digests); CHECKPOINT_NOT_FOUND
        without one."""
        e = self.engine
        loaded: tuple[dict[str, Any], Any, str | None] | None
        if e.store is not None:
            # A commit being written holds the store's lock, and its rows are out of
            # ``checkpoint_rows`` until it settles: a refused one gives them back. Looked at
            # before then, a checkpoint whose row it holds would be taken for one with no row.
            async with e.store_lock:
                held = any(h.row.id == cp_id for h in e.log.checkpoint_rows)
            if held:
                await e.flush()  # its row waits for its event's commit (a refused one): now, or the refusal
            try:
                loaded = await e.store.load_expanded_checkpoint(cp_id)
            except ValueError:
                raise EngineError(
                    "CHECKPOINT_CORRUPT", f"checkpoint {cp_id}: its stored state is not JSON", {"checkpoint": cp_id}
                ) from None
        else:
            mem = self.memory.get(cp_id)
            loaded = None
            if mem is not None:
                # A copy: whoever loads it takes the snapshot over (no deepcopy on load).
                snap = json.loads(json.dumps(mem[1]))
                finished, records = mem[2]
                snap.pop(DIGEST_KEYS["finished"], None)
                snap.pop(DIGEST_KEYS["checkpoints"], None)
                snap["finished"] = {k: v.model_dump(mode="json") for k, v in sorted(finished.items())}
                snap["checkpoints"] = {
                    str(k): v.model_dump(mode="json", exclude={"label"}) for k, v in sorted(records.items())
                }
                problem = None if hash_snapshot(mem[1]) == mem[0]["state_hash"] else "does not match its state hash"
                loaded = (dict(mem[0]), snap, problem)
        if loaded is None:
            raise EngineError("CHECKPOINT_NOT_FOUND", f"no checkpoint {cp_id}", {"known": sorted(e.state.checkpoints)})
        return loaded

    async def verified(self, cp_id: int) -> dict[str, Any]:
        """The snapshot of a checkpoint whose stored state matches its hash (and whose
        kept history entries match its digests), history parts whole."""
        _row, snap, problem = await self.load(cp_id)
        if problem is not None or not isinstance(snap, dict):
            raise EngineError("CHECKPOINT_CORRUPT", f"checkpoint {cp_id}: {problem}", {"checkpoint": cp_id})
        return snap

    def forget(self, cp_ids: list[int]) -> None:
        """Drop checkpoints kept in memory (an engine without a store)."""
        for i in cp_ids:
            self.memory.pop(i, None)

    async def rollback(
        self, cp_id: int, workflow: str | None = None, actor: str | None = None, reason: str = "rollback"
    ) -> dict[str, Any]:
        """Append events that bring workflows (all, or one) back to a checkpoint."""
        e = self.engine
        snap = await self.verified(cp_id)
        state = e.state
        if workflow is not None and not state.knows(workflow):
            e.workflows.live(workflow)  # unknown: WORKFLOW_NOT_FOUND (a finished one may be rolled back)
        affected = (
            [workflow]
            if workflow
            else sorted(
                set(snap["workflows"]) | set(snap.get("finished", {})) | set(state.workflows) | set(state.finished)
            )
        )
        for wf_id in affected:
            if state.workflows.get(wf_id) is None:
                continue
            for key in sorted(state.running_by_wf.get(wf_id, ())):
                t = state.tasks[key]
                if t.agent and e.runtime is not None:
                    e.runtime.stop_task(t.agent, key)
        before = state.state_hash()
        e.emit(
            STATE_RESTORED,
            "coordination",
            "rollback",
            {"checkpoint": cp_id, "workflow": workflow, "reason": reason, "snapshot": snap},
            actor=actor,
        )
        e.request_dispatch()
        return {
            "checkpoint": cp_id,
            "workflows": affected,
            "state_hash_before": before,
            "state_hash_after": e.state.state_hash(),
        }

    # -- housekeeping -------------------------------------------------------------------
    def interval(self) -> float:
        """Seconds between automatic incremental checkpoints: the interval the
        integrity monitoring in force sets (``/coordination-hub enable-enhanced-
        integrity-monitoring``), else ``intervals.checkpoint_s``."""
        e = self.engine
        cfg = e.state.settings.get("monitoring.integrity")
        if isinstance(cfg, dict) and not cfg.get("closed") and cfg.get("checkpoint_interval_s"):
            return float(cfg["checkpoint_interval_s"])
        return e.config.intervals.checkpoint_s

    def started(self) -> float:
        """When the interval of the next automatic checkpoint started (the last one, or now)."""
        if self.last_at is None:
            e = self.engine
            self.last_at = max((c.ts for c in e.state.checkpoints.values()), default=e.clock.now())
        return self.last_at

    def next_at(self) -> float:
        """When the interval checkpoint falls due (infinity when none will be taken): a
        long :meth:`Engine.advance` stops there, so the cadence holds however far it runs."""
        e = self.engine
        if e.readonly or not e.auto_checkpoints or not (e.state.workflows or e.state.finished):
            return float("inf")
        return max(self.started() + self.interval(), e.clock.now())

    def events_since(self) -> int:
        """Events appended since the newest checkpoint."""
        cps = self.engine.state.checkpoints
        key = (len(cps), next(reversed(cps), None))
        if self._newest[0] != key:
            self._newest = (key, max((c.seq for c in cps.values()), default=0))
        return self.engine.state.seq - self._newest[1]

    def event_cadence(self) -> int:
        """Events between event-count checkpoints: ``intervals.checkpoint_events``, or
        EVENTS_PER_LIVE_RECORD per live record when more. A checkpoint costs what the
        live state holds; so spaced, its cost per event stays bounded however big the
        live state, and an open replays at most that many events past one."""
        s = self.engine.state
        live = len(s.tasks) + len(s.workflows) + len(s.agents)
        return max(self.engine.config.intervals.checkpoint_events, EVENTS_PER_LIVE_RECORD * live)

    def owed(self) -> bool:
        """Whether :meth:`maintain` has an automatic checkpoint to take now regardless of time."""
        if self.due is not None:
            return True
        # Called after every simulated callback: the cadence (never under
        # ``intervals.checkpoint_events``) is worked out only once that many events passed.
        since = self.events_since()
        return since >= self.engine.config.intervals.checkpoint_events and since >= self.event_cadence()

    async def maintain(self) -> None:
        """Periodic work: phase-complete and interval checkpoints, metric retention."""
        e = self.engine
        if e.readonly:
            return
        now = e.clock.now()
        last_at = self.started()
        if e.auto_checkpoints and (e.state.workflows or e.state.finished):
            kind = self.due
            if kind is None and now - last_at >= self.interval() - 1e-6:  # float sums of the clock
                kind = "incremental"
            if kind is None and self.events_since() >= self.event_cadence():
                kind = "incremental"
            if kind == "incremental" and self.events_since() <= 1:
                kind = None  # nothing changed since the newest one but its own record
                self.last_at = now
            if kind is not None:
                self.due = None
                self.last_at = now
                await self.checkpoint(kind, label=f"automatic {kind}")
        retention = e.config.intervals.metric_retention_s
        if e.store is not None and now - self.last_prune_at >= min(retention / 10, 3600.0):
            self.last_prune_at = now
            # Every held sample first: each range is downsampled once (Store.downsample_metrics).
            await e.flush(all_samples=True)
            iv = e.config.intervals
            async with e.store_lock:
                await e.store.prune_metrics(now - retention)
                # Past the gauges' history (what an open reloads), one mean per bucket.
                await e.store.downsample_metrics(now - HISTORY * iv.sample_s, iv.metric_bucket_s)


UNRECORDED_SHOWN = 10
"""Ids of checkpoint rows no event records named in words; the rest counted."""


def unrecorded_words(ids: list[int]) -> str:
    """Checkpoint rows no CHECKPOINT_CREATED records (the process ended between a row's
    commit and its event's), in words: ``verify`` and a writer's open say them."""
    more = len(ids) - UNRECORDED_SHOWN
    shown = ", ".join(map(str, ids[:UNRECORDED_SHOWN])) + (f", … ({more} more)" if more > 0 else "")
    return (
        f"checkpoint rows no CHECKPOINT_CREATED records: {len(ids)} ({shown}); "
        "/workflow-recovery cleanup-checkpoints removes them"
    )
