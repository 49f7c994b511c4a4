"""An OptionList whose rows are re-rendered from the engine's state on every tick.

Rows keep their ids, so the highlighted row stays on the same agent, workflow or
plan while the list below it changes.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

Row = tuple[str, Text, bool]
"""(option id, prompt, disabled)"""


class LiveList(OptionList):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._ids: list[str] = []
        self._prompts: dict[str, object] = {}

    @property
    def row_width(self) -> int:
        """Cells a row may use: the content width less the scrollbar and the option padding."""
        w = self.scrollable_content_region.width or self.size.width or 40
        return max(w - 2, 16)

    def sync(self, rows: list[Row]) -> None:
        width = self.row_width
        for _, prompt, _ in rows:
            prompt.truncate(width, overflow="ellipsis")
        ids = [r[0] for r in rows]
        if ids == self._ids:
            for oid, prompt, _ in rows:
                plain = _key(prompt)
                if self._prompts.get(oid) != plain:
                    self._prompts[oid] = plain
                    self.replace_option_prompt(oid, prompt)
            return
        keep = self.highlighted_option.id if self.highlighted_option is not None else None
        self.set_options([Option(p, id=oid, disabled=d) for oid, p, d in rows])
        self._ids = ids
        self._prompts = {oid: _key(p) for oid, p, _ in rows}
        if keep in ids:
            self.highlighted = ids.index(keep)
        else:
            first = next((i for i, r in enumerate(rows) if not r[2]), None)
            self.highlighted = first

    @property
    def selected_id(self) -> str | None:
        opt = self.highlighted_option
        return opt.id if opt is not None else None


def _key(t: Text) -> object:
    return (t.plain, tuple(t.spans), str(t.style))
