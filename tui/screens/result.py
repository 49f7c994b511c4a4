"""A command's result, rendered for people: scrollable, ``y`` copies, ``r`` re-runs, esc closes.

In the manner of Posting's response pane: the command line and the palette run a
slash command and this screen shows what came back (tables for lists, key/value
panels, the error with its suggestions). ``j`` switches to the raw JSON response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from ..response_view import render_response, response_json
from ..style import color
from ..widgets.footer import FittedFooter

Rerun = Callable[[str], Awaitable[dict[str, Any]]]


def body_frame() -> ComposeResult:
    """A title bar, a scrolling body and the footer: the result and event screens."""
    yield Static(id="detail-title", markup=False)
    with VerticalScroll(id="result-body"):
        yield Static(id="result-content")
    yield FittedFooter()


class ResultScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding("y", "copy", "Copy JSON"),
        Binding("j", "toggle_json", "Raw JSON"),
        Binding("r", "rerun", "Re-run"),
    ]

    def __init__(self, command: str, response: dict[str, Any], rerun: Rerun | None = None) -> None:
        super().__init__()
        self.command = command
        self.response = response
        self.rerun = rerun
        self.raw = False
        self.body: RenderableType = Text("")
        self.runs = 1

    def compose(self) -> ComposeResult:
        yield from body_frame()

    def on_mount(self) -> None:
        self.redraw()
        self.query_one("#result-body").focus()

    @property
    def ok(self) -> bool:
        return self.response.get("status") == "success"

    def title_text(self) -> str:
        what = "success" if self.ok else f"error {(self.response.get('error') or {}).get('code', '')}"
        again = f" · run {self.runs}" if self.runs > 1 else ""
        return f" {self.command} — {what}{again}   (y copy · j raw JSON · r re-run · esc close) "

    def redraw(self) -> None:
        c = lambda n: color(self.app, n)  # noqa: E731
        self.query_one("#detail-title", Static).update(Text(self.title_text(), style="bold"))
        self.body = (
            Syntax(response_json(self.response), "json", word_wrap=True, background_color="default")
            if self.raw
            else render_response(self.response, c)
        )
        self.query_one("#result-content", Static).update(self.body)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(response_json(self.response))
        self.notify("response copied to the clipboard (as JSON)", timeout=3)

    def action_toggle_json(self) -> None:
        self.raw = not self.raw
        self.redraw()

    async def action_rerun(self) -> None:
        if self.rerun is None:
            self.notify(
                "r re-runs commands that only read; this one changes state (: then ↑ to run it again)",
                severity="warning",
                timeout=5,
            )
            return
        self.response = await self.rerun(self.command)
        self.runs += 1
        self.redraw()
