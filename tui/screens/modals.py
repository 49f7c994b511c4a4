"""The console's small modal dialogs: a one-line question, a pick from a list, and the
confirmation every destructive action goes through (Cancel is the default).

The confirmation's buttons say what they do ("Cancel workflow" / "Keep running"), and its
detail scrolls (↑ ↓ pgup pgdn while a button has focus) so a long plan is read whole
before it is approved.
"""

from __future__ import annotations

from typing import ClassVar

from rich.console import RenderableType
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option


class AskScreen(ModalScreen[str | None]):
    """A one-line question: the text the operator types, or None on escape."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, placeholder: str = "", max_length: int = 4096) -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder
        self.max_length = max_length

    def compose(self) -> ComposeResult:
        with Vertical(id="choose-box"):
            yield Label(self.title_text, id="choose-title", markup=False)
            yield Input(placeholder=self.placeholder, max_length=self.max_length, id="ask-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChooseScreen(ModalScreen[str | None]):
    """A small list to pick one item (a drill, a theme, a checkpoint kind)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, items: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.items = items

    def compose(self) -> ComposeResult:
        with Vertical(id="choose-box"):
            yield Label(self.title_text, id="choose-title")
            yield OptionList(*[Option(label, id=key) for key, label in self.items], id="choose-list")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


DETAIL_MAX_ROWS = 28
FRAME_ROWS = 11
"""The dialog's rows besides its detail: border 2, padding 2, title 2, buttons 4, a spare row."""


class ConfirmScreen(ModalScreen[bool | str]):
    """Dismisses with True only when the operator presses the confirm button; with
    ``alt_label``, a third button dismisses with the string ``"alt"``. An empty
    ``confirm_label`` makes it a notice: one button (``cancel_label``) closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("up", "scroll(-1)", "Scroll", show=False),
        Binding("down", "scroll(1)", "Scroll", show=False),
        Binding("pageup", "scroll(-10)", "Scroll", show=False),
        Binding("pagedown", "scroll(10)", "Scroll", show=False),
    ]

    def __init__(
        self,
        title: str,
        detail: RenderableType,
        confirm_label: str = "Confirm",
        cancel_label: str = "Cancel",
        *,
        wide: bool = False,
        alt_label: str | None = None,
    ) -> None:
        super().__init__()
        self.alt_label = alt_label
        self.title_text = title
        self.detail = detail
        self.confirm_label = confirm_label
        self.cancel_label = cancel_label
        self.wide = wide

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="wide" if self.wide else ""):
            yield Label(self.title_text, id="confirm-title")
            # Not a tab stop: tab goes between the buttons only (the keys above scroll the detail).
            with VerticalScroll(id="confirm-scroll", can_focus=False):
                yield Static(self.detail, id="confirm-detail", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(self.cancel_label, id="cancel", variant="default")
                if self.alt_label:
                    yield Button(self.alt_label, id="alt", variant="warning")
                if self.confirm_label:
                    yield Button(self.confirm_label, id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()
        self._fit(self.app.size.height)
        # Toasts already up would sit over what the dialog asks to read; the log keeps their words.
        self.app.clear_notifications()

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.height)

    def _fit(self, height: int) -> None:
        """The detail scrolls within what the terminal leaves once the title and the
        buttons are placed, so the whole dialog (its title, its buttons) is on screen."""
        room = max(height - FRAME_ROWS, 3)
        self.query_one("#confirm-scroll", VerticalScroll).styles.max_height = min(DETAIL_MAX_ROWS, room)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss("alt" if event.button.id == "alt" else event.button.id == "confirm")

    def action_scroll(self, lines: int) -> None:
        box = self.query_one("#confirm-scroll", VerticalScroll)
        box.scroll_to(y=box.scroll_y + lines, animate=False)

    def action_cancel(self) -> None:
        self.dismiss(False)
