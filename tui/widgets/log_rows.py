"""How one event reads as a row of the event log pane.

The readable row (the default) is the time (``hh:mm:ss``, :mod:`core.timefmt`), a
severity mark, the type and the catalogue's one-line summary in words; a task's row
that ends a run also says how many progress events it folds. The raw row (a toggle)
is the stored event: its seq, time, severity, type, ``:component:scope:`` and the
data as JSON.
"""

from __future__ import annotations

import json

from rich.segment import Segment
from rich.style import Style
from textual.app import App
from textual.strip import Strip

from core.event_types import TASK_COMPLETED, TASK_FAILED, TASK_REASSIGNED, TASK_TIMEOUT, severity_of, summarise
from core.events import Event, Severity
from core.timefmt import clock

from ..style import color, severity_style

FOLDING_TYPES = frozenset({TASK_COMPLETED, TASK_FAILED, TASK_TIMEOUT, TASK_REASSIGNED})
"""Rows that end a task's run: each folds the progress events of that run."""

MARKS = {
    Severity.CRITICAL: "CRIT",
    Severity.HIGH: "HIGH",
    Severity.MEDIUM: "MED ",
    Severity.LOW: "LOW ",
    Severity.INFO: "    ",
}


def folds_progress(ev: Event) -> str | None:
    """The task whose progress this row folds, or None."""
    task = ev.data.get("task")
    return task if ev.type in FOLDING_TYPES and isinstance(task, str) and task else None


def type_width(width: int) -> int:
    """The type column: 18 cells even at 80 columns, where most types fit whole."""
    return 26 if width >= 140 else 22 if width >= 110 else 18


def fit_type(name: str, width: int) -> str:
    """``name`` in ``width`` cells: a type too long is cut in the middle and keeps its last
    word, which tells apart types of one family (``EMERGENC…ACTIVATED``/``…COMPLETED``)."""
    if len(name) <= width:
        return name
    tail = name.rsplit("_", 1)[-1]
    head = width - 1 - len(tail)
    if head < 3:
        return name[: width - 1] + "…"
    return name[:head].rstrip("_") + "…" + tail


def mark(level: Severity, width: int) -> str:
    """``CRIT``/``HIGH``/``MED``/``LOW``; one letter under 100 columns, where the summary needs the room."""
    return MARKS[level] if width >= 100 else MARKS[level][0]


def readable_row(app: App, ev: Event, width: int, base: Style, folded: int | None) -> Strip:
    """``hh:mm:ss MARK TYPE summary`` (``· N progress`` when the row folds progress)."""
    level = severity_of(ev)
    sev = severity_style(app, level)
    muted = Style(color=color(app, "foreground-muted"))
    tw = type_width(width)
    name = fit_type(ev.type, tw)
    segs = [
        Segment(f"{clock(ev.ts)} ", base + muted),
        Segment(f"{mark(level, width)} ", base + sev + Style(bold=True)),
        Segment(f"{name:<{tw}} ", base + sev + Style(bold=level.at_least(Severity.HIGH))),
        Segment(summarise(ev), base + (sev if level.at_least(Severity.MEDIUM) else Style())),
    ]
    if folded:
        segs.append(Segment(f"  · {folded} progress", base + muted))
    return Strip(segs).crop(0, width).adjust_cell_length(width, base)


def raw_row(app: App, ev: Event, width: int, base: Style, seq_w: int) -> Strip:
    """``seq hh:mm:ss MARK TYPE :component:scope:{json}``: the event as stored."""
    level = severity_of(ev)
    sev = severity_style(app, level)
    muted = Style(color=color(app, "foreground-muted"))
    try:
        body = json.dumps(ev.data, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        body = str(ev.data)
    if len(body) > width:
        body = body[:width]
    segs = [
        Segment(f"{ev.seq:>{seq_w}} ", base + muted),
        Segment(f"{clock(ev.ts)} ", base + muted),
        Segment(f"{mark(level, width)} ", base + sev),
        Segment(
            f"{ev.type:<{type_width(width)}} " if width >= 110 else f"{ev.type} ",
            base + sev + Style(bold=level.at_least(Severity.HIGH)),
        ),
        Segment(f":{ev.component}:{ev.scope}:", base + muted),
        Segment(body, base + (sev if level is not Severity.INFO else Style())),
    ]
    return Strip(segs).crop(0, width).adjust_cell_length(width, base)
