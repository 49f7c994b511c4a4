"""A rich Text drawn straight into a Textual strip.

Textual draws a widget's rich Text through its own pipeline (``Content``, visual styles,
per-character offsets), about six times the cost of rich's own rendering of the same
line. The rows of the lists and the header change on every tick of the live demo, so
they are drawn here: the same cells (characters, colours, attributes, metadata), as
tests/test_console_frame_cost.py checks against Textual's path.
"""

from __future__ import annotations

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip


def text_strip(console: Console, text: Text, base: Style, width: int, y: int = 0) -> Strip:
    """One line of ``text`` (no newline in it) over ``base``, cropped to ``width`` cells (not
    padded), with the offsets Textual puts on each segment for text selection (``y``: the
    line's number in its widget): the same segments, so the same screen and screenshots."""
    if text.spans:
        segments = list(Segment.apply_style(text.render(console, end=""), base))
    else:  # rich renders a text without spans unstyled, leaving its own style to the caller
        segments = [Segment(text.plain, base + console.get_style(text.style, default=Style.null()))]
    return Strip(segments).crop(0, width).apply_offsets(0, y)
