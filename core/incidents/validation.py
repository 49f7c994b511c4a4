"""Validation gates: the measured proof that a recovery worked.

A gate follows a plan step (the step stays ``executing`` until its gate passes). It
polls the state and telemetry in simulated time and answers wait, pass or fail. On
pass it emits the scenario's completion event (EMERGENCY_RESPONSE_COMPLETED,
RECOVERY_VALIDATION_COMPLETED, OPTIMIZATION_COMPLETED, DATA_RECOVERY_COMPLETED,
NETWORK_RECOVERY_COMPLETED) with every figure measured: recovery_time is detection
to validation in simulated time, workflows_recovered is counted, shares are ratios.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..models import AgentStatus, TaskStatus, WorkflowStatus

if TYPE_CHECKING:
    from ..engine import Engine

GATE_TIMEOUT_S = 2 * 3600.0


@dataclass
class GateCtx:
    engine: Engine
    plan: dict[str, Any]
    incident: dict[str, Any]
    started_at: float
    memo: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = GATE_TIMEOUT_S
    """How long the gate may wait for its condition before it fails."""

    @property
    def now(self) -> float:
        return self.engine.clock.now()


Verdict = tuple[str, dict[str, Any]]
"""("wait" | "pass" | "fail", details)."""

Gate = Callable[[GateCtx], Awaitable[Verdict]]
GATES: dict[str, Gate] = {}


def gate(name: str) -> Callable[[Gate], Gate]:
    def deco(fn: Gate) -> Gate:
        GATES[name] = fn
        return fn

    return deco


CRITERIA: dict[str, str] = {
    "resource-exhaustion": "utilisation_safe",
    "agent-cascade": "cascade_recovered",
    "performance-degradation": "performance_recovered",
    "data-integrity": "data_recovered",
    "network-partition": "network_recovered",
}
"""The success criterion of each kind of incident. It is fixed when the incident
opens and belongs to the incident, not to its plan: a plan edited down to analyses
keeps it, and a plan whose steps cannot meet it ends not validated."""


def validation_window(engine: Engine, scenario: str) -> float:
    """How long, once every step of a plan has run, the incident's criterion may
    take to hold before the plan counts as failed. Basis: what a working recovery
    needs after its last action (the hold period and a few samples for utilisation;
    a few heartbeats for agents to report; a settle period plus fresh tasks for
    efficiency; one verification for integrity)."""
    c = engine.config
    iv, th = c.intervals, c.thresholds
    return {
        "resource-exhaustion": th.stable_hold_s + 20 * iv.sample_s,
        "agent-cascade": 10 * iv.heartbeat_s,
        "performance-degradation": 3600.0,
        "data-integrity": 10 * iv.sample_s,
        "network-partition": 10 * iv.heartbeat_s,
    }[scenario]


def _pct(x: float) -> str:
    return f"{round(x)}_percent"


def _dur(seconds: float) -> str:
    return f"{round(seconds / 60.0)}m" if seconds >= 60 else f"{round(seconds)}s"


def workflows_recovered(engine: Engine, inc: dict[str, Any]) -> list[str]:
    """Affected workflows now running or completed that progressed since detection."""
    s = engine.state
    before = inc.get("evidence", {}).get("progress_at_detection", {})
    out = []
    for w in inc.get("affected_workflows", []):
        wf = s.any_workflow(w)
        if wf is None or wf.status not in (WorkflowStatus.RUNNING, WorkflowStatus.COMPLETED):
            continue
        if wf.status is WorkflowStatus.COMPLETED or s.workflow_progress(w) > float(before.get(w, 0.0)) + 1e-9:
            out.append(w)
    return out


def stalled_workflows(engine: Engine, inc: dict[str, Any], workflows: list[str]) -> list[str]:
    """Of ``workflows``, those neither completed nor further along than at detection."""
    s = engine.state
    before = inc.get("evidence", {}).get("progress_at_detection", {})
    out = []
    for w in workflows:
        wf = s.any_workflow(w)
        if wf is None:
            continue
        if wf.status is WorkflowStatus.COMPLETED:
            continue
        if wf.status is not WorkflowStatus.RUNNING or s.workflow_progress(w) <= float(before.get(w, 0.0)) + 1e-9:
            out.append(w)
    return out


async def dependency_violations(engine: Engine) -> list[str]:
    """Tasks started before a dependency finished; workflows started before theirs
    (finished workflows' tasks read back from the archive)."""
    s = engine.state
    bad = []
    tasks = {t.id: t for t in await engine.tasks_with_archive()}
    for t in tasks.values():
        if t.started_at is None or t.attempts == 0:
            continue
        for d in t.depends_on:
            dt = tasks[d]
            if dt.status is not TaskStatus.COMPLETED or (
                dt.finished_at is not None and dt.finished_at > t.started_at + 1e-9
            ):
                bad.append(f"task {t.id} started before {d} completed")
    for w in s.all_workflows():
        if w.started_at is None:
            continue
        for d in w.depends_on:
            dw = s.any_workflow(d)
            if dw is None or dw.finished_at is None or dw.finished_at > w.started_at + 1e-9:
                bad.append(f"workflow {w.id} started before {d} completed")
    return bad


@gate("utilisation_safe")
async def utilisation_safe(ctx: GateCtx) -> Verdict:
    """CPU, memory and agent slots all under the safe threshold, held for the stable-hold time."""
    eng = ctx.engine
    th = eng.config.thresholds
    u = eng.utilisation()
    ok = all(u[r] < th.safe for r in ("cpu", "memory", "agents"))
    if not ok:
        ctx.memo.pop("since", None)
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {"reason": f"utilisation {u} did not fall under {th.safe}% within {ctx.timeout_s:g}s"}
        return "wait", {"utilisation": u}
    since = ctx.memo.setdefault("since", ctx.now)
    if ctx.now - since < th.stable_hold_s:
        return "wait", {"utilisation": u, "held_s": ctx.now - since}
    # The workflows the incident must protect (CRITICAL ones running at detection)
    # keep making progress: a recovery that starves them is no recovery.
    stalled = stalled_workflows(eng, ctx.incident, ctx.incident.get("evidence", {}).get("protected", []))
    if stalled:
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {"reason": f"protected workflow(s) {', '.join(stalled)} made no progress since detection"}
        return "wait", {"utilisation": u, "stalled": stalled}
    rec = workflows_recovered(eng, ctx.incident)
    took = ctx.now - float(ctx.incident["detected_at"])
    eng.emit(
        "EMERGENCY_RESPONSE_COMPLETED",
        "system",
        "validation",
        {
            "recovery_time": _dur(took),
            "resource_stabilization": "achieved",
            "workflows_recovered": len(rec),
            "system_health": "stable",
            "incident_id": ctx.incident["id"],
            "recovery_time_s": round(took, 1),
            "utilisation": u,
            "held_under_safe_s": round(ctx.now - since, 1),
            "recovered": rec,
        },
        actor=f"plan:{ctx.plan['id']}",
    )
    return "pass", {"recovery_time_s": round(took, 1), "workflows_recovered": rec, "utilisation": u}


@gate("resumption_done")
async def resumption_done(ctx: GateCtx) -> Verdict:
    """The staged resumption this step created has applied every stage."""
    res = (ctx.memo.get("response") or {}).get("result") or {}
    rid = res.get("resumption")
    r = ctx.engine.state.resumptions.get(rid) if rid else None
    if r is None:
        return "fail", {"reason": "the step created no staged resumption"}
    if r["status"] == "completed":
        return "pass", {
            "resumption": rid,
            "stages_applied": len(r.get("applied", [])),
            "took_s": round(ctx.now - ctx.started_at, 1),
            "applied_at": [a["at"] for a in r.get("applied", [])],
        }
    if r["status"] != "active":
        return "fail", {"reason": f"staged resumption {rid} {r['status']}: {r.get('reason')}"}
    if ctx.now - ctx.started_at > ctx.timeout_s:
        return "fail", {
            "reason": f"staged resumption {rid} still at step {r.get('next_step')} after {ctx.timeout_s:g}s"
        }
    return "wait", {"resumption": rid, "next_step": r.get("next_step")}


@gate("cascade_recovered")
async def cascade_recovered(ctx: GateCtx) -> Verdict:
    """The failed agents' work runs again on replacements and no task was lost."""
    eng = ctx.engine
    s = eng.state
    inc = ctx.incident
    ev = inc.get("evidence", {})
    failed: list[str] = ev.get("failed_agents", [])
    at_failure: dict[str, float] = ev.get("progress_at_failure", {})
    # Replacements matched by specialization: as many live agents able to do the
    # failed agents' work as before the failures (in whichever pool they were added).
    short = {}
    for spec, size in ev.get("specialization_live_before", {}).items():
        need = set(spec.split(","))
        live = sum(
            1
            for a in s.agents.values()
            if need <= set(a.specializations) and a.status in (AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED)
        )
        if live < size:
            short[spec] = size - live
    resumed = []
    carried = []
    for key, prog in at_failure.items():
        t = s.tasks.get(key)
        if t is None:
            continue
        if t.status is TaskStatus.RUNNING and t.agent not in failed:
            # First seen on a new agent: where it restarted from (the transferred context).
            start_at = ctx.memo.setdefault("restart_progress", {}).setdefault(key, t.context.progress)
            if t.context.progress > start_at + 1e-9:  # and it has reported progress since
                resumed.append(key)
        elif t.status is TaskStatus.COMPLETED:
            start_at = ctx.memo.setdefault("restart_progress", {}).get(key, prog)
            resumed.append(key)
        else:
            continue
        if key in resumed and start_at + 1e-9 >= prog:
            carried.append(key)
    if short or len(resumed) < len(at_failure):
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {
                "reason": "replacements or resumptions missing",
                "specializations_short": short,
                "resumed": resumed,
            }
        return "wait", {"specializations_short": short, "resumed": len(resumed), "of": len(at_failure)}
    violations = await dependency_violations(eng)
    rec = workflows_recovered(eng, inc)
    share = 100.0 * len(carried) / len(at_failure) if at_failure else 100.0
    took = ctx.now - float(inc["detected_at"])
    eng.emit(
        "RECOVERY_VALIDATION_COMPLETED",
        "coordination",
        "success",
        {
            "workflows_recovered": len(rec),
            "dependency_integrity": "maintained" if not violations else "violated",
            "context_transfer": _pct(share),
            "recovery_time": _dur(took),
            "incident_id": inc["id"],
            "recovery_time_s": round(took, 1),
            "recovered": rec,
            "tasks_resumed": len(resumed),
        },
        actor=f"plan:{ctx.plan['id']}",
    )
    if violations:
        return "fail", {"reason": "dependency integrity violated", "violations": violations[:10]}
    _learn_from_cascade(ctx, failed)
    return "pass", {
        "recovery_time_s": round(took, 1),
        "workflows_recovered": rec,
        "context_transfer_pct": round(share, 1),
    }


def _learn_from_cascade(ctx: GateCtx, failed: list[str]) -> None:
    """Raise each hit pool's minimum by the number of agents it lost (capped at its
    maximum) and back off an agent that failed more than once."""
    eng = ctx.engine
    s = eng.state
    lost: dict[str, int] = {}
    for a in failed:
        if a in s.agents:
            lost[s.agents[a].pool] = lost.get(s.agents[a].pool, 0) + 1
    who = f"plan:{ctx.plan['id']}"
    for pool, n in sorted(lost.items()):
        p = s.pools[pool]
        new_min = min(p.max_size, p.min_size + n)
        if new_min != p.min_size:
            eng.emit(
                "POOL_RESIZED",
                "resource",
                "agents",
                {"pool": pool, "min_size": new_min, "reason": "post_failure_learning"},
                actor=who,
            )
        eng.emit(
            "LEARNING_RECORDED",
            "incidents",
            "learning",
            {
                "source": "incident",
                "incident_id": ctx.incident["id"],
                "lessons": [
                    f"{n} agent(s) of pool {pool} failed within {eng.config.supervision.window_s:g}s: minimum raised to {new_min}"
                ],
                "policy": {f"pool.{pool}.min_size": new_min},
            },
            actor=who,
        )
    for a in failed:
        ag = s.agents.get(a)
        if ag is not None and ag.failures >= 2:
            until = eng.clock.now() + eng.config.retries.backoff_s * eng.config.retries.backoff_factor**ag.failures * 60
            eng.emit("AGENT_BACKOFF", "resource", "agents", {"agent": a, "until": until}, actor=who)
            eng.emit(
                "LEARNING_RECORDED",
                "incidents",
                "learning",
                {
                    "source": "incident",
                    "incident_id": ctx.incident["id"],
                    "lessons": [f"{a} failed {ag.failures} times: backed off"],
                    "policy": {f"agent.{a}.backoff_until": until},
                },
                actor=who,
            )


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


async def fresh_efficiency(engine: Engine, since: float, until: float | None = None) -> list[float]:
    """Planned / actual duration of tasks that ran start to end on one agent (never
    interrupted, so the figure is not flattered by carried-over progress)."""
    out = []
    for t in await engine.tasks_with_archive(finished_since=since):
        if (
            t.status is TaskStatus.COMPLETED
            and t.attempts == 1
            and t.started_at is not None
            and t.finished_at is not None
            and t.started_at >= since
            and (until is None or t.finished_at <= until)
        ):
            took = t.finished_at - t.started_at
            if took > 0 and t.duration_s > 0:
                out.append(min(t.duration_s / took, 1.5))
    return out


async def pace_now(engine: Engine, since: float) -> list[float]:
    """Planned / actual pace of every task started since ``since`` that ran on one
    agent: finished ones by their duration, running ones by their progress so far
    (so slow agents count before they finish, and early finishers do not flatter it)."""
    out = await fresh_efficiency(engine, since)
    now = engine.clock.now()
    hb = engine.config.intervals.heartbeat_s
    for a in engine.state.agents.values():
        if a.status is AgentStatus.BUSY and a.current_task:
            t = engine.state.tasks[a.current_task]
            heard = a.last_heartbeat if a.last_heartbeat is not None else now  # progress is as of the last report
            if (
                t.attempts == 1
                and t.started_at is not None
                and t.started_at >= since
                and heard - t.started_at > 2 * hb
                and t.duration_s > 0
            ):
                planned = (heard - t.started_at) / t.duration_s
                out.append(min(t.context.progress / planned, 1.5))
    return out


@gate("performance_recovered")
async def performance_recovered(ctx: GateCtx) -> Verdict:
    """Efficiency after the optimisation is back to the pre-incident baseline (within
    the configured degradation trigger) and better than while degraded."""
    eng = ctx.engine
    inc = ctx.incident
    settle = 600.0
    if ctx.now - ctx.started_at < settle:
        return "wait", {"settling_s": ctx.now - ctx.started_at}
    det = float(inc["detected_at"])
    window = float(inc.get("evidence", {}).get("trends", {}).get("efficiency", {}).get("span_s", 1800.0))
    onset = float(inc.get("fault_at") if inc.get("fault_at") is not None else det - window)
    baseline = await fresh_efficiency(eng, onset - window, onset)
    after = await pace_now(eng, ctx.started_at)
    if len(after) < 3 or not baseline:
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {
                "reason": f"too few uninterrupted tasks to measure ({len(baseline)} before, {len(after)} after)"
            }
        return "wait", {"samples": len(after)}
    b, a = _mean(baseline), _mean(after)
    d = float(inc.get("evidence", {}).get("efficiency_at_detection") or b)  # the task efficiency series at detection
    tolerance = eng.config.performance.degradation_trigger_pct
    vs_baseline = 100.0 * (a - b) / b
    improvement = 100.0 * (a - d) / d if d > 0 else 0.0
    if vs_baseline < -tolerance:
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {
                "reason": f"efficiency {a:.3f} is not back to the pre-incident {b:.3f} (within {tolerance:g}%); "
                f"at detection it was {d:.3f}"
            }
        return "wait", {"efficiency": a, "baseline": b, "degraded": d}
    from .trend import mann_kendall

    r = mann_kendall(after) if len(after) >= 4 else None
    stable = r is None or not (r.significant() and r.direction == "decreasing")
    took = ctx.now - ctx.started_at
    rec = round(ctx.now - det, 1)
    eng.emit(
        "OPTIMIZATION_COMPLETED",
        "performance",
        "validation",
        {
            "improvement_achieved": _pct(improvement),
            "optimization_time": _dur(ctx.now - float(ctx.plan.get("created_at", det))),
            "stability": "confirmed" if stable else "unconfirmed",
            "regression_risk": "minimal" if stable else "elevated",
            "incident_id": inc["id"],
            "efficiency_baseline": round(b, 4),
            "efficiency_degraded": round(d, 4),
            "efficiency_after": round(a, 4),
            "vs_pre_incident_pct": round(vs_baseline, 2),
            "tasks_before": len(baseline),
            "tasks_after": len(after),
            "recovery_time_s": rec,
            "validation_window_s": round(took, 1),
        },
        actor=f"plan:{ctx.plan['id']}",
    )
    return "pass", {
        "improvement_pct": round(improvement, 2),
        "vs_pre_incident_pct": round(vs_baseline, 2),
        "recovery_time_s": rec,
        "efficiency_before": round(b, 4),
        "efficiency_degraded": round(d, 4),
        "efficiency_after": round(a, 4),
    }


@gate("data_recovered")
async def data_recovered(ctx: GateCtx) -> Verdict:
    """The live projection equals a restart from a replay-verified checkpoint plus the
    log; then a fresh checkpoint of the recovered state becomes the restart point and
    checkpoints that captured the corrupted state are quarantined."""
    from ..verify import verify_store
    from .integrity import consistency

    eng = ctx.engine
    inc = ctx.incident
    who = f"plan:{ctx.plan['id']}"
    if eng.store is None:
        return "fail", {"reason": "no store to verify against"}
    rep = await verify_store(eng.store, replay_checkpoints=True)
    cons = await consistency(eng, trusted=set(rep.checkpoints_ok))
    if cons["differs_in"]:
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {
                "reason": "the projection still differs from a replay of the log",
                "diffs": cons.get("diffs", [])[:10],
            }
        return "wait", {"differs_in": cons["differs_in"]}
    restart = await eng.checkpoint(kind="emergency", label=f"recovered {inc['id']}", actor=who)
    rep = await verify_store(eng.store, replay_checkpoints=True)
    if restart not in rep.checkpoints_ok:
        return "fail", {"reason": f"the post-recovery checkpoint {restart} does not verify"}
    known = {int(c) for c in inc.get("evidence", {}).get("bad_checkpoints", [])}
    quarantined = sorted(c for c in rep.checkpoints_bad if c not in known)
    for w in inc.get("affected_workflows", []):
        wf = eng.state.workflows.get(w)
        if wf is not None and wf.frozen:
            eng.freeze(w, False, actor=who)
    segments = [
        {**sg, "resolution": "recovered_from_log"} if sg.get("resolution") == "replay_from_log" else sg
        for sg in inc.get("evidence", {}).get("segments", [])
    ]
    segments += [{"checkpoint": int(c), "resolution": "quarantined"} for c in sorted(known | set(quarantined))]
    lost = [sg for sg in segments if sg.get("resolution") == "lost"]
    total = max(len(segments), 1)
    took = ctx.now - float(inc["detected_at"])
    eng.emit(
        "DATA_RECOVERY_COMPLETED",
        "coordination",
        "validation",
        {
            "recovery_success": "complete" if not lost else "partial",
            "data_integrity": "verified",
            "corrupted_segments": "recovered" if not lost else f"{len(lost)}_lost",
            "validation_passed": _pct(100.0 * (total - len(lost)) / total),
            "incident_id": inc["id"],
            "segments": segments,
            "lost": lost,
            "recovery_time_s": round(took, 1),
            "restart_checkpoint": restart,
            "quarantined_checkpoints": quarantined,
            "events_verified": rep.events,
        },
        actor=who,
    )
    return "pass", {
        "recovery_time_s": round(took, 1),
        "segments": segments,
        "quarantined_checkpoints": quarantined,
        "restart_checkpoint": restart,
    }


@gate("network_recovered")
async def network_recovered(ctx: GateCtx) -> Verdict:
    """Every cut-off agent reconnected (or was retired); the work it held when the
    incident opened was moved to reachable agents or kept running under the protocol
    in force, and is now done or running on a reachable agent; every buffered report
    of the cut-off agents was applied exactly once and no task completed twice."""
    eng = ctx.engine
    s = eng.state
    inc = ctx.incident
    ev = inc.get("evidence", {})
    cut = ev.get("unreachable", [])
    tap = ctx.memo.get("tap")
    if tap is None:
        return "fail", {"reason": "no event tap to check the exactly-once merge"}
    marks = ev.get("agent_marks", {})
    held = {a: marks[a][0] for a in cut if a in marks and marks[a][0]}
    proto = s.settings.get("monitoring.distributed_protocols")
    kept = isinstance(proto, dict) and bool(proto.get("keep_tasks_on_unreachable"))
    unhandled = sorted(t for a, t in held.items() if t not in tap.moved_from.get(a, []) and not kept)
    still = [a for a in cut if s.agents.get(a) is not None and s.agents[a].status is AgentStatus.UNREACHABLE]
    stranded = []
    for t in held.values():
        task = s.tasks.get(t)
        if task is None or task.status is TaskStatus.COMPLETED or task.status is TaskStatus.PENDING:
            continue
        ag = s.agents.get(task.agent or "")
        if ag is None or ag.status is AgentStatus.UNREACHABLE:
            stranded.append(t)
    if unhandled or still or stranded:
        if ctx.now - ctx.started_at > ctx.timeout_s:
            reason = "; ".join(
                x
                for x in (
                    f"{len(still)} agent(s) still unreachable" if still else "",
                    f"work of cut-off agents neither moved nor kept under a protocol: {', '.join(unhandled)}"
                    if unhandled
                    else "",
                    f"task(s) still on unreachable agents: {', '.join(sorted(stranded))}" if stranded else "",
                )
                if x
            )
            return "fail", {"reason": reason, "agents": still, "unhandled": unhandled, "stranded": stranded}
        return "wait", {"unreachable": still, "unhandled": unhandled, "stranded": stranded}
    from .merge import partition_report

    rep = partition_report(eng, inc, tap)
    det = float(inc["detected_at"])
    twice = sorted(t for t in held.values() if sum(1 for ts in tap.completions.get(t, []) if ts >= det) > 1)
    short = {
        a: {
            "buffered": tap.buffered_by.get(a, 0),
            "dropped": tap.dropped_by.get(a, 0),
            "applied": sum(1 for (ag, _), _c in tap.applied.items() if ag == a),
        }
        for a in cut
    }
    missing = {a: v for a, v in short.items() if v["applied"] != v["buffered"] - v["dropped"]}
    if rep["duplicates_applied"] or twice or missing:
        return "fail", {
            "reason": "the merge was not exactly once",
            "applied_twice": rep["duplicates_applied"],
            "completed_twice": twice,
            "not_applied": missing,
        }
    took = ctx.now - det
    live = [a for a in s.agents.values() if a.status in (AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED)]
    merged = [m for m in tap.merged if m.get("agent") in cut]
    resolutions: dict[str, int] = {}
    for m in merged:
        for r in m.get("tasks", {}).values():
            resolutions[r["resolution"]] = resolutions.get(r["resolution"], 0) + 1
    hb = eng.config.intervals.heartbeat_s
    heard = [
        a for a in cut if ctx.now - eng.telemetry.liveness.get(a, float("-inf")) <= hb
    ]  # reported within a heartbeat
    eng.emit(
        "NETWORK_RECOVERY_COMPLETED",
        "network",
        "restoration",
        {
            "recovery_time": _dur(took),
            "connectivity_restored": _pct(100.0 * len(heard) / max(len(cut), 1)),
            "performance_impact": rep["performance_impact"],
            "redundancy_established": "kept_on_isolated_agents" if kept else "moved_to_reachable_agents",
            "functionality_preserved": _pct(rep["functionality_preserved_pct"]),
            "incident_id": inc["id"],
            "recovery_time_s": round(took, 1),
            "buffered_applied": rep["buffered_applied"],
            "duplicates_dropped": rep["duplicates_dropped"],
            "tasks_moved": sum(len([t for t in tap.moved_from.get(a, []) if t == held.get(a)]) for a in cut),
            "merge_resolutions": resolutions,
            "live_agents": len(live),
        },
        actor=f"plan:{ctx.plan['id']}",
    )
    return "pass", {"recovery_time_s": round(took, 1), "merge_resolutions": resolutions, "kept_isolated": kept, **rep}
