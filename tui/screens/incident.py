"""An incident: what happened and when, the evidence, each plan step whole, the outcome.

Times are clock times with the durations between them (fault to detection, detection
to the incident's end, resolved or failed); empty fields are left out rather than shown as ``None`` or ``{}``;
evidence is a tree with its series as tables; every plan step is shown whole with its
status, gate, approval and result, and who decided the plan.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from core import timefmt
from core.incident_models import Incident

from ..log_source import LogFilter
from ..plan_view import plan_section
from ..response_view import render_result, section
from ..style import color
from .detail import DetailScreen


def _empty(v: Any) -> bool:
    return v is None or v == {} or v == [] or v == ""


def incident_facts(inc: Incident, now: float, c: Any) -> Table:
    """The incident's fields as an operator reads them: clock times, durations, lists."""
    t = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    t.add_column(style=f"bold {c('secondary')}", no_wrap=True)
    t.add_column(overflow="fold")

    def row(k: str, v: str) -> None:
        t.add_row(k, v)

    row("scenario", f"{inc.scenario}  ({inc.type}, severity {inc.severity})")
    row("status", inc.status)
    det, fault, res = inc.detected_at, inc.fault_at, inc.resolved_at
    if fault is not None:
        row("fault at", timefmt.clock(fault) + f"  (detected {timefmt.between(fault, det)} later)")
    row("detected at", f"{timefmt.clock(det)}  ({timefmt.between(det, now)} ago)")
    if res is not None:
        # Detection to the end, not a recovery time: the outcome's recovery_time_s is that, with its basis.
        row(f"{inc.status} at", timefmt.clock(res) + f"  ({timefmt.between(det, res)} after detection)")
    else:
        row("resolved at", f"not yet — open for {timefmt.between(det, now)}")
    if inc.affected_workflows:
        row("affected", ", ".join(inc.affected_workflows))
    # the incident pipeline loads after the first frame (tui.link_open)
    from core.incidents.kinds import GATES

    for g in inc.criteria:
        # The docstring's first paragraph whole: its first line alone can stop mid-sentence.
        doc = " ".join((GATES[g].__doc__ or "").strip().split("\n\n")[0].split()) if g in GATES else ""
        row("must pass", f"{g}" + (f" — {doc}" if doc else ""))
    if inc.validation_window_s is not None:
        row("validation window", timefmt.duration(inc.validation_window_s))
    if inc.plans:
        row("plans", ", ".join(inc.plans))
    for n in inc.notes:
        row("note", f"{timefmt.clock(n.at)} {n.by}: {n.note}" + (f" ({n.action})" if n.action else ""))
    return t


class IncidentScreen(DetailScreen):
    def title_text(self) -> str:
        inc = self.engine.state.incidents.get(self.key)
        if inc is None:
            return f"incident {self.key} — not found"
        return f"incident {self.key} — {inc.type} [{inc.severity}] {inc.status}"

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
        outcome = inc.outcome.model_dump(mode="json")  # the fields its writer set
        if not _empty(outcome):
            parts += [section("outcome", outcome, c), Text("")]
        evidence = inc.evidence.shown()
        if not _empty(evidence):
            parts.append(Text("Evidence", style=f"bold {c('secondary')}"))
            parts += render_result(evidence, c)
        plans = [p for p in s.plans.values() if p.incident_id == self.key]
        for p in plans:
            parts += [*plan_section(s, p, c), Text("")]
        if not plans:
            parts += [Text("No plan yet.", style=c("foreground-muted")), Text("")]
        parts.append(self.events_block("Timeline"))
        return Group(*parts)
