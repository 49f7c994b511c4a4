"""Drills: inject a scenario's fault into the simulated demo fleet and watch the
pipeline detect, plan, (get approval,) recover and validate.

``start_drill(engine, name)`` returns a :class:`Drill` the console can watch and
approve by hand; ``opsdeck drill NAME`` runs one headless. The fault is injected at
a fixed simulated time after a warm-up, so detection latency and recovery time are
measured in simulated seconds from that instant.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..clock import VirtualClock
from ..models import AgentStatus, TaskStatus, WorkflowStatus
from .detectors import DataIntegrityDetector
from .manager import ApproveMode, IncidentManager
from .model import SCENARIOS
from .validation import dependency_violations

if TYPE_CHECKING:
    from ..engine import Engine
    from ..events import Event

WARMUP_S = 900.0
BUDGET_S = 4 * 3600.0
LIVE_WARMUP_S = 4.0
LIVE_HEAL_S = 10.0
LIVE_GAP_S = 1.0
"""On the wall clock: the fault comes 4 s after arming, the cascade's failures 1 s
apart, the partition lasts 10 s."""
LIVE_DRILLS = ("agent-cascade", "network-partition", "data-integrity")
"""Drills whose fault is injected for real on the local runtime: SIGKILL of agent
hosts, SIGSTOP of agent hosts (SIGCONT to heal), a checkpoint damaged through SQLite
and the live projection drifted."""


class DrillError(ValueError):
    pass


@dataclass
class Drill:
    name: str
    engine: Engine
    manager: IncidentManager
    inject_at: float
    injected: bool = False
    injected_at: float | None = None
    fault: dict[str, Any] = field(default_factory=dict)
    completions: dict[str, int] = field(default_factory=dict)
    _live_inject: asyncio.Task[None] | None = None
    heal_after_s: float = 900.0
    """The network partition ends after this long (the environment, not the plan)."""
    gap_s: float | None = None
    """Spacing of the cascade's failures (default: within the supervision window)."""

    def later(self, delay: float, fn: Any) -> None:
        """Run ``fn`` after ``delay`` seconds of the engine's clock (simulated, or wall)."""
        clock = self.engine.clock
        if isinstance(clock, VirtualClock):
            clock.call_later(delay, fn)
        else:
            asyncio.get_running_loop().call_later(delay, fn)

    # -- the fault ------------------------------------------------------------
    async def inject(self) -> None:
        eng = self.engine
        rt = eng.runtime
        s = eng.state
        now = eng.clock.now()
        busy = sorted(
            (a for a in s.agents.values() if a.status is AgentStatus.BUSY and a.current_task), key=lambda a: a.id
        )
        if self.name == "resource-exhaustion":
            cpu, mem, dur = 1.5, 5.5, 1800.0
            rt.load_spike(cpu, mem, dur)  # type: ignore[union-attr]
            self.fault = {"load_spike": {"cpu_cores": cpu, "memory_gb": mem, "duration_s": dur}}
        elif self.name == "agent-cascade":
            # Prefer the agents of the head of the dependency chain (impl_auth_001).
            heads = {w.id for w in s.all_workflows() if any(w.id in o.depends_on for o in s.all_workflows())}
            busy.sort(key=lambda a: (s.tasks[a.current_task].workflow not in heads, a.id))  # type: ignore[index]
            victims = [a.id for a in busy[: eng.config.supervision.max_failures]]
            if len(victims) < eng.config.supervision.max_failures:
                raise DrillError(
                    f"only {len(victims)} busy agent(s) to fail at t={now:g}: the fleet has no work left (use a fresh --db)"
                )
            gap = self.gap_s if self.gap_s is not None else eng.config.supervision.window_s / (len(victims) * 2)
            for i, a in enumerate(victims):
                self.later(i * gap, lambda a=a: rt.fail_agent(a, "process crashed (drill)"))  # type: ignore[union-attr]
            self.fault = {"fail_agents": victims, "spacing_s": gap}
        elif not busy and self.name in ("performance-degradation", "network-partition"):
            raise DrillError(f"no busy agent at t={now:g}: the fleet has no work left (use a fresh --db)")
        elif self.name == "performance-degradation":
            # Bad hosts: four agents get gradually slower (every 5 min, +0.25x up to 2.5x).
            slow = [a.id for a in busy[:4]]
            step, every, top = 0.25, 300.0, 2.5

            def ramp(level: float = 1.0) -> None:
                level = min(level + step, top)
                for a in slow:
                    if a in rt.agents:  # type: ignore[union-attr]
                        rt.slow_agent(a, level)  # type: ignore[union-attr]
                if level < top:
                    self.later(every, lambda: ramp(level))

            ramp()
            self.fault = {"slow_agents": slow, "slowdown_step": step, "every_s": every, "max_slowdown": top}
        elif self.name == "data-integrity":
            await self._corrupt()
        elif self.name == "network-partition":
            cut = [a.id for a in busy[::3][:3]]
            rt.partition(cut)  # type: ignore[union-attr]
            self.later(self.heal_after_s, lambda: rt.heal(cut))  # type: ignore[union-attr]
            self.fault = {"partition": cut, "heal_after_s": self.heal_after_s}
        self.injected = True
        self.injected_at = now
        self.manager.expect_fault(self.name, now)
        eng.emit("DRILL_FAULT_INJECTED", "system", "drill", {"drill": self.name, **self.fault}, actor="drill")

    async def _corrupt(self) -> None:
        """A state-synchronisation failure: a checkpoint's stored state is damaged and
        the live projection of the migration workflow drifts from the log."""
        eng = self.engine
        if eng.store is None:
            raise DrillError("the data-integrity drill needs a database (--db)")
        s = eng.state
        cp = await eng.checkpoint(kind="incremental", label="drill: about to be damaged", actor="drill")
        await eng.flush()
        db = eng.store.connection
        row = await (await db.execute("SELECT state FROM checkpoints WHERE id=?", (cp,))).fetchone()
        snap = json.loads(row[0])
        victim_wf = "migration_workflow_001" if "migration_workflow_001" in s.workflows else sorted(s.workflows)[0]
        for k in s.workflows[victim_wf].tasks:
            if k in snap["tasks"]:
                snap["tasks"][k]["status"] = "completed"
                break
        await db.execute("UPDATE checkpoints SET state=? WHERE id=?", (json.dumps(snap), cp))
        await db.commit()
        drift = None
        for k in s.workflows[victim_wf].tasks:
            t = s.tasks[k]
            if t.status is TaskStatus.PENDING:
                t.context.progress = 0.8
                t.context.partial_results["rows_migrated"] = -1
                drift = k
                break
        self.fault = {"damaged_checkpoint": cp, "drifted_task": drift, "workflow": victim_wf}

    # -- running --------------------------------------------------------------
    def start_live(self, interval: float = 0.2) -> asyncio.Task[None]:
        """For an engine that runs in real time (the console): the fault is injected
        when the simulated clock reaches ``inject_at`` and the manager pumps in the
        background; approve from the palette with ``/incident approve PLAN_ID``."""
        loop = asyncio.get_running_loop()

        def fire() -> None:
            if not self.injected:
                self._live_inject = loop.create_task(self.inject())

        self.engine.clock.call_at(self.inject_at, fire)  # type: ignore[attr-defined]
        return self.manager.start(interval)

    async def step(self, seconds: float | None = None) -> None:
        """Advance the simulated clock by ``seconds`` (a sample by default) and pump."""
        eng = self.engine
        dt = seconds if seconds is not None else eng.config.intervals.sample_s
        if not self.injected and eng.clock.now() + dt >= self.inject_at:
            await eng.advance(max(0.0, self.inject_at - eng.clock.now()))
            await self.inject()
        await eng.advance(dt)
        await self.manager.pump()

    def incident(self) -> dict[str, Any] | None:
        for inc in self.engine.state.incidents.values():
            if inc["scenario"] == self.name and self.injected_at is not None and inc["detected_at"] >= self.injected_at:
                return inc
        return None

    @property
    def done(self) -> bool:
        inc = self.incident()
        if inc is None:
            return False
        plan = self.plan()
        return inc["status"] in ("resolved", "failed") or (plan is not None and plan["state"] == "rejected")

    def plan(self) -> dict[str, Any] | None:
        inc = self.incident()
        if inc and inc.get("plans"):
            return self.engine.state.plans.get(inc["plans"][-1])
        return None

    async def inject_when_due(self) -> None:
        """On the wall clock: inject the fault once its time has come."""
        if not self.injected and self.engine.clock.now() >= self.inject_at:
            await self.inject()

    async def run_live(self, budget_s: float, tick: float = 0.2) -> dict[str, Any]:
        """On a runtime of real processes (wall clock): inject the fault when its time
        comes, pump the pipeline every ``tick`` seconds, until the drill is done."""
        loop = asyncio.get_running_loop()
        end = loop.time() + budget_s
        while not self.done and loop.time() < end:
            await self.inject_when_due()
            await self.manager.pump()
            await self.engine.flush()
            await asyncio.sleep(tick)
        return await self.report()

    async def run(self, budget_s: float = BUDGET_S) -> dict[str, Any]:
        end = self.engine.clock.now() + budget_s
        while not self.done and self.engine.clock.now() < end:
            await self.step()
        return await self.report()

    async def report(self) -> dict[str, Any]:
        inc = self.incident()
        inv = await invariants(self.engine, self.completions)
        outcome = (inc or {}).get("outcome", {})
        validated = bool(inc and inc["status"] == "resolved" and outcome.get("validated")) and inv["ok"]
        latency = round(inc["detected_at"] - self.injected_at, 1) if inc and self.injected_at is not None else None
        return {
            "drill": self.name,
            "validated": validated,
            "incident": inc["id"] if inc else None,
            "status": inc["status"] if inc else "not_detected",
            "fault": self.fault,
            "injected_at": self.injected_at,
            "detection_latency_s": latency,
            "recovery_time_s": outcome.get("recovery_time_s"),
            "plan_finished_s": outcome.get("plan_finished_s"),
            "plan": (self.plan() or {}).get("id"),
            "plan_state": (self.plan() or {}).get("state"),
            "decided_by": (self.plan() or {}).get("decided_by"),
            "other_incidents": [
                {"id": i["id"], "scenario": i["scenario"], "status": i["status"]}
                for i in self.engine.state.incidents.values()
                if inc is None or i["id"] != inc["id"]
            ],
            "invariants": inv,
            "reason": outcome.get("reason"),
        }


async def invariants(engine: Engine, completions: dict[str, int]) -> dict[str, Any]:
    """No task lost, no completed task run twice, dependencies respected, chain verifies."""
    s = engine.state
    lost = []
    for t in await engine.tasks_with_archive():
        wf = s.any_workflow(t.workflow)
        if wf is None or wf.status in (WorkflowStatus.CANCELLED, WorkflowStatus.FAILED):
            continue
        if t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
            a = s.agents.get(t.agent or "")
            if a is None or a.current_task != t.id or a.status in (AgentStatus.FAILED, AgentStatus.RETIRED):
                lost.append(t.id)
        elif t.status is TaskStatus.PENDING and wf.status is WorkflowStatus.COMPLETED:
            lost.append(t.id)
    twice = sorted(k for k, n in completions.items() if n > 1)
    deps = await dependency_violations(engine)
    chain: dict[str, Any] = {"checked": False}
    if engine.store is not None:
        from ..verify import verify_store

        await engine.flush()
        rep = await verify_store(engine.store, replay_checkpoints=False)
        acknowledged = set()
        for inc in s.incidents.values():
            acknowledged.update(int(c) for c in inc.get("evidence", {}).get("bad_checkpoints", []))
            acknowledged.update(int(c) for c in inc.get("outcome", {}).get("quarantined_checkpoints", []))
        chain = {
            "checked": True,
            "ok": rep.first_bad_seq is None and set(rep.checkpoints_bad) <= acknowledged,
            "events": rep.events,
            "first_bad_seq": rep.first_bad_seq,
            "checkpoints_bad": sorted(rep.checkpoints_bad),
        }
    ok = not lost and not twice and not deps and chain.get("ok", True)
    return {"ok": ok, "lost_tasks": lost, "completed_twice": twice, "dependency_violations": deps[:10], "chain": chain}


def start_drill(
    engine: Engine,
    name: str,
    approve: ApproveMode = "manual",
    manager: IncidentManager | None = None,
    warmup_s: float | None = None,
) -> Drill:
    """Arm a drill on a running engine: the fault is injected ``warmup_s`` from now
    (default: 15 simulated minutes, or ``LIVE_WARMUP_S`` on the wall clock)."""
    live = not isinstance(engine.clock, VirtualClock)
    if warmup_s is None:
        warmup_s = LIVE_WARMUP_S if live else WARMUP_S
    if name not in SCENARIOS:
        raise DrillError(f"unknown drill {name!r}; drills: {', '.join(SCENARIOS)}")
    rt = engine.runtime
    if rt is None or not hasattr(rt, "partition"):
        raise DrillError("drills need the simulated or the local runtime")
    if rt.name != "sim" and name not in LIVE_DRILLS:
        raise DrillError(
            f"the {name} drill runs on the simulated runtime only; on real processes: {', '.join(LIVE_DRILLS)}"
        )
    mgr = manager or IncidentManager(engine, approve_mode=approve)
    offset = 0.0
    if name == "data-integrity" and rt.name == "sim":
        # The store is verified periodically: a fault landing at a fixed phase of the
        # check period would make the detection latency an artefact of that phase.
        # It lands at a phase drawn from the simulation's seed instead, so a sweep
        # over seeds shows the real distribution (uniform over the period).
        offset = random.Random(int(engine.state.settings.get("sim_seed", 0)) * 7919 + 1).uniform(
            0.0, DataIntegrityDetector.EVERY_S
        )
    drill = Drill(name, engine, mgr, engine.clock.now() + warmup_s + offset)
    if live:
        drill.heal_after_s, drill.gap_s = LIVE_HEAL_S, LIVE_GAP_S
        if name == "data-integrity" and not isinstance(engine.state.settings.get("monitoring.integrity"), dict):
            # On the wall clock the store is verified at every commit (what
            # enable-enhanced-integrity-monitoring's every_operation does): a full
            # check every 300 s would make the drill wait minutes.
            engine.set_setting(
                "monitoring.integrity",
                {
                    "validation_frequency": "every_operation",
                    "checkpoint_interval_s": engine.checkpoint_interval(),
                    "since": round(engine.clock.now(), 3),
                    "until": None,
                    "by": "drill",
                },
                actor="drill",
            )

    def count(ev: Event) -> None:
        if ev.type == "TASK_COMPLETED":
            drill.completions[ev.data["task"]] = drill.completions.get(ev.data["task"], 0) + 1

    engine.observe(count)
    return drill
