"""The event log pane with its filter line: ``/`` opens the line, enter applies what was
typed (empty clears), escape closes it; either way focus goes back where it was."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Key
from textual.widget import Widget
from textual.widgets import Input

from ..command_line import restore_focus
from ..log_source import FilterError, LogSource
from .event_log import EventLog

FILTER_HINT = (
    "filter: text  type:TASK_FAILED  wf:workflow_001 (wf:workflow_00* prefix)  sev:high  @saved"
    "   (enter applies, empty clears, esc closes)"
)


class LogArea(Vertical):
    def __init__(self, source: LogSource, saved_filters: dict[str, str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.log_pane = EventLog(source, saved_filters=saved_filters, id="log")
        self.filter_input = Input(placeholder=FILTER_HINT, id="filter")
        self.filter_input.display = False
        self._filter_return: Widget | None = None

    def compose(self) -> ComposeResult:
        yield self.log_pane
        yield self.filter_input

    def open_filter(self) -> None:
        f = self.filter_input
        if not f.display:
            self._filter_return = self.app.focused
        f.display = True
        cur = self.log_pane.filter
        f.value = ""
        f.placeholder = f"now: {cur.describe()} — enter with nothing clears it" if cur.active else FILTER_HINT
        f.focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            self.log_pane.apply_filter(event.value)
        except FilterError as exc:
            self.app.notify(str(exc), title="filter not applied", severity="error", timeout=8)
            return
        event.input.display = False
        restore_focus(self.app, self._filter_return)

    def on_key(self, event: Key) -> None:
        if event.key == "escape" and self.filter_input.has_focus:
            self.filter_input.display = False
            restore_focus(self.app, self._filter_return)
            event.stop()

    @on(EventLog.FilterApplied)
    def _filter_applied(self, event: EventLog.FilterApplied) -> None:
        self.app.notify(event.summary, timeout=3)

    def toggle_raw(self) -> None:
        raw = self.log_pane.toggle_raw()
        self.app.notify("event log: raw event lines" if raw else "event log: sentences", timeout=2)

    def toggle_progress(self) -> None:
        show = not self.log_pane.filter.progress
        self.log_pane.show_progress(show)
        what = "progress events shown as rows" if show else "progress events folded into their task rows"
        self.app.notify(f"event log: {what}", timeout=2)

    def toggle_follow(self) -> None:
        following = self.log_pane.toggle_follow()
        self.app.notify("following the event log" if following else "follow paused", timeout=2)
