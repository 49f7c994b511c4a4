"""Rows as Textual strips: a rich Text drawn straight into a strip, and the guard that
keeps the highlighted row readable in every theme.

Textual draws a widget's rich Text through its own pipeline (``Content``, visual styles,
per-character offsets), about six times the cost of rich's own rendering of the same
line. The rows of the lists and the header change on every tick of the live demo, so
they are drawn here: the same cells (characters, colours, attributes, metadata), as
tests/test_console_frame_cost.py checks against Textual's path.

A row's spans carry signal colours (a band in the warning colour, a status in success);
on a bright cursor (the high-contrast theme's yellow, the light theme's blue) some of
them vanish. The guard (WCAG contrast) keeps every span whose contrast reaches 4.5:1 on
the cursor's background and gives the others the cursor's own foreground (or black or
white, whichever reads best).
"""

from __future__ import annotations

from functools import lru_cache

from rich.color import Color
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


MIN_RATIO = 4.5
"""WCAG 2 AA for normal text."""

_BLACK = Color.from_rgb(0, 0, 0)
_WHITE = Color.from_rgb(255, 255, 255)


def luminance(c: Color) -> float:
    """WCAG relative luminance of an sRGB colour (not cached: :func:`readable`, the only
    caller on the drawing path, keeps its answers)."""
    r, g, b = (v / 255 for v in c.get_truecolor())

    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def ratio(a: Color, b: Color) -> float:
    """WCAG contrast ratio, 1 to 21."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@lru_cache(maxsize=4096)
def readable(fg: Color, bg: Color, fallback: Color | None) -> Color:
    """``fg`` if it reads on ``bg``; else the best of ``fallback``, black and white.
    Kept per colour triple: a theme has a few dozen, and the highlighted row is guarded
    each time it changes (0.23 ms a row, computed afresh)."""
    if ratio(fg, bg) >= MIN_RATIO:
        return fg
    options = [c for c in (fallback, _BLACK, _WHITE) if c is not None]
    return max(options, key=lambda c: (ratio(c, bg) >= MIN_RATIO and c is fallback, ratio(c, bg)))


def guard(strip: Strip, base: Style) -> Strip:
    """``strip`` (a highlighted row drawn on ``base``) with every text span readable: no
    dim text, and colours under :data:`MIN_RATIO` on their background replaced."""
    out: list[Segment] = []
    changed = False
    for seg in strip:
        text, style, control = seg
        if control or style is None or not text.strip():
            out.append(seg)
            continue
        fg = style.color or base.color
        bg = style.bgcolor or base.bgcolor
        if fg is None or bg is None or fg.is_default or bg.is_default:
            out.append(seg)
            continue
        new = readable(fg, bg, base.color)
        if new == fg and not style.dim:
            out.append(seg)
            continue
        out.append(Segment(text, style + Style(color=new, dim=False)))
        changed = True
    return Strip(out, strip.cell_length) if changed else strip
