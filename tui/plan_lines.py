"""A plan as the operator edits it: one slash command per line, checked line by line.

Each line is parsed and bound with the command language's own parser
(:func:`tui.operator.bind_command`), the same check the host
makes when the edit arrives (``/incident edit``), so a line that would be refused is
marked before Save. Steps that already ran are kept as they are: the host refuses an
edit that changes them. Pure functions: no Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.incident_models import Plan, PlanState

from .operator import CommandRefused, bind_command


@dataclass(frozen=True)
class EditLine:
    """One step of the plan as the editor opens it."""

    command: str
    ran: str | None = None
    """The state of a step that has run (completed, failed...): it cannot change; None: editable."""


def lines_of(plan: Plan) -> list[EditLine]:
    """The plan's steps, in order, each with whether it has run."""
    return [EditLine(st.command, None if st.state is PlanState.PROPOSED else st.state.value) for st in plan.steps]


def line_error(text: str) -> str | None:
    """Why ``text`` is not a step the host would take (None: it is). Blank lines are not
    steps: they are dropped on save."""
    command = text.strip()
    if not command:
        return None
    if not command.startswith("/"):
        return "a step is a slash command: it starts with / (e.g. /resource-manager status)"
    try:
        bind_command(command)
    except CommandRefused as exc:
        return exc.message if exc.column is None else f"column {exc.column}: {exc.message}"
    return None


def steps_of(texts: list[str]) -> list[str]:
    """The commands a save sends: each non-blank line, trimmed."""
    return [t.strip() for t in texts if t.strip()]
