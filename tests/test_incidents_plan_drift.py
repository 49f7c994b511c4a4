"""A plan step whose target ended between the plan's draft and the step's turn is skipped
with its reason, and the plan goes on; a step whose target is still there runs, and
fails the plan if its command fails. The data-integrity plan protected the affected
workflows live at the draft; one that finished before the operator approved made the
protection step fail (INVALID_STATE), and the plan aborted though nothing was wrong with
the recovery. A skipped step earns the plan no credit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.commands import run_command
from core.config import Approval, Config
from core.engine import Engine
from core.events import Event
from core.incident_models import TERMINAL_PLAN, Plan, PlanState
from core.incidents import decisions
from core.incidents.catalogue import DrillSpec, IncidentKind, RunningDrill
from core.incidents.detectors import Detector, Finding
from core.incidents.kinds import CATALOGUE
from core.incidents.language import LANGUAGE, incident_services
from core.incidents.manager import IncidentManager
from core.incidents.playbooks import PlanDraft, StepDraft, cmd
from core.incidents.preconditions import ended_targets
from core.incidents.record import Credit, no_acting_step
from core.incidents.validation import GateCtx, Verdict
from core.models import AgentStatus, WorkflowStatus
from core.session import open_sim

from .test_incidents_integrity_finished import _finding

HOLD_ALL = Config(
    approval=Approval(auto=[], manual=["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"])
)
"""Every step waits for the operator: the draft and the steps' turn are apart."""
LIMIT_S = 3600.0


async def _run_until_over(mgr: IncidentManager, pid: str) -> Plan:
    eng = mgr.engine
    end = eng.clock.now() + LIMIT_S
    while eng.state.plans[pid].state not in TERMINAL_PLAN:
        assert eng.clock.now() < end, f"{pid} still {eng.state.plans[pid].state} after {LIMIT_S:g} s"
        await mgr.executor.advance_all()
        await eng.advance(eng.config.intervals.sample_s)
    return eng.state.plans[pid]


def _log(eng: Engine) -> list[Event]:
    seen: list[Event] = []
    eng.subscribe(seen.append)
    return seen


async def _integrity_plan(tmp_path: Path, affected: list[str]) -> tuple[IncidentManager, str]:
    eng = await open_sim(tmp_path / "ops.db", HOLD_ALL, demo=True)
    await eng.advance(300)
    mgr = IncidentManager(eng, approve_mode="manual", scenarios=[])
    inc = mgr.open_incident(_finding(affected))
    return mgr, eng.state.incidents[inc].plans[-1]


async def test_a_workflow_finishing_before_approval_skips_its_protection_and_the_plan_goes_on(
    tmp_path: Path,
) -> None:
    mgr, pid = await _integrity_plan(tmp_path, ["workflow_002", "workflow_003"])
    eng = mgr.engine
    log = _log(eng)
    try:
        plan = eng.state.plans[pid]
        protect = {i: st.command for i, st in enumerate(plan.steps) if "emergency-data-protection" in st.command}
        gone = next(i for i, c in protect.items() if "workflow_003" in c)
        kept = next(i for i, c in protect.items() if "workflow_002" in c)
        await mgr.executor.advance_all()
        assert all(st.state is PlanState.PROPOSED for st in eng.state.plans[pid].steps), "every step waits"
        # The operator reads the plan; meanwhile workflow_003 ends.
        assert (await run_command(eng, "/coordination-hub cancel workflow_003"))["status"] == "success"
        decisions.approve(eng, pid, actor="eve")
        plan = await _run_until_over(mgr, pid)

        assert plan.state is PlanState.COMPLETED, plan.outcome
        assert plan.steps[gone].state is PlanState.SKIPPED
        assert "workflow workflow_003 is cancelled" in plan.steps[gone].result["summary"]
        assert plan.steps[gone].started_at is None, "its command was not sent"
        assert plan.steps[kept].state is PlanState.COMPLETED
        assert eng.state.workflows["workflow_002"].frozen or plan.steps[kept].result["result"]["frozen"]
        assert all(st.state is PlanState.COMPLETED for i, st in enumerate(plan.steps) if i != gone)
        skipped = [e for e in log if e.type == "PLAN_STEP_SKIPPED"]
        assert [(e.data["step"], e.actor, e.data["targets"]) for e in skipped] == [
            (gone, f"plan:{pid}", ["workflow workflow_003"])
        ]
        started = {e.data["step"] for e in log if e.type == "PLAN_STEP_STARTED"}
        assert gone not in started and kept in started
        assert not any(e.type in ("PLAN_STEP_FAILED", "PLAN_ABORTED") for e in log)
        from tui.widgets.incidents import progress

        assert progress(plan) == f"4/5 steps, step {gone + 1} skipped", "the incidents pane's row says so"
        inc = eng.state.incidents[plan.incident_id]
        # Judged on the rest: no damage was there to repair, so nothing credits the plan.
        assert inc.status == "resolved" and inc.outcome.result == "recovered_without_plan", inc.outcome
    finally:
        await eng.close()


async def test_a_live_target_whose_command_fails_still_aborts_the_plan(tmp_path: Path) -> None:
    """The must-not: the step's workflow is still there (frozen, so pausing it is refused):
    nothing ended, the step fails and the plan aborts as before."""
    mgr, pid = await _integrity_plan(tmp_path, ["workflow_002"])
    eng = mgr.engine
    log = _log(eng)
    try:
        steps = [st.command for st in eng.state.plans[pid].steps]
        decisions.edit(eng, pid, [steps[0], "/workflow-status pause workflow_002", *steps[1:]], actor="eve")
        decisions.approve(eng, pid, actor="eve")
        plan = await _run_until_over(mgr, pid)
        assert plan.state in (PlanState.ROLLED_BACK, PlanState.FAILED)
        assert plan.steps[0].state is PlanState.ROLLED_BACK, "the protection ran (froze workflow_002), then rolled back"
        assert plan.steps[1].state is PlanState.FAILED
        assert all(st.state is PlanState.REJECTED for st in plan.steps[2:]), "nothing after it ran"
        failed = [e for e in log if e.type == "PLAN_STEP_FAILED"]
        assert [e.data["step"] for e in failed] == [1] and "WORKFLOW_FROZEN" in failed[0].data["error"]
        assert not any(e.type == "PLAN_STEP_SKIPPED" for e in log)
        aborted = [e for e in log if e.type == "PLAN_ABORTED"]
        # The reason numbers the step as every view does (from 1): the second step failed.
        assert aborted and "step 2 (/workflow-status pause) failed" in aborted[0].data["reason"], aborted
        assert eng.state.incidents[plan.incident_id].status == "failed"
    finally:
        await eng.close()


async def test_a_target_that_never_existed_is_not_skipped(tmp_path: Path) -> None:
    """A name that matches nothing is an error in the plan, not a target that ended."""
    mgr, pid = await _integrity_plan(tmp_path, ["workflow_002"])
    eng = mgr.engine
    log = _log(eng)
    try:
        decisions.edit(eng, pid, ["/workflow-status pause workflow_999"], actor="eve")
        decisions.approve(eng, pid, actor="eve")
        plan = await _run_until_over(mgr, pid)
        assert plan.state in (PlanState.ROLLED_BACK, PlanState.FAILED)
        failed = [e for e in log if e.type == "PLAN_STEP_FAILED"]
        assert failed and "WORKFLOW_NOT_FOUND" in failed[0].data["error"]
        assert not any(e.type == "PLAN_STEP_SKIPPED" for e in log)
    finally:
        await eng.close()


async def test_which_ends_skip_a_step(tmp_path: Path) -> None:
    """The same check for every kind's steps: a workflow finished, an agent gone, a
    replaced agent back, a task settled; only when every target ended, only for a step
    that changes state."""
    eng = await open_sim(tmp_path / "ops.db", demo=True)
    try:
        await eng.advance(300)
        s = eng.state
        assert (await run_command(eng, "/coordination-hub cancel workflow_003"))["status"] == "success"
        agents = sorted(s.agents)
        gone, live = agents[0], agents[1]
        eng.emit("AGENT_DEALLOCATED", "resource", "agents", {"agent": gone}, actor="test")
        assert s.agents[gone].status is AgentStatus.RETIRED
        assert s.agents[live].status not in (AgentStatus.FAILED, AgentStatus.RETIRED)
        ended = ended_targets(s, "/workflow-status pause workflow_003", LANGUAGE)
        assert [c.target for c in ended] == ["workflow workflow_003"]
        assert ended_targets(s, "/workflow-status pause workflow_002", LANGUAGE) == []
        assert ended_targets(s, "/workflow-status pause workflow_999", LANGUAGE) == [], "never existed: not an end"
        assert ended_targets(s, "/workflow-status workflow_003", LANGUAGE) == [], (
            "reading a finished workflow still works"
        )
        quarantine = cmd("incident", "quarantine-agents", {"agents": [gone], "duration": 60.0})
        assert [c.problem for c in ended_targets(s, quarantine, LANGUAGE)] == [f"agent {gone} is retired"]
        both = cmd("incident", "quarantine-agents", {"agents": [gone, live], "duration": 60.0})
        assert ended_targets(s, both, LANGUAGE) == [], "one agent still there: the step runs for it"
        replaced = cmd("workflow-recovery", "transfer-context", {"failed_agents": [live]})
        assert [c.problem for c in ended_targets(s, replaced, LANGUAGE)] == [
            f"agent {live} is {s.agents[live].status.value}: it needs no replacement"
        ]
        realloc = cmd(
            "resource-manager",
            "emergency-reallocation",
            {"actions": [{"action": "pause_low_priority_workflows", "affected": ["workflow_003"]}]},
        )
        assert [c.target for c in ended_targets(s, realloc, LANGUAGE)] == ["workflow workflow_003"]
        running = next(k for k, t in s.tasks.items() if t.status.value == "running")
        done = next((k for k, t in s.tasks.items() if t.status.value == "completed"), None)
        assert ended_targets(s, cmd("coordination-hub", "send-input", {"task": running, "text": "y"}), LANGUAGE) == []
        if done is not None:
            send = cmd("coordination-hub", "send-input", {"task": done, "text": "y"})
            assert [c.target for c in ended_targets(s, send, LANGUAGE)] == [f"task {done}"]
        # The console's stale marks read the same checks.
        from tui.staleness import step_problems

        assert step_problems(s, "/workflow-status pause workflow_003")[0].startswith(
            "workflow workflow_003 is cancelled"
        )
        assert step_problems(s, "/workflow-status pause workflow_002") == []
    finally:
        await eng.close()


# -- credit: a plan whose only acting step was skipped is not credited -------------------

TOY = "paused-by-fault"


class _Never(Detector):
    scenario = TOY

    def check(self, now: float) -> Finding | None:
        return None


def _pause_playbook(engine: Engine, f: Finding) -> PlanDraft:
    steps = [StepDraft(cmd("workflow-status", "pause", workflow=w), f"pause {w}") for w in f.affected_workflows]
    return PlanDraft(title="pause", strategy="pause", steps=steps)


async def _not_running(ctx: GateCtx) -> Verdict:
    """The affected workflows no longer run; credited when a step of the plan ran."""
    s = ctx.engine.state
    running = [
        w for w in ctx.incident.affected_workflows if w in s.workflows and s.workflows[w].status.value == "running"
    ]
    if running:
        return ("fail", {"reason": "still running"}) if ctx.now - ctx.started_at > ctx.timeout_s else ("wait", {})
    credit: Credit = no_acting_step(ctx.record) or Credit(True, "a pause of the plan ran")
    details: dict[str, Any] = {"credited": credit.credited, "credit": credit.as_dict()}
    return "pass", details


async def _no_drill(drill: RunningDrill) -> dict[str, Any]:
    raise AssertionError("this kind is not drilled")


async def test_a_plan_whose_acting_step_was_skipped_is_not_credited(tmp_path: Path) -> None:

    kind = IncidentKind(
        name=TOY,
        detector=_Never,
        playbook=_pause_playbook,
        criterion="not_running",
        gate=_not_running,
        window=lambda engine: 10 * engine.config.intervals.sample_s,
        drill=DrillSpec(_no_drill, _no_drill),
    )
    eng = await open_sim(tmp_path / "ops.db", demo=True)
    log = _log(eng)
    try:
        await eng.advance(300)
        mgr = IncidentManager(eng, approve_mode="manual", scenarios=[TOY], catalogue=CATALOGUE.with_kind(kind))
        finding = Finding(TOY, "WORKFLOW_STALLED", "coordination", "workflow", "high", {}, {}, ["workflow_003"])
        inc = mgr.open_incident(finding)
        pid = eng.state.incidents[inc].plans[-1]
        assert (await run_command(eng, "/coordination-hub cancel workflow_003"))["status"] == "success"
        decisions.approve(eng, pid, actor="eve")
        plan = await _run_until_over(mgr, pid)
        assert plan.state is PlanState.COMPLETED and plan.steps[0].state is PlanState.SKIPPED
        assert not any(e.type == "WORKFLOW_PAUSED" for e in log)
        out = eng.state.incidents[inc].outcome
        assert out.validated is False and out.result == "recovered_without_plan", out
        assert out.recovery_time_s is None
        assert "no acting step of the plan ran" in (out.reason or "")
        assert eng.state.workflows.get("workflow_003") is None
        assert eng.state.finished["workflow_003"].status is WorkflowStatus.CANCELLED
    finally:
        await eng.close()


async def test_an_edit_may_keep_or_add_an_incident_step(tmp_path: Path) -> None:
    """Plan steps run in the language with /incident (the degradation plan quarantines
    agents with it): /incident edit checks them in that language. It checked them in the
    language's own operations and refused them ('unknown component /incident')."""
    mgr, pid = await _integrity_plan(tmp_path, ["workflow_002"])
    eng = mgr.engine
    services = incident_services(eng, mgr)
    try:
        agent = sorted(eng.state.agents)[0]
        payload = {"agents": [agent], "duration": 60.0}
        step = {"command": "/incident quarantine-agents", "payload": payload}
        res = await run_command(services, f"/incident edit {pid} '{json.dumps({'steps': [step]})}'", actor="eve")
        assert res["status"] == "success", res
        st = eng.state.plans[pid].steps[0]
        assert (st.command, st.category, st.approval) == (
            cmd("incident", "quarantine-agents", payload),
            "destructive",
            "manual",
        )
        before = eng.state.plans[pid].model_dump()
        bad = {"command": "/incident quarantine-agents", "payload": {"agents": [], "duration": 60.0}}
        res = await run_command(services, f"/incident edit {pid} '{json.dumps({'steps': [bad]})}'", actor="eve")
        assert res["status"] == "error" and res["error"]["code"] == "INVALID_PLAN_EDIT", res
        assert eng.state.plans[pid].model_dump() == before, "a refused edit changes nothing"
    finally:
        await eng.close()
