"""``/coordination-hub`` checkpoints and data protection: save, restore, validate, integrity monitoring."""

from __future__ import annotations

from typing import Any

from ...models import TERMINAL_WORKFLOW
from .. import payloads as P
from ..context import Context
from ..monitoring import configure
from ..registry import Operations, Outcome
from ..reporting import analysis_outcome
from ..responses import CommandError
from ..workflow_recovery.checkpointing import create_checkpoint
from ..workflow_recovery.restores import restore
from . import C

OPS = Operations(C, None)
operation = OPS.operation


@operation(C, "save-state", kind="checkpoint", payload=P.SaveState, summary="checkpoint the whole state (manual)")
async def save_state(ctx: Context, p: P.SaveState) -> Outcome:
    cp = await ctx.engine.checkpoint("manual", p.label or "save-state", actor=ctx.actor)
    c = ctx.state.checkpoints[cp]
    return Outcome({"checkpoint": cp, "seq": c.seq, "state_hash": c.state_hash}, f"state saved as checkpoint #{cp}")


@operation(
    C, "load-state", kind="destructive", payload=P.LoadState, summary="bring the whole state back to a checkpoint"
)
async def load_state(ctx: Context, p: P.LoadState) -> Outcome:
    return await restore(ctx, p.checkpoint, None, "load_state")


@operation(
    C,
    "checkpoint",
    kind="checkpoint",
    payload=P.CheckpointRequest,
    summary="checkpoint now (kind: manual, emergency, incremental, phase_complete)",
    workflow_arg="optional",
)
async def checkpoint(ctx: Context, p: P.CheckpointRequest) -> Outcome:
    return await create_checkpoint(ctx, p)


@operation(
    C,
    "restore",
    kind="destructive",
    payload=P.RestoreRequest,
    summary="restore a workflow (or all) from a checkpoint",
    workflow_arg="optional",
)
async def restore_op(ctx: Context, p: P.RestoreRequest) -> Outcome:
    wfs = ctx.named_workflows(p.workflows)
    return await restore(ctx, p.checkpoint, wfs or None, "restore")


@operation(
    C,
    "rollback",
    kind="destructive",
    payload=P.RestoreRequest,
    summary="roll a workflow (or all) back to a checkpoint",
    workflow_arg="optional",
)
async def rollback_op(ctx: Context, p: P.RestoreRequest) -> Outcome:
    wfs = ctx.named_workflows(p.workflows)
    return await restore(ctx, p.checkpoint, wfs or None, "rollback")


@operation(
    C,
    "emergency-data-protection",
    kind="checkpoint",
    payload=P.EmergencyDataProtection,
    summary="emergency checkpoint, freeze the workflow's state, validate backups, commit the log",
    workflow_arg="optional",
)
async def emergency_data_protection(ctx: Context, p: P.EmergencyDataProtection) -> Outcome:
    """The checkpoint is taken before the freeze, so it is the last state before
    protection. While frozen, operator and plan commands that would change the
    workflow are refused and no new task of it is dispatched; its tasks already
    running are not stopped, and what they report (progress, completion, failure) is
    recorded as a runtime fact, marked ``during_freeze``."""
    from ...engine import EngineError

    eng = ctx.engine
    wid = p.affected_workflow or ctx.workflow_id
    wf = ctx.workflow(wid) if wid else None
    res: dict[str, Any] = {"workflow_id": wf.id if wf else None, "protection_level": p.protection_level}
    if "create_emergency_checkpoint" in p.immediate_actions:
        cp = await eng.checkpoint(
            "emergency", f"data protection {wf.id if wf else 'all'}", wf.id if wf else None, actor=ctx.actor
        )
        res["checkpoint"] = cp
    if "freeze_state_modifications" in p.immediate_actions:
        targets = (
            [wf.id] if wf else sorted(w.id for w in ctx.state.workflows.values() if w.status not in TERMINAL_WORKFLOW)
        )
        for w in targets:
            if not ctx.state.workflows[w].frozen:
                eng.freeze(w, True, actor=ctx.actor)
        res["frozen"] = targets
        res["freeze_scope"] = {
            "refused": "operator and plan commands that change these workflows: start, pause, resume, cancel, "
            "emergency-stop, reassign, allocation, reallocation, guarantees, stage limits",
            "not_dispatched": "no new task of these workflows starts",
            "not_refused": "tasks already running keep running: their progress, completion or failure is a "
            "runtime fact, recorded with during_freeze",
            "running_tasks": sorted(k for w in targets for k in ctx.state.running_by_wf.get(w, ())),
        }
    if "activate_backup_validation" in p.immediate_actions:
        ok, bad = [], {}
        for cp_id in sorted(ctx.state.checkpoints):
            try:
                await eng.verified_checkpoint(cp_id)
                ok.append(cp_id)
            except EngineError as exc:
                bad[str(cp_id)] = exc.message
        res["backups"] = {"verified": ok, "failed": bad}
    if "enable_transaction_logging" in p.immediate_actions:
        eng.set_setting(
            "data_protection",
            {"workflow": wf.id if wf else None, "level": p.protection_level, "commit_every_command": True},
            actor=ctx.actor,
        )
        await eng.flush()
        res["log_committed_through_seq"] = ctx.state.seq
        res["transaction_logging"] = "every command from now on is committed to the log before its response"
    return Outcome(
        res,
        f"protected {wf.id if wf else 'all workflows'}: "
        + ", ".join(
            x
            for x in (
                f"checkpoint #{res['checkpoint']}" if "checkpoint" in res else "",
                f"{len(res.get('frozen', []))} frozen (commands refused, "
                f"{len(res['freeze_scope']['running_tasks'])} running task(s) not stopped)"
                if "frozen" in res
                else "",
                f"{len(res['backups']['verified'])} backup(s) verify" if "backups" in res else "",
            )
            if x
        ),
        ["/workflow-recovery corruption-assessment", "/workflow-recovery execute-data-recovery"],
        workflow_id=wf.id if wf else None,
    )


@operation(
    C,
    "checkpoint-validation",
    kind="analysis",
    payload=P.AnalysisRequest,
    summary="verify every checkpoint and the log against the live state",
)
async def checkpoint_validation(ctx: Context, p: P.AnalysisRequest) -> Outcome:
    return await analysis_outcome(
        ctx, ["checkpoint_integrity", "log_replay"], None, {"scope": p.scope}, p.window_given()
    )


INTEGRITY_FULL_CHECK_S = {"every_minute": 60.0, "hourly": 3600.0, "every_operation": 300.0}
"""Full integrity check period by validation frequency (mirrors DataIntegrityDetector)."""


@operation(
    C,
    "enable-enhanced-integrity-monitoring",
    kind="monitoring",
    payload=P.EnhancedIntegrityMonitoring,
    summary="integrity monitoring the engine applies: the checkpoint interval in force and how often the store is verified",
)
async def enable_enhanced_integrity_monitoring(ctx: Context, p: P.EnhancedIntegrityMonitoring) -> Outcome:
    """``checkpoint_frequency`` sets the interval of the engine's automatic checkpoints:
    relaxed 2x, normal 1x, aggressive 1/3x, paranoid 1/15x of ``intervals.checkpoint_s``.
    ``validation_frequency`` sets how often the data-integrity detector verifies the
    store: ``every_operation`` checks each committed row and each new checkpoint at
    every pump (a full check every 300 s), ``every_minute`` a full check every 60 s,
    ``hourly`` every 3600 s. ``auto_recovery`` and ``corruption_detection`` are
    recorded only: recovery plans still go through the approval policy."""
    base = ctx.engine.config.intervals.checkpoint_s
    interval = {"relaxed": base * 2, "normal": base, "aggressive": base / 3, "paranoid": base / 15}[
        p.checkpoint_frequency
    ]
    from ..analyses.consistency import state_consistency

    check = (await state_consistency(ctx.engine, None))[0]
    out = configure(
        ctx,
        "integrity",
        {
            "level": p.monitoring_level,
            "validation_frequency": p.validation_frequency,
            "checkpoint_interval_s": interval,
            "corruption_detection": p.corruption_detection,
            "auto_recovery": p.auto_recovery == "enabled",
            "baseline_problems": len(check.evidence["problems"]),
        },
    )
    out.result["integrity_check"] = check.as_dict()
    out.result["in_force"] = {
        "checkpoint_interval_s": ctx.engine.checkpoint_interval(),
        "full_check_every_s": INTEGRITY_FULL_CHECK_S[p.validation_frequency],
        "incremental_check_every_commit": p.validation_frequency == "every_operation",
    }
    out.result["recorded_only"] = ["auto_recovery", "corruption_detection"]
    out.summary += (
        f"; checkpoints every {interval:g}s; store verified "
        + (
            "at every commit (incremental), fully every 300s"
            if p.validation_frequency == "every_operation"
            else f"fully every {INTEGRITY_FULL_CHECK_S[p.validation_frequency]:g}s"
        )
        + f"; {len(check.evidence['problems'])} inconsistency(ies) now"
    )
    return out


PROTECTION = {
    "transaction_atomicity_guarantees": (
        "always",
        "events commit in atomic batches (one transaction per group commit)",
    ),
    "state_checksumming": (
        "always",
        "every event is SHA-256 chained to the previous one; checkpoints carry a state hash",
    ),
    "state_change_auditing": ("always", "every command is recorded as COMMAND_EXECUTED with who ran it"),
    "integrity_alerting": ("always", "the data-integrity detector raises DATA_INTEGRITY_ALERT"),
    "real_time_consistency_monitoring": (
        "turned_on",
        "the store is verified at every commit (integrity monitoring every_operation)",
    ),
    "automated_backup_validation": (
        "turned_on",
        "each new checkpoint's hash is verified at the next commit (integrity monitoring every_operation)",
    ),
    "synchronization_validation": ("not_available", "no separate mechanism: recorded only"),
    "corruption_prediction": ("not_available", "no predictor: recorded only"),
}


@operation(
    C,
    "implement-enhanced-protection",
    kind="monitoring",
    payload=P.EnhancedProtection,
    summary="protection measures: says which are always in force, turns on per-commit verification, names those it cannot provide",
)
async def implement_enhanced_protection(ctx: Context, p: P.EnhancedProtection) -> Outcome:
    measures = sorted({*p.protection_enhancements, *p.monitoring_improvements})
    if not measures:
        raise CommandError("INVALID_PAYLOAD", "name at least one protection enhancement or monitoring improvement")
    report = {m: {"status": PROTECTION[m][0], "what": PROTECTION[m][1]} for m in measures}
    turned_on = [m for m in measures if PROTECTION[m][0] == "turned_on"]
    if turned_on:
        cur = ctx.state.settings.get("monitoring.integrity")
        cfg = (
            dict(cur)
            if isinstance(cur, dict) and not cur.get("closed")
            else {"checkpoint_interval_s": ctx.engine.config.intervals.checkpoint_s}
        )
        cfg.pop("baseline", None)
        cfg.update({"validation_frequency": "every_operation", "set_by": "implement-enhanced-protection"})
        configure(ctx, "integrity", {k: v for k, v in cfg.items() if k not in ("since", "until", "by")})
    out = configure(
        ctx, "protection", {"measures": measures, "state_hash": ctx.state.state_hash(), "seq": ctx.state.seq}
    )
    out.result["measures"] = report
    n_na = sum(1 for m in measures if PROTECTION[m][0] == "not_available")
    out.summary = (
        f"{sum(1 for m in measures if PROTECTION[m][0] == 'always')} measure(s) always in force, {len(turned_on)} turned on"
        + (" (store verified at every commit)" if turned_on else "")
        + (f", {n_na} not available (recorded only)" if n_na else "")
        + f"; reference checksum {ctx.state.state_hash()[:12]} at seq {ctx.state.seq}"
    )
    return out
