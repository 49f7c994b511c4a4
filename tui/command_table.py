"""The one table of console commands: key bindings, the help screen and the palette read it.

Each entry names an ``action_*`` of :class:`tui.app.OpsdeckApp`. Keys can be
overridden from ``[console.keys]`` in the config file (``approve = "A"``), so the
binding, the help screen and the palette always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from textual.binding import Binding


@dataclass(frozen=True)
class ConsoleCommand:
    action: str
    key: str
    title: str
    help: str
    mutates: bool = False
    destructive: bool = False
    footer: bool = False


COMMANDS: tuple[ConsoleCommand, ...] = (
    ConsoleCommand("quit", "q", "Quit", "Leave the console (the database keeps everything)", footer=True),
    ConsoleCommand("help", "question_mark", "Help", "Show the key bindings", footer=True),
    ConsoleCommand(
        "command_line",
        "colon",
        "Command line",
        "Type a raw slash command, e.g. /coordination-hub get-status",
        footer=True,
    ),
    ConsoleCommand(
        "filter",
        "slash",
        "Filter log",
        "Filter the event log: text, type:TYPE, wf:ID (wf:ID* prefix), sev:SEVERITY, @saved ([console.filters])",
        footer=True,
    ),
    ConsoleCommand("toggle_follow", "f", "Follow log", "Follow the end of the event log (or stop following)"),
    ConsoleCommand(
        "toggle_raw",
        "v",
        "Raw log lines",
        "Show the event log as stored event lines (seq, :component:scope:, JSON data) or as sentences",
    ),
    ConsoleCommand(
        "toggle_progress",
        "P",
        "Progress rows",
        "Show TASK_PROGRESS events as rows of their own, or folded into their task's row (counted)",
    ),
    ConsoleCommand(
        "pause_workflow",
        "p",
        "Pause workflow",
        "Pause the selected (or marked, m) workflows: their running tasks pause",
        mutates=True,
        destructive=True,
    ),
    ConsoleCommand(
        "resume_workflow", "r", "Resume workflow", "Resume the selected (or marked) workflows", mutates=True
    ),
    ConsoleCommand(
        "start_workflow", "S", "Start workflow", "Queue the selected (or marked) pending workflows", mutates=True
    ),
    ConsoleCommand(
        "cancel_workflow",
        "X",
        "Cancel workflow",
        "Cancel the selected (or marked) workflows",
        mutates=True,
        destructive=True,
    ),
    ConsoleCommand("checkpoint", "c", "Checkpoint", "Take a manual checkpoint of the whole state", mutates=True),
    ConsoleCommand("checkpoints", "b", "Checkpoints / rollback", "List checkpoints and roll back to one", footer=True),
    ConsoleCommand(
        "approve",
        "a",
        "Approve plan",
        "Approve the highlighted plan if it awaits approval, else the one that does (critical first, then oldest)",
        mutates=True,
        destructive=True,
        footer=True,
    ),
    ConsoleCommand(
        "next_decision",
        "i",
        "Next decision",
        "Jump to the next plan awaiting approval (critical incidents first, then the oldest)",
        footer=True,
    ),
    ConsoleCommand(
        "reject",
        "d",
        "Reject plan",
        "Reject the highlighted proposed plan, else the one awaiting a decision; nothing of it runs",
        mutates=True,
        destructive=True,
    ),
    ConsoleCommand(
        "edit_plan",
        "e",
        "Edit plan",
        "Edit the steps of the highlighted proposed plan (else the one awaiting approval) before approving it",
        mutates=True,
    ),
    ConsoleCommand(
        "abort_plan",
        "K",
        "Abort plan + rollback",
        "Abort the highlighted unfinished plan (else a running one) and roll back to its checkpoint",
        mutates=True,
        destructive=True,
    ),
    ConsoleCommand(
        "advance_stage",
        "n",
        "Advance resumption",
        "Advance the staged resumption to its next stage",
        mutates=True,
        destructive=True,
    ),
    ConsoleCommand(
        "hold_stage",
        "h",
        "Hold resumption",
        "Hold the staged resumption at its current stage, or release a held one",
        mutates=True,
    ),
    ConsoleCommand(
        "start_drill", "D", "Start drill", "Start a failure drill (choose the scenario)", mutates=True, destructive=True
    ),
    ConsoleCommand(
        "cancel_drill",
        "C",
        "Cancel drill",
        "Stop the running drill: a fault not yet injected never is, fault steps still to come are dropped",
        mutates=True,
        destructive=True,
    ),
    ConsoleCommand("toggle_clock", "space", "Pause/run clock", "Pause or run the simulated clock"),
    ConsoleCommand("cycle_theme", "t", "Next theme", "Switch to the next theme (dark, light, high contrast)"),
)

BY_ACTION = {c.action: c for c in COMMANDS}


def with_overrides(keys: dict[str, str]) -> tuple[tuple[ConsoleCommand, ...], list[str]]:
    """Apply ``[console.keys]``: action -> key. Returns the table and the problems found."""
    problems = [f"console.keys: unknown action {a!r}" for a in keys if a not in BY_ACTION]
    table = tuple(replace(c, key=keys[c.action]) if c.action in keys else c for c in COMMANDS)
    seen: dict[str, str] = {}
    for c in table:
        if c.key in seen:
            problems.append(f"console.keys: key {c.key!r} is bound to both {seen[c.key]!r} and {c.action!r}")
        seen[c.key] = c.action
    return table, problems


def bindings(table: tuple[ConsoleCommand, ...]) -> list[Binding]:
    return [Binding(c.key, c.action, c.title, show=c.footer, priority=c.action == "quit" and False) for c in table]


def display_key(key: str) -> str:
    names = {"question_mark": "?", "colon": ":", "slash": "/", "space": "space"}
    return names.get(key, key)
