"""Validation gates: the measured proof that a recovery worked.

A gate follows a plan step (the step stays ``executing`` until its gate passes). It
polls the state and telemetry and answers wait, pass or fail. Each incident kind
(``core.incidents.kinds``) holds its criterion gate, which on pass emits the kind's
completion event with every figure measured; this module holds what the gates
share: their context, the helpers they measure with, and the gates any plan may
name (``SHARED_GATES``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..incident_models import Incident, KindEvidence, Plan
from ..models import TERMINAL_WORKFLOW, Task, TaskStatus, WorkflowStatus
from ..timefmt import duration
from ..usage.models import Budget, Scope
from .record import PlanRecord

if TYPE_CHECKING:
    from ..engine import Engine

GATE_TIMEOUT_S = 2 * 3600.0


class BudgetEvidence(KindEvidence):
    """What the usage-budget playbook and criteria (:func:`spend_stopped`) read of its evidence."""

    budget_scope: Scope
    budget_name: str
    budget: Budget
    spent_in_window_before: dict[str, int | float] | None = None
    """Tokens and cost spent over the hold period before detection (and its ``window_s``)."""


@dataclass
class GateCtx:
    engine: Engine
    plan: Plan
    incident: Incident
    started_at: float
    memo: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = GATE_TIMEOUT_S
    """How long the gate may wait for its condition before it fails."""
    record: PlanRecord = field(default_factory=lambda: PlanRecord(""))
    """What the plan's steps did: the evidence the criterion may credit it with."""

    def recovery_started(self) -> float:
        """When recovery began: the plan's first acting step (detection if none ran)."""
        first = self.record.first_acting_at()
        return first if first is not None else self.incident.detected_at

    @property
    def now(self) -> float:
        return self.engine.clock.now()


Verdict = tuple[str, dict[str, Any]]
"""("wait" | "pass" | "fail", details). A criterion's "pass" details carry
``credited`` (bool) and ``credit`` (its basis): the criterion held, and whether the
plan's acting steps are what made it hold (``record.Credit``)."""

Gate = Callable[[GateCtx], Awaitable[Verdict]]


def percent_text(x: float) -> str:
    return f"{round(x)}_percent"


def duration_text(seconds: float) -> str:
    return f"{round(seconds / 60.0)}m" if seconds >= 60 else f"{round(seconds)}s"


def workflows_recovered(engine: Engine, inc: Incident) -> list[str]:
    """Affected workflows now running or completed that progressed since detection."""
    s = engine.state
    before = inc.evidence.progress_at_detection or {}
    out = []
    for w in inc.affected_workflows:
        wf = s.any_workflow(w)
        if wf is None or wf.status not in (WorkflowStatus.RUNNING, WorkflowStatus.COMPLETED):
            continue
        if wf.status is WorkflowStatus.COMPLETED or s.workflow_progress(w) > float(before.get(w, 0.0)) + 1e-9:
            out.append(w)
    return out


def stalled_workflows(engine: Engine, inc: Incident, workflows: list[str]) -> list[str]:
    """Of ``workflows``, those that can still run and are neither completed nor further
    along than at detection. One that ended otherwise (failed, cancelled) can make no
    more progress whatever a recovery does: waiting for it would only time out."""
    s = engine.state
    before = inc.evidence.progress_at_detection or {}
    out = []
    for w in workflows:
        wf = s.any_workflow(w)
        if wf is None or wf.status in TERMINAL_WORKFLOW:
            continue
        if wf.status is not WorkflowStatus.RUNNING or s.workflow_progress(w) <= float(before.get(w, 0.0)) + 1e-9:
            out.append(w)
    return out


async def live_or_archived_task(ctx: GateCtx, key: str) -> tuple[Task, WorkflowStatus | None] | str:
    """A task a criterion judges and its workflow's status if that ended: live, or, its
    workflow finished before validation, read back from the archive of the incident's
    finished workflows (each record read once a gate); if neither holds it, why it
    cannot be judged (for the criterion to say so, neither failing nor crediting the plan)."""
    s = ctx.engine.state
    t = s.tasks.get(key)
    if t is not None:
        wf = s.workflows[t.workflow]
        return t, wf.status if wf.status in TERMINAL_WORKFLOW else None
    read: dict[tuple[str, int], dict[str, Task] | None] = ctx.memo.setdefault("archived", {})
    unread = []
    for w in ctx.incident.affected_workflows:
        done = s.finished.get(w)
        if done is None:
            continue
        at = (w, done.finished_seq)
        if at not in read:
            record = await ctx.engine.archived(w)
            read[at] = {x["id"]: Task.model_validate(x) for x in record["tasks"]} if record is not None else None
        tasks = read[at]
        if tasks is None:
            unread.append(w)
        elif key in tasks:
            return tasks[key], done.status
    if unread:
        return f"its workflow ({' or '.join(unread)}) finished before validation and the archive has no record of it"
    return f"task {key} is neither live nor in the archive of the incident's finished workflows"


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


async def resumption_done(ctx: GateCtx) -> Verdict:
    """The staged resumption this step created has applied every stage."""
    res = (ctx.memo.get("response") or {}).get("result") or {}
    rid = res.get("resumption")
    r = ctx.engine.state.resumptions.get(rid) if rid else None
    if r is None:
        return "fail", {"reason": "the step created no staged resumption"}
    if r.status == "completed":
        return "pass", {
            "resumption": rid,
            "stages_applied": len(r.applied),
            "took_s": round(ctx.now - ctx.started_at, 1),
            "applied_at": [a.at for a in r.applied],
        }
    if r.status != "active":
        return "fail", {"reason": f"staged resumption {rid} {r.status}: {r.reason}"}
    if ctx.now - ctx.started_at > ctx.timeout_s:
        return "fail", {
            "reason": f"staged resumption {rid} still at step {r.next_step} after {duration(ctx.timeout_s)}"
        }
    return "wait", {"resumption": rid, "next_step": r.next_step}


async def spend_stopped(ctx: GateCtx) -> Verdict:
    """The workflows an incident affects run no task, and their budget's scope has spent
    nothing over the configured hold period (``usage.hold_s``): what a pause must achieve
    before the operator's decision on the budget runs."""
    eng = ctx.engine
    ev = ctx.incident.evidence.of(BudgetEvidence)
    hold = eng.config.usage.hold_s
    running = sum(
        1
        for w in ctx.incident.affected_workflows
        for k in eng.state.running_by_wf.get(w, ())
        if eng.state.tasks[k].status is TaskStatus.RUNNING
    )
    recent = eng.spend.spent_within(ev.budget_scope, ev.budget_name, max(hold, 1.0))
    figures = {"running_tasks": running, "spent_last_hold": {"tokens": recent.tokens, "cost_usd": recent.cost_usd}}
    if running or recent.tokens or recent.cost_usd:
        ctx.memo.pop("since", None)
        if ctx.now - ctx.started_at > ctx.timeout_s:
            return "fail", {**figures, "reason": f"spending did not stop within {ctx.timeout_s:g}s"}
        return "wait", figures
    since = ctx.memo.setdefault("since", ctx.now)
    if ctx.now - since < hold:
        return "wait", {**figures, "held_s": round(ctx.now - since, 1)}
    return "pass", {**figures, "held_s": round(ctx.now - since, 1)}


SHARED_GATES: dict[str, Gate] = {"resumption_done": resumption_done, "spend_stopped": spend_stopped}
"""Gates a plan step of any kind may name, besides the kinds' criteria."""


def not_judged_basis(reasons: dict[str, str], noun: str) -> str:
    """A credit's words for the tasks it could not judge (task -> why, e.g. its workflow
    ended before validation): "not judged: WHY (N NOUN(s)); ..." by reason."""
    counts = Counter(reasons.values())
    return "not judged: " + "; ".join(f"{why} ({n} {noun}(s))" for why, n in sorted(counts.items()))
