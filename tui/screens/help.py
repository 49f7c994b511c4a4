"""``?``: every key binding, read from the same table the bindings are built from, and a
legend of every mark the panes draw (meters, glyphs, plan steps, validation gates)."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from core.models import AgentStatus

from ..command_table import ConsoleCommand, display_key
from ..style import AGENT_GLYPH
from ..widgets.incidents import STEP_GLYPH

PANE_KEYS = [
    ("tab / shift+tab", "Move between panes"),
    ("↑ ↓ pgup pgdn", "Move in a pane; scroll the event log"),
    ("enter", "Open the detail screen of the highlighted row (an event row: its whole JSON)"),
    ("esc", "Back / close"),
    ("s", "Agent pools, Workflows: cycle the sort key (shown in the pane's title)"),
    ("F", "Workflows: show or collapse finished (completed, cancelled) workflows"),
    ("End / G", "Event log: jump to the end and follow"),
    ("Home / g", "Event log: jump to the start"),
    ("ctrl+p", "Command palette: every action, slash command, theme and drill"),
    (": then ↑ ↓ / tab", "Command line: history / completion (tab again cycles)"),
    ("y / j / r", "Result screen: copy the response / raw JSON / re-run a read-only command"),
]

METER_MARKS = [
    ("[|||···   ]", "Workflow meters: | in use, · allocated but idle, blank unallocated"),
    ("!", "In use beyond the allocation (the workflow takes more than it was given)"),
    ("CRIT HIGH MED LOW", "Priority band of a workflow (critical 90-100, high 70-89, medium 40-69, low 0-39)"),
    ("run pend PAUS done FAIL canc", "Workflow status"),
    ("★", "Workflow detail: the task is on the critical path"),
]


APPROVAL_MARKS = {
    "auto": "Incidents pane: a plan step that runs on its own under the approval policy ([approval])",
    "manual": "Incidents pane: a plan step that waits for the operator's approval (a)",
}
"""What the pane's [approval] after a step's number means, for each PlanStep.approval."""


def _gate_doc(name: str) -> str:
    """The gate's first paragraph, whole (its docstring's lines joined)."""
    # the incident pipeline loads after the first frame (tui.link_open)
    from core.incidents.kinds import GATES

    para = (GATES[name].__doc__ or "").strip().split("\n\n")[0].replace("``", "")
    return " ".join(line.strip() for line in para.splitlines()) or "validation gate"


def legend() -> Group:
    """Every mark the panes draw and what it means."""
    t = Table(title="What the marks mean", expand=True, box=None, title_style="bold", title_justify="left")
    t.add_column("mark", style="bold", no_wrap=True)
    t.add_column("meaning")
    for mark, what in METER_MARKS:
        t.add_row(Text(mark), Text(what))
    t.add_section()
    for agent_status in AgentStatus:
        glyph, _ = AGENT_GLYPH[agent_status]
        t.add_row(glyph, f"agent {agent_status.value}")
    t.add_section()
    by_glyph: dict[str, list[str]] = {}
    for step_status, glyph in STEP_GLYPH.items():
        by_glyph.setdefault(glyph, []).append(step_status)
    for glyph, names in by_glyph.items():
        t.add_row(glyph, "plan step " + " / ".join(n.replace("_", " ") for n in names))
    t.add_row("·", "plan step pending (not started)")
    for approval, what in APPROVAL_MARKS.items():
        t.add_row(Text(f"[{approval}]"), Text(what))
    gates = Table(
        title=Text("Validation gates (a step's 'gate NAME' on the incident screen and in the decision dialogs)"),
        expand=True,
        box=None,
        title_style="bold",
        title_justify="left",
    )
    gates.add_column("gate", style="bold", no_wrap=True)
    gates.add_column("passes when")
    # the incident pipeline loads after the first frame (tui.link_open)
    from core.incidents.kinds import GATES

    for name in sorted(GATES):
        gates.add_row(Text(name), Text(_gate_doc(name)))
    note = Text(
        "A step with a gate stays executing until its gate passes; a gate that fails aborts the plan and rolls it"
        " back. Once every step has run, the incident's criteria are polled for its validation window: it is"
        " validated only if they hold and the plan's acting steps are credited with it.",
        style="italic",
    )
    return Group(t, Text(""), gates, note)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

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
            t.add_row(Text(display_key(c.key)), Text(f"{c.title} — {c.help}"), Text(flag))
        t.add_section()
        for k, what in PANE_KEYS:
            t.add_row(Text(k), Text(what), Text(""))
        self.keys_table = t
        with VerticalScroll(id="help-box"):
            yield Static(t)
            yield Static(
                'Keys can be changed in the config file under [console.keys], e.g.  approve = "A"',
                id="help-note",
                markup=False,
            )
            yield Static(legend(), id="help-legend")

    def action_close(self) -> None:
        self.dismiss(None)
