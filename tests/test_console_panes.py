"""The Workflows and Agent pools panes: column headers, distinct names, finished
workflows collapsed behind a toggle, sort keys in the title, a cursor that stays on
its workflow, and a help legend for every mark and gate."""

from __future__ import annotations

import pytest
from rich.console import Console

from core.incidents.kinds import GATES
from core.models import WorkflowStatus
from tests.console_support import BUSY_S, came_true, make_app, settle
from tui.screens.help import HelpScreen
from tui.widgets.agent_pools import fit_tasks
from tui.widgets.live_list import Pane, distinct_names, middle_ellipsis


def _plain(renderable) -> str:  # type: ignore[no-untyped-def]
    con = Console(width=200, record=True, color_system=None)
    con.print(renderable)
    return con.export_text()


def _rows(pane) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(o.id or "", o.prompt.plain) for o in pane.options]


def test_names_keep_their_distinguishing_suffix():
    ids = ["migration_workflow_001", "migration_workflow_001_r2", "debug_perf_002", "debug_perf_002_r3"]
    got = distinct_names(ids, 14)
    assert len(set(got.values())) == len(ids)
    assert all(len(v) <= 14 for v in got.values())
    assert got["debug_perf_002"] == "debug_perf_002"
    assert got["migration_workflow_001_r2"].endswith("_r2")
    assert middle_ellipsis("abcdefghij", 5, 2) == "ab…ij"


def test_task_labels_at_80_columns_keep_what_tells_them_apart():
    """The pools pane's task column at 80x24 is 9 cells: a task's own name when no other
    task shares it, else its id cut to the end that differs; never two alike."""
    tasks = [
        "workflow_001/test_1",
        "impl_auth_001/test_1",
        "workflow_002/extract_1",
        "workflow_003/collect_1",
        "migration_workflow_001/snapshot_1",
    ]
    got = fit_tasks(tasks, 9)
    assert len(set(got.values())) == len(tasks) and all(len(v) <= 9 for v in got.values())
    assert got["workflow_002/extract_1"] == "extract_1" and got["workflow_003/collect_1"] == "collect_1"
    for t in ("workflow_001/test_1", "impl_auth_001/test_1"):  # a shared own name: the head tells them apart
        assert got[t].endswith("/test_1") and got[t][0] == t[0]


@pytest.mark.slow
async def test_headers_labels_and_distinct_names_at_140_and_80(tmp_path):
    app = make_app(tmp_path / "p.db")
    async with app.run_test(size=(140, 42)) as pilot:
        await settle(app, pilot, 600)
        head = app.query_one("#workflows-pane", Pane).query_one(".pane-header").render()
        text = str(head)
        for label in ("workflow", "stat", "done", "cpu cores", "memory GB", "agents"):
            assert label in text, label
        pools_head = str(app.query_one("#pools-pane", Pane).query_one(".pane-header").render())
        for label in ("agent", "task", "cpu%", "memMB"):
            assert label in pools_head, label
        # Every workflow of the state that is shown is shown by its whole id at 140 columns.
        shown = [p for oid, p in _rows(app.workflows_pane) if oid.startswith("wf:")]
        for wf in app.host.engine.state.workflows.values():
            if wf.status not in (WorkflowStatus.COMPLETED, WorkflowStatus.CANCELLED):
                assert any(f" {wf.id} " in p for p in shown), wf.id
        await pilot.resize_terminal(80, 24)
        assert await came_true(pilot, lambda: app.screen.size == (80, 24) and app.workflows_pane.size.width < 80)
        app.refresh_panes()
        await pilot.pause()
        names = [p.split()[1] for oid, p in _rows(app.workflows_pane) if oid.startswith("wf:")]
        assert len(names) == len(set(names)), names
        assert "cpu" in str(app.query_one("#workflows-pane", Pane).query_one(".pane-header").render())
        tasks = [p.split()[2] for oid, p in _rows(app.pools_pane) if oid.startswith("agent:") and "—" not in p]
        assert tasks and len(tasks) == len(set(tasks)), tasks


@pytest.mark.slow
async def test_finished_collapse_toggle_sort_and_stable_cursor(tmp_path):
    app = make_app(tmp_path / "p.db")
    async with app.run_test(size=(140, 42)) as pilot:
        await app.link_opened()
        eng = app.host.engine
        for _ in range(40):
            await settle(app, pilot, 600)
            if any(w.status is WorkflowStatus.COMPLETED for w in eng.state.all_workflows()):
                break
        finished = {w.id for w in eng.state.all_workflows() if w.status is WorkflowStatus.COMPLETED}
        assert finished
        pane = app.workflows_pane
        ids = [oid for oid, _ in _rows(pane)]
        assert not any(oid == f"wf:{w}" for w in finished for oid in ids)
        assert "finished" in ids and "finished (F shows)" in pane.title()
        pane.focus()
        await pilot.press("F")
        assert await came_true(pilot, lambda: all(f"wf:{w}" in [oid for oid, _ in _rows(pane)] for w in finished))
        ids = [oid for oid, _ in _rows(pane)]
        # Highlight the last active row, then re-sort: the cursor stays on that workflow.
        active = [oid for oid in ids if oid.startswith("wf:") and oid[3:] not in finished]
        pane.highlighted = ids.index(active[-1])
        before = pane.highlighted_option.id
        await pilot.press("s")
        assert await came_true(pilot, lambda: pane.sort_key == "priority" and "sort priority" in pane.title())
        order = [oid[3:] for oid, _ in _rows(pane) if oid.startswith("wf:")]
        prios = [eng.state.any_workflow(w).priority for w in order]
        assert prios == sorted(prios, reverse=True)
        assert pane.highlighted_option.id == before
        await eng.advance(300)
        app.refresh_panes()
        await pilot.pause()
        assert pane.highlighted_option.id == before


@pytest.mark.slow
async def test_help_explains_every_gate_and_mark(tmp_path):
    app = make_app(tmp_path / "p.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert await came_true(pilot, lambda: isinstance(app.screen, HelpScreen))
        from tui.screens.help import legend

        text = _plain(legend())
        for name in GATES:
            assert name in text
        assert "beyond the allocation" in text and "agent unreachable" in text


@pytest.mark.slow
async def test_agent_screen_says_the_sim_has_no_process(tmp_path):
    from tui.screens.agent import AgentScreen

    app = make_app(tmp_path / "p.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 120)
        busy = next(a for a in app.host.engine.state.agents.values() if a.current_task)
        app.push_screen(AgentScreen(busy.id))
        assert await came_true(
            pilot, lambda: isinstance(app.screen, AgentScreen) and bool(app.screen.query("#detail-content"))
        )
        assert await came_true(pilot, lambda: "simulated runtime: no OS process" in _plain(app.screen.body()))
        text = _plain(app.screen.body())
        assert "host pid" not in text
        assert f"Last output of {busy.current_task} (following)" in text


async def test_a_tick_re_renders_only_the_rows_that_changed() -> None:
    """A changed row forgets only its own rendering; the others are drawn from cache
    (OptionList's replace_option_prompt dropped every row's, every tick)."""
    from rich.text import Text
    from textual.app import App, ComposeResult

    from tui.widgets.live_list import LiveList

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield LiveList(id="l")

    app = One()
    async with app.run_test(size=(60, 12)) as pilot:
        lst = app.query_one(LiveList)
        rows = [(f"r{i}", Text(f"row {i}"), False) for i in range(5)]
        lst.sync(rows)
        await pilot.pause()
        opts = [lst.get_option(f"r{i}") for i in range(5)]
        keys = lst._option_render_cache.keys  # an LRUCache: not iterable itself
        assert all(any(k[0] is o for k in keys()) for o in opts)
        lst.sync([(oid, Text("changed") if oid == "r2" else Text(t.plain), d) for oid, t, d in rows])
        cached = {i for i, o in enumerate(opts) if any(k[0] is o for k in keys())}
        assert cached == {0, 1, 3, 4}, cached
        await pilot.pause()
        assert "changed" in lst.get_option("r2").prompt.plain  # type: ignore[union-attr]


@pytest.mark.slow
async def test_the_detail_screen_of_a_finished_workflow_shows_its_archived_tasks(tmp_path):
    from tui.screens.workflow import WorkflowScreen

    app = make_app(tmp_path / "d.db")
    async with app.run_test(size=(140, 42)) as pilot:
        await app.link_opened()
        eng = app.host.engine
        for _ in range(40):
            await settle(app, pilot, 600)
            if eng.state.finished:
                break
        wid = sorted(eng.state.finished)[0]
        assert wid not in eng.state.workflows
        screen = WorkflowScreen(wid)
        app.push_screen(screen)
        assert await came_true(pilot, lambda: screen.archived is not None, BUSY_S)
        assert screen.archived and {t.status.value for t in screen.archived} <= {"completed", "failed", "pending"}
        assert len(screen.archived) == eng.state.finished[wid].task_count


async def test_a_quarantined_agent_says_it_is_out_of_dispatch(tmp_path):
    """An idle agent held out of dispatch (AGENT_BACKOFF) says until when, not just idle;
    once the hold has passed it reads as any idle agent."""
    from core import timefmt
    from tui import operator

    app = make_app(tmp_path / "p.db")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot, 60)
        eng = app.host.engine
        idle = sorted(a.id for a in eng.state.agents.values() if a.status.value == "idle")
        other = idle[1]
        payload = operator.payload({"agents": [idle[0]], "duration": 600})
        res = await app.link.send(f"/incident quarantine-agents {payload}")
        assert res["status"] == "success", res
        until = eng.state.agents[idle[0]].backoff_until
        assert until is not None
        await settle(app, pilot)
        row = lambda a: app.pools_pane.get_option(f"agent:{a}").prompt.plain  # noqa: E731
        assert f"no dispatch until {timefmt.clock(until)}" in row(idle[0])
        assert "no dispatch" not in row(other)
        await settle(app, pilot, 660)
        assert "no dispatch" not in row(idle[0])


async def test_the_pools_and_the_agt_gauge_count_the_same_agents(tmp_path):
    """A paused workflow's agents keep their tasks: the AGT gauge counted them while the
    pools said '0/2 busy'. Both count agents in use (core.projection.agent_in_use), paused ones too."""
    from core.models import AgentStatus
    from core.projection import agent_in_use

    app = make_app(tmp_path / "u.db")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot, 60)
        eng = app.host.engine
        s = eng.state
        wid = next(
            s.tasks[a.current_task].workflow
            for a in s.agents.values()
            if a.status is AgentStatus.BUSY and a.current_task
        )
        held = {a.id for a in s.agents.values() if a.current_task and s.tasks[a.current_task].workflow == wid}
        res = await app.link.send(f"/workflow-status pause {wid}")
        assert res["status"] == "success", res
        await settle(app, pilot)
        paused = {a.id for a in s.agents.values() if a.status is AgentStatus.PAUSED}
        assert paused and paused <= held
        live = [a for a in s.agents.values() if a.status is not AgentStatus.RETIRED]
        used = [a for a in live if agent_in_use(a)]
        assert paused <= {a.id for a in used}
        assert app.pools_pane.note == f"{len(used)}/{len(live)} in use"
        assert eng.agent_utilisation() == round(len(used) / eng.config.capacity.agents * 100.0, 2)
        # an idle agent is not in use; a paused one without a task would not be either
        assert not any(agent_in_use(a) for a in live if a.status is AgentStatus.IDLE)
