"""Honest confirmations: every destructive key asks with buttons that say what they do
(Cancel is focused), the dialog lists what will happen, and the toast says what did."""

from __future__ import annotations

import pytest
from rich.console import Console
from textual.widgets import Button

from core import timefmt
from core.config import Config
from core.models import WorkflowStatus
from tests.console_support import came_true, confirm, drill_until_plan, make_app, settle
from tui.dialogs import drill_confirm, outcome_text
from tui.screens.modals import ConfirmScreen
from tui.widgets.incidents import Incidents

MANUAL = Config.model_validate(
    {"approval": {"auto": ["analysis"], "manual": ["checkpoint", "monitoring", "destructive", "lifecycle"]}}
)


def _plain(renderable) -> str:  # type: ignore[no-untyped-def]
    con = Console(width=160, record=True, color_system=None)
    con.print(renderable)
    return con.export_text()


def _buttons(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {b.id or "": str(b.label) for b in app.screen.query(Button)}


def _capture(app) -> list[str]:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    orig = app.notify

    def notify(message, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(str(message))
        return orig(message, *a, **k)

    app.notify = notify
    return seen


async def _highlight(app, pilot, wid: str) -> None:  # type: ignore[no-untyped-def]
    wl = app.workflows_pane
    wl.focus()
    wl.highlighted = [o.id for o in wl.options].index(f"wf:{wid}")
    assert await came_true(pilot, lambda: app.focused is wl and wl.highlighted_option.id == f"wf:{wid}")


@pytest.mark.slow
async def test_cancel_and_pause_confirm_with_distinct_buttons(tmp_path):
    app = make_app(tmp_path / "d.db")
    async with app.run_test(size=(140, 42)) as pilot:
        await settle(app, pilot, 60)
        state = app.link.state
        await _highlight(app, pilot, "workflow_003")
        await pilot.press("X")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert _buttons(app) == {"cancel": "Keep running", "confirm": "Cancel workflow"}
        assert app.screen.focused is not None and app.screen.focused.id == "cancel"
        await pilot.press("enter")  # the focused default keeps it running
        assert await came_true(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert state.workflows["workflow_003"].status is WorkflowStatus.RUNNING
        # p (destructive in `opsdeck help`) asks too, and pauses only when confirmed.
        await pilot.press("p")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert _buttons(app)["confirm"] == "Pause" and "workflow_003" in _plain(app.screen.detail)
        await pilot.press("tab", "enter")
        assert await came_true(pilot, lambda: state.workflows["workflow_003"].status is WorkflowStatus.PAUSED)


@pytest.mark.slow
async def test_marked_workflows_pause_after_one_confirmation_listing_them(tmp_path):
    app = make_app(tmp_path / "d.db")
    async with app.run_test(size=(140, 42)) as pilot:
        await settle(app, pilot, 60)
        state = app.link.state
        for wid in ("workflow_003", "migration_workflow_001"):
            await _highlight(app, pilot, wid)
            await pilot.press("m")
        assert app.workflows_pane.marked == {"workflow_003", "migration_workflow_001"}
        await pilot.press("p")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        text = _plain(app.screen.detail)
        assert "workflow_003" in text and "migration_workflow_001" in text and "2 workflows" in app.screen.title_text
        await pilot.press("tab", "enter")
        assert await came_true(
            pilot,
            lambda: all(
                state.workflows[w].status is WorkflowStatus.PAUSED for w in ("workflow_003", "migration_workflow_001")
            ),
        )
        assert state.workflows["workflow_001"].status is WorkflowStatus.RUNNING
        assert await came_true(pilot, lambda: not app.workflows_pane.marked)


@pytest.mark.slow
async def test_approve_dialog_shows_every_step_whole_and_a_paused_clock_is_named(tmp_path):
    app = make_app(tmp_path / "d.db", config=MANUAL)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot, 300)
        pid = await drill_until_plan(app, pilot)
        plan = app.link.state.plans[pid]
        seen = _capture(app)
        await pilot.press("a")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        text = _plain(app.screen.detail).replace("\n", " ")
        squashed = " ".join(text.split())
        for st in plan.steps:
            if st.state == "completed":  # done already: its title and result, not its command
                assert st.title in squashed
            else:  # to run: the command whole, not cut at 100 characters
                assert " ".join(st.command.split()) in squashed
        live = [a for a in app.link.state.agents.values() if a.status.value != "retired"]
        assert f"of {len(live)} live agents" in text  # emergency-cleanup's retirements, counted
        assert "pause workflow_003" in text or "pause " in text
        await pilot.press("tab", "enter")
        assert await came_true(pilot, lambda: any("clock is paused" in m for m in seen))


async def test_hold_toast_says_held_then_released(tmp_path):
    res_held = {"status": "success", "result": {"summary": "R-1 held at step 1 by operator", "held": True}}
    res_released = {"status": "success", "result": {"summary": "R-1 released at step 1 by operator", "held": False}}
    assert outcome_text(res_held, "Hold R-1").endswith("held at step 1 by operator")
    assert "released" in outcome_text(res_released, "Hold R-1")
    assert "done" not in outcome_text(res_held, "Hold R-1")


def test_drill_dialog_follows_the_approval_policy():
    auto = Config.model_validate(
        {"approval": {"auto": ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"], "manual": []}}
    )
    d = drill_confirm(auto, "agent-cascade", simulated=True)
    assert not isinstance(d, str) and "no step waits for approval" in _plain(d.detail)
    d = drill_confirm(Config(), "agent-cascade", simulated=True)
    assert not isinstance(d, str) and "destructive" in _plain(d.detail) and "wait for your approval" in _plain(d.detail)
    refusal = drill_confirm(Config(), "resource-exhaustion", simulated=False)
    assert isinstance(refusal, str) and "simulated runtime only" in refusal
    live = drill_confirm(Config(), "network-partition", simulated=False)
    assert not isinstance(live, str) and "real processes, on the wall clock" in _plain(live.detail)


@pytest.mark.slow
async def test_space_runs_and_pauses_the_simulated_clock(tmp_path):
    app = make_app(tmp_path / "d.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert not app.link.clock_running
        app.workflows_pane.focus()
        await pilot.press("space")
        assert await came_true(pilot, lambda: app.link.clock_running)
        assert app.link.speed == app.config.console.speed
        await pilot.press("space")
        assert await came_true(pilot, lambda: not app.link.clock_running)


@pytest.mark.slow
async def test_decision_dialogs_lead_with_what_they_do(tmp_path):
    """Approve: what each step still to run will do comes before the analysis that ran;
    reject and abort each say what they do (not the approval's words)."""
    app = make_app(tmp_path / "d.db", config=MANUAL)
    async with app.run_test(size=(160, 48)) as pilot:
        pid = await drill_until_plan(app, pilot)
        plan = app.link.state.plans[pid]
        assert await came_true(pilot, lambda: any(st.state == "completed" for st in plan.steps), 10)
        pending = sum(1 for st in plan.steps if st.to_run)
        said = {}
        for key in ("a", "d", "K"):
            await pilot.press(key)
            assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            said[key] = " ".join(_plain(app.screen.detail).split())
            await pilot.press("escape")
            assert await came_true(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        a = said["a"]
        effects, ran = (
            a.index(f"What it will do: titles as drafted at {timefmt.clock(plan.created_at)}; → computed now"),
            a.index("Already ran"),
        )
        assert effects < ran, "the effects come first"
        first = next(st for st in plan.steps if st.to_run)
        assert a.index(" ".join(first.command.split())) < ran
        assert f"Approving runs the {pending} step(s) still to run" in a
        cp = app.link.state.plans[pid].checkpoint
        assert cp is not None, "the auto steps that ran took the plan's rollback point"
        # The rollback point already exists: approving takes no other one, K goes back to it.
        assert f"K rolls back to checkpoint #{cp}" in a and "a checkpoint is taken" not in a, a
        for key, verb in (("d", "Rejecting"), ("K", "Aborting")):
            text = said[key]
            assert verb in text and f"{pending} step(s) still to run will run" in text, text
            assert "wait for this approval" not in text, text
            assert text.index("What will not run") < text.index("Already ran")
        assert "stays open" in said["d"] and "/incident replan" in said["d"]
        assert "rolls back to checkpoint" in said["K"] or "nothing is rolled back" in said["K"]
        assert app.link.state.plans[pid].state == "proposed"  # every dialog was dismissed: nothing changed


@pytest.mark.slow
async def test_incident_row_says_it_waits_for_a_decision_not_that_it_recovers(tmp_path):
    """A proposed plan recovers nothing until it is approved: the incident's row says it is
    to approve (since the plan was proposed); once the plan is rejected it is open again."""
    app = make_app(tmp_path / "d.db", config=MANUAL)
    async with app.run_test(size=(160, 48)) as pilot:
        pid = await drill_until_plan(app, pilot)
        plan = app.link.state.plans[pid]
        pane = app.query_one(Incidents)

        def row() -> str:
            return next((o.prompt.plain for o in pane.options if o.id == f"incident:{plan.incident_id}"), "")

        assert await came_true(pilot, lambda: f"to approve since {timefmt.clock(plan.created_at)}" in row())
        assert "recovering" not in row()
        assert "1 plan(s) await approval" in app.header_pane.render().plain
        await confirm(app, pilot, "d")
        assert await came_true(pilot, lambda: app.link.state.plans[pid].state == "rejected")
        inc = app.link.state.incidents[plan.incident_id]
        assert await came_true(pilot, lambda: f"open since {timefmt.clock(inc.detected_at)}" in row()), row()


@pytest.mark.slow
async def test_incident_row_of_a_plan_that_runs_on_its_own_says_it_recovers(tmp_path):
    """A proposed plan whose steps are all auto awaits no approval (its steps run as the
    clock moves): the row says recovering, not to approve. Fails if a proposed plan is
    taken for one awaiting the operator whatever its steps."""
    auto = Config.model_validate(
        {"approval": {"auto": ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"], "manual": []}}
    )
    app = make_app(tmp_path / "a.db", config=auto)
    async with app.run_test(size=(160, 48)) as pilot:
        pid = await drill_until_plan(app, pilot)
        plan = app.link.state.plans[pid]
        assert plan.state == "proposed" and all(st.approval == "auto" for st in plan.steps)
        pane = app.query_one(Incidents)

        def row() -> str:
            return next((o.prompt.plain for o in pane.options if o.id == f"incident:{plan.incident_id}"), "")

        assert await came_true(pilot, lambda: f"recovering since {timefmt.clock(plan.created_at)}" in row()), row()
        assert "to approve" not in row()
        # The header counts what awaits an approval the same way: nothing here.
        app.header_pane.refresh()
        header = app.header_pane.render().plain
        assert "incidents 1" in header and "approv" not in header, header


@pytest.mark.slow
async def test_approving_a_plan_without_a_rollback_point_takes_the_one_the_dialog_names(tmp_path):
    """No step ran before the decision (every step waits for it): the approve dialog says a
    checkpoint is taken before the first step; approving takes it, before that step starts,
    and it becomes the plan's rollback point."""
    every = Config.model_validate(
        {"approval": {"auto": [], "manual": ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"]}}
    )
    app = make_app(tmp_path / "n.db", config=every)
    async with app.run_test(size=(160, 48)) as pilot:
        pid = await drill_until_plan(app, pilot)
        eng = app.host.engine
        assert eng.state.plans[pid].checkpoint is None
        before = set(eng.state.checkpoints)
        await pilot.press("a")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        said = " ".join(_plain(app.screen.detail).split())
        assert "a checkpoint is taken before the first one, and K rolls back to it" in said, said
        await pilot.press("tab", "enter")
        assert await came_true(pilot, lambda: eng.state.plans[pid].state != "proposed")
        for _ in range(60):  # the executor runs the approved steps as the clock moves
            if eng.state.plans[pid].checkpoint is not None:
                break
            await app.host.advance(5.0)
        assert eng.state.plans[pid].checkpoint is not None, "the rollback point taken"
        cp = eng.state.checkpoints[eng.state.plans[pid].checkpoint]
        assert cp.id not in before and cp.label == f"before {pid}"
        started = [st.started_at for st in eng.state.plans[pid].steps if st.started_at is not None]
        assert started and cp.ts <= min(started), "taken before the first step started"


async def test_tab_in_a_confirmation_goes_between_its_buttons_only(tmp_path):
    """Tab from the last button comes back to Cancel: the detail is not a tab stop (at
    80x24 a second tab landed on it, where enter does nothing and nothing shows focus);
    the arrow keys still scroll the detail."""
    from textual.widgets import Button

    app = make_app(tmp_path / "t.db")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot, 60)
        await _highlight(app, pilot, "workflow_003")
        await pilot.press("X")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        seen = []
        for _ in range(4):
            await pilot.press("tab")
            focused = app.screen.focused
            seen.append(focused.id if isinstance(focused, Button) else repr(focused))
        assert seen == ["confirm", "cancel", "confirm", "cancel"], seen
        await pilot.press("escape")
        assert await came_true(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert app.link.state.workflows["workflow_003"].status is WorkflowStatus.RUNNING
