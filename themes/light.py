"""A light theme for bright rooms and printed screenshots."""

from textual.theme import Theme

THEME = Theme(
    name="opsdeck-light",
    primary="#005fd7",
    secondary="#008787",
    accent="#af5f00",
    foreground="#1c1c1c",
    background="#fafafa",
    surface="#eeeeee",
    panel="#e0e0e0",
    success="#008700",
    warning="#af8700",
    error="#d70000",
    dark=False,
    # White on the primary blue cursor: 5.8:1 (Textual's derived tint gave 4.76:1).
    variables={"block-cursor-foreground": "#ffffff"},
)
