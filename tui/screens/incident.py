"""An incident: what happened and when, the evidence, each plan step whole, the outcome.

Times are clock times with the durations between them (fault to detection, detection
to resolution); empty fields are left out rather than shown as ``None`` or ``{}``;
evidence is a tree with its series as tables; every plan step is shown whole with its
status, gate, approval and result, and who decided the plan.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from core.incidents.kinds import GATES

from ..log_source import LogFilter
from ..meter import fmt_clock, fmt_duration
from ..plan_view import plan_header, step_table
from ..response_view import cell, render_result, section
from ..style import color
from ..widgets.incidents import incident_of
from .detail import DetailScreen

SHOWN = (
    "id",
    "scenario",
    "type",
    "severity",
    "status",
    "detected_at",
    "fault_at",
    "resolved_at",
    "plans",
    "affected_workflows",
    "criteria",
    "validation_window_s",
    "evidence",
    "outcome",
    "notes",
)


def _empty(v: Any) -> bool:
    return v is None or v == {} or v == [] or v == ""


def incident_facts(inc: dict[str, Any], now: float, c: Any) -> Table:
    """The incident's fields as an operator reads them: clock times, durations, lists."""
    t = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    t.add_column(style=f"bold {c('secondary')}", no_wrap=True)
    t.add_column(overflow="fold")

    def row(k: str, v: str) -> None:
        t.add_row(k, v)

    row("scenario", f"{inc.get('scenario') or ''}  ({inc.get('type') or ''}, severity {inc.get('severity') or '?'})")
    row("status", str(inc.get("status", "")))
    det = inc.get("detected_at")
    fault = inc.get("fault_at")
    res = inc.get("resolved_at")
    if isinstance(fault, (int, float)):
        row(
            "fault at",
            fmt_clock(fault)
            + (f"  (detected {fmt_duration(float(det) - fault)} later)" if isinstance(det, (int, float)) else ""),
        )
    if isinstance(det, (int, float)):
        row("detected at", f"{fmt_clock(det)}  ({fmt_duration(now - det)} ago)")
    if isinstance(res, (int, float)):
        row(
            "resolved at",
            fmt_clock(res) + (f"  (recovered in {fmt_duration(res - det)})" if isinstance(det, (int, float)) else ""),
        )
    elif isinstance(det, (int, float)):
        row("resolved at", f"not yet — open for {fmt_duration(now - det)}")
    if inc.get("affected_workflows"):
        row("affected", ", ".join(map(str, inc["affected_workflows"])))
    for g in inc.get("criteria") or []:
        doc = (GATES[g].__doc__ or "").strip().splitlines()[0] if g in GATES and GATES[g].__doc__ else ""
        row("must pass", f"{g}" + (f" — {doc}" if doc else ""))
    if isinstance(inc.get("validation_window_s"), (int, float)):
        row("validation window", fmt_duration(inc["validation_window_s"]))
    if inc.get("plans"):
        row("plans", ", ".join(map(str, inc["plans"])))
    for k, v in inc.items():
        if k not in SHOWN and not _empty(v):
            row(k.replace("_", " "), fmt_clock(v) if k.endswith("_at") and isinstance(v, (int, float)) else cell(v))
    for n in inc.get("notes") or []:
        row("note", cell(n))
    return t


class IncidentScreen(DetailScreen):
    def title_text(self) -> str:
        inc = self.engine.state.incidents.get(self.key, {})
        return f"incident {self.key} — {inc.get('type') or inc.get('kind') or ''} [{inc.get('severity', '?')}] {inc.get('status', '')}"

    def events_filter(self) -> LogFilter:
        return LogFilter(text=f'"{self.key}"')

    def body(self) -> RenderableType:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        eng = self.engine
        s = eng.state
        inc = s.incidents.get(self.key)
        if inc is None:
            return Text(f"no incident {self.key!r}", style=c("error"))
        parts: list[RenderableType] = [
            Text("Incident", style=f"bold {c('secondary')}"),
            incident_facts(inc, eng.clock.now(), c),
            Text(""),
        ]
        outcome = inc.get("outcome")
        if not _empty(outcome):
            parts += [section("outcome", outcome, c), Text("")]
        ev = inc.get("evidence")
        if not _empty(ev):
            parts.append(Text("Evidence", style=f"bold {c('secondary')}"))
            parts += render_result(ev, c) if isinstance(ev, dict) else [Text(cell(ev))]
        plans = [(pid, p) for pid, p in s.plans.items() if incident_of(p) == self.key]
        for pid, p in plans:
            parts += [plan_header({"id": pid, **p}, c), step_table(s, p, c), Text("")]
        if not plans:
            parts += [Text("No plan yet.", style=c("foreground-muted")), Text("")]
        parts.append(self.events_block("Timeline"))
        return Group(*parts)
