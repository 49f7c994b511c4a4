"""``/workflow-recovery`` the state against the log: validation, repair, and data recovery from a
checkpoint that equals a replay of the log, refusing a damaged store.
"""

from __future__ import annotations

from typing import Any

from ...engine import EngineError
from ...event_types import (
    CHECKPOINTS_PRUNED,
)
from ...models import AgentStatus, TaskStatus
from .. import payloads as P
from ..analyses.consistency import diff_segments, replay_state
from ..context import Context
from ..registry import Operations, Outcome
from ..reporting import analysis_outcome, scope_of
from ..responses import CommandError
from . import C
from .restores import pick_checkpoint, restore_snapshot

OPS = Operations(C, None)
operation = OPS.operation

# -- the store under a repair ---------------------------------------------------------------


async def _store_report(ctx: Context) -> Any:
    """verify_store of the committed log (None without a store)."""
    from ...verify import verify_store

    eng = ctx.engine
    if eng.store is None:
        return None
    await eng.flush()
    async with eng.store_lock:
        rep = await verify_store(eng.store)
    # Kept for /host status; a checkpoint whose event is emitted but not yet committed is not one.
    eng.opening.unrecorded = [i for i in rep.checkpoints_unrecorded if i not in eng.state.checkpoints]
    return rep


async def refuse_damaged_log(ctx: Context) -> Any:
    """Repairs rebuild the live state from the log: a log that does not verify is refused
    before anything changes (the damage is the store's, not the projection's)."""
    rep = await _store_report(ctx)
    if rep is not None and rep.first_bad_seq is not None:
        f = rep.faults[0]
        raise CommandError(
            "LOG_DAMAGED",
            f"the event log itself is damaged at seq {f.seq} ({f.problem}); the live state cannot be "
            "rebuilt from it. `opsdeck verify` reports the damage",
            {"first_bad_seq": rep.first_bad_seq},
        )
    return rep


async def drop_damaged_checkpoints(ctx: Context, rep: Any) -> list[int]:
    """Checkpoints verify found damaged are removed (and the removal recorded)."""
    bad = sorted(rep.checkpoints_bad) if rep is not None else []
    if bad and ctx.engine.store is not None:
        async with ctx.engine.store_lock:
            db = ctx.engine.store.connection
            await db.executemany("DELETE FROM checkpoints WHERE id = ?", [(i,) for i in bad])
            await db.commit()
        ctx.engine.emit(
            CHECKPOINTS_PRUNED,
            "coordination",
            "checkpoint",
            {"ids": bad, "corrupt": bad, "problems": {str(k): v for k, v in rep.checkpoints_bad.items()}},
            actor=ctx.actor,
        )
    return bad


async def require_verified_store(ctx: Context, what: str) -> None:
    """A repair claims success only on a store that verifies afterwards."""
    rep = await _store_report(ctx)
    if rep is not None and not rep.ok:
        problems = [f"seq {f.seq}: {f.problem}" for f in rep.faults[:3]] + [
            f"checkpoint {k}: {v}" for k, v in list(rep.checkpoints_bad.items())[:3]
        ]
        raise CommandError(
            "NOT_VERIFIED", f"{what}: the store still fails verification ({'; '.join(problems)})", rep.as_dict()
        )


# -- state ------------------------------------------------------------------------------


@operation(
    C,
    "validate-state",
    kind="analysis",
    payload=P.Empty,
    summary="projection invariants, and the state rebuilt from the log against the live one",
    workflow_arg="optional",
)
async def validate_state(ctx: Context, p: P.Empty) -> Outcome:
    return await analysis_outcome(ctx, ["state_consistency", "log_replay"], scope_of(ctx))


@operation(
    C,
    "repair-state",
    kind="destructive",
    payload=P.Empty,
    summary="fix what validate-state finds: orphaned tasks, segments the log disagrees with",
)
async def repair_state(ctx: Context, p: P.Empty) -> Outcome:
    s = ctx.state
    rep = await refuse_damaged_log(ctx)
    released = []
    for t in sorted(s.tasks.values(), key=lambda t: t.id):
        if t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
            a = s.agents.get(t.agent or "")
            if a is None or a.status in (AgentStatus.FAILED, AgentStatus.RETIRED) or a.current_task != t.id:
                ctx.engine.release_task(t.id, reason="repair_orphaned", actor=ctx.actor)
                released.append(t.id)
    rebuilt, n, cp = await replay_state(ctx.engine, exclude=set(rep.checkpoints_bad) if rep is not None else ())
    repaired: list[str] = []
    if rebuilt is not None:
        segs = diff_segments(s, rebuilt)
        wfs = sorted({seg.split(":", 1)[1].split("/")[0] for seg in segs if seg.startswith(("workflow:", "task:"))})
        if wfs:
            restore_snapshot(ctx.engine, rebuilt.snapshot(full=True), wfs, cp, ctx.actor, "repair_state")
            repaired = wfs
    dropped = await drop_damaged_checkpoints(ctx, rep)
    await require_verified_store(ctx, "repair-state")
    return Outcome(
        {
            "released_orphans": released,
            "restored_from_log": repaired,
            "replayed_events": n,
            "dropped_checkpoints": dropped,
        },
        f"{len(released)} orphaned task(s) released, {len(repaired)} workflow(s) rebuilt from the log"
        + (f", {len(dropped)} damaged checkpoint(s) removed" if dropped else "")
        + "; the store verifies",
    )


@operation(
    C,
    "execute-data-recovery",
    kind="destructive",
    payload=P.ExecuteDataRecovery,
    summary="isolate corrupted segments, restore from the newest checkpoint that verifies against the log, replay after it",
)
async def execute_data_recovery(ctx: Context, p: P.ExecuteDataRecovery) -> Outcome:
    """The workflows recovered are those named (positional or ``workflows``), else the
    frozen ones, else all. The clean state is the named checkpoint, else the newest one
    whose state equals a replay of the log, with the log after it replayed; it replaces the live segments, is verified, and data-
    protection freezes are lifted when ``unfreeze``."""
    s = ctx.state
    eng = ctx.engine
    store_rep = await refuse_damaged_log(ctx)
    named = ctx.named_workflows(p.workflows)
    for w in named:
        ctx.workflow(w)
    targets = named or sorted(w.id for w in s.workflows.values() if w.frozen) or None
    steps_done: list[dict[str, Any]] = []
    cp_ref: int | str = next(
        (st.checkpoint for st in p.recovery_steps if st.action == "restore_from_validated_checkpoint"),
        "latest_verified_checkpoint",
    )
    bad = dict(store_rep.checkpoints_bad) if store_rep is not None else {}
    cp_id, snap, skipped = await pick_replayed_checkpoint(ctx, cp_ref if isinstance(cp_ref, int) else "latest", bad)
    from ...event_types import EVENTS
    from ...projection import State

    rebuilt = State.from_snapshot(EVENTS.folds, snap)
    replayed = 0
    if eng.store is not None:
        async for ev in eng.store.iter_events(snap["seq"]):
            rebuilt.apply(ev)
            replayed += 1
    only = set(targets) if targets else None
    segments = diff_segments(s, rebuilt, only)
    for st in p.recovery_steps:
        if st.action == "identify_corrupted_state_segments":
            steps_done.append({"step": st.step, "corrupted_segments": segments[:50], "count": len(segments)})
        elif st.action == "restore_from_validated_checkpoint":
            steps_done.append(
                {"step": st.step, "checkpoint": cp_id, "checkpoint_seq": snap["seq"], "skipped_corrupt": skipped}
            )
        else:
            steps_done.append(
                {
                    "step": st.step,
                    "method": "transaction_log_replay",
                    "replayed_events": replayed,
                    "rebuilt_hash": rebuilt.state_hash(),
                }
            )
    ids = targets or sorted(set(rebuilt.workflows) | set(s.workflows))
    before_hash = s.state_hash()
    corrupted = sorted(
        {seg.split(":", 1)[1].split("/")[0] for seg in segments if seg.startswith(("workflow:", "task:"))} & set(ids)
    )
    if corrupted:
        # Only what differs from checkpoint + replay is replaced; clean workflows keep running.
        restore_snapshot(eng, rebuilt.snapshot(full=True), corrupted, cp_id, ctx.actor, "data_recovery")
    mismatches = [m for w in ids for m in _mismatches(s, rebuilt, w, restarted=set(corrupted))]
    dropped = await drop_damaged_checkpoints(ctx, store_rep)
    if not mismatches:
        await require_verified_store(ctx, "execute-data-recovery")
    verified = not mismatches
    unfrozen = []
    if p.unfreeze and verified:
        for w in ids:
            if w in s.workflows and s.workflows[w].frozen:
                eng.freeze(w, False, actor=ctx.actor)
                unfrozen.append(w)
    return Outcome(
        {
            "workflows": ids,
            "restored": corrupted,
            "checkpoint": cp_id,
            "replayed_events": replayed,
            "corrupted_segments": segments[:50],
            "dropped_checkpoints": dropped,
            "steps": steps_done,
            "verified": verified,
            "mismatches": mismatches[:20],
            "unfrozen": unfrozen,
            "state_hash_before": before_hash,
            "state_hash_after": s.state_hash(),
        },
        f"checked {len(ids)} workflow(s) against checkpoint #{cp_id} + {replayed} replayed event(s): "
        f"{len(segments)} corrupted segment(s), {len(corrupted)} workflow(s) restored; {'verified' if verified else 'NOT verified'}"
        + (f"; unfrozen {', '.join(unfrozen)}" if unfrozen else ""),
        ["/coordination-hub checkpoint-validation", "/workflow-recovery validate-state"],
        workflow_id=ids[0] if len(ids) == 1 else None,
    )


async def pick_replayed_checkpoint(
    ctx: Context, ref: int | str, bad: dict[int, str]
) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """The checkpoint a data recovery restores: one whose stored state matches its hash
    and equals a replay of the log to its sequence (``bad``: those verify found failing
    either). A checkpoint taken after the projection drifted carries the drift with a
    hash that matches; only the replay tells it apart, so "latest" skips it and a named
    one is refused."""
    if isinstance(ref, int):
        if ref in bad:
            good = [c for c in sorted(ctx.state.checkpoints, reverse=True) if c not in bad]
            raise CommandError(
                "CHECKPOINT_CORRUPT",
                f"checkpoint {ref} cannot be restored: {bad[ref]}"
                + (f"; the newest that verifies against the log is {good[0]}" if good else ""),
                {"checkpoint": ref, "problem": bad[ref], "verified": good},
            )
        return await pick_checkpoint(ctx, ref)
    skipped = [{"checkpoint": c, "problem": bad[c]} for c in sorted(bad, reverse=True) if c in ctx.state.checkpoints]
    for cp_id in sorted(ctx.state.checkpoints, reverse=True):
        if cp_id in bad:
            continue
        try:
            return cp_id, await ctx.engine.verified_checkpoint(cp_id), skipped
        except EngineError as exc:
            skipped.append({"checkpoint": cp_id, "problem": exc.message})
    raise CommandError(
        "CHECKPOINT_NOT_FOUND",
        "no checkpoint verifies against the log to restore from"
        + (f" ({len(skipped)} failed verification)" if skipped else ""),
        {"skipped": skipped},
        ["/coordination-hub checkpoint", "/workflow-recovery create-checkpoint"],
    )


def _mismatches(live: Any, rebuilt: Any, wid: str, restarted: set[str] | None = None) -> list[str]:
    """Where a restored workflow differs from the rebuilt one (running tasks restart)."""
    x, y = live.workflows.get(wid), rebuilt.workflows.get(wid)
    if x is None or y is None:
        return [] if x is None and y is None else [f"workflow:{wid} exists in only one"]
    out = [
        f"workflow:{wid}.{k}"
        for k in ("priority", "allocation", "guarantee", "phases", "tasks", "depends_on", "status")
        if getattr(x, k) != getattr(y, k)
    ]
    for key in y.tasks:
        a, b = live.tasks.get(key), rebuilt.tasks.get(key)
        if a is None or b is None:
            out.append(f"task:{key} missing")
            continue
        want = (
            TaskStatus.PENDING
            if wid in (restarted or set()) and b.status in (TaskStatus.RUNNING, TaskStatus.PAUSED)
            else b.status
        )
        if a.status is not want or a.context.progress != b.context.progress:
            out.append(f"task:{key}")
    return out
