"""The executor: runs a plan's steps one by one through the command language.

State-driven and resumable: each call to :meth:`Executor.advance` looks at the plan
in the projection and does what is due. A step whose approval is ``auto`` runs as
soon as it is reached; a ``manual`` step waits until the plan is approved. When a
step is due, its targets are checked against the state now: a step that changes state
and all of whose targets have ended since the draft (a workflow finished, an agent gone,
a task settled) is skipped with the reason (:mod:`.preconditions`), and the plan goes
on; it earns the plan no credit. Before the first step that runs a checkpoint is taken
(the rollback target). A failed command, a failed validation gate or a regression found
by a step check aborts the plan and rolls it back. Every transition is an event
(PLAN_STEP_STARTED/COMPLETED/FAILED/SKIPPED, PLAN_COMPLETED, PLAN_ABORTED,
INCIDENT_RESOLVED).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..commands.context import Services
from ..commands.executor import run_command
from ..event_types import (
    INCIDENT_RESOLVED,
    PLAN_COMPLETED,
    PLAN_EXECUTION_STARTED,
    PLAN_STEP_COMPLETED,
    PLAN_STEP_FAILED,
    PLAN_STEP_SKIPPED,
    PLAN_STEP_STARTED,
    PLAN_VALIDATION_STARTED,
    SYSTEM_ERROR,
)
from ..incident_models import STEP_PASSED, TERMINAL_PLAN, IncidentOutcome, Plan
from .decisions import abort
from .preconditions import TargetCheck, ended_targets
from .record import PlanRecord, StepRun, rebuild
from .validation import GateCtx

if TYPE_CHECKING:
    from ..engine import Engine
    from ..events import Event
    from .catalogue import Catalogue

RESULT_CHARS = 4000


def _summarise(res: dict[str, Any]) -> dict[str, Any]:
    """Keep a command's response in the plan, bounded in size."""
    out: dict[str, Any] = {k: res.get(k) for k in ("status", "operation", "workflow_id") if k in res}
    result = res.get("result")
    text = json.dumps(result, default=str)
    if len(text) <= RESULT_CHARS:
        out["result"] = result
    elif isinstance(result, dict):
        out["result_keys"] = sorted(result)[:40]
    if res.get("status") == "error":
        out["error"] = res.get("error")
    return out


class Executor:
    """Advances plans; keeps the in-flight memory of gates and checks."""

    def __init__(self, engine: Engine, catalogue: Catalogue, services: Services) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.services = services
        """What plan steps run with (the manager's, or the host's once it serves)."""
        self.memo: dict[tuple[str, int | str], dict[str, Any]] = {}
        self.extras: dict[str, Any] = {}
        self.records: dict[str, PlanRecord] = {}
        self._running: StepRun | None = None
        engine.observe(self._on_event)

    async def record(self, plan: Plan) -> PlanRecord:
        """The plan's record. One this executor did not start (a restart mid-plan) is
        rebuilt from the plan in the projection and the plan's own events in the log
        since its rollback checkpoint."""
        rec = self.records.get(plan.id)
        if rec is not None:
            return rec
        rec = self.records[plan.id] = rebuild(plan)
        eng = self.engine
        cp = eng.state.checkpoints.get(plan.checkpoint or -1)
        if eng.store is not None and cp is not None:
            await eng.flush()
            who = f"plan:{plan.id}"
            seen = {e.seq for e in rec.events}
            async for ev in eng.store.iter_events(cp.seq):
                if ev.actor == who and ev.seq not in seen:
                    rec.events.append(ev)
            rec.events.sort(key=lambda e: e.seq)
        return rec

    def _on_event(self, ev: Event) -> None:
        if not ev.actor.startswith("plan:"):
            return
        rec = self.records.get(ev.actor.removeprefix("plan:"))
        if rec is None:
            return
        rec.events.append(ev)
        if self._running is not None and rec.steps.get(self._running.index) is self._running:
            self._running.events.append(ev)

    def active(self) -> list[str]:
        return [pid for pid, p in sorted(self.engine.state.plans.items()) if p.state not in TERMINAL_PLAN]

    async def advance_all(self) -> None:
        for pid in self.active():
            try:
                await self.advance(pid)
            except Exception as exc:  # noqa: BLE001 - one broken plan must not stop the others
                self.engine.emit(
                    SYSTEM_ERROR,
                    "incidents",
                    "executor",
                    {
                        "plan_id": pid,
                        "error": f"{type(exc).__name__}: {exc}",
                        "action": "plan aborted",
                    },
                    actor=f"plan:{pid}",
                )
                if self.engine.state.plans[pid].state not in TERMINAL_PLAN:
                    await self._fail(pid, f"internal error: {type(exc).__name__}: {exc}")

    async def advance(self, plan_id: str) -> None:
        eng = self.engine
        for _ in range(64):  # at most this many transitions per call
            p = eng.state.plans.get(plan_id)
            if p is None or p.state in TERMINAL_PLAN:
                return
            idx = next((i for i, st in enumerate(p.steps) if st.state not in STEP_PASSED), None)
            if idx is None:
                await self._validate(p)
                return
            st = p.steps[idx]
            if st.state == "executing":
                if not await self._poll(p, idx):
                    return
                continue
            if st.state == "failed":
                return
            if st.approval == "manual" and p.state not in ("approved", "executing"):
                return  # waits for an operator
            ended = ended_targets(eng.state, st.command, self.services.registry)
            if ended:
                self._skip(p, idx, ended)
                continue
            if p.checkpoint is None:
                cp = await eng.checkpoint(kind="emergency", label=f"before {plan_id}", actor=f"plan:{plan_id}")
                eng.emit(
                    PLAN_EXECUTION_STARTED,
                    "incidents",
                    "plan",
                    {"plan_id": plan_id, "checkpoint": cp},
                    actor=f"plan:{plan_id}",
                )
                p = eng.state.plans[plan_id]
            await self._run_step(p, idx)

    def _skip(self, p: Plan, idx: int, ended: list[TargetCheck]) -> None:
        """The step's command is not sent: every target it acts on has ended."""
        self.engine.emit(
            PLAN_STEP_SKIPPED,
            "incidents",
            "plan",
            {
                "plan_id": p.id,
                "step": idx,
                "reason": "; ".join(c.problem or c.target for c in ended) + ": nothing left for it to act on",
                "targets": [c.target for c in ended],
            },
            actor=f"plan:{p.id}",
        )

    async def _run_step(self, p: Plan, idx: int) -> None:
        eng = self.engine
        pid = p.id
        st = p.steps[idx]
        who = f"plan:{pid}"
        by = p.decided_by if st.approval == "manual" else "policy:" + st.category
        eng.emit(
            PLAN_STEP_STARTED,
            "incidents",
            "plan",
            {"plan_id": pid, "step": idx, "command": st.command, "approval": st.approval, "approved_by": by},
            actor=who,
        )
        run = StepRun(idx, st.command, st.category, eng.clock.now())
        self.records.setdefault(pid, PlanRecord(pid)).steps[idx] = run
        self._running = run
        try:
            res = await run_command(self.services, st.command, actor=who)
        finally:
            self._running = None
        run.ok = res.get("status") == "success"
        result = res.get("result")
        run.result = result if isinstance(result, dict) else {}
        if eng.state.plans[pid].state in TERMINAL_PLAN:
            return  # aborted while the command ran
        if res.get("status") != "success":
            err = res.get("error", {})
            msg = f"{err.get('code', 'ERROR')}: {err.get('message', '')}"
            eng.emit(
                PLAN_STEP_FAILED,
                "incidents",
                "plan",
                {"plan_id": pid, "step": idx, "error": msg, "result": _summarise(res)},
                actor=who,
            )
            await self._fail(pid, f"step {idx + 1} ({' '.join(st.command.split(' ', 2)[:2])}) failed: {msg}")
            return
        if st.gate or st.check:
            self.memo[(pid, idx)] = {
                "started": eng.clock.now(),
                "response": _summarise(res),
                "gate_memo": {"response": res},
            }
            return
        eng.emit(
            PLAN_STEP_COMPLETED,
            "incidents",
            "plan",
            {"plan_id": pid, "step": idx, "result": _summarise(res)},
            actor=who,
        )

    async def _poll(self, p: Plan, idx: int) -> bool:
        """Poll a step's check and gate. True when the step completed."""
        eng = self.engine
        pid = p.id
        st = p.steps[idx]
        m = self.memo.get((pid, idx))
        if m is None:  # restarted mid-step: start the validation over from now
            m = self.memo[(pid, idx)] = {"started": eng.clock.now(), "response": {}, "gate_memo": {}}
        now = eng.clock.now()
        chk = st.check
        if chk and not m.get("checked"):
            if now - m["started"] < chk.settle_s:
                return False
            series = eng.telemetry.get(chk.metric)
            before = [v for t, v in series.since(m["started"] - chk.settle_s) if t < m["started"]]
            after = [v for _, v in series.since(m["started"])]
            if before and after:
                b = sum(before) / len(before)
                a = sum(after) / len(after)
                worse = (a - b) / abs(b) * 100.0 if b else 0.0
                if not chk.higher_is_worse:
                    worse = -worse
                m["check_result"] = {
                    "metric": chk.metric,
                    "before": round(b, 4),
                    "after": round(a, 4),
                    "regression_pct": round(worse, 2),
                }
                if worse > chk.max_regression_pct:
                    eng.emit(
                        PLAN_STEP_FAILED,
                        "incidents",
                        "plan",
                        {
                            "plan_id": pid,
                            "step": idx,
                            "error": "regression after the step",
                            "result": m["check_result"],
                        },
                        actor=f"plan:{pid}",
                    )
                    await self._fail(
                        pid, f"regression of {chk.metric} by {worse:.1f}% after step {idx + 1}: rolled back"
                    )
                    return False
            m["checked"] = True
        gname = st.gate
        details: dict[str, Any] = {}
        if gname:
            inc = eng.state.incidents[p.incident_id]
            ctx = GateCtx(eng, p, inc, m["started"], m["gate_memo"], record=await self.record(p))
            ctx.memo.update({k: v for k, v in self.extras.items() if k not in ctx.memo})
            verdict, details = await self.catalogue.gate(gname)(ctx)
            if verdict == "wait":
                return False
            if verdict == "fail":
                eng.emit(
                    PLAN_STEP_FAILED,
                    "incidents",
                    "plan",
                    {"plan_id": pid, "step": idx, "error": f"validation {gname} failed", "result": details},
                    actor=f"plan:{pid}",
                )
                await self._fail(pid, f"validation {gname} failed: {details.get('reason', '')}")
                return False
            m["validated"] = details
        result = {**m.get("response", {}), "check": m.get("check_result"), "validation": details or None}
        eng.emit(
            PLAN_STEP_COMPLETED,
            "incidents",
            "plan",
            {"plan_id": pid, "step": idx, "result": result},
            actor=f"plan:{pid}",
        )
        return True

    async def _fail(self, pid: str, reason: str) -> None:
        eng = self.engine
        p = eng.state.plans[pid]
        await abort(eng, pid, actor=f"plan:{pid}", reason=reason)
        inc = eng.state.incidents.get(p.incident_id)
        if inc is not None and inc.status != "resolved":
            eng.emit(
                INCIDENT_RESOLVED,
                "incidents",
                "incident",
                {
                    "incident_id": inc.id,
                    "status": "failed",
                    "outcome": IncidentOutcome(
                        validated=False, result="not_validated", reason=reason, plan_id=pid
                    ).model_dump(),
                },
                actor=f"plan:{pid}",
            )

    async def _validate(self, p: Plan) -> None:
        """Every step has run: the incident's criteria decide. A criterion a step's
        gate already passed counts; any other is polled now, for at most the
        incident's validation window, against the state (never against the steps)."""
        eng = self.engine
        pid = p.id
        inc = eng.state.incidents[p.incident_id]
        validations: dict[str, Any] = {}
        for st in p.steps:
            if st.gate:
                validations[st.gate] = (st.result or {}).get("validation")
        kind = self.catalogue.get(inc.scenario)
        window = float(inc.validation_window_s or kind.window(eng))
        for name in inc.criteria or [kind.criterion]:
            if validations.get(name) is not None:
                continue
            m = self.memo.get((pid, name))
            if m is None:
                m = self.memo[(pid, name)] = {"started": eng.clock.now(), "gate_memo": {}}
                eng.emit(
                    PLAN_VALIDATION_STARTED,
                    "incidents",
                    "plan",
                    {
                        "plan_id": pid,
                        "criterion": name,
                        "window_s": window,
                        "incident_id": inc.id,
                    },
                    actor=f"plan:{pid}",
                )
            if m.get("passed") is None:
                ctx = GateCtx(eng, p, inc, m["started"], m["gate_memo"], timeout_s=window, record=await self.record(p))
                ctx.memo.update({k: v for k, v in self.extras.items() if k not in ctx.memo})
                verdict, details = await self.catalogue.gate(name)(ctx)
                if verdict == "wait":
                    return
                if verdict == "fail":
                    await self._fail(pid, f"validation {name} failed: {details.get('reason', '')}")
                    return
                m["passed"] = details
            validations[name] = m["passed"]
        self._finish(p, validations)

    def _finish(self, p: Plan, validations: dict[str, Any]) -> None:
        eng = self.engine
        pid = p.id
        inc = eng.state.incidents[p.incident_id]
        passed = bool(validations) and all(v is not None for v in validations.values())
        criteria = inc.criteria or [self.catalogue.get(inc.scenario).criterion]
        uncredited = {c: (validations.get(c) or {}) for c in criteria if not (validations.get(c) or {}).get("credited")}
        validated = passed and not uncredited
        now = eng.clock.now()
        recovery = next(
            (v.get("recovery_time_s") for v in validations.values() if v and v.get("recovery_time_s") is not None),
            None,
        )
        outcome = IncidentOutcome(
            validated=validated,
            result="validated" if validated else "recovered_without_plan" if passed else "not_validated",
            validations=validations,
            recovery_time_s=recovery,
            detection_latency_s=round(float(inc.detected_at) - float(inc.fault_at), 1)
            if inc.fault_at is not None
            else None,
            plan_finished_s=round(now - float(inc.detected_at), 1),
        )
        if passed and uncredited:
            # The criterion holds but the plan's steps are not what made it hold.
            outcome.recovery_time_s = None
            outcome.reason = "recovered without the plan: " + "; ".join(
                f"{c}: {(v.get('credit') or {}).get('basis', 'no evidence tied to the plan')}"
                for c, v in uncredited.items()
            )
        for v in validations.values():
            if v and v.get("quarantined_checkpoints"):
                outcome.quarantined_checkpoints = v["quarantined_checkpoints"]
        written = outcome.model_dump()  # the fields set above, as the event carries them
        eng.emit(PLAN_COMPLETED, "incidents", "plan", {"plan_id": pid, "outcome": written}, actor=f"plan:{pid}")
        eng.emit(
            INCIDENT_RESOLVED,
            "incidents",
            "incident",
            {
                "incident_id": inc.id,
                # Recovered without the plan: the incident is over, the plan is not validated.
                "status": "resolved" if passed else "failed",
                "outcome": {**written, "plan_id": pid},
            },
            actor=f"plan:{pid}",
        )
