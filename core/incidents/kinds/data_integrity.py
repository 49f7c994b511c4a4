"""Data integrity: periodic verification of the hash chain, every checkpoint and
the live projection against a replay; the plan freezes, restores a verified
checkpoint and replays; the criterion is the projection equal to a replay with a
fresh verified restart point. The drill damages a checkpoint and drifts the
projection."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any

from ...event_types import DATA_RECOVERY_COMPLETED, DATA_RECOVERY_STRATEGY
from ...models import TaskStatus
from ...store import scalar
from ...verify import verify_store
from ..catalogue import DrillError, DrillSpec, IncidentKind, RunningDrill
from ..detectors import Finding
from ..faultcheck import checkpoint_damaged, projection_drifted
from ..integrity import consistency
from ..playbooks import PlanDraft, StepDraft, cmd
from ..record import Credit, no_acting_step
from ..validation import GateCtx, Verdict, percent_text
from .data_integrity_detector import NAME, DataIntegrityDetector, IntegrityEvidence

if TYPE_CHECKING:
    from ...engine import Engine


def data_integrity(engine: Engine, finding: Finding) -> PlanDraft:
    ev = IntegrityEvidence.model_validate(finding.evidence)
    # Only live workflows are frozen: a finished one has no state left to change, and
    # protecting it is refused (INVALID_STATE), which would abort the plan at its first step.
    wfs = [w for w in finding.affected_workflows or sorted(engine.state.workflows) if w in engine.state.workflows]
    ok_cps = [c for c in ev.checkpoints_ok if c in engine.state.checkpoints]
    first_bad = ev.first_bad_seq
    safe_cps = [c for c in ok_cps if first_bad is None or engine.state.checkpoints[c].seq < first_bad]
    target = max(safe_cps, default=None)
    # Confidence: the share of the state's restart points (checkpoints) a replay of the
    # log confirmed; none confirmed before the damage means nothing to restore from.
    n_ok = len(ok_cps)
    n_bad = len(ev.checkpoints_bad)
    confidence = round(n_ok / (n_ok + n_bad), 4) if target is not None and n_ok + n_bad else 0.0
    steps = [
        StepDraft(
            cmd(
                "coordination-hub",
                "emergency-data-protection",
                {
                    "protection_level": "maximum",
                    "affected_workflow": w,
                    "immediate_actions": [
                        "create_emergency_checkpoint",
                        "freeze_state_modifications",
                        "activate_backup_validation",
                        "enable_transaction_logging",
                    ],
                },
            ),
            f"emergency checkpoint and freeze of {w}",
        )
        for w in wfs[:3]
    ] or [
        StepDraft(
            cmd(
                "coordination-hub",
                "emergency-data-protection",
                {
                    "protection_level": "maximum",
                    "immediate_actions": [
                        "create_emergency_checkpoint",
                        "activate_backup_validation",
                        "enable_transaction_logging",
                    ],
                },
            ),
            "emergency checkpoint (no affected workflow is live to freeze)",
        )
    ]
    steps += [
        StepDraft(
            cmd(
                "subagents",
                "",
                {"phase": "data_integrity_analysis", "priority": "critical", "coordination": "data_protection_focus"},
                [
                    {
                        "command": "/debug",
                        "scope": "state_consistency_validation",
                        "analysis": "comprehensive_data_audit",
                        "focus": ["state_corruption", "synchronization_failures", "transaction_integrity"],
                    },
                    {
                        "command": "/coordination-hub",
                        "operation": "checkpoint-validation",
                        "scope": "integrity_verification",
                        "focus": ["checkpoint_consistency", "state_history_validation"],
                    },
                    {
                        "command": "/workflow-recovery",
                        "operation": "corruption-assessment",
                        "scope": "data_recovery_options",
                        "focus": ["rollback_feasibility", "partial_recovery", "data_reconstruction"],
                    },
                ],
                flags=("data-protection",),
            ),
            "corruption assessment naming the corrupted segments",
        ),
        StepDraft(
            cmd(
                "workflow-recovery",
                "execute-data-recovery",
                {
                    "recovery_strategy": "intelligent_selective_recovery",
                    "data_preservation": "maximum",
                    "validation_level": "comprehensive",
                    "recovery_steps": [
                        {
                            "step": "state_corruption_isolation",
                            "action": "identify_corrupted_state_segments",
                            "validation": "segment_by_segment_verification",
                        },
                        {
                            "step": "clean_state_restoration",
                            "action": "restore_from_validated_checkpoint",
                            "checkpoint": target if target is not None else "latest_verified_checkpoint",
                            "validation": "comprehensive_integrity_check",
                        },
                        {
                            "step": "delta_reconstruction",
                            "action": "reconstruct_changes_since_checkpoint",
                            "method": "transaction_log_replay",
                            "validation": "operation_by_operation_verification",
                        },
                    ],
                },
            ),
            "restore the latest verified checkpoint, replay verified entries",
            gate="data_recovered",
        ),
        StepDraft(
            cmd(
                "coordination-hub",
                "enable-enhanced-integrity-monitoring",
                {
                    "monitoring_level": "paranoid",
                    "validation_frequency": "every_operation",
                    "checkpoint_frequency": "aggressive",
                    "corruption_detection": "real_time",
                    "auto_recovery": "enabled",
                },
            ),
            "enhanced integrity monitoring",
        ),
    ]
    restore = f"restore checkpoint {target} and replay"
    return PlanDraft(
        title=f"Protect {', '.join(wfs[:3])}; {restore}" if wfs else restore.capitalize(),
        strategy="selective_rollback_with_reconstruction",
        steps=steps,
        expected={"target_checkpoint": target, "first_bad_seq": first_bad, "frozen": wfs[:3]},
        announce=(
            DATA_RECOVERY_STRATEGY,
            "coordination",
            "recovery_planning",
            {
                "strategy": "selective_rollback_with_reconstruction",
                "data_loss_risk": "minimal" if first_bad is None else "bounded",
                "recovery_confidence": confidence,
                "confidence_basis": f"{n_ok} of {n_ok + n_bad} checkpoint(s) verified by replay; restart point {target}",
            },
        ),
    )


async def data_recovered(ctx: GateCtx) -> Verdict:
    """The live projection equals a restart from a replay-verified checkpoint plus the
    log; then a fresh checkpoint of the recovered state becomes the restart point and
    checkpoints that captured the corrupted state are quarantined."""

    eng = ctx.engine
    inc = ctx.incident
    who = f"plan:{ctx.plan.id}"
    if eng.store is None:
        return "fail", {"reason": "no store to verify against"}
    await _committed(eng)
    rep = await verify_store(eng.store, replay_checkpoints=True)
    cons = await consistency(eng, trusted=set(rep.checkpoints_ok))
    if cons["differs_in"]:
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {
                "reason": "the projection still differs from a replay of the log",
                "diffs": cons.get("diffs", [])[:10],
            }
        return "wait", {"differs_in": cons["differs_in"]}
    credit = restore_credit(ctx)
    if not credit.credited:
        return "pass", {"credited": False, "credit": credit.as_dict()}
    restart = await eng.checkpoint(kind="emergency", label=f"recovered {inc.id}", actor=who)
    await _committed(eng)
    rep = await verify_store(eng.store, replay_checkpoints=True)
    if restart not in rep.checkpoints_ok:
        return "fail", {"reason": f"the post-recovery checkpoint {restart} does not verify"}
    known = set(inc.evidence.of(IntegrityEvidence).bad_checkpoints)
    quarantined = sorted(c for c in rep.checkpoints_bad if c not in known)
    for w in inc.affected_workflows:
        wf = eng.state.workflows.get(w)
        if wf is not None and wf.frozen:
            eng.freeze(w, False, actor=who)
    segments = [
        {**sg, "resolution": "recovered_from_log"} if sg.get("resolution") == "replay_from_log" else sg
        for sg in inc.evidence.of(IntegrityEvidence).segments
    ]
    segments += [{"checkpoint": int(c), "resolution": "quarantined"} for c in sorted(known | set(quarantined))]
    lost = [sg for sg in segments if sg.get("resolution") == "lost"]
    total = max(len(segments), 1)
    took = ctx.now - ctx.recovery_started()
    eng.emit(
        DATA_RECOVERY_COMPLETED,
        "coordination",
        "validation",
        {
            "recovery_success": "complete" if not lost else "partial",
            "data_integrity": "verified",
            "corrupted_segments": "recovered" if not lost else f"{len(lost)}_lost",
            "validation_passed": percent_text(100.0 * (total - len(lost)) / total),
            "incident_id": inc.id,
            "segments": segments,
            "lost": lost,
            "recovery_time_s": round(took, 1),
            "restart_checkpoint": restart,
            "quarantined_checkpoints": quarantined,
            "events_verified": rep.events,
            "recovery_time_basis": "first acting step of the plan to the projection equal to a replay",
            "restored_by_plan": credit.figures["restored"],
        },
        actor=who,
    )
    return "pass", {
        "recovery_time_s": round(took, 1),
        "segments": segments,
        "quarantined_checkpoints": quarantined,
        "restart_checkpoint": restart,
        "credited": True,
        "credit": credit.as_dict(),
    }


async def _committed(eng: Engine) -> None:
    """Every event emitted so far is in the store. The verify reads the store from another
    connection, and on the wall clock events arrive while a checkpoint is written: one
    taken at a seq the store does not hold yet would read as differing from the log."""
    await eng.flush()
    while eng.unflushed:
        await eng.flush()


def restore_credit(ctx: GateCtx) -> Credit:
    """A step of the plan restored the drifted workflows from a verified checkpoint
    plus the log (and now the projection replays equal), or, with no drift, removed
    the damaged checkpoints. A projection that came back equal without a restore of
    the drifted workflows (a later report overwrote the drift) recovered without it."""
    none = no_acting_step(ctx.record)
    if none is not None:
        return none
    ev = ctx.incident.evidence.of(IntegrityEvidence)
    drifted = sorted(
        {sg["workflow"] for sg in ev.segments if sg.get("resolution") == "replay_from_log" and sg.get("workflow")}
    )
    bad = set(ev.bad_checkpoints)
    restored: set[str] = set()
    dropped: set[int] = set()
    checkpoint = None
    for run in ctx.record.acting():
        if "replayed_events" in run.result:
            restored.update(run.result.get("restored") or [])
            dropped.update(int(c) for c in run.result.get("dropped_checkpoints") or [])
            checkpoint = run.result.get("checkpoint")
    figures = {
        "drifted": drifted,
        "restored": sorted(restored),
        "damaged_checkpoints": sorted(bad),
        "dropped_checkpoints": sorted(dropped),
        "restored_from_checkpoint": checkpoint,
    }
    if drifted and set(drifted) <= restored:
        return Credit(
            True, f"the plan restored {', '.join(drifted)} from checkpoint {checkpoint} plus the log", figures
        )
    if not drifted and bad and bad <= dropped:
        return Credit(True, f"the plan removed the damaged checkpoint(s) {sorted(bad)}", figures)
    if drifted:
        return Credit(False, f"the drift of {', '.join(drifted)} is gone but no step of the plan restored it", figures)
    return Credit(False, "no step of the plan restored state or removed the damaged checkpoints", figures)


def window(engine: Engine) -> float:
    """One verification of the store."""
    return 10 * engine.config.intervals.sample_s


async def inject(drill: RunningDrill) -> dict[str, Any]:
    """A state-synchronisation failure: a checkpoint's stored state is damaged (a
    task it holds as not completed is written as completed, so its hash no longer
    matches) and the live projection drifts from the log (a pending task gets
    progress it never made; a pending, completed or else running task gets a
    result it never reported)."""
    eng = drill.engine
    if eng.store is None:
        raise DrillError("the data-integrity drill needs a database (--db)")
    s = eng.state
    if not s.checkpoints:
        # A fleet keeps earlier restart points; a fresh one (real processes) has none
        # yet. Without a clean one the only checkpoints left would be taken after the
        # drift and would carry it.
        await eng.checkpoint(kind="incremental", label="drill: clean restart point", actor="drill")
    cp = await eng.checkpoint(kind="incremental", label="drill: about to be damaged", actor="drill")
    await eng.flush()
    db = eng.store.connection
    snap = json.loads(await scalar(db, "SELECT state FROM checkpoints WHERE id=?", (cp,)))
    victim_wf = "migration_workflow_001" if "migration_workflow_001" in s.workflows else sorted(s.workflows)[0]
    order = [*s.workflows[victim_wf].tasks, *sorted(snap["tasks"])]
    damaged = next((k for k in order if k in snap["tasks"] and snap["tasks"][k].get("status") != "completed"), None)
    if damaged is None:
        raise DrillError(f"checkpoint {cp} holds no task that is not completed: nothing to damage (use a fresh --db)")
    snap["tasks"][damaged]["status"] = "completed"
    await db.execute("UPDATE checkpoints SET state=? WHERE id=?", (json.dumps(snap), cp))
    await db.commit()
    live = [*s.workflows[victim_wf].tasks, *sorted(s.tasks)]
    drift = next((k for k in live if k in s.tasks and s.tasks[k].status is TaskStatus.PENDING), None)
    drift = drift or next((k for k in live if k in s.tasks and s.tasks[k].status is TaskStatus.COMPLETED), None)
    # A running task reports progress, never this result: the drift stays until restored.
    running = sorted(
        (k for k in live if k in s.tasks and s.tasks[k].status is TaskStatus.RUNNING),
        key=lambda k: s.tasks[k].context.progress,
    )
    drift = drift or next(iter(running), None)  # the one with most work left
    if drift is None:
        raise DrillError("no task in the live state to drift (use a fresh --db)")
    t = s.tasks[drift]
    ctx = t.own_context()
    ctx.progress = 0.8 if t.status is TaskStatus.PENDING else ctx.progress
    ctx.partial_results["rows_migrated"] = -1
    return {
        "damaged_checkpoint": cp,
        "damaged_task": damaged,
        "drifted_task": drift,
        "workflow": victim_wf,
    }


async def confirm(drill: RunningDrill) -> dict[str, Any]:
    """Verification reports the damaged checkpoint bad and the live projection
    differs from a replay of the log, both checked after the injection."""
    cp = await checkpoint_damaged(drill.engine, int(drill.fault["damaged_checkpoint"]))
    drift = await projection_drifted(drill.engine)
    return {"confirmed": cp["fails_verify"] and drift["differs_from_replay"], **cp, **drift}


def prepare(drill: RunningDrill, live: bool) -> float:
    """The store is verified periodically. On the simulated runtime the fault lands
    at a phase of the check period drawn from the seed (a fixed phase would make the
    detection latency an artefact of it; over seeds it is uniform). On the wall
    clock the store is verified at every commit, as enhanced integrity monitoring's
    every_operation does (a full check every 300 s would make the drill wait)."""
    eng = drill.engine
    offset = 0.0
    if eng.runtime is not None and eng.runtime.capabilities.simulated:
        seed = int(eng.state.settings.get("sim_seed", 0))
        offset = random.Random(seed * 7919 + 1).uniform(0.0, DataIntegrityDetector.EVERY_S)
    if live and not isinstance(eng.state.settings.get("monitoring.integrity"), dict):
        eng.set_setting(
            "monitoring.integrity",
            {
                "validation_frequency": "every_operation",
                "checkpoint_interval_s": eng.checkpoint_interval(),
                "since": round(eng.clock.now(), 3),
                "until": None,
                "by": "drill",
            },
            actor="drill",
        )
    return offset


KIND = IncidentKind(
    name=NAME,
    detector=DataIntegrityDetector,
    playbook=data_integrity,
    criterion="data_recovered",
    gate=data_recovered,
    window=window,
    drill=DrillSpec(inject, confirm, on_real_processes=True, prepare=prepare),
)
