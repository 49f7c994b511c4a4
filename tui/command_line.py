"""The ``:`` command line: a raw slash command, completed from the registry.

Completion covers components (``/reso`` -> ``/resource-manager``), operations
(``/resource-manager al`` -> ``allocate``) and the JSON field names of the
operation's payload model (``'{"work`` -> ``"workflow_id"``). A parser or
validation error is shown inline under the line and nothing is applied.
"""

from __future__ import annotations

import re
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input, Static

from . import operator


def _entries() -> list[tuple[str, str, Any]]:
    out = []
    for entry in operator.registry():
        comp = getattr(entry, "component", None)
        op = getattr(entry, "operation", None)
        if comp and op:
            out.append((str(comp), str(op), entry))
    return out


def _fields(entry: Any) -> list[str]:
    model = getattr(entry, "payload", None) or getattr(entry, "payload_model", None) or getattr(entry, "model", None)
    fields = getattr(model, "model_fields", None)
    return sorted(fields) if isinstance(fields, dict) else []


_FIELD_RE = re.compile(r'[{,]\s*"([A-Za-z_]*)$')


def complete(value: str) -> str | None:
    """The completed line for ``value``, or None when there is nothing to add."""
    if not value.startswith("/"):
        return None
    entries = _entries()
    parts = value[1:].split(" ")
    if len(parts) == 1:
        comps = sorted({c for c, _, _ in entries if c.startswith(parts[0])})
        return f"/{comps[0]}" if comps and comps[0] != parts[0] else None
    comp, rest = parts[0], " ".join(parts[1:])
    if " " not in rest:
        ops = sorted(o for c, o, _ in entries if c == comp and o.startswith(rest))
        return f"/{comp} {ops[0]}" if ops and ops[0] != rest else None
    op = rest.split(" ", 1)[0]
    m = _FIELD_RE.search(value)
    if m is None:
        return None
    partial = m.group(1)
    for c, o, entry in entries:
        if c == comp and o == op:
            names = [f for f in _fields(entry) if f.startswith(partial) and f != partial]
            if names:
                return value + names[0][len(partial):] + '":'
    return None


class SlashSuggester(Suggester):
    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return complete(value)


class CommandLine(Vertical):
    """An input line plus an inline error area; hidden until ``:`` is pressed."""

    BINDINGS = [Binding("escape", "close", "Close", show=False), Binding("tab", "complete", "Complete", show=False)]

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/component operation '{\"json\": ...}'   (tab completes, esc closes)", suggester=SlashSuggester(), id="cmd-input", select_on_focus=False)
        yield Static("", id="cmd-error", markup=False)

    @property
    def input(self) -> Input:
        return self.query_one("#cmd-input", Input)

    def open(self, text: str = "") -> None:
        self.display = True
        self.input.value = text
        self.input.cursor_position = len(text)
        self.show_error("")
        self.input.focus()

    def show_error(self, message: str) -> None:
        err = self.query_one("#cmd-error", Static)
        err.update(message)
        err.display = bool(message)

    def action_close(self) -> None:
        self.display = False
        self.app.set_focus(None)
        getattr(self.app, "log_pane", self.app.query_one("#log")).focus()

    def action_complete(self) -> None:
        done = complete(self.input.value)
        if done:
            self.input.value = done
            self.input.cursor_position = len(done)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            self.action_close()
            return
        if not text.startswith("/"):
            self.show_error("column 1: a command starts with '/', e.g. /coordination-hub get-status; nothing was applied")
            return
        self.post_message(self.Submitted(text))
