"""The incident manager: detectors -> incidents -> plans -> approval -> executor.

One per engine. It hooks the detectors on ``engine.on_sample``, opens at most one
incident per scenario at a time (INCIDENT_OPENED plus the seed's detection event),
asks the scenario's playbook for a plan (PLAN_PROPOSED plus the seed's strategy
event), applies the approval mode, and drives the executor from :meth:`pump`, which
the headless loop calls between clock advances and the console runs in the
background.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..commands.context import Services
from ..engine import EngineError
from ..event_types import INCIDENT_NOTED, INCIDENT_OPENED, INCIDENT_REOPENED, PLAN_PROPOSED, SYSTEM_ERROR
from ..incident_models import FindingRecord, Incident, IncidentEvidence, KindEvidence, Plan, PlanStep
from .approval import command_kind, decide
from .catalogue import Catalogue
from .decisions import approve
from .detectors import Detector, Finding
from .executor import Executor
from .kinds import CATALOGUE
from .language import incident_services
from .merge import SeqTap

if TYPE_CHECKING:
    from ..engine import Engine

ApproveMode = Literal["auto", "manual"]

STILL_DETECTED = "fault_still_detected"
"""The action of the note a failed incident gets when its fault is detected again."""


class _AgentsCut(KindEvidence):
    """The agents an incident named before findings were recorded with it (re-planning one)."""

    failed_agents: list[str] = Field(default_factory=list)
    unreachable: list[str] = Field(default_factory=list)


class IncidentManager:
    def __init__(
        self,
        engine: Engine,
        approve_mode: ApproveMode = "manual",
        scenarios: list[str] | None = None,
        catalogue: Catalogue = CATALOGUE,
    ) -> None:
        self.engine = engine
        self.approve_mode: ApproveMode = approve_mode
        self.catalogue = catalogue
        self.detectors: list[Detector] = [
            k.detector(engine) for k in catalogue if scenarios is None or k.name in scenarios
        ]
        # Plan steps run in the language with /incident; a host that serves them passes its own services.
        self.executor = Executor(engine, catalogue, incident_services(engine, self))
        self.tap = SeqTap(engine)
        self.executor.extras["tap"] = self.tap
        self.fault_at: dict[str, float] = {}
        self._incidents_seen: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        engine.on_sample(self._on_sample)

    def replan(self, incident_id: str, actor: str = "operator") -> dict[str, Any]:
        """A new plan for an incident with none in force (``/incident replan``)."""
        return replan(self.engine, incident_id, actor=actor, catalogue=self.catalogue)

    def serve_with(self, services: Services) -> None:
        """Run plan steps with ``services`` (the host's: ``/host`` too, and the host itself)."""
        self.executor.services = services

    # -- detection ------------------------------------------------------------
    def open_for(self, scenario: str) -> Incident | None:
        for inc in self.engine.state.incidents.values():
            if inc.scenario == scenario and inc.status in ("open", "recovering"):
                return inc
        return None

    def _on_sample(self, now: float) -> None:
        for d in list(self.detectors):
            if self.open_for(d.scenario) is not None:
                continue
            try:
                f = d.check(now)
                if f is not None:
                    self.detected(d, f)
            except EngineError:
                raise
            except Exception as exc:  # noqa: BLE001 - a faulty detector must not stop the engine
                self.detectors.remove(d)
                self.engine.emit(
                    SYSTEM_ERROR,
                    "incidents",
                    "detector",
                    {
                        "detector": d.scenario,
                        "error": f"{type(exc).__name__}: {exc}",
                        "action": "detector disabled",
                    },
                    actor="detector",
                )

    def detected(self, d: Detector, f: Finding) -> str:
        """Open an incident for a finding, unless it is the fault of a failed incident
        that no operator has acted on since (same kind, same subject): one incident per
        ongoing fault, not one per check. The repeat is held on the failed incident,
        noted there once; a re-plan reopens it, a resolve closes it, and a different
        fault of the kind opens its own incident."""
        held = self.failed_on(d, f)
        if held is None:
            return self.open_incident(f)
        failed_at = held.resolved_at or 0.0
        if not any(n.action == STILL_DETECTED and n.at >= failed_at for n in held.notes):
            self.engine.emit(
                INCIDENT_NOTED,
                "incidents",
                "incident",
                {
                    "incident_id": held.id,
                    "note": "the same fault is still detected: held on this failed incident, "
                    "not opened again, until an operator re-plans or resolves it",
                    "action": STILL_DETECTED,
                },
                actor="detector",
            )
        return held.id

    def failed_on(self, d: Detector, f: Finding) -> Incident | None:
        """The latest failed incident of the finding's kind about the same subject."""
        subject = d.subject(f)
        for inc in reversed(list(self.engine.state.incidents.values())):
            if inc.scenario == f.scenario and inc.status == "failed" and d.subject(finding_of(inc)) == subject:
                return inc
        return None

    def expect_fault(self, scenario: str, at: float) -> None:
        """A drill says when it injected the fault: detection latency is measured from it."""
        self.fault_at[scenario] = at

    def open_incident(self, f: Finding) -> str:
        eng = self.engine
        s = eng.state
        now = eng.clock.now()
        inc_id = f"INC-{len(s.incidents) + 1:04d}"
        kind = self.catalogue.get(f.scenario)
        evidence = IncidentEvidence.model_validate(
            {
                **f.evidence,  # the detector's, then what the kind records when an incident opens
                "finding": FindingRecord(component=f.component, scope=f.scope, data=f.data, onset=f.onset),
                "progress_at_detection": {
                    w: round(s.workflow_progress(w), 4) for w in f.affected_workflows if w in s.workflows
                },
                **(kind.evidence(eng, f) if kind.evidence is not None else {}),
            }
        )
        fault_at = self.fault_at.get(f.scenario)
        inc = Incident(
            id=inc_id,
            scenario=f.scenario,
            type=f.type,
            severity=f.severity,
            evidence=evidence,
            detected_at=now,
            fault_at=fault_at if fault_at is not None else f.onset,
            affected_workflows=f.affected_workflows,
            criteria=[kind.criterion],
            validation_window_s=kind.window(eng),
        )
        eng.emit(INCIDENT_OPENED, "incidents", "incident", {"incident": inc.model_dump(mode="json")}, actor="detector")
        eng.emit(f.type, f.component, f.scope, {**f.data, "incident_id": inc_id}, actor="detector")
        self.propose(inc_id, f)
        return inc_id

    # -- planning -------------------------------------------------------------
    def propose(self, inc_id: str, f: Finding) -> str:
        return propose(self.engine, inc_id, f, auto_approve=self.approve_mode == "auto", catalogue=self.catalogue)

    # -- driving --------------------------------------------------------------
    async def pump(self) -> None:
        """Run due integrity checks and advance every active plan."""
        now = self.engine.clock.now()
        for d in self.detectors:
            if d.due(now) and self.open_for(d.scenario) is None:
                f = await d.check_async(now)
                if f is not None:
                    self.detected(d, f)
        await self.executor.advance_all()
        for d in self.detectors:
            if self.open_for(d.scenario) is None and self._resolved_since_reset(d):
                d.reset()

    def _resolved_since_reset(self, d: Detector) -> bool:
        """An incident of the detector's kind has come (and gone) since it last reset."""
        n = sum(1 for i in self.engine.state.incidents.values() if i.scenario == d.scenario)
        if self._incidents_seen.get(d.scenario, 0) != n:
            self._incidents_seen[d.scenario] = n
            return n > 0
        return False

    def start(self, interval: float = 0.2) -> asyncio.Task[None]:
        """Pump in the background (the console): the engine runs in real time."""

        async def loop() -> None:
            while True:
                await self.pump()
                await asyncio.sleep(interval)

        self._task = asyncio.get_running_loop().create_task(loop())
        return self._task

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


def propose(
    engine: Engine,
    inc_id: str,
    f: Finding,
    auto_approve: bool = False,
    actor: str = "playbook",
    catalogue: Catalogue = CATALOGUE,
) -> str:
    """Ask the scenario's playbook for a plan from the state now and propose it
    (PLAN_PROPOSED plus the seed's strategy event); each step's approval follows the
    policy of the command's kind."""
    eng = engine
    draft = catalogue.get(f.scenario).playbook(eng, f)
    pid = f"PLAN-{len(eng.state.plans) + 1:04d}"
    policy = eng.config.approval
    steps = []
    for i, sd in enumerate(draft.steps):
        kind = command_kind(sd.command)
        steps.append(
            PlanStep(
                index=i,
                command=sd.command,
                title=sd.title,
                category=kind,
                approval=decide(kind, policy),
                gate=sd.gate,
                check=sd.check,
            )
        )
    plan = Plan(
        id=pid,
        incident_id=inc_id,
        scenario=f.scenario,
        title=draft.title,
        strategy=draft.strategy,
        steps=steps,
        created_at=eng.clock.now(),
        expected=draft.expected,
    )
    eng.emit(PLAN_PROPOSED, "incidents", "plan", {"plan": plan.model_dump(mode="json")}, actor=actor)
    if draft.announce:
        t, c, sc, data = draft.announce
        eng.emit(t, c, sc, {**data, "incident_id": inc_id, "plan_id": pid}, actor=actor)
    if auto_approve:
        approve(eng, pid, actor="policy:auto-approve")
    return pid


def replan(
    engine: Engine, incident_id: str, actor: str = "operator", catalogue: Catalogue = CATALOGUE
) -> dict[str, Any]:
    """A new plan for an incident that has none in force (its plan was rejected,
    aborted or failed): the playbook plans again from the state now; the incident's
    criteria stay as they were fixed when it opened."""
    from .decisions import _active_plan, get_incident

    inc = get_incident(engine, incident_id)
    if inc.status == "resolved":
        raise EngineError(
            "INVALID_STATE", f"incident {incident_id} is resolved; nothing to re-plan", {"incident_id": incident_id}
        )
    active = _active_plan(engine, inc)
    if active is not None:
        raise EngineError(
            "INVALID_STATE",
            f"plan {active} of {incident_id} is still {engine.state.plans[active].state}",
            {"incident_id": incident_id, "plan_id": active},
        )
    f = finding_of(inc)
    engine.emit(
        INCIDENT_NOTED,
        "incidents",
        "incident",
        {"incident_id": incident_id, "note": "re-planned", "action": "replan"},
        actor=actor,
    )
    if inc.status == "failed":
        engine.emit(INCIDENT_REOPENED, "incidents", "incident", {"incident_id": incident_id, "by": actor}, actor=actor)
    pid = propose(engine, incident_id, f, actor=actor, catalogue=catalogue)
    return {"incident_id": incident_id, "plan_id": pid, "steps": len(engine.state.plans[pid].steps), "by": actor}


def finding_of(inc: Incident) -> Finding:
    """The finding an incident was opened on, as recorded with it."""
    fd = inc.evidence.finding or FindingRecord()
    older = inc.evidence.of(_AgentsCut)  # an incident opened before findings were recorded
    return Finding(
        scenario=inc.scenario,
        type=inc.type,
        component=fd.component,
        scope=fd.scope,
        severity=inc.severity,
        data=fd.data or {"failed_agents": older.failed_agents, "affected_agents": older.unreachable},
        evidence=inc.evidence.model_dump(),  # as written: the kind's playbook reads it through its view
        affected_workflows=list(inc.affected_workflows),
        onset=fd.onset,
    )
