"""Rolling back to a checkpoint, shown per workflow: status, phase and progress before -> after.

The confirm dialog reads ``/workflow-recovery rollback-preview`` (what the checkpoint
the rollback restores holds, computed by the host from its snapshot); the result
dialog reads the rows the rollback itself measured. Both go through the one command
path; neither shows state hashes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from . import operator
from .console_host import ActionHost
from .dialogs import outcome_text
from .style import color

if TYPE_CHECKING:
    from core.commands.workflow_recovery.restores import RollbackRow, WorkflowBrief
    from core.host.link import Link

UNCHANGED_NAMED = 12
"""How many unchanged workflows are named before the rest are counted."""


class RollbackHost(ActionHost, Protocol):
    """What a rollback needs besides an action's: a confirmation dialog."""

    async def confirm(
        self, title: str, detail: RenderableType, label: str = "Confirm", cancel: str = "Cancel", wide: bool = False
    ) -> bool: ...


def rows_of(res: dict[str, Any]) -> list[RollbackRow]:
    """The per-workflow rows of a preview or rollback response."""
    result = res.get("result") or {}
    # the command language loads after the first frame (tui.link_open)
    from core.commands.workflow_recovery.restores import RollbackRow

    return [RollbackRow.model_validate(r) for r in result.get("rows") or []]


def _pct(b: WorkflowBrief) -> str:
    return f"{b.progress * 100:.0f}%"


def _cell(before: str, after: str, paint: Callable[[str], str]) -> Text:
    if before == after:
        return Text(after)
    t = Text(before, style=paint("foreground-muted"))
    t.append(" → ")
    t.append(after, style=f"bold {paint('warning')}")
    return t


def _field(b: WorkflowBrief | None, what: Callable[[WorkflowBrief], str], gone: str) -> str:
    return what(b) if b is not None else gone


def rows_table(rows: list[RollbackRow], paint: Callable[[str], str], *, done: bool) -> RenderableType:
    """The workflows that change (before → after, changed values marked) and, under
    them, those that do not."""
    changed = [r for r in rows if r.changed]
    same = [r.workflow for r in rows if not r.changed]
    parts: list[RenderableType] = []
    if changed:
        table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style=f"bold {paint('secondary')}")
        for col in ("workflow", "status", "phase", "progress"):
            table.add_column(col, overflow="fold")
        for r in changed:
            absent = "not created yet" if r.before is not None else "—"
            table.add_row(
                Text(r.workflow, style="bold"),
                _cell(_field(r.before, lambda b: b.status, "—"), _field(r.after, lambda b: b.status, absent), paint),
                _cell(
                    _field(r.before, lambda b: b.phase or "—", "—"),
                    _field(r.after, lambda b: b.phase or "—", "—"),
                    paint,
                ),
                _cell(_field(r.before, _pct, "—"), _field(r.after, _pct, "—"), paint),
            )
        parts.append(table)
    verb = "changed" if done else "change"
    head = f"{len(changed)} of {len(rows)} workflow(s) {verb}" + (":" if changed else ".")
    parts.insert(0, Text(head, style="bold"))
    if same:
        named = ", ".join(same[:UNCHANGED_NAMED]) + (
            f" and {len(same) - UNCHANGED_NAMED} more" if len(same) > UNCHANGED_NAMED else ""
        )
        parts.append(Text(f"unchanged: {named}", style=paint("foreground-muted")))
    return Group(*parts)


class Rollbacks:
    """``b`` then enter on a checkpoint: preview, confirm, roll back, show what changed."""

    def __init__(self, app: RollbackHost) -> None:
        self.app = app

    def request(self, cp_id: int) -> None:
        link = self.app.link_for("rollback")
        if link is not None:
            self.app.spawn(self.run(link, cp_id))

    async def run(self, link: Link, cp_id: int) -> None:
        app = self.app
        paint: Callable[[str], str] = lambda n: color(app, n)  # noqa: E731
        preview = await link.send(operator.rollback_preview_command(cp_id))
        if preview.get("status") != "success":
            app.notify(outcome_text(preview, f"rollback to #{cp_id}"), severity="error", timeout=8)
            return
        detail = Group(
            Text(
                f"Every workflow returns to checkpoint #{cp_id}: its status, phase and progress as they were then "
                "(work finished since is redone). History is kept: the rollback is appended to the log.\n"
            ),
            rows_table(rows_of(preview), paint, done=False),
        )
        if not await app.confirm(f"Roll back to checkpoint #{cp_id}?", detail, "Roll back", wide=True):
            app.notify("rollback cancelled; nothing changed", timeout=3)
            return
        res = await app.send(operator.rollback_command(cp_id), f"rollback to #{cp_id}")
        if res.get("status") == "success":
            await app.confirm(
                f"Rolled back to checkpoint #{cp_id}",
                rows_table(rows_of(res), paint, done=True),
                "",
                "Close",
                wide=True,
            )
