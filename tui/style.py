"""Colours the panes use, taken from the running theme so every theme (and NO_COLOR) applies."""

from __future__ import annotations

from typing import Protocol

from rich.style import Style
from textual.app import App
from textual.color import Color, ColorParseError

from core.models import AgentStatus, Band, TaskStatus, WorkflowStatus


class Themed(Protocol):
    """What the colours are read from: the running theme's name and variables (an App)."""

    @property
    def theme(self) -> str: ...

    @property
    def theme_variables(self) -> dict[str, str]: ...


def theme_colors(app: Themed) -> dict[str, str]:
    """The theme's colour variables as opaque hex (``error``, ``warning``, ``primary``, ...)."""
    raw = app.theme_variables
    key = (app.theme, id(raw))
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    bg = _parse(raw.get("background", "#000000")) or Color(0, 0, 0)
    out: dict[str, str] = {}
    for name, value in raw.items():
        c = _parse(value)
        if c is not None:
            out[name] = (bg + c).hex6 if c.a < 1 else c.hex6
    _CACHE.clear()
    _CACHE[key] = out
    return out


_CACHE: dict[tuple[str, int], dict[str, str]] = {}


def _parse(value: str) -> Color | None:
    try:
        return Color.parse(value)
    except ColorParseError:
        return None


def severity_style(app: App, severity: str) -> Style:
    c = theme_colors(app)
    if severity == "critical":
        return Style(color=c.get("error"), bold=True, reverse=False)
    if severity == "high":
        return Style(color=c.get("error"))
    if severity == "medium":
        return Style(color=c.get("warning"))
    if severity == "low":
        return Style(color=c.get("secondary"))
    return Style(color=c.get("foreground"), dim=False)


AGENT_GLYPH = {
    AgentStatus.IDLE: ("○", "success"),
    AgentStatus.BUSY: ("●", "primary"),
    AgentStatus.PAUSED: ("‖", "warning"),
    AgentStatus.FAILED: ("✖", "error"),
    AgentStatus.UNREACHABLE: ("?", "error"),
    AgentStatus.RETIRED: ("·", "foreground-muted"),
}

WF_STATUS_COLOR = {
    WorkflowStatus.PENDING: "foreground-muted",
    WorkflowStatus.RUNNING: "success",
    WorkflowStatus.PAUSED: "warning",
    WorkflowStatus.COMPLETED: "primary",
    WorkflowStatus.FAILED: "error",
    WorkflowStatus.CANCELLED: "foreground-muted",
}

TASK_STATUS_COLOR = {
    TaskStatus.PENDING: "foreground-muted",
    TaskStatus.RUNNING: "success",
    TaskStatus.PAUSED: "warning",
    TaskStatus.COMPLETED: "primary",
    TaskStatus.FAILED: "error",
}

BAND_COLOR = {Band.CRITICAL: "error", Band.HIGH: "warning", Band.MEDIUM: "primary", Band.LOW: "foreground-muted"}


def color(app: Themed, name: str) -> str:
    c = theme_colors(app)
    return c.get(name) or c.get("foreground") or "default"
