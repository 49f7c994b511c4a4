"""The default theme: a dark terminal palette in the manner of k9s and btop."""

from textual.theme import Theme

THEME = Theme(
    name="opsdeck-dark",
    primary="#5fafff",
    secondary="#87d7af",
    accent="#ffaf5f",
    foreground="#d0d0d0",
    background="#121212",
    surface="#1c1c1c",
    panel="#262626",
    success="#5fd75f",
    warning="#ffd75f",
    error="#ff5f5f",
    dark=True,
    variables={"footer-key-foreground": "#5fafff", "block-cursor-background": "#303a4a"},
)
