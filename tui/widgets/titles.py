"""A pane's border title and subtitle, changed by repainting only the border row each sits on.

Textual's ``border_title`` / ``border_subtitle`` setters repaint the whole widget: every
row of a pane is drawn again. The event log's title counts events and the agent list's
counts busy agents, so they change on most ticks while the rows under them do not; a
whole repaint per tick was most of a frame's work under the live demo.

The title is stored as Textual's setter stores it (``_border_title``: the markup
rendered to Content, tabs expanded, first line), textual being pinned (pyproject);
tests/test_console_titles.py checks the border drawn against the public getter.
"""

from __future__ import annotations

from textual.geometry import Region
from textual.widget import Widget


class BorderText:
    """The title and subtitle one widget shows on its border."""

    def __init__(self, widget: Widget) -> None:
        self.widget = widget
        self.shown: dict[str, str] = {}
        """What was set, by edge ("title", "subtitle")."""

    def title(self, text: str) -> None:
        """Show ``text`` on the top border; the same text again costs nothing."""
        self._set("title", text)

    def subtitle(self, text: str) -> None:
        """Show ``text`` on the bottom border; the same text again costs nothing."""
        self._set("subtitle", text)

    def _set(self, edge: str, text: str) -> None:
        w = self.widget
        old = self.shown.get(edge)
        if text == old:
            return
        self.shown[edge] = text
        top = edge == "title"
        if old is None or not w.is_mounted or not w.size:  # Textual's own setter: a whole repaint
            if top:
                w.border_title = text
            else:
                w.border_subtitle = text
            return
        stored = w.render_str(text).expand_tabs(4).split()[0]  # as that setter stores it
        if top:
            w._border_title = stored
        else:
            w._border_subtitle = stored
        y = 0 if top else w.outer_size.height - 1
        off = w.content_offset  # refresh regions are relative to the content; the border is outside it
        w.refresh(Region(-off.x, y - off.y, w.outer_size.width, 1))
