"""Detectors: one per scenario, each reading real signals after every system sample.

A detector returns a :class:`Finding` (the seed's detection event with its fields,
the evidence behind it, the workflows it touches) or ``None``. The incident manager
hooks them with ``engine.on_sample`` and opens at most one incident per scenario at
a time. Every number in a finding is measured from telemetry or the state.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..commands.monitoring import trigger_pct
from ..events import Event
from ..models import AgentStatus, WorkflowStatus
from .trend import downsample, mann_kendall

if TYPE_CHECKING:
    from ..engine import Engine


@dataclass
class Finding:
    scenario: str
    type: str
    component: str
    scope: str
    severity: str
    data: dict[str, Any]
    evidence: dict[str, Any] = field(default_factory=dict)
    affected_workflows: list[str] = field(default_factory=list)
    onset: float | None = None
    """When the signal first crossed (an estimate of the fault's start)."""


def _standing_reassignment(engine: Engine) -> bool:
    cfg = engine.state.settings.get("monitoring.communication")
    return isinstance(cfg, dict) and not cfg.get("closed") and cfg.get("reassign_after_s") is not None


def _active_workflows(engine: Engine) -> list[str]:
    s = engine.state
    wfs = [w for w in s.workflows.values() if w.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED)]
    wfs.sort(key=lambda w: (-w.priority, w.id))
    return [w.id for w in wfs]


class Detector:
    scenario = ""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def check(self, now: float) -> Finding | None:  # pragma: no cover - interface
        raise NotImplementedError

    def reset(self) -> None:
        """Forget accumulated evidence (after an incident of this kind is resolved)."""


class ResourceExhaustionDetector(Detector):
    """Two or more of CPU, memory and agent slots at or above the exhaustion threshold
    for ``exhaustion_samples`` consecutive samples (CPU alone is routinely saturated
    by a busy scheduler, so it never counts as exhaustion on its own)."""

    scenario = "resource-exhaustion"
    RESOURCES = ("cpu", "memory", "agents")

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.streak: list[dict[str, float]] = []
        self.onset: float | None = None

    def reset(self) -> None:
        self.streak = []
        self.onset = None

    def check(self, now: float) -> Finding | None:
        th = self.engine.config.thresholds
        u = self.engine.utilisation()
        over = [r for r in self.RESOURCES if u[r] >= th.exhaustion]
        if len(over) < 2:
            self.streak = []
            self.onset = None
            return None
        if not self.streak:
            self.onset = now
        self.streak.append({"t": now, **u})
        if len(self.streak) < th.exhaustion_samples:
            return None
        cap = self.engine.config.capacity
        busy = round(u["agents"] * cap.agents / 100.0)
        names = {"cpu": "cpu", "memory": "memory", "agents": "agent_pool"}
        error_type = "_and_".join(sorted(names[r] for r in over)) + "_overload"
        affected = [
            w for w in _active_workflows(self.engine) if self.engine.state.workflows[w].status is WorkflowStatus.RUNNING
        ]
        data = {
            "error_type": error_type,
            "severity": "critical",
            "affected_workflows": affected,
            "system_utilization": {
                "cpu": round(u["cpu"], 1),
                "memory": round(u["memory"], 1),
                "agents": f"{busy}/{cap.agents}",
            },
        }
        evidence = {
            "threshold_pct": th.exhaustion,
            "samples": len(self.streak),
            "resources_over": over,
            "series": self.streak[-th.exhaustion_samples :],
        }
        return Finding(
            self.scenario, "RESOURCE_EXHAUSTION", "system", "global", "critical", data, evidence, affected, self.onset
        )


class AgentCascadeDetector(Detector):
    """Restart intensity in the manner of OTP supervisors: ``max_failures`` agent
    failures within ``window_s`` seconds is a cascade, not bad luck."""

    scenario = "agent-cascade"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.failures: deque[tuple[float, str, str | None]] = deque()
        engine.observe(self._on_event)

    def reset(self) -> None:
        self.failures.clear()

    def _on_event(self, ev: Event) -> None:
        if ev.type == "AGENT_ERROR":
            self.failures.append((ev.ts, ev.data["agent"], ev.data.get("task")))

    def check(self, now: float) -> Finding | None:
        sup = self.engine.config.supervision
        while self.failures and self.failures[0][0] < now - sup.window_s:
            self.failures.popleft()
        if len(self.failures) < sup.max_failures:
            return None
        s = self.engine.state
        failed = sorted({a for _, a, _ in self.failures})
        tasks = [t for _, _, t in self.failures if t]
        direct = sorted({s.tasks[t].workflow for t in tasks if t in s.tasks})
        dependents = sorted(
            w.id
            for w in s.workflows.values()
            if any(d in direct for d in w.depends_on)
            and w.id not in direct
            and w.status not in (WorkflowStatus.COMPLETED, WorkflowStatus.CANCELLED)
        )
        on_path = [t for t in tasks if t in s.tasks and t in s.critical_path(s.tasks[t].workflow)]
        data = {
            "failed_agents": failed,
            "affected_workflows": direct + dependents,
            "failure_type": "cascade_failure",
            "impact": "critical_path_blocked" if on_path else "capacity_reduced",
        }
        evidence = {
            "failures_in_window": len(self.failures),
            "window_s": sup.window_s,
            "max_failures": sup.max_failures,
            "interrupted_tasks": tasks,
            "critical_path_tasks": on_path,
            "dependent_workflows": dependents,
        }
        return Finding(
            self.scenario,
            "AGENT_POOL_FAILURE",
            "coordination",
            "agent_management",
            "critical",
            data,
            evidence,
            direct + dependents,
            self.failures[0][0],
        )


class PerformanceDegradationDetector(Detector):
    """Mann-Kendall (Hamed-Rao corrected) over task efficiency, response time and
    throughput in a sliding window; fires when efficiency falls significantly and by
    at least the configured degradation trigger."""

    scenario = "performance-degradation"
    WINDOW_S = 3600.0
    EVERY_S = 60.0
    MIN_POINTS = 10
    BINS = 12
    MIN_BINS = 6
    ALPHA = 0.05

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.last_check = float("-inf")
        self.since = float("-inf")

    def reset(self) -> None:
        self.since = self.engine.clock.now()

    def analyse(self, now: float) -> dict[str, Any]:
        tel = self.engine.telemetry
        t0 = max(now - self.WINDOW_S, self.since)
        out: dict[str, Any] = {}
        for metric, worse in (
            ("efficiency", "decreasing"),
            ("response_time", "increasing"),
            ("throughput_per_min", "decreasing"),
        ):
            raw = tel.get(metric).since(t0)
            if len(raw) < self.MIN_POINTS:
                continue
            # Means over time bins: per-task figures are a mixture of fast and slow
            # agents (mostly ties at 1.0), and throughput is a moving-window count
            # (strongly autocorrelated); bin means carry the fleet-level trend.
            pts = downsample(raw, self.BINS)
            if len(pts) < self.MIN_BINS:
                continue
            times = [t for t, _ in pts]
            vals = [v for _, v in pts]
            r = mann_kendall(vals, times, alpha=self.ALPHA)
            span = times[-1] - times[0]
            change = r.relative_change(span) * 100.0
            out[metric] = {
                "n": r.n,
                "p": round(r.p, 5),
                "z": round(r.z, 3),
                "confidence": round(r.confidence, 4),
                "slope_per_h": round(r.slope * 3600.0, 6),
                "change_pct": round(change, 2),
                "span_s": round(span, 1),
                "hamed_rao_factor": round(r.correction, 3),
                "worse": r.significant(self.ALPHA) and r.direction == worse,
                "baseline": round(r.intercept, 4),
            }
        return out

    def check(self, now: float) -> Finding | None:
        if now - self.last_check < self.EVERY_S:
            return None
        self.last_check = now
        res = self.analyse(now)
        eff = res.get("efficiency")
        trigger = trigger_pct(self.engine, "performance_degradation_pct")
        rt = res.get("response_time")
        # With continuous learning on, a significant rise of response time by its
        # trigger counts too (with efficiency falling, not noise in the task mix).
        learning = isinstance(self.engine.state.settings.get("auto_optimization"), dict)
        slower = bool(
            learning
            and rt
            and rt["worse"]
            and rt["change_pct"] >= trigger_pct(self.engine, "response_time_degradation_pct")
        )
        if not eff or not ((eff["worse"] and -eff["change_pct"] >= trigger) or (slower and eff["change_pct"] < 0)):
            return None
        affected = [m for m, r in res.items() if r["worse"]]
        drop = -eff["change_pct"]
        span_min = round(eff["span_s"] / 60.0)
        data = {
            "degradation_rate": f"{round(drop)}_percent_over_{span_min}m",
            "affected_metrics": affected,
            "confidence": eff["confidence"],
        }
        return Finding(
            self.scenario,
            "PERFORMANCE_DEGRADATION_DETECTED",
            "performance",
            "trend_analysis",
            "high",
            data,
            {"trends": res},
            _active_workflows(self.engine),
            now - eff["span_s"],
        )


class PartitionDetector(Detector):
    """A subset of agents unreachable while the rest keep reporting: a partition,
    not a dead hub (if nobody reports, nothing is learned about the network)."""

    scenario = "network-partition"
    MIN_AGENTS = 2

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
        holding = [s.agents[a].current_task for a in cut if s.agents[a].current_task]
        wfs = sorted({s.tasks[t].workflow for t in holding if t in s.tasks})
        on_path = [t for t in holding if t in s.critical_path(s.tasks[t].workflow)]
        share = len(cut) / len(live)
        data = {
            "failure_type": "partial_network_partition",
            "affected_agents": cut,
            "coordination_impact": "severe" if on_path or share >= 0.2 else "moderate",
            # What will act without a plan: the engine's standing reassignment, if on.
            "auto_recovery": "standing_reassignment" if _standing_reassignment(self.engine) else "awaiting_plan",
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
            self.scenario, "COMMUNICATION_FAILURE", "network", "agent_coordination", "high", data, evidence, wfs, onset
        )


class DataIntegrityDetector(Detector):
    """Periodic verification of the store: the hash chain, every checkpoint's hash,
    and the live projection against a replay of the log. Async (it reads the store),
    so the manager runs it from its pump rather than the sample hook."""

    scenario = "data-integrity"
    EVERY_S = 300.0

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.last_check = float("-inf")
        self.verified_upto = 0
        self.inc_seq = 0
        self.inc_hash = ""
        self.inc_cp = 0
        self.full_checks = 0
        self.incremental_checks = 0

    def check(self, now: float) -> Finding | None:
        return None

    PERIOD_BY_FREQUENCY: ClassVar[dict[str, float]] = {"every_minute": 60.0, "hourly": 3600.0}

    def period(self) -> tuple[float, bool]:
        """(seconds between full checks, incremental check at every pump): from the
        integrity monitoring in force (``validation_frequency``), else ``EVERY_S``.
        ``every_operation`` checks each newly committed row's hash and link, and each
        new checkpoint's hash, at every pump, so a damaged row or checkpoint is found
        one commit after it lands; the full check keeps the default period."""
        cfg = self.engine.state.settings.get("monitoring.integrity")
        if isinstance(cfg, dict) and not cfg.get("closed"):
            freq = cfg.get("validation_frequency")
            if freq == "every_operation":
                return self.EVERY_S, True
            if freq in self.PERIOD_BY_FREQUENCY:
                return self.PERIOD_BY_FREQUENCY[freq], False
        return self.EVERY_S, False

    def due(self, now: float) -> bool:
        if self.engine.store is None:
            return False
        every, incremental = self.period()
        return incremental or now - self.last_check >= every

    async def incremental_ok(self) -> bool:
        """Rows committed since the last check link and hash correctly, and every
        checkpoint taken since then matches its hash."""
        from ..events import GENESIS_HASH
        from ..projection import hash_snapshot
        from ..store import row_hash_ok

        eng = self.engine
        assert eng.store is not None
        rows = await eng.store.raw_rows(self.inc_seq, limit=100_000)
        prev = self.inc_hash if self.inc_seq else GENESIS_HASH
        ok = True
        for r in rows:
            ok = ok and r[7] == prev and row_hash_ok(*r)
            prev = r[8]
        if rows:  # move on either way: what failed is the full check's to judge, once
            self.inc_seq, self.inc_hash = int(rows[-1][0]), prev
        for cp in await eng.store.list_checkpoints():
            if cp["id"] > self.inc_cp:
                loaded = await eng.store.load_checkpoint(cp["id"])
                ok = ok and loaded is not None and hash_snapshot(loaded[1]) == loaded[0]["state_hash"]
                self.inc_cp = cp["id"]
        self.incremental_checks += 1
        return ok

    async def check_async(self, now: float) -> Finding | None:
        from ..verify import verify_store
        from .integrity import consistency, segments

        eng = self.engine
        assert eng.store is not None
        await eng.flush()
        every, incremental = self.period()
        if incremental and now - self.last_check < every and await self.incremental_ok():
            return None
        self.last_check = now
        self.full_checks += 1
        known_seqs, known_cps = self.acknowledged()
        rep = await verify_store(eng.store, replay_checkpoints=True)
        faults = [f for f in rep.faults if f.seq not in known_seqs]
        bad_cps = {k: v for k, v in rep.checkpoints_bad.items() if k not in known_cps}
        cons = await consistency(eng, trusted=set(rep.checkpoints_ok))
        if not faults and not bad_cps and not cons["differs_in"]:
            self.verified_upto = rep.last_seq
            return None
        bad_seqs = [f.seq for f in faults]
        segs = await segments(eng, bad_seqs)
        for d in cons.get("diffs", []):
            segs.append(
                {
                    "state": f"{d['kind']}:{d['id']}",
                    "fields": d["fields"],
                    "workflow": d["workflow"],
                    "resolution": "replay_from_log",
                }
            )
        affected = sorted({sg["workflow"] for sg in segs if sg.get("workflow")})
        for cid in bad_cps:
            cp = eng.state.checkpoints.get(cid)
            if cp is not None and cp.workflow:
                affected = sorted(set(affected) | {cp.workflow})
        if not affected:
            affected = _active_workflows(eng)
        alert = "hash_chain_broken" if faults else "checkpoint_corrupt" if bad_cps else "state_inconsistency"
        data = {
            "alert_type": alert,
            "severity": "critical",
            "affected_workflows": affected,
            "corruption_risk": "high" if faults or cons["differs_in"] else "medium",
            "immediate_action_required": True,
        }
        evidence = {
            "bad_seqs": bad_seqs,
            "faults": [{"seq": f.seq, "problem": f.problem} for f in faults[:20]],
            "segments": segs,
            "bad_checkpoints": sorted(bad_cps),
            "checkpoints_bad": {str(k): v for k, v in bad_cps.items()},
            "checkpoints_ok": rep.checkpoints_ok,
            "first_bad_seq": min(bad_seqs) if bad_seqs else None,
            "projection_differs_in": cons["differs_in"],
            "restart_point_seq": cons["restart_seq"],
            "last_verified_seq": self.verified_upto,
            "events": rep.events,
        }
        return Finding(
            self.scenario,
            "DATA_INTEGRITY_ALERT",
            "coordination",
            "state_synchronization",
            "critical",
            data,
            evidence,
            affected,
        )

    def acknowledged(self) -> tuple[set[int], set[int]]:
        """Faults already handled by a resolved incident: the log is append-only, so a
        corrupted row stays; once assessed and recovered from, it is not re-alerted."""
        seqs: set[int] = set()
        cps: set[int] = set()
        for inc in self.engine.state.incidents.values():
            if inc.get("scenario") == self.scenario and inc.get("status") == "resolved":
                ev = inc.get("evidence", {})
                seqs.update(ev.get("bad_seqs", []))
                cps.update(int(c) for c in ev.get("bad_checkpoints", []))
                cps.update(int(c) for c in inc.get("outcome", {}).get("quarantined_checkpoints", []))
        return seqs, cps


def all_detectors(engine: Engine) -> list[Detector]:
    return [
        ResourceExhaustionDetector(engine),
        AgentCascadeDetector(engine),
        PerformanceDegradationDetector(engine),
        DataIntegrityDetector(engine),
        PartitionDetector(engine),
    ]
