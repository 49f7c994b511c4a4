"""An OptionList whose rows are re-rendered from the engine's state on every tick.

Rows keep their ids, so the highlighted row stays on the same agent, workflow or
plan while the list below it changes or re-sorts. A list may sit in a :class:`Pane`,
which adds a fixed column-header line above it (it does not scroll away) and carries
the border and title. ``s`` cycles the sort key (shown in the title), as k9s sorts a
view by a column.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.strip import Strip
from textual.style import Style as VisualStyle
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..strips import guard, text_strip
from .titles import BorderText

Row = tuple[str, Text, bool]
"""(option id, prompt, disabled)"""


def middle_ellipsis(name: str, width: int, tail: int) -> str:
    """``name`` cut to ``width`` cells keeping its start and its last ``tail`` characters."""
    if len(name) <= width:
        return name
    if width <= 1:
        return "…"[:width]
    tail = min(max(tail, 0), width - 1)
    head = width - 1 - tail
    return name[:head] + "…" + (name[-tail:] if tail else "")


def distinct_names(names: list[str], width: int) -> dict[str, str]:
    """Each name fitted to ``width``, as distinct as the width allows.

    Ids differ mostly at the end (``workflow_001``, ``migration_workflow_001_r2``), so
    the cut is in the middle and the kept suffix grows until no two names collide.
    """
    out = {n: n for n in names}
    long = [n for n in names if len(n) > width]
    if not long:
        return out
    tail = max(width // 2, 1)
    while True:
        cut = {n: middle_ellipsis(n, width, tail) for n in long}
        seen: dict[str, int] = {}
        for n in names:
            s = cut.get(n, n)
            seen[s] = seen.get(s, 0) + 1
        if all(v == 1 for v in seen.values()) or tail >= width - 1:
            out.update(cut)
            return out
        tail += 1


def distinct_suffixes(names: list[str], width: int) -> dict[str, str]:
    """Each name fitted to ``width`` keeping as much of its end as leaves the names distinct:
    the longest tail first, then one more character of the head at a time (for ids whose
    ends say the most, e.g. task ids whose workflow part is what they share)."""
    for tail in range(max(width - 1, 0), 0, -1):
        cut = {n: middle_ellipsis(n, width, tail) for n in names}
        if len(set(cut.values())) == len(names):
            return cut
    return {n: middle_ellipsis(n, width, max(width // 2, 1)) for n in names}


class LiveList(OptionList):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("s", "cycle_sort", "Sort", show=True)]
    SORTS: tuple[str, ...] = ()
    """The sort keys ``s`` cycles through; the first is the default."""
    NAME = "List"

    class ViewChanged(Message):
        """The list's sort, marks or shown rows changed: the console redraws its panes."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._ids: list[str] = []
        self._prompts: dict[str, object] = {}
        self.sort_i = 0
        self.note = ""
        self._border: BorderText | None = None
        self._guarded: tuple[Option, VisualStyle, list[Strip], list[Strip]] | None = None
        """The highlighted row as drawn on the cursor: (option, style, its plain strips, guarded)."""

    @property
    def sort_key(self) -> str:
        return self.SORTS[self.sort_i] if self.SORTS else ""

    def action_cycle_sort(self) -> None:
        if not self.SORTS:
            return
        self.sort_i = (self.sort_i + 1) % len(self.SORTS)
        self.notify(f"{self.NAME}: sorted by {self.sort_key}", timeout=2)
        self.post_message(self.ViewChanged())

    @property
    def row_width(self) -> int:
        """Cells a row may use: the content width less a column for the scrollbar."""
        w = self.scrollable_content_region.width or self.size.width or 40
        return max(w - 1, 16)

    def header(self, width: int) -> Text | None:
        """The column headers for ``width`` (None: no header line)."""
        return None

    def title(self) -> str:
        """Name, count, sort: a narrow border cuts the end, so the count goes before the sort."""
        parts = [self.NAME]
        if self.note:
            parts.append(self.note)
        if self.SORTS:
            parts.append(f"sort {self.sort_key} (s)")
        return " · ".join(parts)

    def _decorate(self) -> None:
        pane = self.parent if isinstance(self.parent, Pane) else None
        target = pane or self
        if self._border is None or self._border.widget is not target:
            self._border = BorderText(target)
        self._border.title(self.title())
        if pane is not None:
            pane.set_header(self.header(self.row_width))

    def sync(self, rows: list[Row]) -> None:
        width = self.row_width
        self._decorate()
        for _, prompt, _ in rows:
            prompt.truncate(width, overflow="ellipsis")
        ids = [r[0] for r in rows]
        if ids == self._ids:
            changed: list[int] = []
            for i, (oid, prompt, _) in enumerate(rows):
                plain = _key(prompt)
                if self._prompts.get(oid) != plain:
                    self._prompts[oid] = plain
                    self._set_row(oid, prompt)
                    changed.append(i)
            heights = self._heights
            if changed and all(heights.get(i) == 1 and "\n" not in rows[i][1].plain for i in changed):
                # One line per row, as before: repaint only the rows that changed.
                for i in changed:
                    self.refresh_line(self._index_to_line[i])
            elif changed:
                self._line_cache.clear()  # cheap: rebuilt from the per-row renders kept below
                self.refresh()
            return
        keep = self.highlighted_option.id if self.highlighted_option is not None else None
        top = self.scroll_y
        old_pos = self._ids.index(keep) if keep in self._ids else None
        self.set_options([Option(p, id=oid, disabled=d) for oid, p, d in rows])
        self._ids = ids
        self._prompts = {oid: _key(p) for oid, p, _ in rows}
        if keep in ids:
            self.highlighted = ids.index(keep)
            # Keep the highlighted row where the eye left it when the list re-sorts.
            if old_pos is not None:
                self.scroll_to(y=max(top + ids.index(keep) - old_pos, 0), animate=False, immediate=True)
        else:
            first = next((i for i, r in enumerate(rows) if not r[2]), None)
            self.highlighted = first

    def _get_option_render(self, option: Option, style: VisualStyle) -> list[Strip]:
        """The highlighted row with each coloured span readable on the cursor (tui.strips)."""
        strips = self._row_render(option, style)
        if option is not self.highlighted_option or option.disabled:
            return strips
        hit = self._guarded
        if hit is None or hit[0] is not option or hit[1] != style or hit[2] is not strips:
            base = style.rich_style
            hit = self._guarded = (option, style, strips, [guard(s, base) for s in strips])
        return hit[3]

    def _row_render(self, option: Option, style: VisualStyle) -> list[Strip]:
        """A one-line row (a rich Text, no padding) drawn by rich (tui.strips), kept in
        OptionList's cache of rows; other rows by OptionList's general path."""
        prompt = option.prompt
        padding = self.get_component_styles("option-list--option").padding
        if not isinstance(prompt, Text) or padding or option._divider or "\n" in prompt.plain:
            return super()._get_option_render(option, style)
        key = (option, style, padding)
        strips = self._option_render_cache.get(key)
        if strips is None:
            width = self.scrollable_content_region.width - self._get_left_gutter_width()
            base = style.rich_style
            strip = text_strip(self.app.console, prompt, base, width).extend_cell_length(width, base)
            strips = [strip.apply_meta({"option": self._option_to_index[option]})]
            self._option_render_cache[key] = strips
        return strips

    def _set_row(self, oid: str, prompt: Text) -> None:
        """One row's new prompt, forgetting only that row's rendering. OptionList's own
        ``replace_option_prompt`` drops every row's, so each tick re-rendered the whole
        list (the worst part of a frame under the live demo)."""
        opt = self.get_option(oid)
        opt._set_prompt(prompt)
        keys = self._option_render_cache.keys()  # an LRUCache: not iterable itself
        for key in [k for k in keys if k[0] is opt]:
            self._option_render_cache.discard(key)

    def show_row(self, oid: str) -> bool:
        """Highlight the row ``oid`` and scroll it into view (False: no such row)."""
        if oid not in self._ids:
            return False
        self.highlighted = self._ids.index(oid)
        self.scroll_to_highlight()
        return True

    @property
    def selected_id(self) -> str | None:
        opt = self.highlighted_option
        return opt.id if opt is not None else None


class PaneHeader(Static):
    """A pane's column-header line, with the key of the text it shows."""

    shown_key: object = None
    """:func:`_key` of the text last shown (None: none yet)."""


class Pane(Vertical):
    """A bordered pane: its list's title, a fixed column-header line, then the list."""

    def __init__(self, body: LiveList, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.body = body

    def compose(self) -> ComposeResult:
        yield PaneHeader("", classes="pane-header", markup=False)
        yield self.body

    def set_header(self, text: Text | None) -> None:
        key = None if text is None else _key(text)
        # Not there while the pane is being mounted or torn down (a refresh tick may land then).
        for head in self.query(".pane-header").results(PaneHeader):
            if head.display == (text is not None) and head.shown_key == key:
                continue  # unchanged: an update would ask for a layout of the whole screen
            head.display = text is not None
            if text is not None:
                head.update(text)
            head.shown_key = key


def _key(t: Text) -> object:
    return (t.plain, tuple(t.spans), str(t.style))
