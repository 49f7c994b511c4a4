"""``/workflow-recovery``: restores, rollbacks, failure analysis, staged resumption,
context transfer, learning, data recovery."""

from __future__ import annotations

import json
import statistics
from typing import Any

from pydantic import Field

from ..engine import Engine, EngineError
from ..event_types import (
    AGENT_ERROR,
    AGENT_TIMEOUT,
    CHECKPOINTS_PRUNED,
    COMMUNICATION_FAILURE,
    LEARNING_RECORDED,
    RESOURCE_EXHAUSTION,
    RESUMPTION_COMPLETED,
    RESUMPTION_CREATED,
    STATE_RESTORED,
    TASK_ASSIGNED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_REASSIGNED,
    WORKFLOW_FAILED,
)
from ..models import TERMINAL_WORKFLOW, AgentStatus, TaskStatus, WorkflowStatus
from ..timefmt import duration
from . import payloads as P
from . import rollback_rows
from .analyses.consistency import diff_segments, replay_state
from .context import Context
from .registry import Operations, Outcome
from .reporting import analysis_outcome, scope_of, window_used
from .responses import CommandError
from .resumption import HOLD_FACTOR, advance_resumption, apply_step, hold_resumption, plan_steps
from .taskmoves import transfer_contexts

C = "workflow-recovery"
OPS = Operations(C, "restores, rollbacks, failure analysis, staged resumption and context transfer")
operation = OPS.operation


# -- restoring ----------------------------------------------------------------------------


async def pick_checkpoint(ctx: Context, ref: int | str) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    if isinstance(ref, int):
        if ref not in ctx.state.checkpoints:
            raise CommandError(
                "CHECKPOINT_NOT_FOUND",
                f"no checkpoint {ref}",
                {"known": sorted(ctx.state.checkpoints)},
                ["/workflow-recovery list-checkpoints"],
            )
        return ref, await ctx.engine.verified_checkpoint(ref), []
    return await ctx.latest_verified_checkpoint()


def restore_snapshot(
    engine: Engine, snap: dict[str, Any], workflows: list[str] | None, checkpoint: int | None, actor: str, reason: str
) -> None:
    """Bring workflows (or all) to ``snap``: stop their tasks, append STATE_RESTORED."""
    ids = (
        workflows if workflows else sorted(set(snap["workflows"]) | set(engine.state.workflows))
    )  # finished ones hold no task
    for wid in ids:
        for key in sorted(engine.state.running_by_wf.get(wid, ())):
            t = engine.state.tasks[key]
            if t.agent and engine.runtime is not None:
                engine.runtime.stop_task(t.agent, key)
    for wid in workflows or [None]:  # type: ignore[list-item]
        engine.emit(
            STATE_RESTORED,
            "coordination",
            "rollback",
            {"checkpoint": checkpoint, "workflow": wid, "reason": reason, "snapshot": snap},
            actor=actor,
        )
    engine.request_dispatch()


async def restore(ctx: Context, ref: int | str, workflows: list[str] | None, reason: str) -> Outcome:
    for w in workflows or []:
        ctx.any_workflow(w)  # a finished workflow may be rolled back too
    cp_id, snap, skipped = await pick_checkpoint(ctx, ref)
    ids = workflows or rollback_rows.affected(ctx.state, snap)
    before = rollback_rows.briefs(ctx.state, ids)
    h0 = ctx.state.state_hash()
    if workflows:
        for w in workflows:
            await ctx.engine.rollback(cp_id, workflow=w, actor=ctx.actor, reason=reason)
    else:
        await ctx.engine.rollback(cp_id, actor=ctx.actor, reason=reason)
    rows = rollback_rows.measured(before, ctx.state)
    changed = sum(r.changed for r in rows)
    cp = ctx.state.checkpoints[cp_id]
    return Outcome(
        {
            "checkpoint": cp_id,
            "checkpoint_seq": cp.seq,
            "kind": cp.kind,
            "workflows": ids,
            "rows": [r.model_dump(mode="json") for r in rows],
            "skipped_checkpoints": skipped,
            "state_hash_before": h0,
            "state_hash_after": ctx.state.state_hash(),
        },
        f"rolled back to checkpoint #{cp_id} (seq {cp.seq}): {changed} of {len(rows)} workflow(s) changed",
        ["/workflow-status", "/workflow-recovery validate-state"],
        workflow_id=workflows[0] if workflows and len(workflows) == 1 else None,
    )


@operation(
    C,
    "rollback-preview",
    kind="analysis",
    payload=P.RollbackPreviewRequest,
    summary="what a rollback to a checkpoint would do: each workflow's status, phase, progress now -> then",
    workflow_arg="optional",
)
async def rollback_preview(ctx: Context, p: P.RollbackPreviewRequest) -> Outcome:
    wfs = ([ctx.workflow_id] if ctx.workflow_id else []) + p.workflows
    for w in wfs:
        ctx.any_workflow(w)
    cp_id, snap, skipped = await pick_checkpoint(ctx, p.checkpoint)
    rows = rollback_rows.preview(ctx.state, snap, wfs or None)
    changed = sum(r.changed for r in rows)
    return Outcome(
        {"checkpoint": cp_id, "rows": [r.model_dump(mode="json") for r in rows], "skipped_checkpoints": skipped},
        f"a rollback to checkpoint #{cp_id} would change {changed} of {len(rows)} workflow(s); nothing was changed",
    )


@operation(
    C,
    "restore",
    kind="destructive",
    payload=P.RestoreRequest,
    summary="restore a workflow (or all) from a verified checkpoint",
    workflow_arg="optional",
)
async def restore_op(ctx: Context, p: P.RestoreRequest) -> Outcome:
    wfs = ([ctx.workflow_id] if ctx.workflow_id else []) + p.workflows
    return await restore(ctx, p.checkpoint, wfs or None, "restore")


@operation(
    C,
    "rollback",
    kind="destructive",
    payload=P.RestoreRequest,
    summary="roll back: full (all), partial (the named workflow) or selective (listed)",
    workflow_arg="optional",
)
async def rollback_op(ctx: Context, p: P.RestoreRequest) -> Outcome:
    if p.mode == "full":
        wfs = None
    elif p.mode == "partial":
        if not ctx.workflow_id and len(p.workflows) != 1:
            raise CommandError(
                "WORKFLOW_REQUIRED",
                "a partial rollback names one workflow",
                {},
                ['/workflow-recovery rollback <workflow-id> \'{"mode": "partial"}\''],
            )
        wfs = [ctx.workflow_id or p.workflows[0]]
    else:
        if not p.workflows:
            raise CommandError("INVALID_PAYLOAD", 'a selective rollback lists its workflows in "workflows"')
        wfs = p.workflows
    return await restore(ctx, p.checkpoint, wfs, f"rollback_{p.mode}")


@operation(
    C,
    "partial-restore",
    kind="destructive",
    payload=P.RestoreRequest,
    summary="restore only the listed workflows",
    workflow_arg="optional",
)
async def partial_restore(ctx: Context, p: P.RestoreRequest) -> Outcome:
    wfs = ([ctx.workflow_id] if ctx.workflow_id else []) + p.workflows
    if not wfs:
        raise CommandError("WORKFLOW_REQUIRED", "partial-restore names at least one workflow")
    return await restore(ctx, p.checkpoint, wfs, "partial_restore")


@operation(
    C,
    "emergency-restore",
    kind="destructive",
    payload=P.Empty,
    summary="restore everything from the latest verified checkpoint",
)
async def emergency_restore(ctx: Context, p: P.Empty) -> Outcome:
    return await restore(ctx, "latest_verified", None, "emergency_restore")


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
    from ..engine import EngineError

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
    summary="drop corrupt checkpoints and all but the newest `keep` verified ones",
)
async def cleanup_checkpoints(ctx: Context, p: P.CleanupCheckpoints) -> Outcome:
    """Corrupt checkpoints are removed; of the verified ones the newest ``keep`` stay.
    Removal is recorded as CHECKPOINTS_PRUNED; the event log itself is never touched."""
    from ..engine import EngineError

    good, bad = [], []
    for cp_id in sorted(ctx.state.checkpoints):
        try:
            await ctx.engine.verified_checkpoint(cp_id)
            good.append(cp_id)
        except EngineError:
            bad.append(cp_id)
    drop = bad + good[: -p.keep]
    if drop:
        store = ctx.engine.store
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
            {"ids": drop, "corrupt": bad, "kept": good[-p.keep :]},
            actor=ctx.actor,
        )
    return Outcome(
        {"removed": drop, "corrupt": bad, "kept": good[-p.keep :]},
        f"removed {len(drop)} checkpoint(s), kept {len(good[-p.keep :])}",
    )


# -- the store under a repair ---------------------------------------------------------------


async def _store_report(ctx: Context) -> Any:
    """verify_store of the committed log (None without a store)."""
    from ..verify import verify_store

    eng = ctx.engine
    if eng.store is None:
        return None
    await eng.flush()
    async with eng.store_lock:
        return await verify_store(eng.store)


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


# -- failures ---------------------------------------------------------------------------


async def _log(ctx: Context, types: list[str], window: float | None = None) -> list[Any]:
    eng = ctx.engine
    if eng.store is None:
        return []
    await eng.flush()
    evs = await eng.store.read_events(0, types=types)
    if window is not None:
        evs = [e for e in evs if e.ts >= ctx.now - window]
    return evs


@operation(
    C,
    "analyze-failure",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="failed tasks, workflows and agents with their errors",
    workflow_arg="optional",
)
async def analyze_failure(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    w = p.window_given()
    evs = await _log(ctx, [TASK_FAILED, AGENT_ERROR, WORKFLOW_FAILED, AGENT_TIMEOUT], w[1] if w else None)
    errors: dict[str, int] = {}
    for e in evs:
        msg = str(e.data.get("error") or e.type)
        errors[msg] = errors.get(msg, 0) + 1
    return await analysis_outcome(
        ctx,
        ["failures", "agent_health"],
        scope_of(ctx, p.workflows),
        {"errors": errors, "failure_events": len(evs)},
        p.window_given(),
    )


@operation(
    C,
    "root-cause",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="the first failure in the log and what followed from it",
    workflow_arg="optional",
)
async def root_cause(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    s = ctx.state
    only = scope_of(ctx, p.workflows)
    w = p.window_given()
    evs = await _log(
        ctx,
        [
            AGENT_ERROR,
            AGENT_TIMEOUT,
            TASK_FAILED,
            TASK_REASSIGNED,
            WORKFLOW_FAILED,
            RESOURCE_EXHAUSTION,
            COMMUNICATION_FAILURE,
        ],
        w[1] if w else None,
    )

    def relevant(e: Any) -> bool:
        if only is None:
            return True
        wid = e.data.get("workflow_id") or str(e.data.get("task", "")).split("/")[0]
        return wid in only or (
            e.type in (AGENT_ERROR, AGENT_TIMEOUT)
            and any(str(e.data.get("task", "")).startswith(w + "/") for w in only)
        )

    chain = [
        {"seq": e.seq, "ts": e.ts, "type": e.type, "data": {k: v for k, v in e.data.items() if k != "output"}}
        for e in evs
        if relevant(e)
    ]
    if not chain:
        failed = sorted(a.id for a in s.agents.values() if a.status is AgentStatus.FAILED)
        return Outcome(
            {"chain": [], "failed_agents": failed, "window": window_used(ctx, [], w)},
            "no failure recorded"
            + (f" in the last {w[1]:g}s" if w else "")
            + (f"; failed agents {failed}" if failed else ""),
        )
    first = chain[0]
    return Outcome(
        {
            "root": first,
            "chain": chain[:30],
            "events": len(chain),
            "span_s": round(chain[-1]["ts"] - first["ts"], 3),
            "window": window_used(ctx, [], w),
        },
        f"first failure: {first['type']} at seq {first['seq']} ({json.dumps(first['data'])[:120]}); {len(chain)} related event(s)",
    )


@operation(
    C,
    "impact-assessment",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="what failures block: dependents, critical paths, lost capacity",
    workflow_arg="optional",
)
async def impact_assessment(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    return await analysis_outcome(
        ctx,
        ["dependency_chains", "critical_paths", "agent_health", "pool_capacity"],
        scope_of(ctx, p.workflows),
        None,
        p.window_given(),
    )


@operation(
    C,
    "recovery-plan",
    kind="analysis",
    payload=P.Empty,
    summary="the slash commands that would recover the current state",
)
async def recovery_plan(ctx: Context, p: P.Empty) -> Outcome:
    """A plan computed from the state; every step is a command that parses and validates."""
    from .binding import resolve_spec

    s = ctx.state
    steps: list[dict[str, str]] = []
    replaced = s.settings.get("recovery.replacements", {})
    failed = sorted(a.id for a in s.agents.values() if a.status is AgentStatus.FAILED and a.id not in replaced)
    lost_pools = {a.pool for a in s.agents.values() if a.status is AgentStatus.FAILED}
    under = (
        [pn for pn in lost_pools if sum(1 for a in s.live_agents() if a.pool == pn) < s.pools[pn].min_size + 1]
        if lost_pools
        else []
    )
    if failed:
        steps.append(
            {
                "why": f"{len(failed)} failed agent(s)",
                "command": "/coordination-hub execute-dependency-recovery '"
                + json.dumps({"recovery_actions": [{"action": "immediate_agent_replacement", "failed_agents": failed}]})
                + "'",
            }
        )
    if any(a.status is AgentStatus.UNREACHABLE for a in s.agents.values()):
        steps.append({"why": "unreachable agents hold tasks", "command": "/resource-manager agent-reallocation"})
    if not s.checkpoints:
        steps.append(
            {"why": "no checkpoint to recover to", "command": '/coordination-hub checkpoint \'{"kind": "emergency"}\''}
        )
    frozen = sorted(w.id for w in s.workflows.values() if w.frozen)
    if frozen:
        steps.append(
            {
                "why": f"frozen for data protection: {', '.join(frozen)}",
                "command": "/workflow-recovery execute-data-recovery '" + json.dumps({"workflows": frozen}) + "'",
            }
        )
    for w in sorted(s.workflows.values(), key=lambda w: -w.priority):
        if w.status is WorkflowStatus.FAILED and s.checkpoints:
            steps.append({"why": f"{w.id} failed", "command": f"/workflow-recovery restore {w.id}"})
        elif w.status is WorkflowStatus.PAUSED and not w.frozen:
            steps.append({"why": f"{w.id} is paused", "command": f"/coordination-hub resume {w.id}"})
    u = ctx.engine.utilisation()
    th = ctx.engine.config.thresholds
    if u["cpu"] >= th.exhaustion or u["memory"] >= th.exhaustion:
        steps.append(
            {
                "why": f"utilisation cpu {u['cpu']:.0f}% memory {u['memory']:.0f}%",
                "command": "/resource-manager emergency-analysis",
            }
        )
    for st in steps:
        st["valid"] = "yes" if resolve_spec(st["command"], ctx.services.registry) is not None else "no"
    return Outcome(
        {"steps": steps, "pools_short": sorted(under)},
        f"{len(steps)} step(s) planned",
        [st["command"] for st in steps][:5],
    )


@operation(
    C,
    "analyze-cascade-failure",
    kind="analysis",
    payload=P.AnalyzeCascadeFailure,
    summary="agent failures, their timeline, blocked dependency chains and critical paths",
)
async def analyze_cascade_failure(ctx: Context, p: P.AnalyzeCascadeFailure) -> Outcome:
    names = ["agent_health", "failures"]
    if p.dependency_analysis:
        names += ["dependency_chains", "critical_paths"]
    if p.impact_assessment == "comprehensive":
        names.append("pool_capacity")
    evs = await _log(ctx, [AGENT_ERROR, AGENT_TIMEOUT])
    timeline = [
        {"seq": e.seq, "ts": e.ts, "agent": e.data.get("agent"), "task": e.data.get("task"), "type": e.type}
        for e in evs
    ]
    affected = sorted({str(t["task"]).split("/")[0] for t in timeline if t["task"]})
    extra = {
        "timeline": timeline[-30:],
        "failures": len(timeline),
        "affected_workflows": affected,
        "span_s": round(timeline[-1]["ts"] - timeline[0]["ts"], 3) if len(timeline) > 1 else 0.0,
        "prioritisation": p.recovery_prioritization,
    }
    out = await analysis_outcome(ctx, names, None, extra)
    out.summary = f"{len(timeline)} agent failure(s) touching {', '.join(affected) or 'no workflow'}; " + out.summary
    return out


@operation(
    C,
    "corruption-assessment",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="state consistency, checkpoint integrity, log replay: what can be recovered how",
    workflow_arg="optional",
)
async def corruption_assessment(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    only = scope_of(ctx, p.workflows)
    out = await analysis_outcome(
        ctx, ["state_consistency", "checkpoint_integrity", "log_replay"], only, None, p.window_given()
    )
    cps = [f for f in out.result["findings"] if f["analysis"] == "checkpoint_integrity"]
    latest = cps[0]["evidence"]["latest_verified"] if cps else None
    out.result["rollback_feasible"] = latest is not None
    out.result["rollback_checkpoint"] = latest
    return out


# -- the scenarios -------------------------------------------------------------------------


class HoldResumption(P.Payload):
    held: bool | None = Field(None, description="true holds, false releases; omitted: toggle")


def _resumption_id(ctx: Context) -> str:
    rid = ctx.workflow_id
    if not rid:
        raise CommandError(
            "RESUMPTION_REQUIRED",
            f"{ctx.spec.name} needs a resumption id",
            {"usage": ctx.spec.usage},
            ["/workflow-recovery gradual-resumption"],
        )
    return rid


@operation(
    C,
    "advance-resumption",
    kind="destructive",
    payload=P.Empty,
    workflow_arg="required",
    summary="apply the next step of a staged resumption now (RESUMPTION_ID), without waiting for its checks",
)
async def advance_resumption_op(ctx: Context, p: P.Empty) -> Outcome:
    rid = _resumption_id(ctx)
    res = advance_resumption(ctx.engine, rid, actor=ctx.actor)
    r = ctx.state.resumptions[rid]
    return Outcome(res, f"{rid}: step {res['next_step']}/{len(r.steps)} applied by {ctx.actor} ({res['status']})")


@operation(
    C,
    "hold-resumption",
    kind="lifecycle",
    payload=HoldResumption,
    workflow_arg="required",
    summary="hold a staged resumption at its current step (no automatic advance), or release it",
)
async def hold_resumption_op(ctx: Context, p: HoldResumption) -> Outcome:
    rid = _resumption_id(ctx)
    res = hold_resumption(ctx.engine, rid, actor=ctx.actor, held=p.held)
    return Outcome(res, f"{rid} {'held' if res['held'] else 'released'} at step {res['next_step']} by {ctx.actor}")


@operation(
    C,
    "gradual-resumption",
    kind="lifecycle",
    payload=P.GradualResumption,
    summary="a staged resumption: each stage applied after utilisation holds under the safe threshold",
)
async def gradual_resumption(ctx: Context, p: P.GradualResumption) -> Outcome:
    """Words map to numbers: ``resource_limit`` conservative = 50 % of the workflow's base
    allocation, moderate = 75 %, full = none; ``gradual_scaling`` restores in thirds
    (or raises a conservative limit to 75 % first); ``safety_checks`` basic/standard/
    comprehensive hold the threshold 0.5x/1x/2x the configured hold period. Stage 1
    applies now; every later step waits for its check."""
    s = ctx.state
    eng = ctx.engine
    for st in p.stages:
        if st.action == "release_pool":
            if st.pool not in s.usage.holds:
                raise CommandError(
                    "INVALID_STATE", f"pool {st.pool!r} is not held", {"held_pools": sorted(s.usage.holds)}
                )
            continue
        wf = ctx.workflow(st.workflow)
        if wf.frozen:
            raise CommandError("WORKFLOW_FROZEN", f"{wf.id} is frozen for data protection", {"workflow_id": wf.id})
        if wf.status in TERMINAL_WORKFLOW or wf.status is WorkflowStatus.PENDING:
            raise CommandError(
                "INVALID_STATE",
                f"{wf.id} is {wf.status.value}: only running or paused workflows resume",
                {"workflow_id": wf.id},
                ["/coordination-hub list-workflows"],
            )
    th = eng.config.thresholds
    safe = p.safe_threshold or th.safe
    hold = p.hold if p.hold is not None else th.stable_hold_s * HOLD_FACTOR[p.safety_checks]
    cp = None
    if any(st.validation_checkpoints for st in p.stages):
        cp = await eng.checkpoint("incremental", "before gradual resumption", actor=ctx.actor)
    steps, stages = plan_steps(eng, p)
    planned = [st.model_dump() for st in steps]
    rid = f"resumption_{len(s.resumptions) + 1:03d}"
    eng.emit(
        RESUMPTION_CREATED,
        "coordination",
        "resumption",
        {
            "id": rid,
            "strategy": p.resumption_strategy,
            "safe_pct": safe,
            "hold_s": hold,
            "checkpoint": cp,
            "monitoring_level": p.monitoring_level,
            "stages": [st.model_dump() for st in stages],
            "steps": planned,
        },
        actor=ctx.actor,
    )
    applied = [apply_step(eng, rid, 0, ctx.actor)]
    if p.resumption_strategy == "immediate":
        for i in range(1, len(steps)):
            applied.append(apply_step(eng, rid, i, ctx.actor))
    if s.resumptions[rid].next_step >= len(steps):
        eng.emit(
            RESUMPTION_COMPLETED,
            "coordination",
            "resumption",
            {"id": rid, "steps": len(steps), "took_s": 0.0},
            actor=ctx.actor,
        )
    r = s.resumptions[rid]
    return Outcome(
        {
            "resumption": rid,
            "status": r.status,
            "safe_threshold_pct": safe,
            "hold_s": hold,
            "checkpoint": cp,
            "steps": planned,
            "applied": applied,
            "pending": len(steps) - r.next_step,
        },
        f"{rid}: {len(steps)} step(s); applied {len(applied)} now; each next step after {hold:g}s under {safe:g}% utilisation",
        ["/workflow-status", "/performance-monitor post-emergency-monitoring"],
    )


@operation(
    C,
    "transfer-context",
    kind="lifecycle",
    payload=P.TransferContext,
    summary="move the task context of failed agents' tasks to their replacements",
)
async def transfer_context(ctx: Context, p: P.TransferContext) -> Outcome:
    """Replacement agents named but not existing are spawned in the failed agent's pool
    with its specializations. Tasks queued get their context recorded for the
    replacement and are assigned to it when it is idle and matches."""
    s = ctx.state
    eng = ctx.engine
    for a in p.failed_agents:
        ag = ctx.agent(a)
        if ag.status not in (AgentStatus.FAILED, AgentStatus.UNREACHABLE, AgentStatus.RETIRED):
            raise CommandError(
                "INVALID_STATE",
                f"{a} is {ag.status.value}, not failed: there is no context to transfer",
                {"agent": a},
                ["/resource-manager agent-pool-assessment"],
            )
    spawned = []
    repl = list(p.replacement_agents)
    for i, a in enumerate(p.failed_agents):
        src = s.agents[a]
        if not repl:
            break
        r = repl[i]
        if r not in s.agents:
            eng.add_agent(src.pool, list(src.specializations), agent_id=r, actor=ctx.actor)
            spawned.append(r)
        elif s.agents[r].status in (AgentStatus.FAILED, AgentStatus.RETIRED):
            raise CommandError("INVALID_STATE", f"replacement {r} is {s.agents[r].status.value}", {"agent": r})
    for a in p.failed_agents:
        held = s.agents[a].current_task
        if s.agents[a].status is AgentStatus.UNREACHABLE and held:
            eng.release_task(held, reason="agent_unreachable", actor=ctx.actor)
    pairs = [(a, repl[i] if repl else None) for i, a in enumerate(p.failed_agents)]
    if repl:
        eng.set_setting(
            "recovery.replacements",
            {**s.settings.get("recovery.replacements", {}), **dict(zip(p.failed_agents, repl, strict=True))},
            actor=ctx.actor,
        )
    moved = await transfer_contexts(eng, pairs, ctx.actor)
    findings = []
    if p.validation == "comprehensive":
        for m in moved:
            ok = m["context_preserved"]
            findings.append(
                {
                    "analysis": "context_transfer",
                    "severity": "info" if ok else "high",
                    "subject": m["task"],
                    "summary": f"{m['task']}: context {'preserved' if ok else 'LOST'} ({m['state']})",
                    "evidence": {
                        "progress_at_loss": m["progress_at_loss"],
                        "progress_now": m["progress"],
                        "holder": m["to"],
                        "from": m["from"],
                        "partial_results": m["partial_results"],
                    },
                }
            )
    return Outcome(
        {
            "transfers": moved,
            "spawned": spawned,
            "pairs": dict(pairs),
            "rollback_capability": p.rollback_capability,
            "findings": findings,
        },
        f"{len(moved)} task context(s) handled for {len(p.failed_agents)} failed agent(s); {len(spawned)} replacement(s) spawned",
    )


@operation(
    C,
    "post-failure-learning",
    kind="monitoring",
    payload=P.PostFailureLearning,
    summary="lessons from the log's failures (by pool, by error, time to recover) stored in the state",
)
async def post_failure_learning(ctx: Context, p: P.PostFailureLearning) -> Outcome:
    s = ctx.state
    evs = await _log(
        ctx,
        [AGENT_ERROR, AGENT_TIMEOUT, TASK_FAILED, WORKFLOW_FAILED, TASK_ASSIGNED, TASK_COMPLETED],
        p.window,
    )
    by_pool: dict[str, int] = {}
    by_error: dict[str, int] = {}
    lost_at: dict[str, float] = {}
    reassign: list[float] = []
    complete: list[float] = []
    for e in evs:
        if e.type == AGENT_ERROR:
            pool = e.data.get("pool") or (
                s.agents.get(e.data.get("agent", ""), None) and s.agents[e.data["agent"]].pool
            )
            by_pool[str(pool)] = by_pool.get(str(pool), 0) + 1
            by_error[str(e.data.get("error"))] = by_error.get(str(e.data.get("error")), 0) + 1
            if e.data.get("task"):
                lost_at[e.data["task"]] = e.ts
        elif e.type in (TASK_FAILED, WORKFLOW_FAILED, AGENT_TIMEOUT):
            by_error[f"{e.type}: {e.data.get('error', '')}".rstrip(": ")] = (
                by_error.get(f"{e.type}: {e.data.get('error', '')}".rstrip(": "), 0) + 1
            )
        elif e.type == TASK_ASSIGNED and e.data.get("task") in lost_at and len(reassign) < 10_000:
            reassign.append(e.ts - lost_at[e.data["task"]])
        elif e.type == TASK_COMPLETED and e.data.get("task") in lost_at:
            complete.append(e.ts - lost_at.pop(e.data["task"]))
    if not evs:
        for a in s.agents.values():
            if a.failures:
                by_pool[a.pool] = by_pool.get(a.pool, 0) + a.failures
    lessons = []
    for pool, n in sorted(by_pool.items(), key=lambda kv: -kv[1]):
        live = sum(1 for a in s.live_agents() if a.pool == pool)
        lessons.append(f"pool {pool} lost {n} agent(s) ({live} live now): keep at least {n} spare")
    if reassign:
        lessons.append(
            f"failed agents' tasks waited {duration(statistics.median(reassign))} (median) for another agent"
        )
    if complete:
        lessons.append(f"interrupted tasks finished {duration(statistics.median(complete))} (median) after the failure")
    if not lessons:
        lessons.append("no failures in the window")
    stats = {
        "failures_by_pool": by_pool,
        "errors": by_error,
        "reassign_median_s": round(statistics.median(reassign), 3) if reassign else None,
        "recover_median_s": round(statistics.median(complete), 3) if complete else None,
        "events_examined": len(evs),
        "window_s": p.window,
    }
    policy = {"failures_by_pool": by_pool} if p.prevention_strategy_updates or p.knowledge_base_updates else {}
    if p.knowledge_base_updates or p.lesson_extraction:
        ctx.engine.emit(
            LEARNING_RECORDED,
            "coordination",
            "learning",
            {
                "source": "post-failure-learning",
                "lessons": lessons,
                "stats": stats,
                "policy": policy,
                "shared": p.team_knowledge_sharing,
            },
            actor=ctx.actor,
        )
    return Outcome(
        {
            "lessons": lessons,
            "stats": stats,
            "policy": policy,
            "recorded": bool(p.knowledge_base_updates or p.lesson_extraction),
        },
        f"{len(lessons)} lesson(s): {lessons[0]}",
        ["/resource-manager update-agent-management"],
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
    named = ([ctx.workflow_id] if ctx.workflow_id else []) + p.workflows
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
    from ..event_types import EVENTS
    from ..projection import State

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
