"""Integrity checks for the data-integrity scenario.

``consistency`` rebuilds what a restart would build (the newest checkpoint whose
snapshot matches its hash, then a replay of the log after it) and compares it with
the live projection. ``segments`` names each corrupted log row and says whether its
effect survives (superseded by later verified events of the same task or workflow)
or is lost.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..event_types import (
    EVENTS,
    TASK_COMPLETED,
    TASK_PROGRESS,
)
from ..projection import State

if TYPE_CHECKING:
    from ..engine import Engine

_COMPARED = ("pools", "agents", "workflows", "tasks", "settings")


async def consistency(engine: Engine, trusted: set[int] | None = None) -> dict[str, Any]:
    """Live projection vs a restart from the newest checkpoint (only ``trusted`` ones if
    given: checkpoints a replay of the log has confirmed) plus the log after it."""
    store = engine.store
    if store is None:
        return {"restart_seq": engine.state.seq, "differs_in": [], "checkpoints_bad_new": []}
    await engine.flush()
    while engine.unflushed:  # a real-time runtime may emit while the store writes
        await engine.flush()
    # Taken with the store at the same sequence and without an await in between: with
    # real agents, reports keep arriving while the log below is read back.
    live = engine.state.snapshot()
    upto = engine.state.seq
    state = State(EVENTS.folds)
    since = 0
    bad: list[int] = []
    for cp in reversed(await store.list_checkpoints()):
        loaded = await store.load_expanded_checkpoint(cp["id"])
        if loaded is None or (trusted is not None and cp["id"] not in trusted) or cp["seq"] > upto:
            continue
        row, snap, problem = loaded
        if problem is None and snap.get("seq") == row["seq"]:
            state = State.from_snapshot(EVENTS.folds, snap)
            since = row["seq"]
            break
        bad.append(cp["id"])
    async for ev in store.iter_events(since, until=upto):
        try:
            state.apply(ev)
        except Exception:  # noqa: BLE001 - a corrupted row that cannot be folded: the restart would diverge
            return {"restart_seq": since, "differs_in": ["unfoldable_row"], "checkpoints_bad_new": bad, "row": ev.seq}
    return {**compare(live, state.snapshot(), since), "checkpoints_bad_new": bad}


def compare(live: dict[str, Any], replayed: dict[str, Any], restart_seq: int) -> dict[str, Any]:
    """The parts and entities in which the live snapshot differs from a replayed one."""
    differs = [k for k in _COMPARED if live.get(k) != replayed.get(k)]
    return {"restart_seq": restart_seq, "differs_in": differs, "diffs": entity_diffs(live, replayed) if differs else []}


def _fields(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                out += _fields(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [prefix.rstrip(".")]


def entity_diffs(live: dict[str, Any], replay: dict[str, Any]) -> list[dict[str, Any]]:
    """Each entity (task, workflow, agent, pool) whose live value differs from the
    log's: the corrupted segments of the state, named with their fields."""
    out = []
    for kind in _COMPARED:
        a, b = live.get(kind) or {}, replay.get(kind) or {}
        if kind == "settings":
            if a != b:
                out.append({"kind": "settings", "id": "settings", "fields": _fields(a, b)[:10], "workflow": None})
            continue
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                wf = key.split("/", 1)[0] if kind == "tasks" else key if kind == "workflows" else None
                out.append(
                    {"kind": kind[:-1], "id": key, "fields": _fields(a.get(key), b.get(key))[:10], "workflow": wf}
                )
    return out


def _workflow_of(data: dict[str, Any]) -> str | None:
    if isinstance(data.get("workflow_id"), str):
        return data["workflow_id"]
    task = data.get("task")
    if isinstance(task, str) and "/" in task:
        return task.split("/", 1)[0]
    return None


async def segments(engine: Engine, bad_seqs: list[int]) -> list[dict[str, Any]]:
    """Each corrupted row: its sequence, type, workflow, and whether later verified
    events of the same task (or workflow) supersede it."""
    store = engine.store
    out: list[dict[str, Any]] = []
    if store is None:
        return out
    for seq in sorted(set(bad_seqs)):
        rows = await store.raw_rows(seq - 1, 1)
        if not rows or rows[0][0] != seq:
            out.append({"seq": seq, "type": None, "workflow": None, "resolution": "lost"})
            continue
        _, _, type_, _, _, _, data_json, _, _ = rows[0]
        try:
            data = json.loads(data_json)
        except json.JSONDecodeError:
            data = {}
        wf = _workflow_of(data)
        task = data.get("task") if isinstance(data.get("task"), str) else None
        superseded = False
        if task is not None:
            t = engine.state.tasks.get(task)
            superseded = t is not None and (
                t.finished_at is not None or (t.started_at is not None and t.started_at > rows[0][1])
            )
            if not superseded:
                later = await store.raw_rows(seq, 100000)
                superseded = any(r[2] in (TASK_PROGRESS, TASK_COMPLETED) and f'"{task}"' in r[6] for r in later)
        out.append(
            {
                "seq": seq,
                "type": type_,
                "workflow": wf,
                "task": task,
                "resolution": "superseded" if superseded else "lost",
            }
        )
    return out
