"""A workflow: its task DAG with states, its checkpoints and its events."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from core.models import TaskStatus

from ..log_source import LogFilter
from ..meter import alloc_meter, fmt_clock
from ..style import BAND_COLOR, TASK_STATUS_COLOR, WF_STATUS_COLOR, color
from .detail import DetailScreen

TASK_GLYPH = {TaskStatus.PENDING: "○", TaskStatus.RUNNING: "▶", TaskStatus.PAUSED: "‖", TaskStatus.COMPLETED: "✓", TaskStatus.FAILED: "✖"}


class WorkflowScreen(DetailScreen):
    def title_text(self) -> str:
        wf = self.engine.state.workflows.get(self.key)
        return f"workflow {self.key} — {wf.name}" if wf else f"workflow {self.key} (gone)"

    def events_filter(self) -> LogFilter:
        return LogFilter(workflow=self.key)

    def body(self) -> RenderableType:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        s = self.engine.state
        wf = s.workflows.get(self.key)
        if wf is None:
            return Text(f"no workflow {self.key!r}", style=c("error"))
        head = Text()
        head.append(f"{wf.band.value} ({wf.priority})", style=f"bold {c(BAND_COLOR[wf.band])}")
        head.append("  status ")
        head.append(wf.status.value, style=f"bold {c(WF_STATUS_COLOR[wf.status])}")
        head.append(f"  phase {s.current_phase(wf.id) or '—'}  progress {s.workflow_progress(wf.id) * 100:.0f}%")
        if wf.depends_on:
            head.append(f"  depends on {', '.join(wf.depends_on)}")
        if wf.frozen:
            head.append("  FROZEN", style=f"bold {c('error')}")
        use = s.in_use(wf.id)
        res = Text()
        for lab, u, a in (("cpu", use.cpu_cores, wf.allocation.cpu_cores), ("mem GB", use.memory_gb, wf.allocation.memory_gb), ("agents", use.agents, wf.allocation.agents)):
            res.append(f"{lab} ")
            res.append_text(alloc_meter(float(u), float(a), 22, c("success"), c("foreground-muted"), c("error")))
            res.append(f" {u:g}/{a:g}   ")
        times = Text(f"created {fmt_clock(wf.created_at)}  started {fmt_clock(wf.started_at) if wf.started_at is not None else '—'}  finished {fmt_clock(wf.finished_at) if wf.finished_at is not None else '—'}", style=c("foreground-muted"))
        dag = Table(title="Task DAG", title_justify="left", expand=True, box=None, header_style=f"bold {c('secondary')}")
        for col in ("phase", "task", "state", "agent", "after", "progress", "tries"):
            dag.add_column(col, no_wrap=True)
        crit = set(s.critical_path(wf.id))
        last_phase = None
        for t in s.workflow_tasks(wf.id):
            name = t.id.split("/", 1)[-1]
            deps = ", ".join(d.split("/", 1)[-1] for d in t.depends_on) or "—"
            st = Text(f"{TASK_GLYPH[t.status]} {t.status.value}", style=c(TASK_STATUS_COLOR[t.status]))
            prog = 1.0 if t.status is TaskStatus.COMPLETED else t.context.progress
            dag.add_row(
                Text(t.phase, style="bold" if t.phase != last_phase else c("foreground-muted")),
                Text(name + (" ★" if t.id in crit else ""), style="bold" if t.id in crit else ""),
                st, t.agent or "—", deps, f"{prog * 100:3.0f}%", str(t.attempts),
            )
            last_phase = t.phase
        cps = Table(title="Checkpoints", title_justify="left", expand=True, box=None, header_style=f"bold {c('secondary')}")
        for col in ("id", "seq", "time", "kind", "label", "scope"):
            cps.add_column(col, no_wrap=True)
        for cp in sorted(s.checkpoints.values(), key=lambda x: x.id, reverse=True)[:10]:
            if cp.workflow in (None, wf.id):
                cps.add_row(str(cp.id), str(cp.seq), fmt_clock(cp.ts), cp.kind, cp.label or "", cp.workflow or "all")
        legend = Text("★ critical path   b: checkpoints / rollback", style=c("foreground-muted"))
        return Group(head, res, times, Text(""), dag, legend, Text(""), cps, Text(""), self.events_block())
