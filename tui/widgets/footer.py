"""The footer at any width: compact under 120 columns, and only the keys that fit whole.

Textual's footer lays every shown binding in one row and cuts the last at the edge
("Command lin"). This one drops the keys that would not fit, whole, from the end of
the row, keeping ``? Help`` (which lists every key) and the palette key on the right.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

COMPACT_BELOW = 120
HELP_ACTION = "help"


class FittedFooter(Footer):
    def __init__(self) -> None:
        super().__init__()
        self._width = 0

    def _cells(self, binding: Binding, compact: bool) -> int:
        """The cells a key takes: ``k Desc`` plus its padding (wide) or its margin (compact)."""
        key = cell_len(self.app.get_key_display(binding))
        desc = cell_len(binding.description)
        return key + desc + (2 if compact else 3)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        width = self.size.width or self.app.size.width
        compact = width < COMPACT_BELOW
        self.set_reactive(Footer.compact, compact)
        self.set_class(compact, "-compact")
        active = self.screen.active_bindings
        shown: dict[str, tuple[Binding, bool, str]] = {}
        for _, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in shown:
                shown[binding.action] = (binding, enabled, tooltip)
        palette = active.get(self.app.COMMAND_PALETTE_BINDING) if self.app.ENABLE_COMMAND_PALETTE else None
        budget = width - (self._cells(palette[1], compact) + 2 if palette is not None else 0)
        help_cells = self._cells(shown[HELP_ACTION][0], compact) if HELP_ACTION in shown else 0
        kept: list[tuple[Binding, bool, str]] = []
        used = 0
        for action, (binding, enabled, tooltip) in shown.items():
            cells = self._cells(binding, compact)
            # Room for Help is kept until it is placed.
            reserve = (
                help_cells
                if HELP_ACTION in shown
                and action != HELP_ACTION
                and not any(b.action == HELP_ACTION for b, _, _ in kept)
                else 0
            )
            if used + cells + reserve <= budget:
                kept.append((binding, enabled, tooltip))
                used += cells
        for binding, enabled, tooltip in kept:
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip,
            ).data_bind(compact=Footer.compact)
        if palette is not None:
            _, binding, enabled, tooltip = palette
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                classes="-command-palette",
                disabled=not enabled,
                tooltip=binding.tooltip or binding.description,
            )

    def on_resize(self, event: Resize) -> None:
        if event.size.width != self._width:
            self._width = event.size.width
            self.call_after_refresh(self.recompose)
