"""Drills: inject a kind's fault (``kind.drill``) into the fleet and watch the
pipeline detect, plan, (get approval,) recover and validate.

``start_drill(engine, name)`` returns a :class:`Drill` the console can watch and
approve by hand; ``opsdeck drill NAME`` runs one headless. The fault is injected at
a fixed time after a warm-up, then confirmed by the kind's independent check
(DRILL_FAULT_CONFIRMED) before its detection is credited. Detection latency runs
from the injection; recovery time from the plan's first acting step to the
criterion met. A drill is validated only when its own incident is resolved by a
credited plan, its invariants hold and every other incident opened during it is
resolved; a fault not detected within the kind's budget ends it ``not_detected``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..clock import VirtualClock
from ..event_types import (
    DRILL_FAULT_CONFIRMED,
    DRILL_FAULT_INJECTED,
    TASK_COMPLETED,
)
from ..incident_models import Incident, IncidentOutcome, Plan
from ..models import Agent, AgentStatus, TaskStatus, WorkflowStatus
from ..runtimes import Runtime
from ..timefmt import clock, duration
from .catalogue import Catalogue, DrillError, IncidentKind
from .kinds import CATALOGUE
from .kinds.data_integrity_detector import IntegrityEvidence
from .manager import ApproveMode, IncidentManager
from .validation import dependency_violations

if TYPE_CHECKING:
    from ..engine import Engine
    from ..events import Event

__all__ = ["BUDGET_S", "LIVE_DRILLS", "LIVE_WARMUP_S", "Drill", "DrillError", "invariants", "start_drill"]

WARMUP_S = 900.0
BUDGET_S = 4 * 3600.0
LIVE_WARMUP_S = 4.0
LIVE_HEAL_S = 10.0
LIVE_GAP_S = 1.0
"""On the wall clock: the fault comes 4 s after arming, the cascade's failures 1 s
apart, the partition lasts 10 s."""
LIVE_DRILLS = CATALOGUE.live_drills()
"""Drills whose fault is injected for real on the local runtime (SIGKILL of agent
hosts, SIGSTOP of agent hosts with SIGCONT to heal, a checkpoint damaged through
SQLite and the live projection drifted)."""


@dataclass
class Drill:
    name: str
    engine: Engine
    manager: IncidentManager
    inject_at: float
    kind: IncidentKind
    injected: bool = False
    injected_at: float | None = None
    fault: dict[str, Any] = field(default_factory=dict)
    completions: dict[str, int] = field(default_factory=dict)
    _live_inject: asyncio.Task[None] | None = None
    heal_after_s: float = 900.0
    """The network partition ends after this long (the environment, not the plan)."""
    gap_s: float | None = None
    """Spacing of the cascade's failures (default: within the supervision window)."""
    armed_at: float = 0.0
    confirmation: dict[str, Any] = field(default_factory=dict)
    """The last independent check of the fault (``kind.drill.confirm``)."""
    confirmed_at: float | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        """Stop the drill (``/host drill cancel``): a fault not injected yet never is, and
        fault steps still to come (the cascade's next failures, the slowdown's next
        notch) are dropped. What was injected stays as the environment has it: a load
        spike runs out, a partition heals on its schedule, an incident stays open."""
        self.cancelled = True

    def later(self, delay: float, fn: Any) -> None:
        """Run ``fn`` after ``delay`` seconds of the engine's clock (simulated, or wall),
        unless the drill has been cancelled by then (a fault step still to come)."""

        def step() -> None:
            if not self.cancelled:
                fn()

        clock = self.engine.clock
        if isinstance(clock, VirtualClock):
            clock.call_later(delay, step)
        else:
            asyncio.get_running_loop().call_later(delay, step)

    # -- the fault ------------------------------------------------------------
    def real_faults(self) -> Runtime:
        """The runtime that kills and cuts off agents: every runtime can (modelled on
        the simulated one, signals to real processes elsewhere)."""
        rt = self.engine.runtime
        if rt is None:
            raise DrillError(f"the {self.name} drill needs a runtime to inject its fault into")
        return rt

    def sim(self) -> Runtime:
        """A simulated runtime, for the faults only it can model (slowdowns, load)."""
        rt = self.engine.runtime
        if rt is None or not rt.capabilities.simulated:
            raise DrillError(f"the {self.name} drill's fault needs the simulated runtime")
        return rt

    def busy_agents(self, required: bool = False) -> list[Agent]:
        """Busy agents with a task, by id; ``required``: none is a DrillError."""
        s = self.engine.state
        busy = sorted(
            (a for a in s.agents.values() if a.status is AgentStatus.BUSY and a.current_task), key=lambda a: a.id
        )
        if required and not busy:
            raise DrillError(
                f"no busy agent at {clock(self.engine.clock.now())}: the fleet has no work left (use a fresh --db)"
            )
        return busy

    async def inject(self) -> None:
        eng = self.engine
        now = eng.clock.now()
        self.fault = await self.kind.drill.inject(self)
        self.injected = True
        self.injected_at = now
        self.manager.expect_fault(self.name, now)
        eng.emit(DRILL_FAULT_INJECTED, "system", "drill", {"drill": self.name, **self.fault}, actor="drill")
        await self.check_fault()

    async def check_fault(self) -> None:
        """Until it confirms: the kind's independent check that the fault is real
        (DRILL_FAULT_CONFIRMED with what was checked). Detection is credited only
        once it has."""
        if not self.injected or self.confirmed_at is not None or self.cancelled:
            return
        self.confirmation = await self.kind.drill.confirm(self)
        if self.confirmation.get("confirmed"):
            self.confirmed_at = self.engine.clock.now()
            self.engine.emit(
                DRILL_FAULT_CONFIRMED, "system", "drill", {"drill": self.name, **self.confirmation}, actor="drill"
            )

    # -- running --------------------------------------------------------------
    def start_live(self, interval: float = 0.2) -> asyncio.Task[None]:
        """For an engine that runs in real time (the console): the fault is injected
        when the simulated clock reaches ``inject_at`` and the manager pumps in the
        background; approve from the palette with ``/incident approve PLAN_ID``."""
        loop = asyncio.get_running_loop()

        async def inject_and_confirm() -> None:
            await self.inject()
            while self.confirmed_at is None and not self.done:
                await asyncio.sleep(interval)
                await self.check_fault()

        def fire() -> None:
            if not self.injected and not self.cancelled:
                self._live_inject = loop.create_task(inject_and_confirm())

        self.later(max(0.0, self.inject_at - self.engine.clock.now()), fire)
        return self.manager.start(interval)

    async def step(self, seconds: float | None = None) -> None:
        """Advance the simulated clock by ``seconds`` (a sample by default) and pump."""
        eng = self.engine
        dt = seconds if seconds is not None else eng.config.intervals.sample_s
        if not self.injected and not self.cancelled and eng.clock.now() + dt >= self.inject_at:
            await eng.advance(max(0.0, self.inject_at - eng.clock.now()))
            await self.inject()
        await eng.advance(dt)
        await self.check_fault()
        await self.manager.pump()

    def incident(self) -> Incident | None:
        for inc in self.engine.state.incidents.values():
            if inc.scenario == self.name and self.injected_at is not None and inc.detected_at >= self.injected_at:
                return inc
        return None

    def others(self) -> list[Incident]:
        """Incidents opened since the drill was armed, other than the drill's own."""
        own = self.incident()
        return [
            i
            for i in self.engine.state.incidents.values()
            if i.detected_at >= self.armed_at and (own is None or i.id != own.id)
        ]

    @property
    def detect_within_s(self) -> float:
        d = self.kind.drill.detect_within_s
        return float("inf") if d is None else d

    @property
    def done(self) -> bool:
        """The drill's incident is over and so is every other incident opened during
        it; or the fault went undetected for the kind's detection budget; or the
        drill was cancelled."""
        if self.cancelled:
            return True
        inc = self.incident()
        if inc is None:
            return self.injected_at is not None and self.engine.clock.now() - self.injected_at >= self.detect_within_s
        plan = self.plan()
        if plan is not None and plan.state == "rejected":
            return True
        if inc.status not in ("resolved", "failed"):
            return False
        return all(i.status in ("resolved", "failed") for i in self.others())

    @property
    def outcome(self) -> str | None:
        """How the drill ended (None while it runs): cancelled, its incident's status, or
        ``not_detected`` (no incident within the detection budget)."""
        if not self.done:
            return None
        if self.cancelled:
            return "cancelled"
        inc = self.incident()
        return inc.status if inc is not None else "not_detected"

    def plan(self) -> Plan | None:
        inc = self.incident()
        if inc and inc.plans:
            return self.engine.state.plans.get(inc.plans[-1])
        return None

    async def inject_when_due(self) -> None:
        """On the wall clock: inject the fault once its time has come."""
        if not self.injected and not self.cancelled and self.engine.clock.now() >= self.inject_at:
            await self.inject()
        await self.check_fault()

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
        outcome = inc.outcome if inc is not None else IncidentOutcome()
        plan = self.plan()
        confirmed = self.confirmed_at is not None
        unresolved = [
            {"id": i.id, "scenario": i.scenario, "status": i.status} for i in self.others() if i.status != "resolved"
        ]
        validated = (
            bool(inc and inc.status == "resolved" and outcome.validated)
            and inv["ok"]
            and confirmed
            and not unresolved
            and not self.cancelled
        )
        latency = (
            round(inc.detected_at - self.injected_at, 1) if inc and self.injected_at is not None and confirmed else None
        )
        reasons = [
            r
            for r in (
                outcome.reason,
                None if confirmed or not self.injected else f"the fault was not confirmed: {self.confirmation}",
                f"incident(s) opened during the drill not resolved: {', '.join(i['id'] for i in unresolved)}"
                if unresolved
                else None,
                "cancelled (/host drill cancel)" if self.cancelled else None,
                f"not detected within {duration(self.detect_within_s)} of the fault"
                if inc is None and self.injected and not self.cancelled and self.done
                else None,
            )
            if r
        ]
        status = self.outcome or (inc.status if inc else "not_detected")
        return {
            "drill": self.name,
            "validated": validated,
            "incident": inc.id if inc else None,
            "status": status,
            "result": outcome.result,
            "fault": self.fault,
            "fault_confirmed": confirmed,
            "fault_checks": self.confirmation,
            "injected_at": self.injected_at,
            "detection_latency_s": latency,
            "recovery_time_s": outcome.recovery_time_s if outcome.validated else None,
            "plan_finished_s": outcome.plan_finished_s,
            "plan": plan.id if plan is not None else None,
            "plan_state": plan.state.value if plan is not None else None,
            "decided_by": plan.decided_by if plan is not None else None,
            "other_incidents": [
                {"id": i.id, "scenario": i.scenario, "status": i.status}
                for i in self.engine.state.incidents.values()
                if inc is None or i.id != inc.id
            ],
            "unresolved_incidents": unresolved,
            "invariants": inv,
            "reason": "; ".join(reasons) or None,
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
        acknowledged: set[int] = set()
        for inc in s.incidents.values():
            acknowledged.update(inc.evidence.of(IntegrityEvidence).bad_checkpoints)
            acknowledged.update(inc.outcome.quarantined_checkpoints or [])
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
    catalogue: Catalogue | None = None,
) -> Drill:
    """Arm a drill on a running engine: the fault is injected ``warmup_s`` from now
    (default: 15 simulated minutes, or ``LIVE_WARMUP_S`` on the wall clock), plus
    whatever delay the kind's drill asks for."""
    cat = catalogue if catalogue is not None else manager.catalogue if manager is not None else CATALOGUE
    live = not isinstance(engine.clock, VirtualClock)
    if warmup_s is None:
        warmup_s = LIVE_WARMUP_S if live else WARMUP_S
    if name not in cat:
        raise DrillError(f"unknown drill {name!r}; drills: {', '.join(cat.names())}")
    kind = cat.get(name)
    rt = engine.runtime
    if rt is None:
        raise DrillError("drills need a runtime (simulated, local or ray) to inject their fault into")
    if not rt.capabilities.simulated and not kind.drill.on_real_processes:
        raise DrillError(
            f"the {name} drill runs on the simulated runtime only; on real processes: {', '.join(cat.live_drills())}"
        )
    mgr = manager or IncidentManager(engine, approve_mode=approve, catalogue=cat)
    drill = Drill(name, engine, mgr, engine.clock.now() + warmup_s, kind, armed_at=engine.clock.now())
    if live:
        drill.heal_after_s, drill.gap_s = LIVE_HEAL_S, LIVE_GAP_S
    if kind.drill.prepare is not None:
        drill.inject_at += kind.drill.prepare(drill, live)

    def count(ev: Event) -> None:
        if ev.type == TASK_COMPLETED:
            drill.completions[ev.data["task"]] = drill.completions.get(ev.data["task"], 0) + 1

    engine.observe(count)
    return drill
