"""``/workflow-recovery`` checkpoints: create, list, validate against their hashes, clean up."""

from __future__ import annotations

from ...event_types import (
    CHECKPOINTS_PRUNED,
)
from .. import payloads as P
from ..context import Context
from ..registry import Operations, Outcome
from ..responses import CommandError
from . import C

OPS = Operations(C, None)
operation = OPS.operation

# -- checkpoints ------------------------------------------------------------------------


@operation(
    C,
    "create-checkpoint",
    kind="checkpoint",
    payload=P.CheckpointRequest,
    summary="snapshot the state now",
    workflow_arg="optional",
)
async def create_checkpoint(ctx: Context, p: P.CheckpointRequest) -> Outcome:
    if ctx.workflow_id:
        ctx.workflow()
    cp_id = await ctx.engine.checkpoint(p.kind, p.label, ctx.workflow_id, actor=ctx.actor)
    cp = ctx.state.checkpoints[cp_id]
    return Outcome(
        {"checkpoint": cp_id, "seq": cp.seq, "kind": cp.kind, "state_hash": cp.state_hash},
        f"checkpoint #{cp_id} at seq {cp.seq}",
        workflow_id=ctx.workflow_id,
    )


@operation(
    C,
    "list-checkpoints",
    kind="analysis",
    payload=P.Empty,
    summary="the checkpoints, newest first",
    workflow_arg="optional",
)
async def list_checkpoints(ctx: Context, p: P.Empty) -> Outcome:
    rows = [
        cp.model_dump()
        for cp in sorted(ctx.state.checkpoints.values(), key=lambda c: -c.id)
        if ctx.workflow_id is None or cp.workflow in (None, ctx.workflow_id)
    ]
    return Outcome({"checkpoints": rows}, f"{len(rows)} checkpoint(s)")


@operation(
    C,
    "validate-checkpoint",
    kind="analysis",
    payload=P.CheckpointRef,
    summary="check a checkpoint's snapshot against its hash",
)
async def validate_checkpoint(ctx: Context, p: P.CheckpointRef) -> Outcome:
    from ...engine import EngineError

    ids = sorted(ctx.state.checkpoints)
    if not ids:
        raise CommandError("CHECKPOINT_NOT_FOUND", "there are no checkpoints", {}, ["/coordination-hub checkpoint"])
    cp_id = ids[-1] if p.checkpoint == "latest" else p.checkpoint
    if cp_id not in ctx.state.checkpoints:
        raise CommandError("CHECKPOINT_NOT_FOUND", f"no checkpoint {cp_id}", {"known": ids})
    try:
        snap = await ctx.engine.verified_checkpoint(cp_id)
        ok, problem = True, None
    except EngineError as exc:
        snap, ok, problem = None, False, exc.message
    cp = ctx.state.checkpoints[cp_id]
    return Outcome(
        {
            "checkpoint": cp_id,
            "valid": ok,
            "problem": problem,
            "seq": cp.seq,
            "state_hash": cp.state_hash,
            "workflows": len(snap["workflows"]) if snap else None,
        },
        f"checkpoint #{cp_id} {'verifies' if ok else 'FAILS: ' + str(problem)}",
    )


@operation(
    C,
    "cleanup-checkpoints",
    kind="destructive",
    payload=P.CleanupCheckpoints,
    summary="drop corrupt checkpoints, rows no event records and all but the newest `keep` verified ones",
)
async def cleanup_checkpoints(ctx: Context, p: P.CleanupCheckpoints) -> Outcome:
    """Corrupt checkpoints are removed; of the verified ones the newest ``keep`` stay.
    Rows no CHECKPOINT_CREATED records (written as a process ended before the event
    committed: never listed, never restored to) are removed too. Removal is recorded as
    CHECKPOINTS_PRUNED; the event log itself is never touched."""
    from ...engine import EngineError

    good, bad = [], []
    for cp_id in sorted(ctx.state.checkpoints):
        try:
            await ctx.engine.verified_checkpoint(cp_id)
            good.append(cp_id)
        except EngineError:
            bad.append(cp_id)
    store = ctx.engine.store
    unrecorded: list[int] = []
    if store is not None:
        # Read under the store's lock: a checkpoint's row is committed with its event, in the
        # flush that holds it (core/engine/checkpoints.py), so a row the state does not list
        # here is one whose event was never committed (an older opsdeck wrote the two apart).
        async with ctx.engine.store_lock:
            unrecorded = [r["id"] for r in await store.list_checkpoints() if r["id"] not in ctx.state.checkpoints]
    drop = bad + good[: -p.keep] + unrecorded
    if drop:
        if store is not None:
            async with ctx.engine.store_lock:
                db = store.connection
                await db.executemany("DELETE FROM checkpoints WHERE id = ?", [(i,) for i in drop])
                await db.commit()
        else:
            ctx.engine.checkpoints.forget(drop)
        ctx.engine.emit(
            CHECKPOINTS_PRUNED,
            "coordination",
            "checkpoint",
            {"ids": drop, "corrupt": bad, "unrecorded": unrecorded, "kept": good[-p.keep :]},
            actor=ctx.actor,
        )
    if store is not None:
        ctx.engine.opening.unrecorded = []  # every row no event recorded was removed above
    said = f" ({len(unrecorded)} of them rows no event recorded)" if unrecorded else ""
    return Outcome(
        {"removed": drop, "corrupt": bad, "unrecorded": unrecorded, "kept": good[-p.keep :]},
        f"removed {len(drop)} checkpoint(s){said}, kept {len(good[-p.keep :])}",
    )
