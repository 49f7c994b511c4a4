"""The operations console: a Textual app over a link to the fleet's host.

The console reads and acts through one :class:`~core.host.link.Link`. Embedded
(``opsdeck demo``, ``opsdeck run FILE``), the app runs the host in its own process
(the host paces the simulated clock); attached (another process holds the
database), it reads a replica kept current from the host's event stream and sends
every action to the host's socket. Either way every action is ONE slash command
(:mod:`tui.operator`) sent with ``link.send`` and recorded like any other. Panes
read the link's projection on a timer; the event log reads SQLite by window in
worker threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar

from rich.console import RenderableType
from textual import on
from textual.app import App, ComposeResult
from textual.command import Provider
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input, OptionList

from core.config import Config
from core.event_types import (
    INCIDENT_OPENED,
    severity_of,
)
from core.events import Event
from core.host.host import Host, HostError
from core.host.lease import LeaseHeld, current_holder
from core.host.link import AttachedLink, EmbeddedLink, Link
from core.host.replica import Replica
from core.incidents.approval import holding_plans
from core.store import StoreError
from themes import DEFAULT_THEME, THEMES

from . import awaiting, operator
from .announce import Announcer
from .command_line import CommandLine, restore_focus
from .command_table import BY_ACTION, bindings, with_overrides
from .dialogs import (
    drill_cancel_confirm,
    drill_confirm,
    finished_note,
    outcome_text,
    workflow_confirm,
)
from .hangup import quit_on_hangup
from .log_source import FilterError, LogSource
from .palette import OpsdeckCommands
from .plan_actions import PlanDecisions
from .rollback import Rollbacks
from .screens.agent import AgentScreen
from .screens.checkpoints import CheckpointsScreen
from .screens.choose import ChooseScreen
from .screens.confirm import ConfirmScreen
from .screens.help import HelpScreen
from .screens.incident import IncidentScreen
from .screens.result import ResultScreen
from .screens.workflow import WorkflowScreen
from .widgets.agent_pools import AgentPools
from .widgets.event_log import EventLog
from .widgets.footer import FittedFooter
from .widgets.header_gauges import HeaderGauges
from .widgets.incidents import Incidents
from .widgets.live_list import Pane
from .widgets.workflows import Workflows

REFRESH_S = 0.5
FILTER_HINT = "filter: text  type:TASK_FAILED  wf:workflow_001 (wf:workflow_00* prefix)  sev:high  @saved   (enter applies, empty clears, esc closes)"
HostFactory = Callable[[], Awaitable[Host]]


class OpsdeckApp(App[int]):
    CSS_PATH = "app.tcss"
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {OpsdeckCommands}
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
        open_link: bool = True,
        attach: bool | None = None,
        host_factory: HostFactory | None = None,
        create: bool = True,
        listen: str | None = None,
    ) -> None:
        """``attach``: None attaches when a live host holds ``db`` (else the app hosts
        it), True always attaches (read a replica), False always hosts. ``host_factory``
        opens the host on a real runtime (``opsdeck run``); by default the app hosts the
        simulated runtime. A read-only console always attaches."""
        super().__init__()
        self.db = Path(db)
        self.config = config
        self.demo = demo
        self.seed = seed
        self.speed = config.console.speed if speed is None else float(speed)
        self.readonly = readonly
        self.open_link = open_link
        self.attach = True if readonly else attach
        self.host_factory = host_factory
        self.create = create
        self.listen = listen
        self.link: Link | None = None
        self.command_table, self.key_problems = with_overrides(config.console.keys)
        for b in bindings(self.command_table):
            self.bind(b.key, b.action, description=b.description, show=b.show)
        for t in THEMES.values():
            self.register_theme(t)
        wanted = config.console.theme
        self.theme_problem = (
            None if wanted in self.available_themes else f"unknown theme {wanted!r}; using {DEFAULT_THEME}"
        )
        self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME
        self.log_source = LogSource(self.db)
        self.launched_at = time.perf_counter()
        self.first_frame_s: float | None = None
        self.first_frame_wall: float | None = None
        self.panes_filled_s: float | None = None
        self.link_ready = asyncio.Event()
        self.open_error: str | None = None
        self._stop = asyncio.Event()
        self.announcer = Announcer(self)
        self._filter_return: Widget | None = None
        self._shown_toasts: dict[tuple[str, str], float] = {}
        self.decisions = PlanDecisions(self)
        self.rollbacks = Rollbacks(self)

    @property
    def host(self) -> Host | None:
        """The host this console runs (embedded), else None."""
        return self.link.host if isinstance(self.link, EmbeddedLink) else None

    # -- layout -----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HeaderGauges(id="header")
        with Horizontal(id="body"):
            yield Pane(AgentPools(id="pools"), id="pools-pane")
            with Vertical(id="right"):
                yield Pane(Workflows(id="workflows"), id="workflows-pane")
                yield Incidents(id="incidents")
        with Vertical(id="log-area"):
            yield EventLog(self.log_source, saved_filters=self.config.console.filters, id="log")
            yield Input(placeholder=FILTER_HINT, id="filter")
        yield CommandLine(id="cmdline")
        yield FittedFooter()

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
        if not self.is_headless:
            quit_on_hangup(self.shutdown)

    def _first_frame(self) -> None:
        self.first_frame_s = time.perf_counter() - self.launched_at
        self.first_frame_wall = time.time()
        if self.open_link:
            self.run_worker(self._open_link(), group="link-open", exit_on_error=False)

    def _read_head(self) -> None:
        n = self.log_source.head()
        self.call_from_thread(self.log_pane.set_head, n)

    # -- the link ---------------------------------------------------------------
    def _wants_attach(self) -> bool:
        if self.attach is not None:
            return self.attach
        return self.db.exists() and current_holder(self.db) is not None

    async def _open_link(self) -> None:
        """Attach to the database's live host, or become its host (embedded).

        Replaying a large log is CPU work: the replica (or the simulated host's engine)
        is folded in a worker thread so the UI keeps drawing meanwhile."""
        link: Link | None = None
        try:
            if self._wants_attach():
                link = await self._attached()
            else:
                try:
                    link = await self._embedded()
                except LeaseHeld:
                    link = await self._attached()  # another host took the database first
            await link.start()
        except Exception as exc:  # noqa: BLE001 - shown in the console, never a hang or a traceback
            known = isinstance(exc, (StoreError, HostError, OSError, ValueError))
            if link is not None:
                try:
                    await link.close()  # a host that could not serve gives its lease back
                except Exception:  # noqa: BLE001
                    pass
            self._link_failed(str(exc) if known else f"{type(exc).__name__}: {exc}")
            return
        self._link_opened(link)

    async def _attached(self) -> Link:
        replica = await asyncio.to_thread(asyncio.run, Replica.open(self.db, self.config))
        link = AttachedLink(self.db, self.config, readonly=self.readonly, replica=replica)
        await link.connect()
        return link

    async def _embedded(self) -> Link:
        if self.host_factory is not None:
            # A real runtime's connections and samplers live in the app's own loop.
            host = await self.host_factory()
        else:
            opening = Host.open_sim(
                self.db,
                self.config,
                demo=self.demo,
                seed=self.seed,
                speed=self.speed,
                recurring=self.demo,
                create=self.create,
            )
            host = await asyncio.to_thread(asyncio.run, opening)
        return EmbeddedLink(host, listen=self.listen)

    def _link_failed(self, message: str) -> None:
        self.open_error = message
        self.header_pane.status_text = f"cannot open {self.db}: {message}"
        self.header_pane.refresh()
        self.notify(message, title="cannot open the database", severity="error", timeout=30)
        self.link_ready.set()

    def _link_opened(self, link: Link) -> None:
        if self._stop.is_set():
            self.spawn(link.close())
            return
        self.link = link
        link.subscribe(self._on_event)
        link.on_status(self._on_host_status)
        self.log_pane.set_head(link.committed_seq)
        self.sub_title = link.describe()
        self.refresh_panes()
        done = finished_note(link.state) if not self.demo else None
        if done:
            self.notify(done, title="nothing to run", severity="warning", timeout=15)
        self.panes_filled_s = time.perf_counter() - self.launched_at
        self.link_ready.set()

    async def link_opened(self, timeout: float = 30.0) -> Link:
        """Wait for the link (tests, scripts, the benchmark)."""
        await asyncio.wait_for(self.link_ready.wait(), timeout)
        if self.link is None:
            raise RuntimeError(self.open_error or "the console could not open the database")
        return self.link

    def _on_host_status(self, message: str | None) -> None:
        link = self.link
        if link is not None:
            self.sub_title = link.describe()
        self.header_pane.refresh()
        if message is not None:
            self.notify(
                f"{message}; showing the last state it committed, actions are refused until a host is back",
                title="host gone",
                severity="error",
                timeout=10,
            )
        elif link is not None:
            self.notify(link.describe(), title="host back", timeout=5)

    def _on_event(self, ev: Event) -> None:
        self.log_pane.add_live(ev)
        subs = self.link.state.settings.get("subscriptions") if self.link is not None else None
        if isinstance(subs, dict):  # /coordination-hub subscribe-event: one notification per matching event
            names = sorted(n for n, types in subs.items() if ev.type in types)
            if names:
                self.notify(ev.line()[:160], title=f"subscription {', '.join(names)}", timeout=6)
        if ev.type == INCIDENT_OPENED and isinstance(ev.data.get("incident"), dict):
            self.announcer.incident_opened(ev.data["incident"])
        elif severity_of(ev) == "critical" and "incident_id" not in ev.data:
            # An incident's own detection event is announced with the incident.
            self.notify(
                f"{ev.type} {ev.data.get('workflow_id') or ev.data.get('error_type') or ''}",
                title="critical event",
                severity="error",
                timeout=6,
            )

    def _log_tick(self) -> None:
        if self._stop.is_set():
            return
        log = self.log_pane
        log.tick()
        if self.link is not None:
            # What the store holds is what the window reads can serve.
            log.db_head = max(log.db_head, self.link.committed_seq)

    def refresh_panes(self) -> None:
        if self._stop.is_set() or not hasattr(self, "header_pane"):
            return
        self.header_pane.refresh()
        link = self.link
        if link is None:
            return
        if not isinstance(self.screen, (ChooseScreen,)) and self.screen is self.screen_stack[0]:
            self.pools_pane.refresh_from(link)
            self.workflows_pane.refresh_from(link)
            self.incidents_pane.refresh_from(link)

    @property
    def clock_label(self) -> str:
        link = self.link
        if link is None:
            return ""
        if link.gone or (link.kind == "attached" and link.host_pid is None):
            return "(stopped)"
        if not link.clock_running:
            return "(paused)"
        held = holding_plans(link.state.plans, link.config.approval)
        return f"×{link.speed:g} (held: {', '.join(held)} awaits approval)" if held else f"×{link.speed:g}"

    async def shutdown(self) -> None:
        self._stop.set()
        link, self.link = self.link, None
        if link is not None:
            try:
                await link.close()
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

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A toast, unless the same words are already on screen (a repeat says nothing new).
        Messages are plain text: brackets in ids and JSON are shown, not read as markup."""
        now = time.monotonic()
        key = (title, message)
        self._shown_toasts = {k: t for k, t in self._shown_toasts.items() if t > now}
        if key in self._shown_toasts:
            return
        self._shown_toasts[key] = now + (timeout if timeout is not None else self.NOTIFICATION_TIMEOUT)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def report(self, res: dict[str, Any], what: str) -> bool:
        """A toast that says what happened: the command's own summary, or its error."""
        ok = res.get("status") == "success"
        self.notify(outcome_text(res, what), severity="information" if ok else "error", timeout=4 if ok else 8)
        return ok

    def refused(self, action: str) -> bool:
        """True (and a message) when the console cannot do ``action`` now: read-only,
        or the host it is attached to is gone."""
        c = BY_ACTION.get(action)
        mutates = c is None or c.mutates
        title = c.title if c else action
        if self.readonly and mutates:
            self.notify(
                f"read-only console: '{title}' would change state and was refused", severity="warning", timeout=6
            )
            return True
        link = self.link
        if link is not None and link.gone and mutates:
            self.notify(f"{link.gone}: '{title}' was refused", severity="error", timeout=6)
            return True
        return False

    def need_link(self) -> Link | None:
        if self.link is None:
            self.notify("the console is still opening the database", severity="warning")
        return self.link

    def link_for(self, action: str) -> Link | None:
        """The link, if ``action`` may run now: not refused, link open."""
        if self.refused(action):
            return None
        return self.need_link()

    async def send(self, text: str, what: str) -> dict[str, Any]:
        """Send one slash command through the link; show its outcome; redraw."""
        link = self.link
        if link is None:
            res = {
                "status": "error",
                "error": {"code": "NOT_OPEN", "message": "the console is still opening the database"},
            }
        else:
            res = await link.send(text)
        self.report(res, what)
        self.refresh_panes()
        return res

    async def confirm(
        self, title: str, detail: RenderableType, label: str = "Confirm", cancel: str = "Cancel", wide: bool = False
    ) -> bool:
        return await self.push_screen_wait(ConfirmScreen(title, detail, label, cancel, wide=wide)) is True

    def selected_workflows(self) -> list[str]:
        """The marked workflows (m), else the highlighted one."""
        marked = sorted(self.workflows_pane.marked)
        if marked and not isinstance(self.screen, WorkflowScreen):
            return marked
        wf = self.selected_workflow()
        return [wf] if wf else []

    def selected_workflow(self) -> str | None:
        if isinstance(self.screen, WorkflowScreen):
            return self.screen.key
        opt = self.workflows_pane.highlighted_option
        return opt.id.split(":", 1)[1] if opt is not None and opt.id and opt.id.startswith("wf:") else None

    def highlighted_plan(self) -> str | None:
        """The plan the operator points at: the incident screen's plan in force, else the
        plan of the highlighted incidents-pane row (a plan, one of its steps, an incident)."""
        link = self.link
        if link is None:
            return None
        if isinstance(self.screen, IncidentScreen):
            return awaiting.plan_for_incident(link.state, self.screen.key)
        opt = self.incidents_pane.highlighted_option
        return awaiting.plan_of_row(link.state, opt.id if opt is not None else None)

    def decision_target(self, action: str) -> awaiting.Target:
        """The plan ``action`` acts on now (see :mod:`tui.awaiting`)."""
        if self.link is None:
            return awaiting.Target(None, "the console is still opening the database")
        return awaiting.target(self.link.state, action, self.highlighted_plan())

    def selected_resumption(self) -> str | None:
        link = self.link
        if link is None:
            return None
        opt = self.incidents_pane.highlighted_option
        if opt is not None and opt.id and opt.id.startswith("resumption:"):
            return opt.id.split(":", 1)[1]
        live = [rid for rid, r in link.state.resumptions.items() if r.status == "active"]
        return live[0] if live else None

    # -- opening detail screens -------------------------------------------------
    @on(OptionList.OptionSelected, "#pools, #workflows, #incidents")
    def open_detail(self, event: OptionList.OptionSelected) -> None:
        oid = event.option.id or ""
        kind, _, key = oid.partition(":")
        link = self.link
        if link is None:
            return
        if kind == "wf":
            self.push_screen(WorkflowScreen(key))
        elif kind == "agent":
            self.push_screen(AgentScreen(key))
        elif kind == "incident":
            self.push_screen(IncidentScreen(key))
        elif kind == "plan":
            plan = link.state.plans.get(key)
            if plan is not None and plan.incident_id in link.state.incidents:
                self.push_screen(IncidentScreen(plan.incident_id))

    # -- simple actions ---------------------------------------------------------
    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.command_table))

    def action_filter(self) -> None:
        f = self.filter_input
        if not f.display:
            self._filter_return = self.focused
        f.display = True
        cur = self.log_pane.filter
        f.value = ""
        f.placeholder = f"now: {cur.describe()} — enter with nothing clears it" if cur.active else FILTER_HINT
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
        restore_focus(self, self._filter_return)

    def on_key(self, event: Any) -> None:
        if event.key == "escape" and self.focused is not None and self.focused.id == "filter":
            self.focused.display = False
            restore_focus(self, self._filter_return)
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
        link = self.need_link()
        if link is None:
            return
        res = await link.send(text)
        if res.get("status") == "success":
            cl.show_error("")
            cl.action_close()
            self.show_result(text, res)
        else:
            cl.show_failure(text, res)
        self.refresh_panes()

    def show_result(self, text: str, res: dict[str, Any]) -> None:
        """The result view of a command that ran; ``r`` there re-runs it if it only reads."""
        link = self.link

        async def rerun(cmd: str) -> dict[str, Any]:
            assert link is not None
            return await link.send(cmd)

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
            self.notify("read-only console: the clock is the host's to run", severity="warning")
            return
        link = self.link_for("toggle_clock")
        if link is None:
            return
        if not link.clock.virtual:
            self.notify(
                "real agents run on the wall clock: it cannot pause; nothing was changed (p pauses a workflow)",
                severity="warning",
                timeout=6,
            )
            return
        run = not link.clock_running
        speed = (link.speed if link.speed > 0 else self.config.console.speed) if run else None
        self.spawn(self.send(operator.clock_command(run, speed), "clock " + ("running" if run else "paused")))

    def action_checkpoints(self) -> None:
        if self.need_link() is not None:
            self.push_screen(CheckpointsScreen())

    # -- state-changing actions: one slash command each --------------------------
    def _workflow_action(self, action: str, label: str, confirm: bool = False) -> None:
        link = self.link_for(action)
        if link is None:
            return
        wfs = self.selected_workflows()
        if not wfs:
            self.notify("highlight a workflow first (m marks several)", severity="warning")
            return

        async def run() -> None:
            if confirm:
                d = workflow_confirm(link.state, action, wfs)
                if not await self.confirm(d.title, d.detail, d.confirm, d.cancel, wide=len(wfs) > 1):
                    self.notify(f"{label.lower()} cancelled; nothing changed", timeout=3)
                    return
            for wf in wfs:
                await self.send(operator.workflow_command(action, wf), f"{label} {wf}")
            self.workflows_pane.marked.difference_update(wfs)
            self.refresh_panes()

        self.spawn(run())

    def action_pause_workflow(self) -> None:
        self._workflow_action("pause_workflow", "Pause", confirm=True)

    def action_resume_workflow(self) -> None:
        self._workflow_action("resume_workflow", "Resume")

    def action_start_workflow(self) -> None:
        self._workflow_action("start_workflow", "Start")

    def action_cancel_workflow(self) -> None:
        self._workflow_action("cancel_workflow", "Cancel", confirm=True)

    def action_checkpoint(self) -> None:
        link = self.link_for("checkpoint")
        if link is None:
            return

        async def run() -> None:
            res = await link.send(operator.checkpoint_command())
            self.report(res, f"checkpoint #{(res.get('result') or {}).get('checkpoint', '?')}")
            self.refresh_panes()

        self.spawn(run())

    def request_rollback(self, cp_id: int) -> None:
        self.rollbacks.request(cp_id)

    def action_approve(self) -> None:
        self.decisions.start("approve")

    def action_reject(self) -> None:
        self.decisions.start("reject")

    def action_abort_plan(self) -> None:
        self.decisions.start("abort_plan")

    def action_next_decision(self) -> None:
        """Bring the next plan awaiting approval into view in the incidents pane."""
        link = self.need_link()
        if link is None:
            return
        pid = awaiting.next_decision(link.state, self.highlighted_plan())
        if pid is None:
            self.notify("no plan awaits a decision", timeout=4)
            return
        while len(self.screen_stack) > 1:  # a detail screen: back to the panes
            self.pop_screen()
        pane = self.incidents_pane
        pane.refresh_from(link)
        pane.show_row(f"plan:{pid}")
        pane.focus()

    def action_edit_plan(self) -> None:
        self.decisions.edit()

    def _resumption_action(self, action: str, verb: str) -> None:
        if self.link_for(action) is None:
            return
        rid = self.selected_resumption()
        if rid is None:
            self.notify("no staged resumption is in progress", severity="warning")
            return

        async def run() -> None:
            if action == "advance_stage" and not await self.confirm(
                f"Advance resumption {rid}?", self._next_stage_text(rid), "Advance", "Keep it at this stage"
            ):
                return
            await self.send(operator.resumption_command(action, rid), f"{verb} {rid}")

        self.spawn(run())

    def _next_stage_text(self, rid: str) -> str:
        """What advancing does: the next stage named, from the resumption's own steps."""
        link = self.link
        r = link.state.resumptions.get(rid) if link is not None else None
        if r is None:
            return f"no resumption {rid}: nothing would change."
        steps, cur = r.steps, r.next_step
        if cur >= len(steps):
            return f"{rid} has run all {len(steps)} of its stages: advancing changes nothing."
        what = steps[cur].what or "its next stage"
        return (
            f"Stage {cur + 1} of {len(steps)} runs now instead of waiting for utilisation to stay under the safe "
            f"threshold: {what}."
        )

    def action_advance_stage(self) -> None:
        self._resumption_action("advance_stage", "Advance")

    def action_hold_stage(self) -> None:
        self._resumption_action("hold_stage", "Hold")

    def action_start_drill(self) -> None:
        link = self.link_for("start_drill")
        if link is None:
            return
        simulated = link.clock.virtual

        async def run() -> None:
            names = operator.drill_names(simulated)
            title = "Start which drill?" if simulated else "Start which drill? (on real agents: these three)"
            name = await self.push_screen_wait(ChooseScreen(title, [(n, n) for n in names]))
            if name:
                await self._start_drill(name)

        self.spawn(run())

    def start_drill_named(self, name: str) -> None:
        if self.link_for("start_drill") is not None:
            self.spawn(self._start_drill(name))

    def action_cancel_drill(self) -> None:
        link = self.link_for("cancel_drill")
        if link is None:
            return
        rec = operator.running_drill(link.state.settings)
        if rec is None:
            self.notify("no drill is running; nothing was changed", severity="warning", timeout=5)
            return

        async def run() -> None:
            d = drill_cancel_confirm(rec)
            if not await self.confirm(d.title, d.detail, d.confirm, d.cancel):
                return
            await self.send(operator.drill_cancel_command(), "drill cancel")

        self.spawn(run())

    async def _start_drill(self, name: str) -> None:
        link = self.link
        d = drill_confirm(self.config, name, link is not None and link.clock.virtual)
        if isinstance(d, str):
            self.notify(d, severity="warning", timeout=8)
            return
        if not await self.confirm(d.title, d.detail, d.confirm, d.cancel):
            return
        # The command's own summary says when the fault comes; C cancels the drill.
        await self.send(operator.drill_command(name), f"drill {name}")
