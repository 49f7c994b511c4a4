"""Edit a proposed plan as the operator would type it: one slash command per line.

The body is a :class:`~tui.widgets.step_editor.StepsEditor` (wrapped lines, the ``:``
line's Tab completion, each line's error under it). Save is refused while any line is
invalid; otherwise the steps go to the host as ONE ``/incident edit`` command (the
console's ``save`` callback), and a refusal from the host is shown on the line it names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from ..plan_view import EditLine, steps_of
from ..widgets.step_editor import StepsEditor

Refusal = tuple[str, int | None]
"""What the host said when it refused the edit, and the step (0-based) it names, if any."""
Save = Callable[[list[str]], Awaitable[Refusal | None]]
"""Sends the steps; None when the host took them."""

KEYS = "enter adds a step · backspace at a line's start joins it up · tab completes · ctrl+s saves · esc cancels"


class PlanEditScreen(ModalScreen[list[str] | None]):
    """Dismisses with the steps the host accepted, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, plan_id: str, lines: list[EditLine], save: Save) -> None:
        super().__init__()
        self.plan_id = plan_id
        self.lines = lines
        self.save = save

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-box"):
            yield Label(f"Edit plan {self.plan_id}: one step per line, as you would type it", id="edit-title")
            yield Static(KEYS, id="edit-keys", markup=False)
            yield StepsEditor(self.lines, id="edit-steps")
            yield Static("", id="edit-error", markup=False)
            with Horizontal(id="edit-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Save", id="accept", variant="warning")

    @property
    def editor(self) -> StepsEditor:
        return self.query_one(StepsEditor)

    def on_mount(self) -> None:
        self.call_after_refresh(lambda: self.editor.focus_row(self.editor.first_editable()))

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "accept":
            await self.action_save()
        else:
            self.action_cancel()

    @on(StepsEditor.Hint)
    def _hint(self, event: StepsEditor.Hint) -> None:
        self.show_message(event.text, error=False)

    def show_message(self, message: str, *, error: bool = True) -> None:
        box = self.query_one("#edit-error", Static)
        box.update(message)
        box.set_class(bool(message), "visible")
        box.set_class(not error, "hint")

    async def action_save(self) -> None:
        editor = self.editor
        bad = editor.invalid()
        if bad:
            where = ", ".join(str(n) for n, _ in bad)
            self.show_message(f"line(s) {where} would be refused (see under each): nothing was saved")
            editor.focus_row(bad[0][0] - 1)
            return
        steps = steps_of(editor.texts())
        if not steps:
            self.show_message("a plan needs at least one step: nothing was saved")
            return
        refusal = await self.save(steps)
        if refusal is not None:
            message, step = refusal
            if step is not None:
                editor.mark(step, message)
            self.show_message(f"{message}; nothing was saved")
            return
        self.dismiss(steps)

    def action_cancel(self) -> None:
        self.dismiss(None)
