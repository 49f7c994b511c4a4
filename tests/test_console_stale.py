"""Pilot tests: no stale approvals. A plan step whose target workflow ended is marked
stale in the approve dialog, which offers Replan; a step that turns stale while the
dialog is open reopens it instead of approving; under ``[approval] hold_clock`` the
running simulated clock holds while a plan waits."""

from __future__ import annotations

import pytest

from core.config import Config
from tests.console_support import came_true, drill_until_plan, make_app
from tui.screens.modals import ConfirmScreen
from tui.staleness import stale_steps, targets
from tui.widgets.header_gauges import clock_label


def _config(**approval) -> Config:  # type: ignore[no-untyped-def]
    return Config.model_validate(
        {
            "approval": {
                "auto": [],
                "manual": ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"],
                **approval,
            }
        }
    )


def _a_target(eng, pid: str) -> str:  # type: ignore[no-untyped-def]
    """A live workflow one of the plan's steps names."""
    for st in eng.state.plans[pid].steps:
        found = targets(st.command)
        for wid in sorted(found[0] if found else ()):
            if wid in eng.state.workflows and eng.state.workflows[wid].status.value in ("running", "paused"):
                return wid
    raise AssertionError("the plan names no live workflow")


@pytest.mark.slow
async def test_stale_step_marked_and_replan_offered(tmp_path):
    app = make_app(tmp_path / "c.db", config=_config())
    async with app.run_test(size=(140, 44)) as pilot:
        pid = await drill_until_plan(app, pilot)
        eng = app.host.engine
        # Fresh: nothing stale, no Replan button.
        assert stale_steps(eng.state, eng.state.plans[pid]) == []
        await pilot.press("a")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert not app.screen.query("#alt")
        await pilot.press("escape")
        assert await came_true(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        victim = _a_target(eng, pid)
        assert (await app.link.send(f"/coordination-hub cancel {victim}"))["status"] == "success"
        stale = stale_steps(eng.state, eng.state.plans[pid])
        assert stale and any(victim in r and "cancelled" in r for x in stale for r in x.reasons)
        await pilot.press("a")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        texts = [getattr(t, "plain", "") for t in _flat(app.screen.detail)]
        assert any(t.strip().startswith(f"⚠ stale: workflow {victim} is cancelled") for t in texts)
        # What the step would do names the ended workflow by what it is now, archived or not.
        said = [t for t in texts if victim in t and "→" in t]
        assert said and all("cancelled" in t and "(unknown)" not in t for t in said), said
        await pilot.click("#alt")  # Replan
        assert await came_true(pilot, lambda: eng.state.plans[pid].state == "rejected")
        inc = eng.state.plans[pid].incident_id
        assert await came_true(pilot, lambda: len(eng.state.incidents[inc].plans) == 2)
        new = eng.state.incidents[inc].plans[-1]
        assert eng.state.plans[new].state == "proposed"


def _flat(r):  # type: ignore[no-untyped-def]
    """Every Text inside a Group (nested), for reading a dialog's words."""
    out = []
    for x in getattr(r, "renderables", [r]):
        out.extend(_flat(x) if hasattr(x, "renderables") else [x])
    return out


@pytest.mark.slow
async def test_step_turning_stale_while_dialog_open_reopens_it(tmp_path):
    app = make_app(tmp_path / "c.db", config=_config())
    async with app.run_test(size=(140, 44)) as pilot:
        pid = await drill_until_plan(app, pilot)
        eng = app.host.engine
        await pilot.press("a")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        first = app.screen
        victim = _a_target(eng, pid)
        assert (await app.link.send(f"/coordination-hub cancel {victim}"))["status"] == "success"
        await pilot.click("#confirm")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen is not first)
        texts = " ".join(getattr(t, "plain", "") for t in _flat(app.screen.detail))
        assert "Nothing was approved" in texts and f"workflow {victim} is cancelled" in texts
        assert app.screen.query("#alt")
        assert eng.state.plans[pid].state == "proposed"  # not approved


@pytest.mark.slow
async def test_hold_clock_while_plan_waits(tmp_path):
    app = make_app(tmp_path / "c.db", config=_config(hold_clock=True))
    async with app.run_test(size=(140, 44)) as pilot:
        pid = await drill_until_plan(app, pilot)
        host = app.host
        host.run_clock(30.0)
        t0 = host.engine.clock.now()
        async with host.lock:
            await host.tick(1.0)
        assert host.engine.clock.now() == t0 and host.held_by() == [pid]
        assert "held" in clock_label(app.link)
        assert (await app.link.send(f"/incident approve {pid}"))["status"] == "success"
        async with host.lock:
            await host.tick(1.0)
        assert host.engine.clock.now() > t0


@pytest.mark.slow
async def test_clock_runs_while_plan_waits_without_hold(tmp_path):
    app = make_app(tmp_path / "c.db", config=_config())
    async with app.run_test(size=(140, 44)) as pilot:
        await drill_until_plan(app, pilot)
        host = app.host
        host.run_clock(30.0)
        t0 = host.engine.clock.now()
        async with host.lock:
            await host.tick(1.0)
        assert host.engine.clock.now() > t0 and host.held_by() == []


@pytest.mark.parametrize(
    "text",
    [
        "/resource-manager status {",  # bad JSON: a syntax error, with its column
        "/nope x",  # no such component
        "/coordination-hub pause",  # a workflow id missing
        "/resource-manager emergency-reallocation '{\"x\":1}'",  # a payload its model refuses
    ],
)
def test_the_plan_checks_refuse_a_step_as_the_command_language_does(text: str) -> None:
    """The editor's line check, the decision dialog's effects and the staleness check
    bind a step with one helper (tui.operator.bind_command): each says the same refusal."""
    from core.event_types import EVENTS
    from core.projection import State
    from tui.operator import CommandRefused, bind_command
    from tui.plan_view import effects, line_error

    with pytest.raises(CommandRefused) as refused:
        bind_command(text)
    why = refused.value
    assert why.message
    assert line_error(text) == (why.message if why.column is None else f"column {why.column}: {why.message}")
    assert effects(State(EVENTS.folds), text) == [f"does not parse: {why.message}"]
    assert targets(text) is None
    good = "/coordination-hub pause wf-1"
    assert bind_command(good).workflow_id == "wf-1"
    assert line_error(good) is None and targets(good) == ({"wf-1"}, set(), set())


def test_a_step_naming_a_workflow_that_never_existed_says_so() -> None:
    """The effects name a workflow by what it is: live (its band, priority, status), archived
    (its final status, test above), or never known: not '(unknown)' for every case."""
    from core.session import memory_sim
    from tui.plan_view import effects

    eng = memory_sim(seed=0, demo=True)
    live = next(iter(eng.state.workflows))
    assert effects(eng.state, "/coordination-hub pause workflow_999") == ["pause workflow_999 (no such workflow)"]
    (said,) = effects(eng.state, f"/coordination-hub pause {live}")
    assert said.startswith(f"pause {live} (") and eng.state.workflows[live].status.value in said, said
