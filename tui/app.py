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
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import RenderableType
from textual import on
from textual.app import ComposeResult
from textual.command import Provider
from textual.containers import Horizontal, Vertical
from textual.widgets import OptionList

from core.collector import for_frames
from core.config import Config
from core.events import Event
from themes import DEFAULT_THEME, THEMES

from . import awaiting
from .announce import Announcer, Holds, Repeats, toast_room
from .command_line import CommandLine, CommandRuns
from .command_table import BY_ACTION, bindings, with_overrides
from .console_host import ConsoleApp
from .dialogs import finished_note, outcome_text
from .fleet_actions import FleetActions
from .hangup import quit_on_hangup
from .link_open import HostFactory, LinkOpenError, LinkOptions
from .log_source import LogSource
from .palette import OpsdeckCommands
from .plan_actions import PlanDecisions
from .rollback import Rollbacks
from .screens.checkpoints import CheckpointsScreen
from .screens.help import HelpScreen
from .screens.incident import IncidentScreen
from .screens.main import MainScreen
from .screens.modals import ChooseScreen, ConfirmScreen
from .screens.routes import detail_screen
from .widgets.agent_pools import AgentPools
from .widgets.footer import FittedFooter
from .widgets.header_gauges import HeaderGauges
from .widgets.incidents import Incidents
from .widgets.live_list import Pane
from .widgets.log_area import LogArea
from .widgets.workflows import Workflows

if TYPE_CHECKING:  # the host's modules load when the link opens, after the first frame (tui.link_open)
    from core.host.host import Host
    from core.host.link import Link

REFRESH_S = 0.5
TICKS = ("log", "seq", "pools", "workflows", "log", "header", "incidents", "")
"""What each refresh tick draws, in turn, one thing per tick so that a frame draws one
widget's changes, not several at once (bench/frames.py: the frames that drew a list, the
header and the scrolling log together were the longest): each list and the header every
REFRESH_S, the event log's growth every REFRESH_S / 2 and the header's seq the tick after
(it shows the log's head); the last tick is left free."""
PANE_TICKS = len(TICKS)
"""Ticks per REFRESH_S."""
LISTS = ("pools", "workflows", "incidents")
"""The lists' names in TICKS, in the order of :meth:`OpsdeckApp._shown_lists`."""


class OpsdeckApp(ConsoleApp):
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
        self.readonly = readonly
        self.open_link = open_link
        self.link_options = LinkOptions(
            self.db,
            config,
            demo=demo,
            seed=seed,
            speed=config.console.speed if speed is None else float(speed),
            readonly=readonly,
            attach=True if readonly else attach,
            host_factory=host_factory,
            create=create,
            listen=listen,
        )
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
        self.close_error: str | None = None
        """Why closing the link failed (the embedded host's last commit, say): printed on
        stderr once the screen is gone (:func:`opsdeck.console.run_console`)."""
        self._stop = asyncio.Event()
        self._pane_step = 0
        """Which of TICKS the next refresh tick draws (:meth:`_tick_panes`)."""
        self.announcer = Announcer(self)
        self.repeats = Repeats()
        self.decisions = PlanDecisions(self)
        self.rollbacks = Rollbacks(self)
        self.fleet = FleetActions(self)
        self.runs = CommandRuns(self)

    @property
    def host(self) -> Host | None:
        """The host this console runs (embedded), else None."""
        from core.host.link import EmbeddedLink

        return self.link.host if isinstance(self.link, EmbeddedLink) else None

    # -- layout -----------------------------------------------------------------
    def get_default_screen(self) -> MainScreen:
        return MainScreen(id="_default")

    def compose(self) -> ComposeResult:
        log_area = LogArea(self.log_source, self.config.console.filters, id="log-area")
        yield HeaderGauges(log_area.log_pane, readonly=self.readonly, id="header")
        with Horizontal(id="body"):
            yield Pane(AgentPools(id="pools"), id="pools-pane")
            with Vertical(id="right"):
                yield Pane(Workflows(id="workflows"), id="workflows-pane")
                yield Incidents(id="incidents")
        yield log_area
        yield CommandLine(id="cmdline")
        yield FittedFooter()

    def on_mount(self) -> None:
        # The main screen's widgets, held so that code running while a detail screen is
        # on top (the event subscription, the refresh timer) still reaches them.
        self.log_area = self.query_one(LogArea)
        self.log_pane = self.log_area.log_pane
        self.header_pane = self.query_one(HeaderGauges)
        self.pools_pane = self.query_one(AgentPools)
        self.workflows_pane = self.query_one(Workflows)
        self.incidents_pane = self.query_one(Incidents)
        self.filter_input = self.log_area.filter_input
        self.command_line = self.query_one(CommandLine)
        self.command_line.display = False
        self.call_after_refresh(self._first_frame)
        for p in self.key_problems + ([self.theme_problem] if self.theme_problem else []):
            self.notify(p, severity="warning", timeout=8)
        self.set_interval(REFRESH_S / PANE_TICKS, self._tick_panes)
        self.workflows_pane.focus()
        if not self.is_headless:
            quit_on_hangup(self.shutdown)

    def _first_frame(self) -> None:
        self.first_frame_s = time.perf_counter() - self.launched_at
        self.first_frame_wall = time.time()
        if self.open_link:
            self.run_worker(self._open_link(), group="link-open", exit_on_error=False)

    # -- the link ---------------------------------------------------------------
    async def _open_link(self) -> None:
        """Attach to the database's live host, or become its host (embedded)."""
        try:
            link = await self.link_options.open(self.announcer.proving)
        except LinkOpenError as exc:
            self._link_failed(str(exc))
            return
        self._link_opened(link)

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
        for_frames()
        link.subscribe(self._on_event)
        link.on_status(self.announcer.host_status)
        link.on_trouble(self.announcer.link_trouble)
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

    def _on_event(self, ev: Event) -> None:
        self.log_pane.add_live(ev)
        self.announcer.event(ev)

    def _log_tick(self) -> None:
        if not self._stop.is_set():
            self.log_pane.tick(self.link.committed_seq if self.link is not None else 0)

    def refresh_panes(self) -> None:
        """Every pane now (after a command, a sort, a mark: what the operator just did)."""
        if self._stop.is_set() or not self.screen_stack:
            return  # closing: a last timer tick can come after the screens are gone
        self.header_pane.refresh()
        link = self.link
        if link is not None:
            for pane in self._shown_lists():
                pane.refresh_from(link)

    def _tick_panes(self) -> None:
        """The refresh timer: one thing per tick in turn (:data:`TICKS`): a list, the
        header or the event log's growth."""
        if self._stop.is_set() or not self.screen_stack:
            return  # closing: a last timer tick can come after the screens are gone
        step, self._pane_step = TICKS[self._pane_step], (self._pane_step + 1) % PANE_TICKS
        if step == "log":
            self._log_tick()
            return
        if step == "header":
            self.header_pane.refresh()
            self.withdraw_untrue()
            return
        if step == "seq":
            self.header_pane.follow_log()
            return
        link = self.link
        lists = self._shown_lists()
        if step and link is not None and lists:
            lists[LISTS.index(step)].refresh_from(link)

    def _shown_lists(self) -> list[AgentPools | Workflows | Incidents]:
        """The main screen's lists when it is the one shown, else none."""
        if isinstance(self.screen, ChooseScreen) or self.screen is not self.screen_stack[0]:
            return []
        return [self.pools_pane, self.workflows_pane, self.incidents_pane]

    async def shutdown(self) -> None:
        self._stop.set()
        link, self.link = self.link, None
        if link is not None:
            try:
                await link.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the exit: said after it
                self.close_error = f"closing the console's link failed: {type(exc).__name__}: {exc}"
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
        holds: Holds | None = None,
    ) -> None:
        """A toast, unless the same words are already on screen (a repeat says nothing new);
        plain text (brackets in ids and JSON are shown). The oldest toasts make way for a new
        one so the stack fits above the command line (:func:`toast_room`); with ``holds``, it
        is taken down once its words stop being true (:meth:`withdraw_untrue`)."""
        if not self.repeats.fresh(title, message, self.NOTIFICATION_TIMEOUT if timeout is None else timeout, holds):
            return
        live = [n for n in self._notifications if not n.has_expired]
        for old in live[: max(0, len(live) - toast_room(self.size.height) + 1)]:
            self._unnotify(old, refresh=False)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def withdraw_untrue(self) -> None:
        """Take down the toasts whose words the state no longer bears out."""
        gone = self.repeats.untrue(self.link) if self.link is not None else set()
        for n in [n for n in self._notifications if (n.title, n.message) in gone]:
            self._unnotify(n)

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
        if self.link is not None and self.link.gone and mutates:
            self.notify(f"{self.link.gone}: '{title}' was refused", severity="error", timeout=6)
            return True
        return False

    def need_link(self) -> Link | None:
        if self.link is None:
            self.notify("the console is still opening the database", severity="warning")
        return self.link

    def link_for(self, action: str) -> Link | None:
        """The link, if ``action`` may run now: not refused, link open."""
        return None if self.refused(action) else self.need_link()

    async def send(self, text: str, what: str) -> dict[str, Any]:
        """Send one slash command through the link; show its outcome; redraw."""
        opening = {"code": "NOT_OPEN", "message": "the console is still opening the database"}
        res = await self.link.send(text) if self.link is not None else {"status": "error", "error": opening}
        self.report(res, what)
        self.refresh_panes()
        return res

    async def confirm(
        self, title: str, detail: RenderableType, label: str = "Confirm", cancel: str = "Cancel", wide: bool = False
    ) -> bool:
        return await self.push_screen_wait(ConfirmScreen(title, detail, label, cancel, wide=wide)) is True

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

    def on_live_list_view_changed(self) -> None:
        """A list's sort, marks or shown rows changed (an operator's key): every pane now."""
        self.refresh_panes()

    # -- opening detail screens -------------------------------------------------
    @on(OptionList.OptionSelected, "#pools, #workflows, #incidents")
    def open_detail(self, event: OptionList.OptionSelected) -> None:
        screen = detail_screen(self.link.state, event.option.id or "") if self.link is not None else None
        if screen is not None:
            self.push_screen(screen)

    # -- simple actions ---------------------------------------------------------
    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.command_table))

    def action_filter(self) -> None:
        self.log_area.open_filter()

    def action_toggle_follow(self) -> None:
        self.log_area.toggle_follow()

    def action_toggle_raw(self) -> None:
        self.log_area.toggle_raw()

    def action_toggle_progress(self) -> None:
        self.log_area.toggle_progress()

    def action_command_line(self) -> None:
        self.open_command_line("")

    def open_command_line(self, text: str = "") -> None:
        self.command_line.open(text)

    @on(CommandLine.Submitted)
    def _command_submitted(self, event: CommandLine.Submitted) -> None:
        self.runs.submit(event.text)

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
        self.fleet.toggle_clock()

    def action_checkpoints(self) -> None:
        if self.need_link() is not None:
            self.push_screen(CheckpointsScreen())

    # -- state-changing actions: one slash command each --------------------------
    def action_pause_workflow(self) -> None:
        self.fleet.workflow("pause_workflow")

    def action_resume_workflow(self) -> None:
        self.fleet.workflow("resume_workflow")

    def action_start_workflow(self) -> None:
        self.fleet.workflow("start_workflow")

    def action_cancel_workflow(self) -> None:
        self.fleet.workflow("cancel_workflow")

    def action_checkpoint(self) -> None:
        self.fleet.checkpoint()

    def request_rollback(self, cp_id: int) -> None:
        self.rollbacks.request(cp_id)

    def action_approve(self) -> None:
        self.decisions.start("approve")

    def action_reject(self) -> None:
        self.decisions.start("reject")

    def action_abort_plan(self) -> None:
        self.decisions.start("abort_plan")

    def action_next_decision(self) -> None:
        self.decisions.next_decision()

    def action_edit_plan(self) -> None:
        self.decisions.edit()

    def action_advance_stage(self) -> None:
        self.fleet.resumption("advance_stage", "Advance")

    def action_hold_stage(self) -> None:
        self.fleet.resumption("hold_stage", "Hold")

    def action_start_drill(self) -> None:
        self.fleet.choose_drill()

    def start_drill_named(self, name: str) -> None:
        self.fleet.start_drill_named(name)

    def action_cancel_drill(self) -> None:
        self.fleet.cancel_drill()
