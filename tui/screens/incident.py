"""An incident: evidence, plan, step-by-step progress, outcome and timings."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from ..log_source import LogFilter
from ..meter import fmt_clock
from ..style import color
from ..widgets.incidents import STEP_GLYPH, incident_of, plan_status, plan_steps, step_status, step_text
from .detail import DetailScreen

TIME_KEYS = ("opened_at", "detected_at", "ts", "planned_at", "approved_at", "resolved_at", "closed_at", "finished_at")


def _fmt(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


class IncidentScreen(DetailScreen):
    def title_text(self) -> str:
        inc = self.engine.state.incidents.get(self.key, {})
        return f"incident {self.key} — {inc.get('type') or inc.get('kind') or ''} [{inc.get('severity', '?')}] {inc.get('status', '')}"

    def events_filter(self) -> LogFilter:
        return LogFilter(text=f'"{self.key}"')

    def body(self) -> RenderableType:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        s = self.engine.state
        inc = s.incidents.get(self.key)
        if inc is None:
            return Text(f"no incident {self.key!r}", style=c("error"))
        parts: list[RenderableType] = []
        facts = Table(box=None, show_header=False, expand=True)
        facts.add_column(style=f"bold {c('secondary')}", no_wrap=True)
        facts.add_column()
        for k, v in inc.items():
            if k in ("evidence",):
                continue
            facts.add_row(k, fmt_clock(v) if k in TIME_KEYS and isinstance(v, (int, float)) else _fmt(v))
        parts += [Text("Incident", style=f"bold {c('secondary')}"), facts, Text("")]
        ev = inc.get("evidence")
        parts.append(Text("Evidence", style=f"bold {c('secondary')}"))
        parts.append(JSON(json.dumps(ev, ensure_ascii=False), indent=2) if ev is not None else Text("(none attached)", style=c("foreground-muted")))
        parts.append(Text(""))
        plans = [(pid, p) for pid, p in s.plans.items() if incident_of(p) == self.key]
        for pid, p in plans:
            steps = plan_steps(p)
            t = Table(title=f"Plan {pid} — {plan_status(p)}", title_justify="left", expand=True, box=None, header_style=f"bold {c('secondary')}")
            for col in ("#", "state", "gate", "command", "took"):
                t.add_column(col, no_wrap=col != "command")
            for i, st in enumerate(steps, 1):
                ss = step_status(st)
                took = st.get("took_s") or st.get("duration_s")
                if took is None and isinstance(st.get("started_at"), (int, float)) and isinstance(st.get("finished_at"), (int, float)):
                    took = st["finished_at"] - st["started_at"]
                t.add_row(str(i), f"{STEP_GLYPH.get(ss, '·')} {ss}", str(st.get("gate") or st.get("approval") or st.get("kind") or ""),
                          step_text(st), f"{took:.1f}s" if isinstance(took, (int, float)) else "")
            parts += [t]
            outcome = p.get("outcome") or p.get("result")
            if outcome is not None:
                parts.append(Text(f"outcome: {_fmt(outcome)}", style=c("primary")))
            parts.append(Text(""))
        if not plans:
            parts += [Text("No plan yet.", style=c("foreground-muted")), Text("")]
        parts.append(self.events_block("Timeline"))
        return Group(*parts)
