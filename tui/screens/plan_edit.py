"""Edit a plan's JSON in a text area; it is validated before it is accepted."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static, TextArea

Validator = Callable[[Any], Awaitable[str | None]]
"""Returns None when the edited plan is accepted, or the error to show."""


class PlanEditScreen(ModalScreen[Any]):
    """Dismisses with the accepted (parsed) plan, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "accept", "Validate & accept"),
    ]

    def __init__(self, plan_id: str, document: Any, validate: Validator) -> None:
        super().__init__()
        self.plan_id = plan_id
        self.document = document
        self.validate = validate

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-box"):
            yield Label(f"Edit plan {self.plan_id} — ctrl+s validates and accepts, esc cancels", id="edit-title")
            yield TextArea(json.dumps(self.document, indent=2), id="plan-json", soft_wrap=False, show_line_numbers=True)
            yield Static("", id="edit-error", markup=False)
            with Horizontal(id="edit-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Validate & accept", id="accept", variant="warning")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "accept":
            await self.action_accept()
        else:
            self.action_cancel()

    def show_error(self, message: str) -> None:
        err = self.query_one("#edit-error", Static)
        err.update(message)
        err.add_class("visible")

    async def action_accept(self) -> None:
        text = self.query_one(TextArea).text
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            self.show_error(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; nothing was changed")
            return
        problem = await self.validate(doc)
        if problem:
            self.show_error(f"{problem}; nothing was changed")
            return
        self.dismiss(doc)

    def action_cancel(self) -> None:
        self.dismiss(None)
