"""Network partition: a subset of agents unreachable while the rest keep reporting;
the plan moves the cut-off agents' work to reachable agents and merges their
buffered reports on reconnection; the criterion is the work done or running on
reachable agents and an exactly-once merge. The drill cuts agents off and heals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...engine.liveness import protocol_keeps_tasks
from ...event_types import (
    COMMUNICATION_FAILURE,
    NETWORK_RECOVERY_COMPLETED,
    RESILIENT_COORDINATION_ACTIVATED,
    TASK_REASSIGNED,
)
from ...models import AgentStatus, TaskStatus
from ..catalogue import DrillSpec, IncidentKind, RunningDrill
from ..detectors import Detector, Finding, standing_reassignment
from ..faultcheck import agent_cut_off
from ..merge import PartitionEvidence, agent_marks, partition_report
from ..playbooks import PlanDraft, StepDraft, cmd, estimate, plan_duration
from ..record import Credit, no_acting_step
from ..validation import GateCtx, Verdict, duration_text, live_or_archived_task, not_judged_basis, percent_text

if TYPE_CHECKING:
    from ...engine import Engine

NAME = "network-partition"


class PartitionDetector(Detector):
    """A subset of agents unreachable while the rest keep reporting: a partition,
    not a dead hub (if nobody reports, nothing is learned about the network)."""

    scenario = "network-partition"
    MIN_AGENTS = 2

    def subject(self, f: Finding) -> tuple[str, ...]:
        """The agents cut off."""
        return tuple(sorted(f.data.get("affected_agents", [])))

    def check(self, now: float) -> Finding | None:
        s = self.engine.state
        live = [
            a
            for a in s.agents.values()
            if a.status in (AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED, AgentStatus.UNREACHABLE)
        ]
        cut = sorted(a.id for a in live if a.status is AgentStatus.UNREACHABLE)
        if len(cut) < self.MIN_AGENTS:
            return None
        limit = self.engine.config.intervals.heartbeat_s * (self.engine.config.intervals.missed_heartbeats + 0.5)
        reporting = [
            a.id
            for a in live
            if a.status is not AgentStatus.UNREACHABLE
            and now - self.engine.telemetry.liveness.get(a.id, -1e18) <= limit
        ]
        if not reporting:
            return None
        holding = [t for a in cut if (t := s.agents[a].current_task)]
        wfs = sorted({s.tasks[t].workflow for t in holding if t in s.tasks})
        on_path = [t for t in holding if t in s.critical_path(s.tasks[t].workflow)]
        share = len(cut) / len(live)
        data = {
            "failure_type": "partial_network_partition",
            "affected_agents": cut,
            "coordination_impact": "severe" if on_path or share >= 0.2 else "moderate",
            # What will act without a plan: the engine's standing reassignment, if on.
            "auto_recovery": "standing_reassignment" if standing_reassignment(self.engine) else "awaiting_plan",
        }
        evidence = {
            "unreachable": cut,
            "reporting": len(reporting),
            "live": len(live),
            "tasks_held": holding,
            "critical_path_tasks": on_path,
        }
        onset = min((self.engine.telemetry.liveness.get(a, now) for a in cut), default=now)
        return Finding(
            self.scenario, COMMUNICATION_FAILURE, "network", "agent_coordination", "high", data, evidence, wfs, onset
        )


def network_partition(engine: Engine, finding: Finding) -> PlanDraft:
    s = engine.state
    cut = finding.data["affected_agents"]
    live = [a for a in s.agents.values() if a.status not in (AgentStatus.FAILED, AgentStatus.RETIRED)]
    working = [a for a in live if a.current_task]
    # Measured so far: agents with work that are still heard from. The cut-off ones
    # keep working and buffer their reports; what they did is counted on reconnection
    # (NETWORK_RECOVERY_COMPLETED reports the final share).
    heard = [a for a in working if a.id not in cut]
    preserved = round(100.0 * len(heard) / max(len(working), 1))
    held = [s.agents[a].current_task for a in cut if a in s.agents and s.agents[a].current_task]
    iv = engine.config.intervals
    reassign_after = iv.heartbeat_s * iv.missed_heartbeats
    part_est, part_basis = estimate(
        engine,
        "network-partition",
        iv.heartbeat_s * 10,
        "ten heartbeats; the work moves at once, validation waits for the agents to reconnect",
    )
    steps = [
        StepDraft(
            cmd(
                "coordination-hub",
                "network-failure-analysis",
                {
                    "failure_scope": "partial_partition",
                    "affected_components": ["agent_communication", "event_distribution", "state_synchronization"],
                    "adaptation_strategy": "resilient_coordination",
                },
            ),
            "network failure analysis",
        ),
        StepDraft(
            cmd(
                "subagents",
                "",
                {"phase": "network_recovery", "coordination": "resilient_distributed", "failure_tolerance": "high"},
                [
                    {
                        "command": "/debug",
                        "scope": "network_connectivity_analysis",
                        "analysis": "network_topology_diagnosis",
                        "focus": ["partition_identification", "connectivity_assessment", "bandwidth_analysis"],
                    },
                    {
                        "command": "/coordination-hub",
                        "operation": "communication-redundancy-activation",
                        "scope": "alternative_channels",
                        "focus": ["backup_communication", "mesh_networking", "fault_tolerance"],
                    },
                    {
                        "command": "/resource-manager",
                        "operation": "agent-reallocation",
                        "scope": "network_aware_distribution",
                        "focus": ["connectivity_optimization", "latency_minimization"],
                    },
                ],
                flags=("network-resilient",),
            ),
            "parallel network analysis",
        ),
        StepDraft(
            cmd(
                "coordination-hub",
                "activate-distributed-protocols",
                {
                    "protocol_mode": "network_resilient",
                    "communication_strategy": "multi_path_redundant",
                    "coordination_adaptations": [
                        {
                            "adaptation": "event_caching_and_replay",
                            "scope": "network_partition_tolerance",
                            "reliability": "guaranteed_delivery",
                        },
                        {
                            "adaptation": "state_synchronization_enhancement",
                            "scope": "eventual_consistency",
                            "mechanism": "conflict_free_replication",
                        },
                    ],
                },
            ),
            f"move the {len(held)} task(s) of the cut-off agents to reachable agents, with their context",
        ),
        StepDraft(
            cmd(
                "coordination-hub",
                "communication-redundancy-activation",
                {
                    "scope": "alternative_channels",
                    "focus": ["backup_communication", "fault_tolerance"],
                    "reassign_after": reassign_after,
                    "replace_unreachable": True,
                },
            ),
            "standing reassignment; a replacement agent per cut-off agent; merge their buffered work on reconnection",
            gate="network_recovered",
        ),
        StepDraft(
            cmd(
                "performance-monitor",
                "network-resilience-monitoring",
                {
                    "monitoring_scope": "network_health_prediction",
                    "prediction_horizon": "30m",
                    "failure_prediction": "enabled",
                    "auto_adaptation": "immediate",
                },
            ),
            "network resilience monitoring",
        ),
    ]
    return PlanDraft(
        title=f"Resilient coordination while {len(cut)} agents are cut off",
        strategy="mesh_communication_with_redundancy",
        steps=steps,
        expected={"unreachable": cut, "working_share_at_detection": preserved},
        announce=(
            RESILIENT_COORDINATION_ACTIVATED,
            "network",
            "adaptation",
            {
                "strategy": "mesh_communication_with_redundancy",
                "estimated_recovery": plan_duration(part_est),
                "estimate_basis": part_basis,
                "functionality_preserved": f"{preserved}_percent",
            },
        ),
    )


async def network_recovered(ctx: GateCtx) -> Verdict:
    """Every cut-off agent reconnected (or was retired); no task it held when the
    incident opened is left on an unreachable agent; every buffered report of the
    cut-off agents was applied exactly once and no task completed twice. Whether the
    plan moved that work to reachable agents before the heal is its credit, not this.

    While an agent is still cut off, its held work neither moved nor kept under a
    protocol is named (the reason given if the gate times out)."""
    eng = ctx.engine
    s = eng.state
    inc = ctx.incident
    ev = inc.evidence.of(PartitionEvidence)
    cut = ev.unreachable
    tap = ctx.memo.get("tap")
    if tap is None:
        return "fail", {"reason": "no event tap to check the exactly-once merge"}
    marks = ev.agent_marks
    held = {a: marks[a][0] for a in cut if a in marks and marks[a][0]}
    kept = protocol_keeps_tasks(s)
    still = [a for a in cut if s.agents.get(a) is not None and s.agents[a].status is AgentStatus.UNREACHABLE]
    # Work to move or keep while the partition holds; once every cut-off agent is back
    # (or retired) the held work is theirs again and the credit judges what the plan did.
    unhandled = sorted(t for a, t in held.items() if t not in tap.moved_from.get(a, []) and not kept) if still else []
    stranded = []
    for t in held.values():
        task = s.tasks.get(t)
        if task is None or task.status is TaskStatus.COMPLETED or task.status is TaskStatus.PENDING:
            continue
        ag = s.agents.get(task.agent or "")
        if ag is None or ag.status is AgentStatus.UNREACHABLE:
            stranded.append(t)
    if still:
        await _note_restored_before_heal(ctx, list(held.values()), cut)
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

    rep = partition_report(eng, inc, tap)
    det = float(inc.detected_at)
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
    credit = moved_credit(ctx, held, kept)
    if not credit.credited:
        return "pass", {"credited": False, "credit": credit.as_dict(), "kept_isolated": kept}
    # The recovery is the work restored on reachable agents, not the heal (the fault's end).
    took = float(ctx.memo["restored_at"]) - ctx.recovery_started()
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
        NETWORK_RECOVERY_COMPLETED,
        "network",
        "restoration",
        {
            "recovery_time": duration_text(took),
            "connectivity_restored": percent_text(100.0 * len(heard) / max(len(cut), 1)),
            "performance_impact": rep["performance_impact"],
            "redundancy_established": "kept_on_isolated_agents" if kept else "moved_to_reachable_agents",
            "functionality_preserved": percent_text(rep["functionality_preserved_pct"]),
            "incident_id": inc.id,
            "recovery_time_s": round(took, 1),
            "buffered_applied": rep["buffered_applied"],
            "duplicates_dropped": rep["duplicates_dropped"],
            "tasks_moved": sum(len([t for t in tap.moved_from.get(a, []) if t == held.get(a)]) for a in cut),
            "merge_resolutions": resolutions,
            "live_agents": len(live),
            "recovery_time_basis": "first acting step of the plan to every held task running or done on a "
            "reachable agent (before the heal)",
            "connectivity_restored_after_s": round(ctx.now - det, 1),
        },
        actor=f"plan:{ctx.plan.id}",
    )
    return "pass", {
        "recovery_time_s": round(took, 1),
        "merge_resolutions": resolutions,
        "kept_isolated": kept,
        "credited": True,
        "credit": credit.as_dict(),
        **rep,
    }


async def _note_restored_before_heal(ctx: GateCtx, held: list[str], cut: list[str]) -> None:
    """While the partition holds: which held tasks run (progressing) or are done on
    a reachable agent, and when all of them first were. A task whose workflow ended
    without running it there (read back from the archive) is not judged: neither run
    nor late, and the credit says why."""
    s = ctx.engine.state
    done: set[str] = ctx.memo.setdefault("before_heal", set())
    not_judged: dict[str, str] = ctx.memo.setdefault("not_judged", {})
    for t in held:
        found = await live_or_archived_task(ctx, t)
        if isinstance(found, str):
            not_judged.setdefault(t, found)
            continue
        task, ended = found
        if task.status is TaskStatus.COMPLETED:
            done.add(t)
        elif task.status is TaskStatus.RUNNING and task.agent not in cut and ended is None:
            ag = s.agents.get(task.agent or "")
            if ag is not None and ag.status is not AgentStatus.UNREACHABLE:
                done.add(t)
        if ended is not None and t not in done:
            not_judged.setdefault(t, f"workflow {task.workflow} {ended.value} before validation")
    judged = set(held) - set(not_judged)
    if judged and judged <= done:
        ctx.memo.setdefault("restored_at", ctx.now)


def moved_credit(ctx: GateCtx, held: dict[str, str], kept: bool) -> Credit:
    """The plan moved every task the cut-off agents held to reachable agents, and each
    ran or finished there before the heal. Work that came back only with the heal
    (kept on the isolated agents, or moved by the engine's standing policy rather
    than the plan) recovered without the plan. Held tasks whose workflow ended without
    running them count neither way and are named; if all are, the credit is not judged."""
    none = no_acting_step(ctx.record)
    if none is not None:
        return none
    moved = {e.data.get("task") for e in ctx.record.caused(TASK_REASSIGNED)}
    not_judged: dict[str, str] = ctx.memo.get("not_judged", {})
    tasks = sorted(t for t in held.values() if t not in not_judged)
    not_moved = [t for t in tasks if t not in moved]
    late = [t for t in tasks if t not in ctx.memo.get("before_heal", set())]
    figures: dict[str, Any] = {
        "held": sorted(held.values()),
        "moved_by_plan": sorted(t for t in held.values() if t in moved),
        "not_restored_before_heal": late,
    }
    unjudged = ""
    if not_judged:
        figures["not_judged"] = dict(sorted(not_judged.items()))
        unjudged = "; " + not_judged_basis(not_judged, "held task")
    if kept:
        return Credit(
            False,
            "the work was kept on the isolated agents: the heal, not the plan, brought it back" + unjudged,
            figures,
        )
    if not tasks:
        if not_judged:
            return Credit(False, unjudged.removeprefix("; "), figures)
        return Credit(False, "the cut-off agents held no work: the heal alone restored them", figures)
    if not_moved:
        return Credit(False, f"task(s) {', '.join(not_moved)} were not moved by the plan" + unjudged, figures)
    if late or "restored_at" not in ctx.memo:
        return Credit(
            False, f"task(s) {', '.join(late)} did not run on a reachable agent before the heal" + unjudged, figures
        )
    return Credit(
        True,
        f"the plan moved {len(tasks)} held task(s), all running or done on reachable agents before the heal" + unjudged,
        figures,
    )


def evidence(engine: Engine, finding: Finding) -> dict[str, Any]:
    """Each agent's task and applied sequence at detection (the merge's reference)."""
    return {"agent_marks": agent_marks(engine)}


def window(engine: Engine) -> float:
    """A few heartbeats for the agents to reconnect and report."""
    return 10 * engine.config.intervals.heartbeat_s


async def inject(drill: RunningDrill) -> dict[str, Any]:
    """Every third busy agent (at most three) cut off; healed after ``heal_after_s``."""
    rt = drill.real_faults()
    cut = [a.id for a in drill.busy_agents(required=True)[::3][:3]]
    rt.partition(cut)
    drill.later(drill.heal_after_s, lambda: rt.heal(cut))
    return {"partition": cut, "heal_after_s": drill.heal_after_s}


async def confirm(drill: RunningDrill) -> dict[str, Any]:
    """Every cut-off agent cannot report (its host process stopped, on real agents)."""
    cut = {a: agent_cut_off(drill.engine, a) for a in drill.fault["partition"]}
    return {"confirmed": all(v is True for v in cut.values()), "cut_off": cut}


KIND = IncidentKind(
    name=NAME,
    detector=PartitionDetector,
    playbook=network_partition,
    criterion="network_recovered",
    gate=network_recovered,
    window=window,
    drill=DrillSpec(inject, confirm, on_real_processes=True),
    evidence=evidence,
)
