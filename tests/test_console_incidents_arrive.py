"""Pilot tests: a new incident comes to the operator (highlighted and scrolled into view
in its pane, a toast, the terminal bell, the configured hook run with the incident);
a resolved incident folds to one line; replaced agents stop counting as down."""

from __future__ import annotations

import sys

import pytest

from core.config import Config
from tests.console_support import came_true, drill_until_plan, make_app
from tui import operator


def _config(**console) -> Config:  # type: ignore[no-untyped-def]
    return Config.model_validate(
        {
            "approval": {"auto": [], "manual": ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"]},
            "console": console,
        }
    )


def _visible(pane, row_id: str) -> bool:  # type: ignore[no-untyped-def]
    if pane.selected_id != row_id or pane.highlighted is None:
        return False
    top = pane.scroll_y
    return top <= pane.highlighted < top + pane.scrollable_content_region.height


@pytest.mark.slow
async def test_new_incident_scrolls_into_view_and_is_announced(tmp_path):
    out = tmp_path / "hook.txt"
    hook = [
        sys.executable,
        "-c",
        f"import os,sys; open({str(out)!r},'a').write(os.environ['OPSDECK_INCIDENT_ID']+'|'+sys.argv[1]+'\\n')",
    ]
    app = make_app(tmp_path / "c.db", config=_config(incident_hook=hook))
    async with app.run_test(size=(100, 26)) as pilot:
        await app.link_opened()
        bells: list[int] = []
        app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
        # Every toast as it is posted: a toast leaves app._notifications when it times out,
        # which on a loaded machine can come before the second incident does.
        titles: list[str] = []
        post = app.notify

        def notify(message, *, title="", **kw):  # type: ignore[no-untyped-def]
            titles.append(title)
            return post(message, title=title, **kw)

        app.notify = notify  # type: ignore[method-assign]
        first = await drill_until_plan(app, pilot, "resource-exhaustion")
        assert await came_true(pilot, lambda: out.exists() and "INC-0001" in out.read_text())
        pane = app.incidents_pane
        # The operator scrolls down to the first plan's last step, far from the top row.
        steps = [oid for oid in pane._ids if oid.startswith(f"step:{first}:")]
        pane.focus()
        pane.show_row(steps[-1])
        assert await came_true(pilot, lambda: not _visible(pane, "incident:INC-0001") and pane.scroll_y > 0)
        assert (await app.link.send("/host drill cancel"))["status"] == "success"
        assert (await app.link.send("/host drill agent-cascade"))["status"] == "success"
        eng = app.host.engine
        for _ in range(400):
            await app.host.advance(10.0)
            if len(eng.state.incidents) >= 2:
                break
        new = sorted(eng.state.incidents)[-1]
        assert new == "INC-0002"
        assert await came_true(pilot, lambda: _visible(pane, f"incident:{new}"))
        assert len(bells) == 2  # one per incident, not one per event
        assert titles.count("new incident") == 2
        assert await came_true(pilot, lambda: "INC-0002|INC-0002" in out.read_text())
        assert app.announcer.hook_failures == []


@pytest.mark.slow
async def test_failing_hook_is_reported_once(tmp_path):
    app = make_app(tmp_path / "c.db", config=_config(incident_hook=[str(tmp_path / "no-such-notifier")]))
    async with app.run_test(size=(120, 36)) as pilot:
        await drill_until_plan(app, pilot, "resource-exhaustion")
        assert await came_true(pilot, lambda: app.announcer.hook_runs == 1)
        assert len(app.announcer.hook_failures) == 1 and "cannot start" in app.announcer.hook_failures[0]


@pytest.mark.slow
async def test_resolved_incident_folds_to_one_line(tmp_path):
    app = make_app(tmp_path / "c.db", config=_config())
    async with app.run_test(size=(120, 36)) as pilot:
        pid = await drill_until_plan(app, pilot, "resource-exhaustion")
        pane = app.incidents_pane
        app.refresh_panes()
        assert any(oid.startswith(f"step:{pid}:") for oid in pane._ids)  # open: its plan's steps shown
        assert (await app.link.send(f"/incident reject {pid}"))["status"] == "success"
        res = await app.link.send("/incident resolve INC-0001 --note=handled")
        assert res["status"] == "success"
        app.refresh_panes()
        rows = lambda: [oid for oid in pane._ids if "INC-0001" in oid or pid in oid]  # noqa: E731
        assert await came_true(pilot, lambda: rows() == ["incident:INC-0001"]), rows()
        text = pane.get_option("incident:INC-0001").prompt.plain
        assert "resolved (not validated)" in text and f"{pid} rejected" in text


async def test_replaced_agents_stop_counting_as_down(tmp_path):
    app = make_app(tmp_path / "c.db", config=_config())
    async with app.run_test(size=(160, 48)) as pilot:
        await app.link_opened()
        host = app.host
        eng = host.engine
        await host.advance(300)
        busy = sorted(a.id for a in eng.state.agents.values() if a.status.value == "busy")[:2]
        for a in busy:
            host.runtime.fail_agent(a, "test: crashed")
        await host.advance(5)
        pool = eng.state.agents[busy[0]].pool
        app.refresh_panes()
        head = lambda: app.pools_pane.get_option(f"pool:{pool}").prompt.plain  # noqa: E731
        assert await came_true(pilot, lambda: "down" in head()), head()
        act = {"action": "immediate_agent_replacement", "failed_agents": [busy[0]]}
        res = await app.link.send(
            f"/coordination-hub execute-dependency-recovery {operator.payload({'recovery_actions': [act]})}"
        )
        assert res["status"] == "success", res
        app.refresh_panes()
        assert await came_true(pilot, lambda: "1 replaced" in head()), head()
        down = [a for a in busy if eng.state.agents[a].pool == pool]
        assert (f"{len(down) - 1} down" in head()) if len(down) > 1 else ("down" not in head())
