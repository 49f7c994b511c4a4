"""The operations console: a Textual app with the engine running inside it.

The engine is opened in a worker thread (replaying a large log never blocks the
UI) and driven by an async worker that advances the virtual clock in real time.
Panes read the in-memory projection on a timer; the event log reads SQLite by
window in worker threads. Every state change goes through :mod:`tui.operator`,
which refuses it in a read-only console.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, OptionList

from core.config import Config
from core.engine import Engine
from core.events import Event
from themes import DEFAULT_THEME, THEMES

from . import operator
from .command_line import CommandLine
from .command_table import BY_ACTION, bindings, with_overrides
from .log_source import FilterError, LogSource
from .palette import OpsdeckCommands
from .screens.agent import AgentScreen
from .screens.checkpoints import CheckpointsScreen
from .screens.choose import ChooseScreen
from .screens.confirm import ConfirmScreen
from .screens.help import HelpScreen
from .screens.incident import IncidentScreen
from .screens.plan_edit import PlanEditScreen
from .screens.result import ResultScreen
from .screens.workflow import WorkflowScreen
from .widgets.agent_pools import AgentPools
from .widgets.event_log import EventLog
from .widgets.header_gauges import HeaderGauges
from .widgets.live_list import Pane
from .widgets.incidents import Incidents, WAITING, plan_status, plan_steps, step_text, waiting_plans
from .widgets.workflows import Workflows

REFRESH_S = 0.5
TICK_S = 0.1


class OpsdeckApp(App[int]):
    CSS_PATH = "app.tcss"
    COMMANDS = {OpsdeckCommands}
    TITLE = "opsdeck"
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        db: Path,
        config: Config,
        demo: bool = False,
        seed: int = 0,
        speed: float | None = None,
        readonly: bool = False,
        *,
        start_engine: bool = True,
    ) -> None:
        super().__init__()
        self.db = Path(db)
        self.config = config
        self.demo = demo
        self.seed = seed
        self.speed = config.console.speed if speed is None else float(speed)
        self.readonly = readonly
        self.start_engine = start_engine
        self.engine: Engine | None = None
        self.clock_running = self.speed > 0 and not readonly
        self.command_table, self.key_problems = with_overrides(config.console.keys)
        for b in bindings(self.command_table):
            self.bind(b.key, b.action, description=b.description, show=b.show)
        for t in THEMES.values():
            self.register_theme(t)
        wanted = config.console.theme
        self.theme_problem = None if wanted in self.available_themes else f"unknown theme {wanted!r}; using {DEFAULT_THEME}"
        self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME
        self.log_source = LogSource(self.db)
        self.launched_at = time.perf_counter()
        self.first_frame_s: float | None = None
        self.first_frame_wall: float | None = None
        self.engine_ready = asyncio.Event()
        self.open_error: str | None = None
        self._stop = asyncio.Event()
        self.manager: Any = None
        self.drill: Any = None

    # -- layout -----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HeaderGauges(id="header")
        with Horizontal(id="body"):
            yield Pane(AgentPools(id="pools"), id="pools-pane")
            with Vertical(id="right"):
                yield Pane(Workflows(id="workflows"), id="workflows-pane")
                yield Incidents(id="incidents")
        with Vertical(id="log-area"):
            yield EventLog(self.log_source, id="log")
            yield Input(placeholder="filter: text  type:TASK_FAILED  wf:workflow_001  sev:high   (enter applies, empty clears, esc closes)", id="filter")
        yield CommandLine(id="cmdline")
        yield Footer()

    def on_mount(self) -> None:
        # The main screen's widgets, held so that code running while a detail screen is
        # on top (the event subscription, the refresh timer) still reaches them.
        self.log_pane = self.query_one(EventLog)
        self.header_pane = self.query_one(HeaderGauges)
        self.pools_pane = self.query_one(AgentPools)
        self.workflows_pane = self.query_one(Workflows)
        self.incidents_pane = self.query_one(Incidents)
        self.filter_input = self.query_one("#filter", Input)
        self.command_line = self.query_one(CommandLine)
        self.query_one("#filter").display = False
        self.command_line.display = False
        self.call_after_refresh(self._first_frame)
        for p in self.key_problems + ([self.theme_problem] if self.theme_problem else []):
            self.notify(p, severity="warning", timeout=8)
        self.run_worker(self._read_head, thread=True, group="head", exit_on_error=False)
        self.set_interval(REFRESH_S, self.refresh_panes)
        self.set_interval(0.25, self._log_tick)
        self.workflows_pane.focus()

    def _first_frame(self) -> None:
        self.first_frame_s = time.perf_counter() - self.launched_at
        self.first_frame_wall = time.time()
        if self.start_engine:
            self.run_worker(self._open_engine, thread=True, group="engine-open", exit_on_error=False)

    def _read_head(self) -> None:
        n = self.log_source.head()
        self.call_from_thread(self.log_pane.set_head, n)

    # -- engine lifecycle -------------------------------------------------------
    def _open_engine(self) -> None:
        """Runs in a thread: replaying the log is CPU work that must not freeze the UI."""
        from core.session import open_sim
        from core.store import StoreError

        async def opened() -> Engine:
            eng = await open_sim(self.db, self.config, seed=self.seed, demo=self.demo, readonly=self.readonly, recurring=self.demo)
            # Events emitted while opening (re-dispatch, liveness) reach the store before
            # the event log starts reading it by window.
            await eng.flush()
            return eng

        try:
            engine = asyncio.run(opened())
        except (StoreError, OSError, ValueError) as exc:
            self.call_from_thread(self._engine_failed, str(exc))
            return
        self.call_from_thread(self._engine_opened, engine)

    def _engine_failed(self, message: str) -> None:
        self.open_error = message
        self.header_pane.status_text = f"cannot open {self.db}: {message}"
        self.header_pane.refresh()
        self.notify(message, title="cannot open the database", severity="error", timeout=30)
        self.engine_ready.set()

    def _engine_opened(self, engine: Engine) -> None:
        self.engine = engine
        log = self.log_pane
        engine.subscribe(self._on_event)
        log.set_head(engine.state.seq)
        if self.readonly:
            self.set_interval(1.0, self._poll_external)
        else:
            self.manager = operator.incident_manager(engine)
            self.run_worker(self._drive_clock(), group="clock", exit_on_error=False)
        self.refresh_panes()
        self.engine_ready.set()

    async def engine_opened(self, timeout: float = 30.0) -> Engine:
        """Wait for the engine (tests and scripts)."""
        await asyncio.wait_for(self.engine_ready.wait(), timeout)
        if self.engine is None:
            raise RuntimeError(self.open_error or "engine did not open")
        return self.engine

    async def _drive_clock(self) -> None:
        """Advance the virtual clock ``speed`` simulated seconds per wall second."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not self._stop.is_set():
            await asyncio.sleep(TICK_S)
            now = loop.time()
            dt, last = now - last, now
            eng = self.engine
            if eng is None or not self.clock_running:
                continue
            await self.step(min(dt, 1.0) * self.speed)

    async def step(self, seconds: float) -> None:
        """One step of simulated time: a running drill injects its fault on time; the
        incident pipeline detects, plans and executes approved steps."""
        eng = self.engine
        if eng is None:
            return
        drill = self.drill
        if drill is not None and not drill.done:
            await drill.step(seconds)
        else:
            await eng.advance(seconds)
            if self.manager is not None:
                await self.manager.pump()

    async def _poll_external(self) -> None:
        """Read-only watcher: fold in events another process appended to the store."""
        eng = self.engine
        if eng is None or eng.store is None:
            return
        evs = await eng.store.read_events(since=eng.state.seq, limit=20000)
        for ev in evs:
            eng.state.apply(ev)
            self.log_pane.add_live(ev)
        if evs:
            self.log_pane.set_head(evs[-1].seq)

    def _on_event(self, ev: Event) -> None:
        self.log_pane.add_live(ev)
        subs = self.engine.state.settings.get("subscriptions") if self.engine is not None else None
        if isinstance(subs, dict):  # /coordination-hub subscribe-event: one notification per matching event
            names = sorted(n for n, types in subs.items() if ev.type in types)
            if names:
                self.notify(ev.line()[:160], title=f"subscription {', '.join(names)}", timeout=6)
        if ev.severity == "critical":
            self.notify(f"{ev.type} {ev.data.get('workflow_id') or ev.data.get('error_type') or ''}", title="critical event", severity="error", timeout=6)

    def _log_tick(self) -> None:
        if self._stop.is_set():
            return
        log = self.log_pane
        log.tick()
        if self.engine is not None and self.engine.store is not None:
            # What the store holds is what the window reads can serve.
            log.db_head = max(log.db_head, self.engine.state.seq - self.engine.unflushed)

    def refresh_panes(self) -> None:
        if self._stop.is_set() or not hasattr(self, "header_pane"):
            return
        self.header_pane.refresh()
        eng = self.engine
        if eng is None:
            return
        if not isinstance(self.screen, (ChooseScreen,)) and self.screen is self.screen_stack[0]:
            self.pools_pane.refresh_from(eng)
            self.workflows_pane.refresh_from(eng)
            self.incidents_pane.refresh_from(eng)

    @property
    def clock_label(self) -> str:
        if self.readonly:
            return "(watching)"
        return f"×{self.speed:g}" if self.clock_running else "(paused)"

    async def shutdown(self) -> None:
        self._stop.set()
        eng, self.engine = self.engine, None
        if eng is not None:
            try:
                await eng.close()
            except Exception:  # noqa: BLE001 - closing must not hide the exit
                pass
        self.log_source.close()

    async def action_quit(self) -> None:
        await self.shutdown()
        self.exit(0)

    async def on_unmount(self) -> None:
        await self.shutdown()

    # -- helpers ----------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.run_worker(coro, group="ops", exit_on_error=False)

    def report(self, res: dict[str, Any], what: str) -> bool:
        if res.get("status") == "success":
            self.notify(f"{what}: done", severity="information", timeout=4)
            return True
        err = res.get("error") or {}
        self.notify(f"{what}: {err.get('code', 'ERROR')}: {err.get('message', res)}", severity="error", timeout=8)
        return False

    def refused(self, action: str) -> bool:
        """True (and a message) when a read-only console is asked to change state."""
        c = BY_ACTION.get(action)
        if self.readonly and (c is None or c.mutates):
            title = c.title if c else action
            self.notify(f"read-only console: '{title}' would change state and was refused", severity="warning", timeout=6)
            return True
        return False

    def need_engine(self) -> Engine | None:
        if self.engine is None:
            self.notify("the engine is still opening", severity="warning")
        return self.engine

    def engine_for(self, action: str) -> Engine | None:
        """The engine, if ``action`` may run now: not refused as read-only, engine open."""
        if self.refused(action):
            return None
        return self.need_engine()

    async def confirm(self, title: str, detail: str, label: str = "Confirm") -> bool:
        return bool(await self.push_screen_wait(ConfirmScreen(title, detail, label)))

    def selected_workflow(self) -> str | None:
        if isinstance(self.screen, WorkflowScreen):
            return self.screen.key
        opt = self.workflows_pane.highlighted_option
        return opt.id.split(":", 1)[1] if opt is not None and opt.id and opt.id.startswith("wf:") else None

    def selected_plan(self) -> str | None:
        """The highlighted plan (or the plan of the highlighted incident), else the oldest waiting one."""
        eng = self.engine
        if eng is None:
            return None
        if isinstance(self.screen, IncidentScreen):
            for pid, p in eng.state.plans.items():
                if (p.get("incident") or p.get("incident_id")) == self.screen.key:
                    return pid
        opt = self.incidents_pane.highlighted_option
        if opt is not None and opt.id:
            kind, _, key = opt.id.partition(":")
            if kind == "plan" and key in eng.state.plans:
                return key
            if kind == "incident":
                mine = [pid for pid, p in eng.state.plans.items() if (p.get("incident") or p.get("incident_id")) == key]
                waiting = [pid for pid in mine if plan_status(eng.state.plans[pid]) in WAITING]
                if waiting or mine:
                    return (waiting or mine)[-1]
        waiting = waiting_plans(eng)
        return waiting[0] if waiting else None

    def selected_resumption(self) -> str | None:
        eng = self.engine
        if eng is None:
            return None
        opt = self.incidents_pane.highlighted_option
        if opt is not None and opt.id and opt.id.startswith("resumption:"):
            return opt.id.split(":", 1)[1]
        live = [rid for rid, r in eng.state.resumptions.items() if str(r.get("status", "")).lower() not in ("completed", "done", "aborted", "cancelled")]
        return live[0] if live else None

    # -- opening detail screens -------------------------------------------------
    @on(OptionList.OptionSelected, "#pools, #workflows, #incidents")
    def open_detail(self, event: OptionList.OptionSelected) -> None:
        oid = event.option.id or ""
        kind, _, key = oid.partition(":")
        if self.engine is None:
            return
        if kind == "wf":
            self.push_screen(WorkflowScreen(key))
        elif kind == "agent":
            self.push_screen(AgentScreen(key))
        elif kind == "incident":
            self.push_screen(IncidentScreen(key))
        elif kind == "plan":
            plan = self.engine.state.plans.get(key, {})
            inc = plan.get("incident") or plan.get("incident_id")
            if inc and inc in self.engine.state.incidents:
                self.push_screen(IncidentScreen(str(inc)))

    # -- simple actions ---------------------------------------------------------
    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.command_table))

    def action_filter(self) -> None:
        f = self.filter_input
        f.display = True
        cur = self.log_pane.filter
        f.value = ""
        f.placeholder = (f"now: {cur.describe()} — enter with nothing clears it" if cur.active else
                         "filter: text  type:TASK_FAILED  wf:workflow_001  sev:high   (enter applies, empty clears, esc closes)")
        f.focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        log = self.log_pane
        try:
            log.apply_filter(event.value)
        except FilterError as exc:
            self.notify(str(exc), title="filter not applied", severity="error", timeout=8)
            return
        event.input.display = False
        log.focus()

    def on_key(self, event: Any) -> None:
        if event.key == "escape" and self.focused is not None and self.focused.id == "filter":
            self.focused.display = False
            self.log_pane.focus()
            event.stop()

    @on(EventLog.FilterApplied)
    def _filter_applied(self, event: EventLog.FilterApplied) -> None:
        self.notify(event.summary, timeout=3)

    def action_toggle_follow(self) -> None:
        following = self.log_pane.toggle_follow()
        self.notify("following the event log" if following else "follow paused", timeout=2)

    def action_command_line(self) -> None:
        self.open_command_line("")

    def open_command_line(self, text: str = "") -> None:
        self.command_line.open(text)

    @on(CommandLine.Submitted)
    def _command_submitted(self, event: CommandLine.Submitted) -> None:
        self.spawn(self._run_command_line(event.text))

    async def _run_command_line(self, text: str) -> None:
        cl = self.command_line
        eng = self.need_engine()
        if eng is None:
            return
        res = await operator.run_slash(eng, text, self.readonly)
        if res.get("status") == "success":
            cl.show_error("")
            cl.action_close()
            self.show_result(text, res)
        else:
            cl.show_failure(text, res)

    def show_result(self, text: str, res: dict[str, Any]) -> None:
        """The result view of a command that ran; ``r`` there re-runs it if it only reads."""
        eng = self.engine

        async def rerun(cmd: str) -> dict[str, Any]:
            assert eng is not None
            return await operator.run_slash(eng, cmd, self.readonly)

        self.push_screen(ResultScreen(text, res, rerun if operator.command_mutates(text) is False else None))

    def action_cycle_theme(self) -> None:
        names = self.available_themes_ordered()
        nxt = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]
        self.set_theme(nxt)

    def available_themes_ordered(self) -> list[str]:
        return list(THEMES)

    def set_theme(self, name: str) -> None:
        self.theme = name
        self.notify(f"theme {name}", timeout=2)
        self.refresh_panes()

    def action_toggle_clock(self) -> None:
        if self.readonly:
            self.notify("read-only console: the clock is not ours to run", severity="warning")
            return
        self.clock_running = not self.clock_running
        if self.clock_running and self.speed <= 0:
            self.speed = self.config.console.speed
        self.header_pane.refresh()

    def action_checkpoints(self) -> None:
        if self.need_engine() is not None:
            self.push_screen(CheckpointsScreen())

    # -- state-changing actions -------------------------------------------------
    def _workflow_action(self, action: str, fn_name: str, label: str, confirm: bool = False) -> None:
        if self.refused(action):
            return
        eng = self.need_engine()
        wf = self.selected_workflow()
        if eng is None or wf is None:
            if eng is not None:
                self.notify("highlight a workflow first", severity="warning")
            return

        async def run() -> None:
            if confirm and not await self.confirm(f"{label} {wf}?", f"{label} workflow {wf}. Its running tasks are stopped and released.", label):
                return
            res = await operator.engine_op(eng, fn_name, getattr(eng, fn_name), wf, readonly=self.readonly, actor=operator.ACTOR)
            self.report(res, f"{label} {wf}")
            self.refresh_panes()

        self.spawn(run())

    def action_pause_workflow(self) -> None:
        self._workflow_action("pause_workflow", "pause_workflow", "Pause")

    def action_resume_workflow(self) -> None:
        self._workflow_action("resume_workflow", "resume_workflow", "Resume")

    def action_start_workflow(self) -> None:
        self._workflow_action("start_workflow", "start_workflow", "Start")

    def action_cancel_workflow(self) -> None:
        self._workflow_action("cancel_workflow", "cancel_workflow", "Cancel", confirm=True)

    def action_checkpoint(self) -> None:
        eng = self.engine_for("checkpoint")
        if eng is None:
            return

        async def run() -> None:
            res = await operator.engine_op(eng, "checkpoint", eng.checkpoint, "manual", "operator", None, actor=operator.ACTOR)
            self.report(res, f"checkpoint #{res.get('result')}")

        self.spawn(run())

    def request_rollback(self, cp_id: int) -> None:
        eng = self.engine_for("checkpoints")
        if eng is None:
            return
        if self.readonly:
            self.notify("read-only console: rollback would change state and was refused", severity="warning")
            return

        async def run() -> None:
            cp = eng.state.checkpoints.get(cp_id)
            where = f"seq {cp.seq}, {cp.kind} {cp.label}".strip() if cp else "unknown"
            if not await self.confirm(f"Roll back to checkpoint #{cp_id}?", f"Every workflow returns to checkpoint #{cp_id} ({where}). History is kept: the rollback is appended to the log.", "Roll back"):
                self.notify("rollback cancelled; nothing changed", timeout=3)
                return
            res = await operator.engine_op(eng, "rollback", eng.rollback, cp_id, actor=operator.ACTOR, readonly=self.readonly)
            if self.report(res, f"rollback to #{cp_id}"):
                r = res["result"]
                self.notify(f"state {r['state_hash_before'][:10]} → {r['state_hash_after'][:10]}", timeout=6)
            self.refresh_panes()

        self.spawn(run())

    def _plan_detail(self, pid: str) -> str:
        assert self.engine is not None
        p = self.engine.state.plans.get(pid, {})
        steps = plan_steps(p)
        lines = [f"plan {pid} ({plan_status(p)}), {len(steps)} step(s):"]
        lines += [f"  {i}. {step_text(s)[:100]}" for i, s in enumerate(steps, 1)]
        return "\n".join(lines[:14])

    def _plan_action(self, action: str, verb: str) -> None:
        eng = self.engine_for(action)
        if eng is None:
            return
        pid = self.selected_plan()
        if pid is None:
            self.notify("no plan is waiting for approval", severity="warning")
            return

        async def run() -> None:
            if not await self.confirm(f"{verb} plan {pid}?", self._plan_detail(pid), verb):
                self.notify(f"{verb.lower()} cancelled; nothing changed", timeout=3)
                return
            kind = {"approve": "approve", "reject": "reject", "abort_plan": "abort"}[action]
            res = await operator.plan_action(eng, kind, pid, self.readonly)
            self.report(res, f"{verb} {pid}")
            self.refresh_panes()

        self.spawn(run())

    def action_approve(self) -> None:
        self._plan_action("approve", "Approve")

    def action_reject(self) -> None:
        self._plan_action("reject", "Reject")

    def action_abort_plan(self) -> None:
        self._plan_action("abort_plan", "Abort")

    def action_edit_plan(self) -> None:
        eng = self.engine_for("edit_plan")
        if eng is None:
            return
        pid = self.selected_plan()
        if pid is None:
            self.notify("no plan to edit", severity="warning")
            return
        plan = eng.state.plans[pid]
        document = [step_text(s) for s in plan_steps(plan)]

        async def validate(doc: Any) -> str | None:
            if not isinstance(doc, list) or not all(isinstance(x, str) for x in doc):
                return "the plan must be a JSON list of slash-command strings"
            res = await operator.plan_action(eng, "edit", pid, self.readonly, steps=doc)
            if res.get("status") == "success":
                return None
            err = res.get("error") or {}
            return f"{err.get('code', 'ERROR')}: {err.get('message', '')}"

        async def run() -> None:
            accepted = await self.push_screen_wait(PlanEditScreen(pid, document, validate))
            if accepted is not None:
                self.notify(f"plan {pid} edited ({len(accepted)} steps)", timeout=4)
            self.refresh_panes()

        self.spawn(run())

    def _resumption_action(self, action: str, verb: str) -> None:
        eng = self.engine_for(action)
        if eng is None:
            return
        rid = self.selected_resumption()
        if rid is None:
            self.notify("no staged resumption is in progress", severity="warning")
            return

        async def run() -> None:
            if action == "advance_stage" and not await self.confirm(f"Advance resumption {rid}?", "The next stage resumes more work and restores more allocation.", "Advance"):
                return
            res = await operator.resumption_action(eng, "advance" if action == "advance_stage" else "hold", rid, self.readonly)
            self.report(res, f"{verb} {rid}")

        self.spawn(run())

    def action_advance_stage(self) -> None:
        self._resumption_action("advance_stage", "Advance")

    def action_hold_stage(self) -> None:
        self._resumption_action("hold_stage", "Hold")

    def action_start_drill(self) -> None:
        if self.refused("start_drill"):
            return
        names = operator.drill_names()
        if not names:
            self.notify("no drills are available in this build", severity="warning")
            return

        async def run() -> None:
            name = await self.push_screen_wait(ChooseScreen("Start which drill?", [(n, n) for n in names]))
            if name:
                await self._start_drill(name)

        self.spawn(run())

    def start_drill_named(self, name: str) -> None:
        if not self.refused("start_drill"):
            self.spawn(self._start_drill(name))

    async def _start_drill(self, name: str) -> None:
        eng = self.need_engine()
        if eng is None:
            return
        if not await self.confirm(f"Start drill {name!r}?", "The drill injects a failure into the simulated fleet; watch it unfold and approve its plan by hand.", "Start drill"):
            return
        res = await operator.start_drill(eng, name, self.readonly, manager=self.manager)
        if self.report(res, f"drill {name} armed"):
            self.drill = res["result"]
            self.notify(f"fault injected at {self.drill.inject_at:.0f}s simulated; its plan will wait for approval (a)", timeout=8)

