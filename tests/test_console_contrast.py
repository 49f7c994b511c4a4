"""The selected row reaches 4.5:1 (WCAG AA) in every theme, focused and unfocused.

Computed from what each theme in themes/ paints: the cursor's own colours (the
highlighted option's style), then every text span of each highlighted row as drawn
(rows carry signal colours: bands, statuses, meters) on the cursor's background."""

from __future__ import annotations

import pytest
from rich.color import Color

from tests.console_support import BUSY_S, came_true, make_app, settle
from themes import THEMES


def luminance(c: Color) -> float:  # WCAG 2.x relative luminance, written here independently of tui.strips
    def lin(v: int) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = c.get_truecolor()
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def contrast(a: Color, b: Color) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def worst_span(ol) -> tuple[float, str]:  # type: ignore[no-untyped-def]
    """The lowest contrast of any text span in the highlighted row as drawn, and the span."""
    y = ol._lines.index((ol.highlighted, 0)) - int(ol.scroll_offset.y)
    base = ol.get_visual_style("option-list--option", "option-list--option-highlighted").rich_style
    worst = (21.0, "")
    for text, style, control in ol.render_line(y):
        if control or not text.strip() or style is None:
            continue
        fg, bg = style.color or base.color, style.bgcolor or base.bgcolor
        r = contrast(fg, bg)
        if style.dim:
            r = 1.0  # dim text is blended toward the background: never counted as readable
        worst = min(worst, (r, f"{text!r} {fg.get_truecolor().hex} on {bg.get_truecolor().hex}"))
    return worst


@pytest.mark.slow
async def test_selected_row_contrast_in_every_theme(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot, 900)
        failures = []
        for name in THEMES:
            app.theme = name
            for pane in ("#workflows", "#pools", "#incidents"):
                ol = app.query_one(pane)
                rows = [i for i, o in enumerate(ol.options) if not o.disabled]
                for focused in (True, False):
                    target = ol if focused else app.query_one("#log")
                    target.focus()
                    # The screen names the new focus at once; the list's own has_focus (which
                    # its focus style follows) changes when it has handled its Focus or Blur.
                    assert await came_true(
                        pilot,
                        lambda target=target, ol=ol, f=focused: app.focused is target and ol.has_focus is f,
                        BUSY_S,
                    ), f"{name} {pane}: focus on the list is {ol.has_focus}, wanted {focused}"
                    base = ol.get_visual_style("option-list--option", "option-list--option-highlighted").rich_style
                    r = contrast(base.color, base.bgcolor)
                    if r < 4.5:
                        failures.append(f"{name} {pane} focused={focused}: cursor {r:.2f}")
                    for i in rows:
                        ol.highlighted = i
                        ol.scroll_to_highlight(top=True)
                        await pilot.pause(0)
                        r, span = worst_span(ol)
                        if r < 4.5:
                            failures.append(f"{name} {pane} focused={focused} row {ol.options[i].id}: {r:.2f} {span}")
        assert not failures, "\n".join(failures[:40])
