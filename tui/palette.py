"""The command palette: ONE provider over the console's command table, the slash-command
registry, the themes and the drills, fuzzy-searched with help text (in the manner of Posting).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.markup import escape

from . import operator
from .command_table import ConsoleCommand, display_key

Entry = tuple[str, str, Callable[[], Any]]


class PaletteHost(Protocol):
    """What the palette needs of the console (the app): its command table, whether it
    is read-only, and the actions an entry runs."""

    command_table: tuple[ConsoleCommand, ...]
    readonly: bool

    def run_action(self, action: str) -> Awaitable[bool]: ...

    def open_command_line(self, text: str = "") -> None: ...

    def available_themes_ordered(self) -> list[str]: ...

    def set_theme(self, name: str) -> None: ...

    def start_drill_named(self, name: str) -> None: ...


def palette_entries(app: PaletteHost) -> list[Entry]:
    """Everything the palette offers; the key bindings come from the same table."""
    out: list[Entry] = []
    for c in app.command_table:
        flag = " (read-only: refused)" if app.readonly and c.mutates else ""
        out.append((c.title, f"{c.help}{flag}  — key {display_key(c.key)}", partial(app.run_action, c.action)))
    for spec in operator.registry():
        text = spec.name
        help_text = spec.summary
        if spec.mutates:
            help_text += " (changes state)"
        out.append((text, help_text, partial(app.open_command_line, text + " ")))
    for name in app.available_themes_ordered():
        out.append((f"Theme: {name}", "Switch the console's theme", partial(app.set_theme, name)))
    for drill in operator.drill_names():
        out.append(
            (
                f"Drill: {drill}",
                "Start this failure drill, watch it unfold, approve its plan by hand",
                partial(app.start_drill_named, drill),
            )
        )
    return out


class OpsdeckCommands(Provider):
    """The palette's one provider; the app that lists it in ``COMMANDS`` is a PaletteHost."""

    def _entries(self) -> list[Entry]:
        return palette_entries(cast(PaletteHost, self.app))

    async def discover(self) -> Hits:
        for name, help_text, cb in self._entries():
            yield DiscoveryHit(name, cb, help=escape(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, cb in self._entries():
            score = matcher.match(name)
            if score <= 0:
                # Also find a command by the words of its help text, ranked lower.
                hs = matcher.match(help_text)
                score = hs * 0.5 if hs > 0 else 0
            if score > 0:
                yield Hit(score, matcher.highlight(name), cb, help=escape(help_text))
