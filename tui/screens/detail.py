"""The frame shared by the detail screens: a title, a scrolling body, esc to go back."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual import getters
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from core import timefmt
from core.event_types import severity_of, summarise
from core.events import Event

from ..console_host import ConsoleApp
from ..log_source import LogFilter, recent_matching
from ..style import color, severity_style
from ..widgets.footer import FittedFooter

if TYPE_CHECKING:
    from core.host.link import Link


class DetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]
    app = getters.app(ConsoleApp)
    REFRESH_S = 1.0
    EVENTS_FILTER: LogFilter | None = None

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.events: list[Event] = []

    @property
    def engine(self) -> Link:
        """The console's link: the projection the screen reads (a screen opens and draws
        only while the link is open: :meth:`redraw` checks)."""
        link = self.app.link
        if link is None:
            raise RuntimeError("the console's link is closed")
        return link

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title", markup=False)
        with VerticalScroll(id="detail-body"):
            yield Static(id="detail-content")
        yield FittedFooter()

    def on_mount(self) -> None:
        self.redraw()
        self.load_events()
        self.set_interval(self.REFRESH_S, self.redraw)

    def title_text(self) -> str:
        return self.key

    def body(self) -> RenderableType:
        return Text("")

    def redraw(self) -> None:
        if self.app.link is None:
            return
        self.query_one("#detail-title", Static).update(Text(f" {self.title_text()} ", style="bold"))
        self.query_one("#detail-content", Static).update(self.body())

    def events_filter(self) -> LogFilter | None:
        return None

    def load_events(self) -> None:
        flt = self.events_filter()
        if flt is None:
            return
        source = self.app.log_source

        def work() -> None:
            evs = recent_matching(source, flt, 30)
            self.app.call_from_thread(self._events_loaded, evs)

        self.run_worker(work, thread=True, exit_on_error=False)

    def _events_loaded(self, evs: list[Event]) -> None:
        self.events = evs
        self.redraw()

    def events_block(self, title: str = "Recent events (newest first)") -> RenderableType:
        app = self.app
        lines = [Text(title, style=f"bold {color(app, 'secondary')}")]
        if not self.events:
            lines.append(Text("  (none recorded yet)", style=color(app, "foreground-muted")))
        for ev in reversed(self.events):
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append(f"{ev.seq:>7} {timefmt.clock(ev.ts)} ", style=color(app, "foreground-muted"))
            t.append(ev.type, style=severity_style(app, severity_of(ev)))
            t.append(" " + summarise(ev))
            lines.append(t)
        return Group(*lines)

    def action_back(self) -> None:
        self.app.pop_screen()
