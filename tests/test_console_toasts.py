"""Pilot tests: one time format and toasts that say a thing once. A drill's toast names
the fault time as a clock time, once; the same toast twice shows once; toasts sit at
the top; brackets in a toast are shown, not eaten."""

from __future__ import annotations

import re

from tests.console_support import came_true, confirm, drill_until_plan, make_app
from tui.announce import toast_room


async def test_drill_toast_once_with_clock_time(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(140, 40)) as pilot:
        await app.link_opened()
        app.start_drill_named("resource-exhaustion")
        await confirm(app, pilot)
        assert await came_true(pilot, lambda: any("armed" in n.message for n in app._notifications))
        msgs = [n.message for n in app._notifications if "armed" in n.message]
        assert len(msgs) == 1 and msgs[0].count("armed") == 1, msgs
        assert re.search(r"injected at \d\d:\d\d:\d\d", msgs[0]) and "t=" not in msgs[0], msgs[0]
        # A refused second drill says refused, not "armed".
        app.start_drill_named("agent-cascade")
        await confirm(app, pilot)
        assert await came_true(pilot, lambda: any("DRILL_REFUSED" in n.message for n in app._notifications))
        refused = [n.message for n in app._notifications if "DRILL_REFUSED" in n.message]
        assert refused[0].startswith("drill agent-cascade: DRILL_REFUSED"), refused


async def test_same_toast_twice_shows_once_and_brackets_survive(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(140, 40)) as pilot:
        await app.link_opened()
        app.notify("see [console.filters] in the config")
        app.notify("see [console.filters] in the config")
        await pilot.pause()
        assert [n.message for n in app._notifications].count("see [console.filters] in the config") == 1
        shown = [n for n in app._notifications if "[console.filters]" in n.message]
        assert shown and not shown[0].markup  # plain text: the brackets are shown as typed


async def test_toasts_never_cover_the_command_line(tmp_path):
    """With the command line open and more toasts than fit at 80x24, the newest show whole
    above the line; the oldest made way."""
    from textual.widgets._toast import Toast

    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await app.link_opened()
        await pilot.press("colon")
        assert await came_true(pilot, lambda: app.command_line.display)
        for i in range(5):
            app.notify(f"toast number {i} with enough words to wrap onto a second line at eighty columns")
            assert await came_true(
                pilot,
                lambda i=i: any(f"toast number {i}" in str(t.render()) and t.region.height for t in app.query(Toast)),
            )
        line = app.command_line.region
        assert line.height > 0
        assert await came_true(pilot, lambda: "toast number 4" in " ".join(str(t.render()) for t in app.query(Toast)))
        await pilot.pause()
        toasts = list(app.query(Toast))
        assert 1 <= len(toasts) <= toast_room(24) < 5
        for toast in toasts:
            assert toast.region.bottom <= line.y, (toast.region, line)


def test_a_command_toast_names_its_object_once():
    from tui.dialogs import outcome_text

    def ok(summary: str) -> dict:
        return {"status": "success", "result": {"summary": summary}}

    assert outcome_text(ok("PLAN-0001 rejected by operator"), "Reject PLAN-0001") == "PLAN-0001 rejected by operator"
    said = outcome_text(ok("INC-0001: new plan PLAN-0002 (6 steps) proposed"), "Replan INC-0001")
    assert said.count("INC-0001") == 1
    assert outcome_text(ok("1 workflow paused"), "Pause workflow_003") == "Pause workflow_003: 1 workflow paused"
    bad = {"status": "error", "error": {"code": "INVALID_STATE", "message": "PLAN-0001 is rejected"}}
    assert outcome_text(bad, "Approve PLAN-0001") == "Approve PLAN-0001: INVALID_STATE: PLAN-0001 is rejected"


def _said(app, words: str) -> bool:  # type: ignore[no-untyped-def]
    return any(words in n.message for n in app._notifications)


async def test_the_paused_clock_hint_goes_when_the_clock_runs(tmp_path):
    """Approved while the clock is paused, the toast says the steps run when it runs; once
    the operator runs it (space), that toast is taken down, not left beside "running"."""
    app = make_app(tmp_path / "c.db")
    hint = "the approved steps run when it runs"
    async with app.run_test(size=(120, 40)) as pilot:
        pid = await drill_until_plan(app, pilot)
        assert not app.link.clock_running
        await confirm(app, pilot, "a")
        assert await came_true(pilot, lambda: app.link.state.plans[pid].state != "proposed")
        assert await came_true(pilot, lambda: _said(app, hint))
        app.withdraw_untrue()  # still paused: still true, still shown
        toast = next(n for n in app._notifications if hint in n.message)
        await pilot.press("space")
        assert await came_true(pilot, lambda: app.link.clock_running)
        # Taken down, not left to time out (it would still have time left).
        assert await came_true(pilot, lambda: toast not in app._notifications)
        assert toast.time_left > 0, "the toast only timed out"
        # Paused again and another plan approved: said again (it was forgotten when taken down).
        assert app.repeats.fresh("", hint, 8)


def test_a_held_toast_is_untrue_once_its_condition_fails():
    from types import SimpleNamespace

    from tui.announce import Repeats

    r = Repeats()
    link = SimpleNamespace(gone="the host (pid 1) is gone")
    assert r.fresh("host gone", "gone", 10, holds=lambda lk: bool(lk.gone))
    assert r.fresh("", "other", 10)
    assert r.untrue(link) == set()  # type: ignore[arg-type]
    assert not r.fresh("host gone", "gone", 10)  # still on screen: not said twice
    link.gone = None
    assert r.untrue(link) == {("host gone", "gone")}  # type: ignore[arg-type]
    assert r.untrue(link) == set()  # type: ignore[arg-type]
    assert not r.fresh("", "other", 10)  # a toast without a condition stays
