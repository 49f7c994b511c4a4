"""What a decision dialog says a step still to run will do is computed from the state
now, not from the draft: a partition plan drafted while agents were cut off and read
after the heal says nothing is moved (its drafted title said 'move the N task(s) of the
cut-off agents'), and before the heal it names the tasks the step would move."""

from __future__ import annotations

from pathlib import Path

from core.config import Config
from core.incidents.drills import start_drill
from core.incidents.merge import PartitionEvidence
from core.models import AgentStatus
from core.session import open_sim
from tui.plan_view import StepPreview, preview

from .conftest import drill_until, waits_for_operator

MOVE = "activate-distributed-protocols"
REDUNDANCY = "communication-redundancy-activation"


def _step(steps: list[StepPreview], operation: str) -> StepPreview:
    return next(st for st in steps if st.command.split()[1] == operation)


async def test_a_partition_plan_read_after_the_heal_says_nothing_moves(tmp_path: Path) -> None:
    eng = await open_sim(tmp_path / "p.db", Config(), seed=0, demo=True)
    try:
        drill = start_drill(eng, "network-partition", approve="manual")
        await drill_until(drill, lambda: waits_for_operator(drill.plan()), "the plan waiting", 4 * 3600.0)
        plan, inc = drill.plan(), drill.incident()
        assert plan is not None and inc is not None
        cut = sorted(inc.evidence.of(PartitionEvidence).unreachable)
        s = eng.state
        assert all(s.agents[a].status is AgentStatus.UNREACHABLE for a in cut)
        held = [t for a in cut if (t := s.agents[a].current_task)]
        assert held, "the cut-off agents hold work"

        # While the partition holds: the step names the tasks it would move now.
        move = _step(preview(s, plan), MOVE)
        assert f"move the {len(held)} task(s)" in move.title  # the draft's words
        assert move.effects[0] == (
            f"move the {len(held)} task(s) of the {len(cut)} agent(s) unreachable now ({', '.join(cut)}) "
            f"to reachable agents, with their context: {', '.join(held)}"
        )
        replace = _step(preview(s, plan), REDUNDANCY)
        assert any(f"for each of the {len(cut)} agent(s) unreachable now" in e for e in replace.effects)

        eng.runtime.heal()  # type: ignore[attr-defined]
        await drill_until(
            drill,
            lambda: not any(a.status is AgentStatus.UNREACHABLE for a in s.agents.values()),
            "the cut-off agents heard again",
            600,
        )
        plan = s.plans[plan.id]
        assert waits_for_operator(plan), "the plan still waits for its approval"

        # After the heal the same steps, unchanged, say what they would do now: nothing moves.
        after = preview(s, plan)
        move = _step(after, MOVE)
        assert f"move the {len(held)} task(s)" in move.title, "the title is the draft's, shown as drafted"
        assert move.effects[0].startswith("no agent is unreachable now: no task to move"), move.effects
        assert not any(t in e for st in after for e in st.effects for t in held), after
        replace = _step(after, REDUNDANCY)
        assert "no agent is unreachable now: no replacement agent added" in replace.effects
        assert "no unreachable agent holds a task now: nothing moves at once" in replace.effects
    finally:
        await eng.close()


async def test_cleanup_counts_paused_agents_among_those_it_does_not_retire(tmp_path: Path) -> None:
    """A paused workflow's agents hold their tasks: emergency-cleanup does not retire them
    (not idle), and its preview counts them with the running ones (it said 'N busy')."""
    from core.projection import agent_in_use
    from tui.plan_view import effects

    eng = await open_sim(tmp_path / "c.db", Config(), seed=0, demo=True)
    try:
        await eng.advance(60)
        s = eng.state
        wid = next(s.tasks[a.current_task].workflow for a in s.agents.values() if a.current_task)
        eng.pause_workflow(wid)
        assert any(a.status is AgentStatus.PAUSED for a in s.agents.values())
        used = [a for a in s.live_agents() if agent_in_use(a)]
        busy = [a for a in used if a.status is AgentStatus.BUSY]
        assert len(used) > len(busy), "paused agents hold tasks"
        said = effects(s, """/coordination-hub emergency-cleanup '{"actions": ["idle_process_termination"]}'""")
        assert f"{len(used)} agent(s) in use (holding a task, paused ones too) are not retired" in said[1], said
        retired = said[0].split(": ", 1)[1].split(", ") if ": " in said[0] else []
        assert not {a.id for a in used} & set(retired)
    finally:
        await eng.close()


def _said(parts: list[object]) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    for part in parts:
        console.print(part)
    return console.export_text()


async def test_the_incident_screen_says_its_step_titles_are_the_drafts(tmp_path: Path) -> None:
    from core import timefmt
    from core.incident_models import PlanState
    from tui.plan_view import plan_section

    eng = await open_sim(tmp_path / "i.db", Config(), seed=0, demo=True)
    try:
        drill = start_drill(eng, "network-partition", approve="manual")
        await drill_until(drill, lambda: waits_for_operator(drill.plan()), "the plan waiting", 4 * 3600.0)
        plan = drill.plan()
        assert plan is not None
        note = f"step titles as drafted at {timefmt.clock(plan.created_at)}"
        assert note in _said(plan_section(eng.state, plan, lambda _n: "white"))
        # every step run: nothing is still to do, no note
        done = plan.model_copy(
            update={"steps": [st.model_copy(update={"state": PlanState.COMPLETED}) for st in plan.steps]}
        )
        assert "as drafted" not in _said(plan_section(eng.state, done, lambda _n: "white"))
    finally:
        await eng.close()
