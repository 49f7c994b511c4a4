"""``?``: every key binding, read from the same table the bindings are built from."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..command_table import ConsoleCommand, display_key

PANE_KEYS = [
    ("tab / shift+tab", "Move between panes"),
    ("↑ ↓ pgup pgdn", "Move in a pane; scroll the event log"),
    ("enter", "Open the detail screen of the highlighted row"),
    ("esc", "Back / close"),
    ("End / G", "Event log: jump to the end and follow"),
    ("Home / g", "Event log: jump to the start"),
    ("ctrl+p", "Command palette: every action, slash command, theme and drill"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, table: tuple[ConsoleCommand, ...]) -> None:
        super().__init__()
        self.table = table

    def compose(self) -> ComposeResult:
        t = Table(title="opsdeck key bindings", expand=True, box=None, title_style="bold")
        t.add_column("key", style="bold", no_wrap=True)
        t.add_column("action")
        t.add_column("", no_wrap=True)
        for c in self.table:
            flag = "confirm" if c.destructive else ("changes state" if c.mutates else "")
            t.add_row(display_key(c.key), f"{c.title} — {c.help}", flag)
        t.add_section()
        for k, what in PANE_KEYS:
            t.add_row(k, what, "")
        with VerticalScroll(id="help-box"):
            yield Static(t)
            yield Static("Keys can be changed in the config file under [console.keys], e.g.  approve = \"A\"", id="help-note")

    def action_close(self) -> None:
        self.dismiss(None)
