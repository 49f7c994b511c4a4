"""One event, whole: its header fields, its data as wrapped JSON and as a tree, and its
line in the seed's ``TYPE:component:scope:{json}`` form. ``y`` copies the line."""

from __future__ import annotations

import json
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Static

from core.event_types import severity_of, summarise
from core.events import Event
from core.timefmt import clock

from ..style import color, severity_style
from .result import body_frame


def event_body(app, ev: Event) -> RenderableType:
    c = lambda n: color(app, n)  # noqa: E731
    head = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    head.add_column(style=f"bold {c('secondary')}", no_wrap=True)
    head.add_column(overflow="fold")
    head.add_row("seq", str(ev.seq))
    head.add_row("time", clock(ev.ts))
    head.add_row("summary", summarise(ev))
    head.add_row("type", Text(ev.type, style=severity_style(app, severity_of(ev))))
    head.add_row("severity", severity_of(ev))
    head.add_row("component", ev.component)
    head.add_row("scope", ev.scope)
    head.add_row("actor", ev.actor)
    head.add_row("clock value", repr(ev.ts))
    data = Syntax(
        json.dumps(ev.data, indent=2, ensure_ascii=False, default=str),
        "json",
        word_wrap=True,
        background_color="default",
    )
    line = Text(ev.line(), style=c("foreground-muted"), overflow="fold")
    return Group(
        head,
        Text(""),
        Text("data", style=f"bold {c('secondary')}"),
        data,
        Text(""),
        Text("as an event line", style=f"bold {c('secondary')}"),
        line,
    )


class EventScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close"), Binding("y", "copy", "Copy line")]

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def compose(self) -> ComposeResult:
        yield from body_frame()

    def on_mount(self) -> None:
        ev = self.event
        self.query_one("#detail-title", Static).update(
            Text(f" event {ev.seq} — {ev.type}   (y copy · esc close) ", style="bold")
        )
        self.body = event_body(self.app, ev)
        self.query_one("#result-content", Static).update(self.body)
        self.query_one("#result-body").focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.event.line())
        self.notify("event line copied to the clipboard", timeout=3)

    def action_close(self) -> None:
        self.dismiss(None)
