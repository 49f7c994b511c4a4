"""A plan as the operator reads it before approving, and as the operator edits it.

Reading: every step whole, with what it will do in concrete terms, computed from its own
parameters (parsed and validated by the command registry) and the state now: which
workflows it pauses or reduces and by how much, which agents ``emergency-cleanup`` would
retire (the same selection the command makes), which stages a resumption runs. Nothing
is canned; a step whose command does not parse says so.

Editing: one slash command per line, each parsed and bound with the command language's
own parser (:func:`tui.operator.bind_command`), the same check the host makes when the
edit arrives (``/incident edit``), so a line that would be refused is marked before
Save. Steps that already ran are kept as they are: the host refuses an edit that
changes them. Pure functions: no Textual here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from core import timefmt
from core.incident_models import Plan, PlanState, PlanStep
from core.models import AgentStatus
from core.projection import agent_in_use

from .operator import CommandRefused, bind_command
from .widgets.incidents import STEP_GLYPH

if TYPE_CHECKING:
    from core.projection import State


Colour = Callable[[str], str]


def _amount(r: Any) -> str:
    parts = []
    if r.cores:
        parts.append(f"{r.cores:g} cpu")
    if r.memory_gb:
        parts.append(f"{r.memory_gb:g} GB")
    if r.agents:
        parts.append(f"{r.agents} agent(s)")
    return ", ".join(parts) or "nothing"


def _wf(s: State, wid: str) -> str:
    wf = s.workflows.get(wid)
    if wf is None:
        done = s.finished.get(wid)  # archived: only its summary is held
        return f"{wid} ({done.status.value})" if done is not None else f"{wid} (no such workflow)"
    use = s.in_use(wid)
    return f"{wid} ({wf.band.value} {wf.priority}, {wf.status.value}, {use.agents} agent(s) in use)"


def _unreachable(s: State) -> list[str]:
    """The agents unreachable now: what the partition steps act on."""
    return sorted(a.id for a in s.agents.values() if a.status is AgentStatus.UNREACHABLE)


def _partition_protocol(s: State, p: Any) -> list[str]:
    """``activate-distributed-protocols``: the tasks of the agents unreachable when it runs
    are moved (or kept, with ``agent_autonomy_increase``)."""
    from core.engine.liveness import tasks_on_unreachable  # loaded with the command language

    lost = _unreachable(s)
    held = list(tasks_on_unreachable(s).values())
    keep = any(x.adaptation == "agent_autonomy_increase" for x in p.coordination_adaptations)
    merge = "buffered reports of cut-off agents merge once on reconnection (always on)"
    if not lost:
        return ["no agent is unreachable now: no task to move or keep; sets the partition protocol", merge]
    who = f"the {len(lost)} agent(s) unreachable now ({', '.join(lost)})"
    if not held:
        return [f"{who} hold no task: nothing to move or keep", merge]
    if keep:
        return [f"keep the {len(held)} task(s) of {who} running on them: {', '.join(held)}", merge]
    return [f"move the {len(held)} task(s) of {who} to reachable agents, with their context: {', '.join(held)}", merge]


def _redundancy(s: State, p: Any) -> list[str]:
    """``communication-redundancy-activation``: the standing reassignment, the tasks it
    moves at once and the replacement agents, as of now."""
    from core.engine.liveness import protocol_keeps_tasks, tasks_on_unreachable  # loaded with the command language

    lost = _unreachable(s)
    held = list(tasks_on_unreachable(s).values())
    after = timefmt.duration(p.reassign_after)
    out = [f"from now on, the task of an agent unreachable {after} or more moves to a reachable agent"]
    if protocol_keeps_tasks(s):
        out.append("the distributed protocol in force keeps tasks on isolated agents: none moved")
    elif held:
        out.append(
            f"{len(held)} task(s) held by unreachable agents now ({', '.join(held)}): "
            f"those still held when it runs, silent {after} or more, move at once"
        )
    else:
        out.append("no unreachable agent holds a task now: nothing moves at once")
    if p.replace_unreachable:
        out.append(
            f"add a replacement agent for each of the {len(lost)} agent(s) unreachable now, within its pool's "
            "maximum and the fleet's capacity"
            if lost
            else "no agent is unreachable now: no replacement agent added"
        )
    return out


def effects(s: State, command: str) -> list[str]:
    """What ``command`` will do to the state as it is now, one line per effect."""
    # the command language loads after the first frame (tui.link_open)
    from core.commands.coordination_hub.agents import idle_beyond_minimum

    try:
        bound = bind_command(command)
    except CommandRefused as exc:
        return [f"does not parse: {exc.message}"]
    spec, p = bound.spec, bound.payload
    name = (spec.component, spec.operation)
    out: list[str] = []
    if name == ("resource-manager", "emergency-reallocation"):
        for act in p.actions:  # type: ignore[attr-defined]
            for wid in act.affected:
                if act.action == "pause_low_priority_workflows":
                    out.append(f"pause {_wf(s, wid)}: its running tasks are stopped (SIGSTOP) and keep their agents")
                elif act.action == "requeue_low_priority_workflows":
                    out.append(
                        f"pause {_wf(s, wid)} and requeue its tasks: their processes end, their agents are freed"
                    )
                elif act.action == "reduce_resource_allocation":
                    wf = s.workflows.get(wid)
                    r = act.reduction
                    if wf is not None and r is not None:
                        a = wf.allocation
                        out.append(
                            f"reduce {wid}: agents {a.agents} → {max(1, a.agents - (r.agents or 0))}, "
                            f"memory {a.memory_gb:g} → {max(0.5, a.memory_gb - (r.memory_gb or 0.0)):g} GB, "
                            f"cpu {a.cpu_cores:g} → {max(0.5, a.cpu_cores - (r.cores or 0.0)):g}"
                            + ("; the critical path keeps running" if act.maintain_critical_path else "")
                        )
                    else:
                        out.append(f"reduce {_wf(s, wid)} by {_amount(r) if r else 'nothing'}")
                else:
                    g = act.resource_guarantee
                    out.append(f"guarantee {_wf(s, wid)} " + (_amount(g) if g is not None else "(no guarantee given)"))
    elif name == ("coordination-hub", "emergency-cleanup"):
        acts = set(p.actions)  # type: ignore[attr-defined]
        live = s.live_agents()
        if "idle_process_termination" in acts:
            gone = idle_beyond_minimum(s, p.pool)  # type: ignore[attr-defined]
            out.append(
                f"retire {len(gone)} of {len(live)} live agents (idle beyond their pool's minimum, as of now)"
                + (f": {', '.join(gone)}" if gone else "")
            )
            used = sum(1 for a in live if agent_in_use(a))
            if used:
                out.append(
                    f"{used} agent(s) in use (holding a task, paused ones too) are not retired; "
                    "one that turns idle before the step runs may be"
                )
        if acts & {"cache_purging", "temp_file_cleanup"}:
            out.append("purge the runtime's caches and temporary data (what is freed is measured when it runs)")
        if "aggressive_garbage_collection" in acts:
            out.append("run a full garbage collection in the engine process")
        for k, v in p.resource_recovery_target.items():  # type: ignore[attr-defined]
            out.append(f"target: recover {v:g}% of {k} (reported met or not)")
    elif name == ("workflow-recovery", "gradual-resumption"):
        for st in p.stages:  # type: ignore[attr-defined]
            if st.action == "release_pool":
                n = f"{st.agents} agent(s) of" if st.agents else "every agent of"
                out.append(f"stage {st.stage}: let {n} pool {st.pool} work again (from its rate-limit reset)")
                continue
            what = {
                "resume_paused_workflow": "resume",
                "resume_workflow": "resume",
                "restore_full_allocation": "restore the full allocation of",
                "lift_limits": "lift the limits of",
            }[st.action]
            extra = f" ({st.resource_limit} limit)" if st.resource_limit else ""
            out.append(f"stage {st.stage}: {what} {_wf(s, st.workflow)}{extra}")
        out.append("each stage waits until utilisation stays under the safe threshold")
    elif name == ("coordination-hub", "activate-distributed-protocols"):
        out += _partition_protocol(s, p)
    elif name == ("coordination-hub", "communication-redundancy-activation"):
        out += _redundancy(s, p)
    elif bound.workflow_id:
        out.append(f"{spec.operation} {_wf(s, bound.workflow_id)}")
    if not out:
        out.append(f"{spec.kind}: {spec.summary}")
    return out


def step_table(s: State, plan: Plan, c: Colour, with_effects: bool = True, compact_done: bool = False) -> Table:
    """Every step whole: state, gate, approval, the command wrapped, timing, effects or result.
    ``compact_done``: a step that already completed shows its title and result only (the
    approve dialog, where the steps still to run matter)."""
    t = Table(expand=True, box=None, header_style=f"bold {c('secondary')}", show_lines=False, padding=(0, 1, 1, 0))
    t.add_column("#", no_wrap=True)
    t.add_column("state", no_wrap=True)
    t.add_column("step", ratio=1, overflow="fold")
    for i, st in enumerate(plan.steps, 1):
        glyph = STEP_GLYPH[st.state]
        colr = (
            "success"
            if glyph == "✓"
            else "error"
            if glyph == "✖"
            else "warning"
            if glyph in ("⏸", "▶")
            else "foreground-muted"
        )
        body = Text()
        body.append(st.title, style="bold")
        tags = [f"approval {st.approval}", f"gate {st.gate}" if st.gate else "", st.category]
        body.append("  [" + ", ".join(x for x in tags if x) + "]", style=c("foreground-muted"))
        if not (compact_done and st.state is PlanState.COMPLETED):
            body.append("\n" + st.command, style=c("primary"))
        if st.started_at is not None:
            body.append(f"\nstarted {timefmt.clock(st.started_at)}", style=c("foreground-muted"))
            if st.finished_at is not None:
                body.append(f", took {timefmt.between(st.started_at, st.finished_at)}", style=c("foreground-muted"))
        if st.error:
            body.append(f"\nerror: {st.error}", style=c("error"))
        if st.state is PlanState.SKIPPED:
            body.append(f"\nnot sent: {st.result.get('summary', '')}", style=c("warning"))
        elif st.result.get("summary"):
            body.append(f"\nresult: {st.result['summary']}", style=c("success"))
        if with_effects and st.to_run:
            for line in effects(s, st.command):
                body.append(f"\n  → {line}", style=c("warning"))
        t.add_row(str(i), Text(f"{glyph} {st.state.value}", style=c(colr)), body)
    return t


def plan_header(plan: Plan, c: Colour) -> Text:
    t = Text()
    t.append(f"plan {plan.id} ", style="bold")
    t.append(plan.state.value, style=f"bold {c('warning')}")
    if plan.title:
        t.append(f"  {plan.title}")
    if plan.decided_by:
        at = plan.decided_at
        t.append(
            f"\ndecided by {plan.decided_by}" + (f" at {timefmt.clock(at)}" if at is not None else ""),
            style=c("secondary"),
        )
    if plan.checkpoint is not None:
        t.append(
            f"\nrollback point: checkpoint #{plan.checkpoint} (K aborts the plan and rolls back to it)",
            style=c("foreground-muted"),
        )
    return t


def plan_section(s: State, plan: Plan, c: Colour) -> list[RenderableType]:
    """A plan on the incident screen: its header, what its step titles are (the draft's
    words) while a step is still to run, then every step."""
    parts: list[RenderableType] = [plan_header(plan, c)]
    if any(st.to_run for st in plan.steps):
        note = f"step titles as drafted at {timefmt.clock(plan.created_at)}; → what a step still to run would do now"
        parts.append(Text(note, style=c("foreground-muted")))
    return [*parts, step_table(s, plan, c)]


def _step_head(i: int, st: PlanStep, c: Colour) -> Text:
    t = Text()
    t.append(f"{i}. ", style="bold")
    t.append(st.title or st.command.split(" ")[0], style="bold")
    tags = [st.approval, f"gate {st.gate}" if st.gate else ""]
    t.append("  (" + ", ".join(x for x in tags if x) + ")", style=c("foreground-muted"))
    return t


def _pending(plan: Plan) -> list[tuple[int, PlanStep]]:
    return [(i, st) for i, st in enumerate(plan.steps, 1) if st.to_run]


def _ran(plan: Plan) -> list[tuple[int, PlanStep]]:
    """Steps whose command was sent (a step still waiting on its gate too)."""
    return [(i, st) for i, st in enumerate(plan.steps, 1) if not st.to_run and st.state is not PlanState.SKIPPED]


def _skipped(plan: Plan) -> list[tuple[int, PlanStep]]:
    """Steps whose command was never sent: every target had ended when they were due."""
    return [(i, st) for i, st in enumerate(plan.steps, 1) if st.state is PlanState.SKIPPED]


@dataclass(frozen=True)
class StepPreview:
    """A step still to run as a decision dialog shows it: its title as drafted (words of
    the state when the plan was drafted) and what it would do if it ran now."""

    index: int
    title: str
    command: str
    effects: tuple[str, ...]
    """Computed from the state now (:func:`effects`), not from the draft."""


def preview(s: State, plan: Plan) -> list[StepPreview]:
    """Each step still to run, with its effects computed from ``s`` now."""
    return [StepPreview(i, st.title, st.command, tuple(effects(s, st.command))) for i, st in _pending(plan)]


def _effects_section(head: str, plan: Plan, now: float, c: Colour) -> Text:
    """A section of steps: their titles are the draft's words, their → lines of now."""
    return _section(
        f"{head}: titles as drafted at {timefmt.clock(plan.created_at)}; → computed now, {timefmt.clock(now)}", c
    )


def effects_block(s: State, plan: Plan, c: Colour, stale: dict[int, tuple[str, ...]]) -> Group:
    """Each step still to run: its command whole, then what it does to the state now."""
    parts: list[RenderableType] = []
    steps = plan.steps
    for step in preview(s, plan):
        parts.append(_step_head(step.index, steps[step.index - 1], c))
        parts.append(Text("   " + step.command, style=c("primary")))
        for reason in stale.get(step.index, ()):
            parts.append(Text(f"   ⚠ stale: {reason}", style=f"bold {c('error')}"))
        for line in step.effects:
            parts.append(Text(f"   → {line}", style=c("warning")))
    return Group(*parts) if parts else Group(Text("   (no step left to run)", style=c("foreground-muted")))


def analysis_block(plan: Plan, c: Colour, steps: list[tuple[int, PlanStep]] | None = None) -> Group:
    """Steps that already ran (or wait on their gate): title, outcome, result summary (the
    analysis behind the plan); or the given ``steps`` (the skipped ones) the same way."""
    parts: list[RenderableType] = []
    for i, st in _ran(plan) if steps is None else steps:
        t = _step_head(i, st, c)
        tone = {PlanState.FAILED: "error", PlanState.COMPLETED: "success"}.get(st.state, "warning")
        t.append(f"  {STEP_GLYPH[st.state]} {st.state.value}", style=c(tone))
        parts.append(t)
        summary = st.result.get("summary")
        inner = st.result.get("result")
        if not summary and isinstance(inner, dict):
            summary = inner.get("summary")
        if summary:
            parts.append(Text(f"   {summary}", style=c("foreground")))
        if st.error:
            parts.append(Text(f"   error: {st.error}", style=c("error")))
    return Group(*parts)


def _section(title: str, c: Colour) -> Text:
    return Text(title, style=f"bold {c('secondary')}")


def decision_detail(
    s: State,
    plan: Plan,
    action: str,
    c: Colour,
    now: float,
    note: str = "",
    stale: list[Any] | None = None,
) -> RenderableType:
    """What the approve / reject / abort dialogs show, leading with what the decision does:
    the steps still to run with their effects computed from the state now (stale ones
    marked), then the analysis that already ran."""
    stale_by = {x.index: x.reasons for x in stale or []}
    pending, ran = _pending(plan), _ran(plan)
    inc = plan.incident_id
    parts: list[RenderableType] = [plan_header(plan, c)]
    if note:
        parts.append(Text(note, style=f"bold {c('warning')}"))
    if stale_by:
        parts += [
            Text(""),
            Text(
                f"⚠ {len(stale_by)} step(s) no longer fit the state now (marked below). "
                "Replan rejects this plan and proposes a new one from the state now.",
                style=f"bold {c('error')}",
            ),
        ]
    parts.append(Text(""))
    if action == "approve":
        manual = sum(1 for _, st in pending if st.approval == "manual")
        rollback = (
            "a checkpoint is taken before the first one, and K rolls back to it"
            if plan.checkpoint is None
            else f"K rolls back to checkpoint #{plan.checkpoint}, taken before the plan's first step ran"
        )
        parts.append(
            Text(
                f"Approving runs the {len(pending)} step(s) still to run, in order ({manual} wait for this approval, "
                f"the others run on their own); {rollback}.",
            )
        )
        parts += [
            Text(""),
            _effects_section("What it will do", plan, now, c),
            effects_block(s, plan, c, stale_by),
        ]
    elif action == "reject":
        parts.append(
            Text(
                f"Rejecting means none of the {len(pending)} step(s) still to run will run"
                + (f"; the {len(ran)} that already ran stay as they are" if ran else "")
                + f". {inc} stays open: re-plan it (/incident replan {inc}) or close it by hand with a note "
                f"(/incident resolve {inc} --note=...)."
            )
        )
        parts += [Text(""), _effects_section("What will not run", plan, now, c), effects_block(s, plan, c, stale_by)]
    else:
        cp = plan.checkpoint
        rollback = (
            f"the control plane rolls back to checkpoint #{cp}, taken before its first step: each workflow's status, "
            "allocation, guarantee, stage limit and freeze, pool sizes and agent backoffs return to what they were "
            "then; work completed since is kept"
            if cp is not None
            else "no step has run, so no checkpoint was taken: nothing is rolled back and the plan ends failed"
        )
        parts.append(
            Text(
                f"Aborting stops the plan: none of its {len(pending)} step(s) still to run will run, staged "
                f"resumptions it started are stopped, and {rollback}. {inc} stays open for a re-plan."
            )
        )
        parts += [Text(""), _effects_section("What will not run", plan, now, c), effects_block(s, plan, c, stale_by)]
    if ran:
        parts += [Text(""), _section("Already ran (the analysis behind the plan)", c), analysis_block(plan, c)]
    skipped = _skipped(plan)
    if skipped:
        head = "Skipped (not sent: every target had ended when the step was due)"
        parts += [Text(""), _section(head, c), analysis_block(plan, c, skipped)]
    return Group(*parts)


@dataclass(frozen=True)
class EditLine:
    """One step of the plan as the editor opens it."""

    command: str
    ran: str | None = None
    """The state of a step that has run (completed, failed...): it cannot change; None: editable."""


def lines_of(plan: Plan) -> list[EditLine]:
    """The plan's steps, in order, each with whether it has run."""
    return [EditLine(st.command, None if st.to_run else st.state.value) for st in plan.steps]


def line_error(text: str) -> str | None:
    """Why ``text`` is not a step the host would take (None: it is). Blank lines are not
    steps: they are dropped on save."""
    command = text.strip()
    if not command:
        return None
    if not command.startswith("/"):
        return "a step is a slash command: it starts with / (e.g. /resource-manager status)"
    try:
        bind_command(command)
    except CommandRefused as exc:
        return exc.message if exc.column is None else f"column {exc.column}: {exc.message}"
    return None


def steps_of(texts: list[str]) -> list[str]:
    """The commands a save sends: each non-blank line, trimmed."""
    return [t.strip() for t in texts if t.strip()]
