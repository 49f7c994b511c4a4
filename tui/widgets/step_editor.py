"""The plan editor's body: one row per step, each a wrapped line as the operator types it.

A row is the step's number, a soft-wrapped text line and, under it, the line's error
(from :func:`tui.plan_view.line_error`, checked as it is typed). Enter splits a line
into two steps (pasted lines become steps too), backspace at the start of a line joins
it to the one above, ↑/↓ at a line's first or last row move to the next step, and Tab
completes the command as the ``:`` line does (:class:`tui.command_line.TabCycle`).
Steps that have run are shown read-only: the host refuses an edit that changes them.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static, TextArea

from ..command_line import TabCycle
from ..plan_view import EditLine, line_error


class StepInput(TextArea):
    """One step's text: a TextArea that keeps to one logical line."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("tab", "complete", "Complete", show=False)]

    class Leave(Message):
        """The cursor went past this step's first (-1) or last (+1) row."""

        def __init__(self, step: StepInput, delta: int) -> None:
            super().__init__()
            self.step = step
            self.delta = delta

    class JoinUp(Message):
        """Backspace at the start of the step: join it to the step above."""

        def __init__(self, step: StepInput) -> None:
            super().__init__()
            self.step = step

    class Hint(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, text: str, *, ran: bool) -> None:
        super().__init__(text, soft_wrap=True, tab_behavior="focus", read_only=ran, compact=True)
        self.tabs = TabCycle()

    def action_complete(self) -> None:
        """Complete the text before the cursor; what follows the cursor stays."""
        if self.read_only:
            self.post_message(self.Hint("this step has run: it cannot change"))
            return
        row, col = self.cursor_location
        before, after = self.text[:col], self.text[col:]
        if row:  # a step is one line; a split is pending
            return
        done, hint = self.tabs.next(before)
        if hint is not None:
            self.post_message(self.Hint(hint))
        if done:
            self.load_text(done + after)
            self.move_cursor((0, len(done)))

    def action_cursor_up(self, select: bool = False) -> None:
        if not select and self.get_cursor_up_location() == self.cursor_location:
            self.post_message(self.Leave(self, -1))
            return
        super().action_cursor_up(select)

    def action_cursor_down(self, select: bool = False) -> None:
        if not select and self.get_cursor_down_location() == self.cursor_location:
            self.post_message(self.Leave(self, 1))
            return
        super().action_cursor_down(select)

    def action_delete_left(self) -> None:
        if self.cursor_location == (0, 0) and self.selection.is_empty:
            self.post_message(self.JoinUp(self))
            return
        super().action_delete_left()


class StepRow(Vertical):
    """A step: its number, its text, and its error under it."""

    DEFAULT_CSS = """
    StepRow { height: auto; margin-bottom: 1; }
    StepRow > Horizontal { height: auto; }
    StepRow .step-no { width: 6; color: $foreground-muted; }
    StepRow.invalid .step-no { color: $error; text-style: bold; }
    StepRow.ran .step-no { color: $success; }
    StepRow StepInput { height: auto; width: 1fr; background: $surface; }
    StepRow StepInput:focus { background: $boost; }
    StepRow.ran StepInput { color: $foreground-muted; }
    StepRow .step-error { color: $error; padding-left: 6; display: none; }
    StepRow.invalid .step-error { display: block; }
    """

    def __init__(self, line: EditLine) -> None:
        super().__init__()
        self.ran = line.ran
        self.input = StepInput(line.command, ran=line.ran is not None)
        self.number = Static("", classes="step-no", markup=False)
        self.error_text = Static("", classes="step-error", markup=False)
        self.error: str | None = None
        self.set_class(line.ran is not None, "ran")

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield self.number
            yield self.input
        yield self.error_text

    @property
    def text(self) -> str:
        return self.input.text

    def check(self, problem: str | None = None) -> None:
        """Validate the line (``problem``: a refusal the host gave for it instead)."""
        self.error = problem or (None if self.ran is not None else line_error(self.text))
        self.error_text.update(f"↳ {self.error}" if self.error else "")
        self.set_class(self.error is not None, "invalid")

    def renumber(self, n: int) -> None:
        mark = "✓" if self.ran is not None else ("✗" if self.error else " ")
        self.number.update(f"{n:>3} {mark}")


class StepsEditor(VerticalScroll):
    """Every step of the plan, in order."""

    DEFAULT_CSS = "StepsEditor { height: 1fr; }"

    class Hint(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, lines: list[EditLine], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines = lines

    def compose(self) -> ComposeResult:
        for line in self.lines or [EditLine("")]:
            yield StepRow(line)

    def on_mount(self) -> None:
        for r in self.rows:
            r.check()
        self.renumber()

    @property
    def rows(self) -> list[StepRow]:
        return list(self.query_children(StepRow))

    def texts(self) -> list[str]:
        return [r.text for r in self.rows]

    def invalid(self) -> list[tuple[int, str]]:
        """(1-based line, error) of each line that the host would refuse."""
        return [(i, r.error) for i, r in enumerate(self.rows, start=1) if r.error]

    def renumber(self) -> None:
        for i, r in enumerate(self.rows, start=1):
            r.renumber(i)

    def focus_row(self, i: int, at: tuple[int, int] | None = None) -> None:
        rows = self.rows
        if not rows:
            return
        row = rows[max(0, min(i, len(rows) - 1))]
        row.input.focus()
        if at is not None:
            row.input.move_cursor(at)
        row.scroll_visible(animate=False)

    def first_editable(self) -> int:
        rows = self.rows
        return next((i for i, r in enumerate(rows) if r.ran is None), len(rows) - 1)

    def mark(self, step: int, problem: str) -> None:
        """Show a refusal the host gave for the ``step``-th non-blank line (0-based)."""
        filled = [r for r in self.rows if r.text.strip()]
        if 0 <= step < len(filled):
            filled[step].check(problem)
            self.renumber()
            self.focus_row(self.rows.index(filled[step]))

    def _row_of(self, step: StepInput) -> int:
        return next((i for i, r in enumerate(self.rows) if r.input is step), -1)

    @on(TextArea.Changed)
    async def _changed(self, event: TextArea.Changed) -> None:
        step = event.text_area
        if not isinstance(step, StepInput):
            return
        line, col = step.cursor_location
        step.tabs.forget_unless(step.text[:col] if line == 0 else step.text)
        i = self._row_of(step)
        if i < 0:
            return
        row = self.rows[i]
        text = step.text
        if "\n" in text:  # enter or a paste: each line becomes a step
            parts = text.split("\n")
            step.load_text(parts[0])
            new = [StepRow(EditLine(p)) for p in parts[1:]]
            await self.mount_all(new, after=row)
            for r in new:
                r.check()
            self.focus_row(i + line, (0, col))
        row.check()
        self.renumber()

    @on(StepInput.Leave)
    def _leave(self, event: StepInput.Leave) -> None:
        j = self._row_of(event.step)
        i = j + event.delta
        if j >= 0 and 0 <= i < len(self.rows):
            target = self.rows[i].input
            self.focus_row(i, (0, 0) if event.delta > 0 else target.document.end)

    @on(StepInput.JoinUp)
    async def _join_up(self, event: StepInput.JoinUp) -> None:
        i = self._row_of(event.step)
        rows = self.rows
        if i <= 0 or rows[i].ran is not None:
            return
        above = rows[i - 1]
        if above.ran is not None:
            if not rows[i].text:
                await rows[i].remove()
                self.renumber()
                self.focus_row(i - 1)
            else:
                self.post_message(self.Hint(f"step {i} has run: step {i + 1} cannot join it"))
            return
        col = len(above.text)
        above.input.load_text(above.text + rows[i].text)
        await rows[i].remove()
        above.check()
        self.renumber()
        self.focus_row(i - 1, (0, col))

    @on(StepInput.Hint)
    def _hint(self, event: StepInput.Hint) -> None:
        event.stop()
        self.post_message(self.Hint(event.text))
