"""High contrast: pure black and white with saturated signal colours (accessibility)."""

from textual.theme import Theme

THEME = Theme(
    name="opsdeck-high-contrast",
    primary="#00ffff",
    secondary="#ffffff",
    accent="#ffff00",
    foreground="#ffffff",
    background="#000000",
    surface="#000000",
    panel="#000000",
    success="#00ff00",
    warning="#ffff00",
    error="#ff0000",
    dark=True,
    luminosity_spread=0.0,
    text_alpha=1.0,
    variables={"block-cursor-background": "#ffff00", "block-cursor-foreground": "#000000"},
)
