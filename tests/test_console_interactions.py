"""Pilot tests: each interaction is driven with keys and checked against the engine."""

from __future__ import annotations

import json
import sqlite3

import pytest

from core.config import Config
from core.models import WorkflowStatus
from tests.conftest import opsdeck_cmd
from tests.console_support import BUSY_S, came_true, confirm, make_app, palette_search, settle
from tui.screens.checkpoints import CheckpointsScreen
from tui.screens.help import HelpScreen
from tui.screens.modals import ConfirmScreen
from tui.widgets.event_log import EventLog


def events_of(db, type_: str) -> list[int]:
    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute("SELECT seq FROM events WHERE type=? ORDER BY seq", (type_,))]


@pytest.mark.slow
async def test_rollback_cancel_then_confirm(tmp_path):
    db = tmp_path / "c.db"
    app = make_app(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 120)
        eng = app.host.engine
        cp = await eng.checkpoint("manual", "before")
        done = lambda: {k for k, v in eng.state.tasks.items() if v.status.value == "completed"}  # noqa: E731
        at_cp = done()
        await settle(app, pilot, 600)
        assert done() != at_cp
        await pilot.press("b")
        assert await came_true(pilot, lambda: isinstance(app.screen, CheckpointsScreen))
        ol = app.screen.query_one("OptionList")
        assert await came_true(pilot, lambda: str(cp) in [o.id for o in ol.options])
        ol.highlighted = [o.id for o in ol.options].index(str(cp))
        await pilot.press("enter")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert app.focused is not None and app.focused.id == "cancel"  # Cancel is the default
        await pilot.press("enter")
        assert await came_true(pilot, lambda: isinstance(app.screen, CheckpointsScreen))
        seq = eng.state.seq
        assert not any(True for _ in events_of(db, "STATE_RESTORED"))
        assert eng.state.seq == seq
        await confirm(app, pilot, "enter")  # the chosen checkpoint asks first; "Roll back" confirms
        assert await came_true(pilot, lambda: len(events_of(db, "STATE_RESTORED")) == 1)
        assert done() == at_cp


@pytest.mark.slow
async def test_filter_by_type_text_and_workflow(tmp_path):
    db = tmp_path / "c.db"
    app = make_app(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 900)
        log = app.query_one(EventLog)
        await pilot.press("slash")
        await pilot.press(*"type:TASK_COMPLETED")
        await pilot.press("enter")
        want = events_of(db, "TASK_COMPLETED")
        assert want
        assert await came_true(pilot, lambda: log.matches is not None and list(log.matches) == want)
        assert log.count == len(want)
        await pilot.press("slash", *"wf:workflow_003 type:TASK_COMPLETED", "enter")
        assert await came_true(
            pilot,
            lambda: log.filter.workflow == "workflow_003" and log.matches is not None and len(log.matches) < len(want),
        )
        with sqlite3.connect(db) as con:
            rows = con.execute(
                "SELECT seq FROM events WHERE type='TASK_COMPLETED' AND json_extract(data,'$.workflow_id')='workflow_003' ORDER BY seq"
            ).fetchall()
        assert list(log.matches) == [r[0] for r in rows]
        # Live events that match are appended as they arrive.
        before = len(log.matches)
        await settle(app, pilot, 900)
        assert len(log.matches) >= before
        await pilot.press("slash", "enter")  # empty filter clears it: every event, progress folded into its task
        await app.host.engine.flush()
        with sqlite3.connect(db) as con:
            progress = {r[0] for r in con.execute("SELECT seq FROM events WHERE type = 'TASK_PROGRESS'")}
        seq = app.host.engine.state.seq
        assert progress
        assert await came_true(pilot, lambda: not log.filter.active and log.count + len(progress) == seq)
        assert log.matches is not None and not progress & set(log.matches)


@pytest.mark.slow
async def test_follow_pauses_on_scroll_up_and_resumes_at_end(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 600)
        log = app.query_one(EventLog)
        assert log.follow and log.scroll_y == log.max_scroll_y
        log.focus()
        await pilot.press("pageup", "pageup")
        assert await came_true(pilot, lambda: not log.follow)
        y = log.scroll_y
        await settle(app, pilot, 300)
        assert log.scroll_y == y, "a paused log must not move"
        assert log.scroll_y < log.max_scroll_y
        await pilot.press("end")
        assert await came_true(pilot, lambda: log.follow and log.scroll_y == log.max_scroll_y)
        await settle(app, pilot, 300)
        assert log.scroll_y == log.max_scroll_y, "following keeps the end in view"
        assert log.visible_ready()


@pytest.mark.slow
async def test_pause_resume_and_cancel_workflow(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 120)
        eng = app.host.engine
        wl = app.query_one("#workflows")
        wl.focus()
        wl.highlighted = [o.id for o in wl.options].index("wf:workflow_002")
        await pilot.press("p")  # destructive: it asks first, Cancel focused
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#confirm")
        assert await came_true(pilot, lambda: eng.state.status_of("workflow_002") is WorkflowStatus.PAUSED)
        await pilot.press("r")
        assert await came_true(pilot, lambda: eng.state.status_of("workflow_002") is WorkflowStatus.RUNNING)
        app.refresh_panes()
        wl.highlighted = [o.id for o in wl.options].index("wf:workflow_002")
        await pilot.press("X")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")
        assert await came_true(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert eng.state.status_of("workflow_002") is WorkflowStatus.RUNNING
        await pilot.press("X")
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#confirm")
        assert await came_true(pilot, lambda: eng.state.status_of("workflow_002") is WorkflowStatus.CANCELLED)
        await eng.flush()
    # Each key was one slash command on the one command path, recorded with its actor.
    with sqlite3.connect(tmp_path / "c.db") as con:
        cmds = [
            (json.loads(d)["command"], a)
            for d, a in con.execute("SELECT data, actor FROM events WHERE type='COMMAND_EXECUTED' ORDER BY seq")
        ]
    assert [c for c in cmds if c[0].endswith(" workflow_002")] == [
        ("/coordination-hub pause workflow_002", "operator"),
        ("/coordination-hub resume workflow_002", "operator"),
        ("/coordination-hub cancel workflow_002", "operator"),
    ]


@pytest.mark.slow
async def test_readonly_replica_follows_a_writer_without_a_host(tmp_path, cli_env):
    """No host: a read-only console tails the store, so an in-process ``exec`` shows up."""
    import subprocess

    db = tmp_path / "c.db"
    writer = make_app(db)
    async with writer.run_test(size=(100, 30)) as pilot:
        await settle(writer, pilot, 120)
    app = make_app(db, readonly=True)
    async with app.run_test(size=(100, 30)) as pilot:
        link = await app.link_opened()
        assert link.kind == "attached" and link.host_pid is None and "no host" in link.describe()
        assert link.state.status_of("workflow_002") is WorkflowStatus.RUNNING
        done = subprocess.run(
            opsdeck_cmd("exec", "--db", str(db), "/coordination-hub pause workflow_002"),
            capture_output=True,
            text=True,
            timeout=120,
            env=cli_env,
        )
        assert done.returncode == 0, done.stderr
        assert await came_true(pilot, lambda: link.state.status_of("workflow_002") is WorkflowStatus.PAUSED, 30)


@pytest.mark.slow
async def test_readonly_refuses_changes(tmp_path):
    db = tmp_path / "c.db"
    writer = make_app(db)
    async with writer.run_test(size=(100, 30)) as pilot:
        await settle(writer, pilot, 300)
        await writer.host.engine.checkpoint("manual", "x")
        await writer.host.engine.flush()
    with sqlite3.connect(db) as con:
        n_before = con.execute("SELECT count(*) FROM events").fetchone()[0]
    app = make_app(db, readonly=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        eng = app.link
        seq = eng.state.seq
        wl = app.query_one("#workflows")
        wl.focus()
        await pilot.press("c", "p", "X")
        refused = lambda: [n.message for n in app._notifications if "read-only" in n.message]  # noqa: E731
        assert await came_true(pilot, lambda: any("'Cancel workflow'" in t for t in refused())), refused()
        assert not isinstance(app.screen, ConfirmScreen)
        texts = [n.message for n in app._notifications]
        assert any("read-only" in t and "Checkpoint" in t for t in texts), texts
        assert any("read-only" in t and "Pause" in t for t in texts), texts
        # The checkpoints screen opens (watching is allowed) but rolling back is refused.
        await pilot.press("b")
        assert await came_true(pilot, lambda: isinstance(app.screen, CheckpointsScreen))
        assert await came_true(pilot, lambda: app.screen.query_one("OptionList").option_count > 0)
        await pilot.press("enter")
        assert await came_true(pilot, lambda: any("'rollback'" in t for t in refused())), refused()
        assert not isinstance(app.screen, ConfirmScreen)
        assert eng.state.seq == seq
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == n_before


@pytest.mark.slow
async def test_palette_search_runs_the_command(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 60)
        n = len(app.host.engine.state.checkpoints)
        await palette_search(app, pilot, "checkpoint", "Checkpoint")
        await pilot.press("enter")
        assert await came_true(pilot, lambda: len(app.host.engine.state.checkpoints) == n + 1)
        cp = max(app.host.engine.state.checkpoints.values(), key=lambda c: c.id)
        assert cp.kind == "manual"


@pytest.mark.slow
async def test_theme_switch_from_palette_and_config(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        assert app.theme == "opsdeck-dark"
        await palette_search(app, pilot, "Theme: opsdeck-light", "opsdeck-light")
        await pilot.press("enter")
        assert await came_true(pilot, lambda: app.theme == "opsdeck-light")
        await pilot.press("t")
        assert app.theme == "opsdeck-high-contrast"
        assert app.current_theme.background is not None and app.current_theme.background.lower() == "#000000"
    cfg = Config.model_validate({"console": {"theme": "opsdeck-high-contrast"}})
    app2 = make_app(tmp_path / "c.db", config=cfg)
    async with app2.run_test(size=(100, 30)) as pilot:
        assert app2.theme == "opsdeck-high-contrast"


@pytest.mark.slow
async def test_help_lists_bindings_and_keys_are_overridable(tmp_path):
    cfg = Config.model_validate({"console": {"keys": {"checkpoint": "C"}}})
    app = make_app(tmp_path / "c.db", config=cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 30)
        await pilot.press("question_mark")
        assert await came_true(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        assert await came_true(pilot, lambda: not isinstance(app.screen, HelpScreen))
        n = len(app.host.engine.state.checkpoints)
        # Keys are handled in order: a checkpoint c started would start before C's, so once
        # C's is taken and no operator action is still running, c's would be counted too.
        await pilot.press("c", "C")
        assert await came_true(
            pilot,
            lambda: (
                len(app.host.engine.state.checkpoints) > n
                and not any(w.group == "ops" and not w.is_finished for w in app.workers)
            ),
            BUSY_S,
        )
        assert len(app.host.engine.state.checkpoints) == n + 1, "C checkpoints, the default key c no longer does"


@pytest.mark.slow
async def test_detail_screens_open_and_close(tmp_path):
    from tui.screens.agent import AgentScreen
    from tui.screens.workflow import WorkflowScreen

    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 300)
        wl = app.query_one("#workflows")
        wl.focus()
        wl.highlighted = [o.id for o in wl.options].index("wf:workflow_001")
        await pilot.press("enter")
        assert await came_true(
            pilot, lambda: isinstance(app.screen, WorkflowScreen) and app.screen.key == "workflow_001"
        )
        await pilot.press("p")  # actions apply to the workflow on screen
        assert await came_true(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#confirm")
        assert await came_true(pilot, lambda: app.host.engine.state.status_of("workflow_001") is WorkflowStatus.PAUSED)
        await pilot.press("escape")
        pools = app.query_one("#pools")
        pools.focus()
        await pilot.press("enter")
        assert await came_true(pilot, lambda: isinstance(app.screen, AgentScreen))
        await pilot.press("escape")
        assert await came_true(pilot, lambda: app.screen is app.screen_stack[0])


@pytest.mark.slow
async def test_opens_a_database_it_did_not_create(tmp_path):
    import subprocess

    db = tmp_path / "other.db"
    subprocess.run(
        opsdeck_cmd("demo", "--headless", "--for", "300", "--db", str(db)),
        check=True,
        capture_output=True,
        timeout=120,
    )
    app = make_app(db, demo=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert len(app.host.engine.state.all_workflow_ids()) == 6
        log = app.query_one(EventLog)
        with sqlite3.connect(db) as con:
            head = con.execute("SELECT max(seq) FROM events").fetchone()[0]
        assert log.head >= head and log.visible_ready()
        ids = [o.id for o in app.query_one("#workflows").options]
        assert "wf:workflow_001" in ids


@pytest.mark.slow
async def test_palette_lists_slash_commands_and_opens_the_command_line(tmp_path):
    from textual.widgets import Input

    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        prompts = await palette_search(app, pilot, "/resource-manager allocate", "/resource-manager allocate")
        assert prompts[0] == "/resource-manager allocate", prompts
        await pilot.press("enter")
        assert await came_true(pilot, lambda: app.command_line.display)
        assert app.command_line.query_one(Input).value == "/resource-manager allocate "


def test_no_color_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(tmp_path / "c.db")
    assert app.no_color
