"""The ``:`` command line: a raw slash command, completed from the registry.

The line opens empty and takes the command as the seed writes it
(``/resource-manager status``) or without its slash (``resource-manager status``,
as k9s takes ``:pods``). Tab completes components (``/reso`` -> ``/resource-manager``),
operations (``/resource-manager st`` -> ``status``) and the JSON field names of the
operation's payload model (``'{"work`` -> ``"workflow_id"``); repeated Tab cycles
through the candidates, and the candidates are listed under the line. A parser or
validation error is shown inline with its suggestions (Tab takes the first) and
nothing is applied. ↑/↓ walk the history of submitted commands.

What was typed runs through the link, the one command path: a success closes the line
and opens its result view (``r`` there runs it again when it only reads); a failure
stays in the line with its code, message and correction, and nothing was applied.
"""

from __future__ import annotations

import re
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.suggester import Suggester
from textual.widget import Widget
from textual.widgets import Input, Static

from . import operator
from .screens.result import ResultScreen

if TYPE_CHECKING:
    from textual.screen import Screen

    from core.commands.registry import OperationSpec
    from core.host.link import Link


HISTORY_KEEP = 100

_FIELD_RE = re.compile(r'[{,]\s*"([A-Za-z_]*)$')


def normalise(value: str) -> str:
    """The command as the parser wants it: one leading ``/`` (``//x`` and ``x`` become ``/x``)."""
    text = value.strip()
    if not text:
        return ""
    return "/" + text.lstrip("/")


def _fields(spec: OperationSpec) -> list[str]:
    return sorted(spec.payload.model_fields)


def candidates(value: str) -> list[str]:
    """Every completion of ``value`` (whole lines), in the order Tab offers them."""
    # the command language loads after the first frame (tui.link_open)
    from core.host.language import LANGUAGE as REGISTRY

    text = value.lstrip()
    if not text:
        return []
    text = normalise(text) + (" " if text.endswith(" ") else "")
    parts = text[1:].split(" ")
    if len(parts) == 1:
        return [f"/{c}" for c in REGISTRY.components() if c.startswith(parts[0]) and c != parts[0]]
    comp, rest = parts[0], " ".join(parts[1:])
    if " " not in rest:
        ops = REGISTRY.operations(comp)
        return [f"/{comp} {o}" for o in ops if o.startswith(rest) and o != rest]
    op = rest.split(" ", 1)[0]
    m = _FIELD_RE.search(text)
    spec = REGISTRY.get(comp, op)
    if m is None or spec is None:
        return []
    partial = m.group(1)
    return [text + f[len(partial) :] + '":' for f in _fields(spec) if f.startswith(partial) and f != partial]


def complete(value: str) -> str | None:
    """The first completion of ``value``, or None when there is nothing to add."""
    got = candidates(value)
    return got[0] if got else None


class TabCycle:
    """Tab completion over :func:`candidates`, as the ``:`` line and the plan editor do it:
    the first Tab takes the first candidate and lists them all, repeated Tabs cycle."""

    def __init__(self) -> None:
        self.cycle: list[str] = []

    def forget_unless(self, value: str) -> None:
        """Typing something that is not a candidate starts a new completion."""
        if value not in self.cycle:
            self.cycle = []

    def next(self, value: str) -> tuple[str | None, str | None]:
        """What Tab puts in place of ``value`` (None: nothing to add) and the hint to show
        (None: keep the one shown)."""
        if self.cycle and value in self.cycle:
            return self.cycle[(self.cycle.index(value) + 1) % len(self.cycle)], None
        got = candidates(value)
        self.cycle = got
        if not got:
            return None, "no completion"
        if len(got) == 1:
            return got[0], None
        names = [g.rsplit(" ", 1)[-1] if " " in g else g for g in got]
        more = f"  … {len(names) - 12} more" if len(names) > 12 else ""
        return got[0], "tab cycles: " + "  ".join(names[:12]) + more


def suggestions_of(res: dict[str, Any]) -> list[str]:
    """What an error response suggests instead (did-you-mean first, then recovery steps)."""
    err = res.get("error") or {}
    out = [str(s) for s in (err.get("details") or {}).get("suggestions") or []]
    for s in res.get("recovery_suggestions") or []:
        if str(s) not in out:
            out.append(str(s))
    return out


def corrected(text: str, suggestion: str) -> str:
    """``text`` with its command head replaced by ``suggestion`` (arguments kept)."""
    sug = suggestion.split()
    words = normalise(text).split(" ")
    n = len(sug)
    if not sug or not sug[0].startswith("/"):
        return suggestion
    return " ".join(sug + words[n:]) if len(words) >= n else suggestion


class SlashSuggester(Suggester):
    """The grey inline suggestion: the first completion."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        got = complete(value)
        if got is None or not value.strip():
            return None
        # The suggester must extend what was typed; keep the user's own slash form.
        if not value.lstrip().startswith("/"):
            got = got[1:]
        return got if got.startswith(value) else None


def restore_focus(app: App[Any], widget: Widget | None) -> None:
    """Focus ``widget`` again if it is still on screen, else the first pane that can take it."""
    if widget is not None and widget.is_attached and widget.display and widget.can_focus:
        widget.focus()
        return
    app.set_focus(None)
    for wid in ("#workflows", "#incidents", "#pools"):
        for w in app.query(wid):
            w.focus()
            return


class CommandLine(Vertical):
    """An input line plus an inline hint/error area; hidden until ``:`` is pressed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", show=False),
        Binding("tab", "complete", "Complete", show=False),
        Binding("up", "history(-1)", "Previous command", show=False),
        Binding("down", "history(1)", "Next command", show=False),
    ]

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history: list[str] = []
        self._hist_pos = 0
        self._tabs = TabCycle()
        self._fix: str | None = None
        self._return_to: Widget | None = None
        """The widget that had focus when the line opened: it gets it back on close."""

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="/component operation '{\"json\": ...}'   (tab completes, ↑↓ history, enter runs, esc closes)",
            suggester=SlashSuggester(),
            id="cmd-input",
            select_on_focus=False,
        )
        yield Static("", id="cmd-error", markup=False)

    @property
    def input(self) -> Input:
        return self.query_one("#cmd-input", Input)

    def open(self, text: str = "") -> None:
        if not self.display:
            self._return_to = self.app.focused
        self.display = True
        self.input.value = text
        self.input.cursor_position = len(text)
        self._hist_pos = len(self.history)
        self.show_error("")
        self.input.focus()

    def show_error(self, message: str, fix: str | None = None) -> None:
        """An inline error; ``fix`` is the corrected line Tab takes."""
        self._fix = fix
        err = self.query_one("#cmd-error", Static)
        err.update(message + (f"\n  did you mean: {fix}   (tab takes it)" if fix else ""))
        err.set_class(bool(message), "error")
        err.display = bool(message)

    def show_hint(self, message: str) -> None:
        err = self.query_one("#cmd-error", Static)
        err.update(message)
        err.set_class(False, "error")
        err.display = bool(message)

    def show_failure(self, text: str, res: dict[str, Any]) -> None:
        """A failed command: its code and message, and the did-you-mean correction."""
        err = res.get("error") or {}
        sugg = [s for s in suggestions_of(res) if s.startswith("/")]
        fix = corrected(text, sugg[0]) if sugg else None
        self.show_error(f"{err.get('code', 'ERROR')}: {err.get('message', '')} — nothing was applied", fix)

    def action_close(self) -> None:
        """Hide the line; focus goes back to the pane that had it before the line opened."""
        self.display = False
        back, self._return_to = self._return_to, None
        restore_focus(self.app, back)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._tabs.forget_unless(self.input.value)

    def action_complete(self) -> None:
        if self._fix is not None:
            done: str | None = self._fix
            self.show_error("")
        else:
            done, hint = self._tabs.next(self.input.value)
            if hint is not None:
                self.show_hint(hint)
        if done:
            self.input.value = done
            self.input.cursor_position = len(done)

    def action_history(self, delta: int) -> None:
        if not self.history:
            return
        self._hist_pos = min(max(self._hist_pos + delta, 0), len(self.history))
        text = self.history[self._hist_pos] if self._hist_pos < len(self.history) else ""
        self.input.value = text
        self.input.cursor_position = len(text)

    def remember(self, text: str) -> None:
        if self.history and self.history[-1] == text:
            return
        self.history.append(text)
        del self.history[:-HISTORY_KEEP]
        self._hist_pos = len(self.history)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = normalise(event.value)
        if not text or text == "/":
            self.action_close()
            return
        self.remember(text)
        self.post_message(self.Submitted(text))


class RunsHost(Protocol):
    """What running a typed command needs of the console (the app)."""

    link: Link | None
    command_line: CommandLine

    def need_link(self) -> Link | None: ...

    def push_screen(self, screen: Screen[Any]) -> Any: ...

    def refresh_panes(self) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...


class CommandRuns:
    def __init__(self, app: RunsHost) -> None:
        self.app = app

    def submit(self, text: str) -> None:
        self.app.spawn(self.run(text))

    async def run(self, text: str) -> None:
        app = self.app
        cl = app.command_line
        link = app.need_link()
        if link is None:
            return
        res = await link.send(text)
        if res.get("status") == "success":
            cl.show_error("")
            cl.action_close()
            self.show_result(text, res)
        else:
            cl.show_failure(text, res)
        app.refresh_panes()

    def show_result(self, text: str, res: dict[str, Any]) -> None:
        """The result view of a command that ran; ``r`` there re-runs it if it only reads."""
        link = self.app.link

        async def rerun(cmd: str) -> dict[str, Any]:
            assert link is not None
            return await link.send(cmd)

        self.app.push_screen(ResultScreen(text, res, rerun if operator.command_mutates(text) is False else None))
