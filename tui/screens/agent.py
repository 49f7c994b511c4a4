"""An agent: status, task history and a usage graph from the telemetry series."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..log_source import LogFilter
from ..meter import fmt_clock, sparkline
from ..style import AGENT_GLYPH, TASK_STATUS_COLOR, color
from .detail import DetailScreen


class AgentScreen(DetailScreen):
    def title_text(self) -> str:
        return f"agent {self.key}"

    def events_filter(self) -> LogFilter:
        return LogFilter(text=f'"{self.key}"')

    def body(self) -> RenderableType:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        eng = self.engine
        a = eng.state.agents.get(self.key)
        if a is None:
            return Text(f"no agent {self.key!r}", style=c("error"))
        glyph, gc = AGENT_GLYPH[a.status]
        head = Text()
        head.append(f"{glyph} {a.status.value}", style=f"bold {c(gc)}")
        head.append(f"  pool {a.pool}  specializations {', '.join(a.specializations)}")
        head.append(f"  tasks done {a.tasks_done}  failures {a.failures}")
        if a.current_task:
            head.append(f"  now: {a.current_task}", style=c("primary"))
        width = max(min((self.size.width or 80) - 24, 120), 20)
        cpu = eng.telemetry.get("cpu_pct", a.id).values()
        mem = eng.telemetry.get("memory_mb", a.id).values()
        graph = Text()
        graph.append("CPU %     ", style=f"bold {c('secondary')}")
        graph.append(sparkline(cpu, width, 0, 100), style=c("success"))
        graph.append(f" {cpu[-1] if cpu else 0:5.1f}\n")
        top = max(mem or [1.0]) or 1.0
        graph.append("memory MB ", style=f"bold {c('secondary')}")
        graph.append(sparkline(mem, width, 0, top), style=c("accent"))
        graph.append(f" {mem[-1] if mem else 0:5.0f}")
        hist = Table(title="Task history", title_justify="left", expand=True, box=None, header_style=f"bold {c('secondary')}")
        for col in ("task", "state", "started", "finished", "tries"):
            hist.add_column(col, no_wrap=True)
        mine = [t for t in eng.state.tasks.values() if t.agent == a.id or any(ev.data.get("task") == t.id for ev in self.events)]
        mine.sort(key=lambda t: t.started_at or 0.0, reverse=True)
        for t in mine[:20]:
            hist.add_row(t.id, Text(t.status.value, style=c(TASK_STATUS_COLOR[t.status])),
                         fmt_clock(t.started_at) if t.started_at is not None else "—",
                         fmt_clock(t.finished_at) if t.finished_at is not None else "—", str(t.attempts))
        return Group(head, Text(""), graph, Text(""), hist, Text(""), self.events_block())
